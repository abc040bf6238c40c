/**
 * The full-scale code path of notebooks 04 and 05, end to end, on a synthetic ImageNet tree (JPEGs in
 * ImageNet's train/ and val/ layout) and a small random U-Net saved as an official-format torch zip: the
 * image sources with the per-class subset ($DIFFPROBE_SUBSET) and the ImageNet-50 class filter, the engine
 * chosen by createExtractor, the store, the learning-rate choice, the sweeps, the attention head and the
 * main table (04), a head family (05), and the provenance of the checkpoint. These were smoke-only cells
 * inside the notebooks; here they cannot rot unnoticed.
 */
import { strict as assert } from "assert";
import { createHash } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { selectBackend } from "../lib/model/backend";
import { writeRandomCheckpoint, writeSyntheticImagenet, TINY_ADM_FLAGS } from "../lib/data/synthetic-tree";
import { imagenetSources } from "../lib/experiments/imagenet-sources";
import { createExtractor } from "../lib/features/store/extractor";
import { sourceConfig } from "../lib/model/model-source";
import { modelBlocks } from "../lib/model/unet/blocks";
import { measureJobs, planCost, runPlan, findSet } from "../lib/experiments/extraction-plan";
import {
  attentionSelection, chooseLinearLr, mainTable, paperPlan, studyExtract, StudyContext, studyJobs, studySweeps, studyTestJobs, testSets,
} from "../lib/experiments/linear-study";
import { selectFamily } from "../lib/experiments/heads-study";
import { linearHead } from "../lib/experiments/candidates";
import { linearRecipe } from "../lib/experiments/linear-study";
import { validationSplit } from "../lib/experiments/protocol/split";
import { mapPaperBlock } from "../lib/experiments/block-depth";
import { provenance } from "../lib/provenance";
import { paperSection } from "../lib/paper";
import { tempDir } from "./helpers/tmp";

describe("full-scale path of notebooks 04 and 05 (synthetic ImageNet tree, official-format checkpoint)", function () {
  this.timeout(300000);
  let tmp: string;
  let ckpt: string;
  const model = () => ({ config: TINY_ADM_FLAGS, checkpoint: ckpt });
  before(async () => {
    await selectBackend("wasm");
    tmp = tempDir("imagenet-full-path");
    ckpt = path.join(tmp, "models", "tiny_diffusion_uncond.pt");
    await writeRandomCheckpoint(ckpt, TINY_ADM_FLAGS, 1);
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it("04: subset per class and split, store, learning rate, sweeps, attention and main table; test features only where scored", async () => {
    const root = path.join(tmp, "imagenet");
    await writeSyntheticImagenet(root, { numClasses: 3, trainPerClass: 10, valPerClass: 4, seed: 1 });
    const srcs = await imagenetSources(root, { subset: 8, seed: 0, size: 32 });
    // N images per class and split: 8 of 10 train images per class, all 4 val images (fewer than 8)
    const perClass = (labels: Int32Array) => [0, 1, 2].map((c) => Array.from(labels).filter((l) => l === c).length);
    assert.deepEqual(perClass(srcs.train.labels!), [8, 8, 8]);
    assert.deepEqual(perClass(srcs.test.labels!), [4, 4, 4]);
    assert.match(srcs.name, /sub8-seed0/);
    const other = await imagenetSources(root, { subset: 8, seed: 1, size: 32 });
    assert.deepEqual(perClass(other.train.labels!), [8, 8, 8]);
    assert.notDeepEqual(other.train.ids, srcs.train.ids);
    assert.deepEqual((await imagenetSources(root, { subset: 8, seed: 0, size: 32 })).train.ids, srcs.train.ids);

    const ourBlocks = modelBlocks(sourceConfig(model())).length;
    const extractor = createExtractor(model(), { batchSize: 16 });
    try {
      const ctx: StudyContext = { extractor, train: srcs.train, test: srcs.test, numClasses: srcs.numClasses, ourBlocks, storeRoot: path.join(tmp, "store"), dtype: "float16", valFraction: 0.25, seed: 0 };
      const plan = paperPlan(paperSection<any>("imagenet_sweeps"), 8, [10, 90, 150]);
      const jobs = studyJobs(plan, ourBlocks), testJobs = studyTestJobs(plan, ourBlocks);
      const cost = planCost(extractor, [srcs.train, srcs.test], jobs, await measureJobs(extractor, srcs.train, jobs, 2), "float16");
      assert.equal(cost.length, 2 * jobs.length);
      assert.ok(cost.every((c) => c.secondsPerImage > 0 && c.diskGiB > 0));
      const st = await studyExtract(ctx, jobs, testJobs);
      const mainBlock = mapPaperBlock(24, ourBlocks);
      assert.deepEqual(st.test.map((s) => `${s.block.number}@${s.t}`), testJobs.map(() => `${mainBlock}@90`));
      const lr = await chooseLinearLr(ctx, plan, st, [0.01, 0.1]);
      const sw = await studySweeps(ctx, plan, st, lr.lr);
      const att = await attentionSelection(ctx, plan, st, {
        spec: { kind: "attention", dim: 64, heads: 4, mlpRatio: 2, blocks: 1, pool: 1, project: false },
        training: { epochs: 1, batchSize: 16, optimizer: { kind: "adamw", lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.05 }, schedule: null, seed: 0, showProgress: false },
        epochGrid: [1],
      });
      const table = mainTable(lr, att.selection, srcs.test.labels!);
      for (const s of [table.pool1, table.pool2, table.attention, sw.selection]) {
        assert.equal(s.chosen.testRows, 12);
        assert.equal(s.chosen.trainRows, 24);
      }
      assert.equal(table.pool2VsPool1.testRows, 12);
      // test features: the main setting's, plus the sweep winner's (extracted when it was chosen), nothing else
      const chosen = sw.selection.chosen;
      const side = findSet(st.train, chosen.block!, chosen.t!, Number(String(chosen.pool).split("x")[0])).side;
      const want = new Set([...testJobs.map((j) => `${mainBlock}@90:${j.pool}`), `${chosen.block!.number}@${chosen.t}:${side}`]);
      assert.deepEqual(new Set(st.test.map((s) => `${s.block.number}@${s.t}:${s.side}`)), want);
      assert.equal(sw.points.length, 3 + 2 * 7 + 2 * 4);
      // provenance names the checkpoint by its SHA-256 (computed here) and the engine that ran
      const p = provenance({ checkpoints: { model: ckpt }, engine: extractor.engine(), seeds: { split: 0 }, options: { lr: lr.lr }, images: { train: srcs.train.ids, test: srcs.test.ids }, split: st.split.record });
      assert.equal(p.checkpoints.model.sha256, createHash("sha256").update(fs.readFileSync(ckpt)).digest("hex"));
      assert.ok(!JSON.stringify(p).includes(tmp), "no absolute path of this machine");
      const engines = Array.isArray(p.engine) ? p.engine : [p.engine];
      assert.ok(engines.every((e) => e.name && e.version));
    } finally {
      await extractor.close();
    }
  });

  it("05: the ImageNet-50 class filter keeps only listed classes; a head family on the stored map", async () => {
    const wnids = paperSection<any>("imagenet50_classes").wnids as string[];
    const keep = wnids.slice(0, 3);
    const outside = ["n01440764", "n15075141"].find((w) => !wnids.includes(w))!;
    const root = path.join(tmp, "imagenet50");
    await writeSyntheticImagenet(root, { wnids: [...keep, outside], trainPerClass: 6, valPerClass: 3, seed: 2 });
    const srcs = await imagenetSources(root, { classes: keep, classSetName: "imagenet-50", subset: 5, size: 32 });
    assert.equal(srcs.numClasses, 3);
    assert.deepEqual([...srcs.classIds].sort(), [...keep].sort());
    assert.equal(srcs.train.ids.length, 15);
    assert.equal(srcs.test.ids.length, 9);
    const block = mapPaperBlock(24, modelBlocks(sourceConfig(model())).length);
    const extractor = createExtractor(model(), { batchSize: 8 });
    try {
      const jobs = [{ blocks: [block], timesteps: [90], pool: 8 as const }];
      const storeRoot = path.join(tmp, "store50");
      const train = findSet(await runPlan({ root: storeRoot, extractor, images: srcs.train, jobs, dtype: "float16" }), block, 90, 8);
      const split = validationSplit(srcs.train.labels!, { seed: 0, fraction: 0.25, ids: srcs.train.ids });
      const ctx = { extractor, train: srcs.train, test: srcs.test, numClasses: 3, ourBlocks: 0, storeRoot, dtype: "float16" as const, valFraction: 0.25, seed: 0 };
      const fam = await selectFamily(
        { family: "linear", heads: [1, 2].map((p) => ({ setting: `pool ${p}`, head: linearHead(p) })), training: linearRecipe(0), search: { tag: "lr", values: [0.01, 0.1] } },
        train, testSets(ctx, { test: [] }), 3, split,
      );
      assert.equal(fam.rows.length, 4);
      assert.equal(fam.chosen.testRows, 9);
      // parameter counts: ours at 3 classes, and the paper's 1000-way output, for the same head
      const c = train.set.manifest.rowShape![0];
      for (const r of fam.rows) {
        const d = c * (r.setting === "pool 1" ? 1 : 4);
        assert.deepEqual([r.params, r.params1000], [(d + 1) * 3, (d + 1) * 1000]);
      }
    } finally {
      await extractor.close();
    }
  });
});
