/**
 * Stages one and two of the pipeline on a tiny U-Net: runPlan fills the store (resumable), storedCandidates
 * reads it back through storeSource (never matrix(), never recomputed), selectAndTest chooses on validation;
 * the raw-pixel candidate.
 */
import { strict as assert } from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { selectBackend } from "../lib/model/backend";
import { createExtractor } from "../lib/features/store/extractor";
import { memorySource as memoryImages, ImageSource } from "../lib/features/store/images";
import { FeatureSet } from "../lib/features/store/store";
import { runPlan, StoredSet } from "../lib/experiments/extraction-plan";
import { fusedCandidate, pixelCandidate, storedCandidates } from "../lib/experiments/candidates";
import { imageListId } from "../lib/features/store/key";
import { fitHead, probeTraining, selectAndTest } from "../lib/experiments/protocol/select";
import { validationSplit } from "../lib/experiments/protocol/split";
import { Rng } from "../lib/rng";
import { loadModel } from "../lib/model/load-model";
import { extractFeatures, featureMatrix } from "../lib/features/extract";
import { tempDir, removeTempDir } from "./helpers/tmp";

const TINY = {
  image_size: 16, in_channels: 1, num_channels: 32, num_res_blocks: 1, channel_mult: "1,2",
  attention_resolutions: "8", num_head_channels: 32, resblock_updown: true, use_scale_shift_norm: true, learn_sigma: false,
};

/** Two classes: horizontal vs vertical stripes, random phase and noise. */
function stripes(n: number, seed: number, split: string): ImageSource {
  const rng = new Rng(seed);
  const data = new Float32Array(n * 16 * 16);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = i % 2;
    const phase = rng.uint32() % 4;
    for (let y = 0; y < 16; y++) for (let x = 0; x < 16; x++) {
      const v = ((labels[i] ? x : y) + phase) % 4 < 2 ? 0.8 : -0.8;
      data[i * 256 + y * 16 + x] = Math.max(-1, Math.min(1, v + 0.1 * rng.normal()));
    }
  }
  return memoryImages({ dataset: "stripes", split, preprocessing: "synthetic-16", images: { data, shape: [n, 16, 16, 1] }, ids: Array.from({ length: n }, (_, i) => `${split}:${i}`), labels });
}

describe("pipeline: stored sets as candidates", function () {
  before(async () => {
    await selectBackend("wasm");
  });

  it("extracts every (block, t) into the store, selects on validation from it, and a rerun reads the store", async function () {
    const root = tempDir("candidates");
    try {
      const train = stripes(48, 1, "train"), test = stripes(24, 2, "test");
      const extractor = createExtractor({ config: TINY, seed: 3 }, { engine: "tfjs", workers: 1, batchSize: 16 });
      const jobs = [{ blocks: [2, 5], timesteps: [0, 200], pool: 2 as const }];
      let trainSets, testSets;
      try {
        trainSets = await runPlan({ root, extractor, images: train, jobs, partRows: 20 });
        testSets = await runPlan({ root, extractor, images: test, jobs, partRows: 20 });
      } finally {
        await extractor.close();
      }
      assert.equal(extractor.engine().name, "tfjs");
      assert.deepEqual(trainSets.map((s) => `${s.block.number}/${s.block.module}@${s.t}:${s.side}`), ["2/input_blocks.1@0:2", "2/input_blocks.1@200:2", "5/middle_block@0:2", "5/middle_block@200:2"]);
      const split = validationSplit(train.labels!, { seed: 0, fraction: 0.25, ids: train.ids });
      const cands = storedCandidates(trainSets, testSets, { numClasses: 2 });
      assert.deepEqual(cands.map((c) => c.head), [1, 2, 3, 4].map(() => ({ kind: "linear", pool: 2, init: "zeros" })));
      // each candidate names its stored training set (the key of a resumable fit)
      assert.deepEqual(cands.map((c) => c.dataId), trainSets.map((s) => `store:${s.set.manifest.id}`));
      assert.equal(new Set(cands.map((c) => c.dataId)).size, 4);
      const training = probeTraining(0, { epochs: 40, batchSize: 16 });
      const matrix = FeatureSet.prototype.matrix;
      FeatureSet.prototype.matrix = () => {
        throw new Error("matrix() called");
      };
      let sel, streamed;
      try {
        sel = await selectAndTest("random init", cands, { split, training, showProgress: false });
        // beyond the memory budget the heads stream from the store, with the same result
        streamed = await selectAndTest("random init", cands, { split, training, showProgress: false, memoryBudgetBytes: 0 });
      } finally {
        FeatureSet.prototype.matrix = matrix;
      }
      assert.deepEqual(streamed.grid.map((r) => r.valAcc), sel.grid.map((r) => r.valAcc));
      assert.deepEqual(Array.from(streamed.chosen.test.predictions), Array.from(sel.chosen.test.predictions));
      assert.ok(sel.grid.every((r) => r.inMemory) && streamed.grid.every((r) => !r.inMemory));
      for (const r of sel.grid) assert.ok(r.dim === 32 * 4 || r.dim === 64 * 4, `dim ${r.dim}`);
      assert.ok(sel.chosen.testAcc > 0.7, `chosen ${JSON.stringify(sel.chosen)}`);
      // the block is one plain value in JSON
      assert.deepEqual(JSON.parse(JSON.stringify(sel.chosen)).block, sel.chosen.block);
      // Overwrite every stored training row with one constant (valid parts): a selection that reads the store
      // now cannot separate anything; one that recomputed, or kept features elsewhere, would score as before.
      const sets = fs.readdirSync(root).map((d) => FeatureSet.open(path.join(root, d)));
      assert.equal(sets.length, 8);
      for (const s of sets.filter((x) => x.key.split === "train")) {
        for (let p = 0; p < s.parts; p++) {
          const [a, b] = s.partRange(p);
          s.writePart(p, new Float32Array((b - a) * s.dim).fill(0.25));
        }
      }
      const again = await selectAndTest("random init", cands, { split, training, showProgress: false });
      assert.ok(again.grid.every((r) => r.fitAcc <= 0.6), `fit accuracies ${again.grid.map((r) => r.fitAcc)}`);
      // and a second runPlan reads what is stored: no model pass (the extractor would fail on a closed pool)
      const reread = await runPlan({ root, extractor: { ...extractor, extract: () => Promise.reject(new Error("recomputed")) }, images: train, jobs, partRows: 20 });
      assert.equal(reread.length, 4);
    } finally {
      removeTempDir(root);
    }
  });

  it("the raw-pixel candidate: [C, H, W] rows of the images, fit by the linear head", async () => {
    // bright left vs right halves are linearly separable in pixel space
    const halves = (n: number, seed: number, split: string): ImageSource => {
      const s = stripes(n, seed, split);
      const data = Float32Array.from({ length: n * 256 }, (_, i) => ((i % 16 < 8) === (s.labels![Math.floor(i / 256)] === 0) ? 0.5 : -0.5));
      return memoryImages({ dataset: "halves", split, preprocessing: "synthetic-16", images: { data, shape: [n, 16, 16, 1] }, ids: s.ids, labels: s.labels });
    };
    const tr = halves(40, 1, "train"), te = halves(20, 2, "test");
    const c = await pixelCandidate(tr, te, 2);
    assert.deepEqual(c.train().shape, [1, 16, 16]);
    assert.equal(c.dataId, `pixels:halves/train:synthetic-16:${imageListId(tr.ids)}`);
    assert.deepEqual(Array.from(await c.train().readRows([3])), Array.from((await tr.load(3, 4)).data));
    const split = validationSplit(tr.labels!, { seed: 0, fraction: 0.25 });
    const sel = await selectAndTest("raw pixels", [c], { split, training: probeTraining(0, { epochs: 20, batchSize: 16 }), showProgress: false });
    assert.equal(sel.chosen.dim, 256);
    assert.ok(sel.chosen.testAcc > 0.9, `test ${sel.chosen.testAcc}`);
  });

  it("a class-conditional U-Net gets each image's label through the store (and the key says so)", async function () {
    const root = tempDir("candidates-cond");
    try {
      const src = { config: { ...TINY, class_cond: true }, seed: 5 };
      const images = stripes(12, 3, "train");
      const jobs = [{ blocks: [2], timesteps: [100], pool: 2 as const }];
      const extractor = createExtractor(src, { engine: "tfjs", workers: 1, batchSize: 5 });
      let sets, relabelled;
      const swapped = memoryImages({ ...images, images: await images.load(0, 12), labels: images.labels!.map((l) => 1 - l) });
      try {
        await assert.rejects(runPlan({ root, extractor, images: { ...images, labels: null }, jobs, conditionOnLabels: true }), /has no labels for a class-conditional model/);
        sets = await runPlan({ root, extractor, images, jobs, conditionOnLabels: true, partRows: 8 });
        relabelled = await runPlan({ root, extractor, images: swapped, jobs, conditionOnLabels: true, partRows: 8 });
      } finally {
        await extractor.close();
      }
      assert.match(sets[0].set.key.conditioning!, /^labels:[0-9a-f]{16}$/);
      assert.notEqual(relabelled[0].set.key.conditioning, sets[0].set.key.conditioning);
      // the same rows as the model run directly with those labels
      const model = await loadModel(src);
      const direct = await extractFeatures(model, await images.load(0, 12), {
        blocks: [2], timesteps: [100], pool: { kind: "adaptive", size: 2 }, noise: { policy: "seeded", seed: 0 }, ids: images.ids, y: Array.from(images.labels!),
      });
      model.dispose?.();
      const want = featureMatrix(direct, 2, 100).data;
      const got = sets[0].set.matrix();
      let worst = 0;
      want.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - got[i]))));
      assert.ok(worst < 1e-4, `max |stored - direct| ${worst}`);
      // other labels, other features: the labels reached the model
      const other = relabelled[0].set.matrix();
      assert.ok(other.some((v, i) => Math.abs(v - got[i]) > 1e-3), "relabelled images gave the same features");
    } finally {
      removeTempDir(root);
    }
  });

  it("fusedCandidate: DifFormer rows are the stored maps of every block at every t side by side (t-major), fit by the difformer head", async function () {
    this.timeout(60000);
    const root = tempDir("candidates-fused");
    try {
      const train = stripes(24, 1, "train"), test = stripes(12, 2, "test");
      const extractor = createExtractor({ config: TINY, seed: 3 }, { engine: "tfjs", workers: 1, batchSize: 12 });
      const jobs = [{ blocks: [2, 5], timesteps: [0, 200], pool: 2 as const }];
      let trainSets: StoredSet[], testSets: StoredSet[];
      try {
        trainSets = await runPlan({ root, extractor, images: train, jobs });
        testSets = await runPlan({ root, extractor, images: test, jobs });
      } finally {
        await extractor.close();
      }
      const blocks = [5, 2].map((n) => trainSets.find((s) => s.block.number === n)!.block);
      const c = fusedCandidate(trainSets, testSets, { blocks, timesteps: [200, 0], side: 2, numClasses: 2, transformer: { dim: 16, heads: 2, mlpRatio: 2, blocks: 1, prePool: 2 } });
      assert.equal(c.head.kind, "difformer");
      const head = c.head as Extract<typeof c.head, { kind: "difformer" }>;
      assert.deepEqual(head.maps, [[64, 2, 2], [32, 2, 2]]);
      assert.equal(head.timesteps, 2);
      const src = c.train();
      assert.deepEqual(src.shape, [2 * (256 + 128)]);
      const row = await src.readRows([3]);
      const part = (b: number, t: number) => trainSets.find((s) => s.block.number === b && s.t === t)!.set.readRows([3]);
      const want = [...part(5, 200), ...part(2, 200), ...part(5, 0), ...part(2, 0)];
      assert.deepEqual(Array.from(row), want);
      const fitted = await fitHead(c.head, src, null, probeTraining(0, { epochs: 30, batchSize: 8, optimizer: { kind: "sgd", lr: 0.05, momentum: 0.9, weightDecay: 0 } }));
      try {
        assert.ok((await fitted.evaluate(await c.test())).top1 > 0.7);
      } finally {
        fitted.dispose();
      }
      assert.throws(() => fusedCandidate(trainSets, testSets, { blocks, timesteps: [100], side: 2, numClasses: 2, transformer: { dim: 16, heads: 2, mlpRatio: 2, blocks: 1, prePool: 2 } }), /no stored training features for block 5, t 100/);
    } finally {
      removeTempDir(root);
    }
  });
});
