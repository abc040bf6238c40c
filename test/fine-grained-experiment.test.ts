/**
 * Notebook 06's library (lib/experiments/fine-grained.ts) on the one pipeline: the four heads' specs, the
 * epoch candidates, and the full-scale path end to end on synthetic trees in the six real layouts with a
 * tiny random U-Net written as an official-format torch checkpoint (what 06 ran at smoke scale before).
 */
import { strict as assert } from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { loadDataset } from "../lib/data/index";
import { writeSyntheticTree } from "../lib/data/synthetic-fine-grained";
import { TINY_ADM_FLAGS, writeRandomCheckpoint } from "../lib/data/synthetic-tree";
import { createExtractor } from "../lib/features/store/extractor";
import { FeatureSet } from "../lib/features/store/store";
import { specParams } from "../lib/heads/create";
import { selectBackend } from "../lib/model/backend";
import { blockTable } from "../lib/model/unet/index";
import { createUNetConfig } from "../lib/model/unet/config";
import { findSet, PLAN_NOISE } from "../lib/experiments/extraction-plan";
import { Candidate, probeTraining, selectAndTest } from "../lib/experiments/protocol/select";
import { tempDir } from "./helpers/tmp";
import {
  datasetRoot, datasetSources, epochCandidates, fineGrainedHeads, headsOnSetting, PAPER_ATTENTION, prepareDataset, SIX_DATASETS,
  sixDatasetCost, sweepCandidates,
} from "../lib/experiments/fine-grained";

describe("notebook 06: the four heads and the epoch candidates", () => {
  it("datasetRoot: $DIFFPROBE_<NAME>, else data/<name> in the project", () => {
    assert.equal(datasetRoot("cub", { DIFFPROBE_CUB: "/x/cub" }), "/x/cub");
    assert.equal(path.basename(datasetRoot("nabirds", {})), "nabirds");
    assert.equal(path.basename(path.dirname(datasetRoot("nabirds", {}))), "data");
  });

  it("the attention head at full scale takes the stored 8x8 map whole: 64 tokens, the paper's 12,593,152 parameters per block", () => {
    const heads = fineGrainedHeads(4, [1024, 8, 8], PAPER_ATTENTION);
    assert.deepEqual(heads.map((h) => h.name), ["linear", "MLP", "CNN", "attention"]);
    const att = heads[3].head;
    assert.ok(att.kind === "attention");
    if (att.kind !== "attention") return;
    assert.equal(att.pool, 1);
    assert.equal(att.dim, 1024);
    assert.equal((8 / att.pool) ** 2, 64);
    // the paper's count (results.json imagenet50_heads.attention_head): one block, dim 1024, MLP ratio 4
    const K = 200;
    const block = specParams(att, [1024, 8, 8], K) - 1024 /* CLS token */ - (1024 * K + K) /* classifier */;
    assert.equal(block, 12593152);
    // linear and MLP read the sweep's pooled size; CNN and attention the stored map
    assert.deepEqual(heads.map((h) => h.pool), [4, 4, 8, 8]);
    assert.deepEqual(heads[0].head, { kind: "linear", pool: 4, init: "zeros" });
    assert.equal(specParams(heads[0].head, [1024, 8, 8], K), 1024 * 16 * K + K);
    // learning rates: the linear probe's Adam and the heads' AdamW, each overridable alone
    assert.deepEqual(heads.map((h) => h.training.optimizer?.lr), [undefined, 1e-3, 1e-3, 1e-3]);
    const fast = fineGrainedHeads(4, [1024, 8, 8], PAPER_ATTENTION, { lr: { linear: 1e-2, CNN: 3e-3 } });
    assert.deepEqual(fast.map((h) => [h.training.optimizer?.kind, h.training.optimizer?.lr]), [["adam", 1e-2], ["adamw", 1e-3], ["adamw", 3e-3], ["adamw", 1e-3]]);
    assert.throws(() => fineGrainedHeads(3, [64, 8, 8], PAPER_ATTENTION), /pooled size 3 does not divide the stored side 8/);
    assert.throws(() => fineGrainedHeads(2, [64], PAPER_ATTENTION), /must be \[C, s, s\] maps/);
  });

  it("epochCandidates: one candidate per epoch count, tagged, nothing else changed", () => {
    const base: Candidate = {
      setting: { block: { number: 3, module: "input_blocks.2" }, t: 50, pool: "2x2", tags: { lr: 0.1 } },
      head: { kind: "linear", pool: 2 }, training: { batchSize: 8 },
      train: () => { throw new Error("not read"); }, test: () => { throw new Error("not read"); },
    };
    const cs = epochCandidates(base, [5, 20]);
    assert.deepEqual(cs.map((c) => c.training), [{ batchSize: 8, epochs: 5 }, { batchSize: 8, epochs: 20 }]);
    assert.deepEqual(cs.map((c) => c.setting.tags), [{ lr: 0.1, epochs: 5 }, { lr: 0.1, epochs: 20 }]);
    assert.deepEqual(base.training, { batchSize: 8 });
    assert.equal(cs[1].train, base.train);
    assert.throws(() => epochCandidates(base, []), /no epoch counts/);
    assert.throws(() => epochCandidates(base, [0]), /epoch count 0 is not a positive integer/);
  });
});

describe("notebook 06's full path: six synthetic trees, a tiny official-format checkpoint, the store", function () {
  this.timeout(600000);
  let dir: string;
  const roots: Record<string, string> = {};
  const counts: Record<string, { train: number; test: number }> = {};
  before(async () => {
    await selectBackend("wasm");
    dir = tempDir("nb06-full-path");
    await writeRandomCheckpoint(path.join(dir, "tiny_diffusion_uncond.pt"), TINY_ADM_FLAGS, 3);
    for (const d of SIX_DATASETS) {
      const tree = await writeSyntheticTree(d, path.join(dir, d), { classes: 3, trainPerClass: 4, testPerClass: 2, seed: 1 });
      roots[d] = tree.root;
      counts[d] = { train: tree.train, test: tree.test };
    }
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("cost first; the CUB sweep chosen on validation; four heads per dataset scored once on test; every split recorded", async () => {
    const model = { config: TINY_ADM_FLAGS, checkpoint: path.join(dir, "tiny_diffusion_uncond.pt"), diffusion: { noiseSchedule: "linear" as const, steps: 1000 } };
    const env = Object.fromEntries(SIX_DATASETS.map((d) => [`DIFFPROBE_${d.toUpperCase()}`, roots[d]]));
    const sources: Record<string, ReturnType<typeof datasetSources>> = {};
    for (const d of SIX_DATASETS) sources[d] = datasetSources(await loadDataset(d, datasetRoot(d, env)), 32);
    const store = path.join(dir, "store");
    const extractor = createExtractor(model, { batchSize: 8 });
    const sweepJob = { blocks: [4, 7], timesteps: [50], pool: 4 };
    const oneJob = { blocks: [4], timesteps: [50], pool: 4 };
    try {
      // the cost, before anything is stored: disk = images x C x 4 x 4 x 2 bytes per (block, t), C from the block table
      const cost = await sixDatasetCost(extractor, sources, sweepJob, oneJob, 2, "float16");
      assert.equal(fs.existsSync(store), false);
      const channels = new Map(blockTable(createUNetConfig(TINY_ADM_FLAGS)).map((b) => [b.number, b.shape[0]]));
      assert.equal(cost.length, 2 + 2 * 5);
      assert.match(cost[0].what, /^cub\/train: blocks 4,7 x t 50 @ 4x4$/);
      assert.equal(cost[0].images, counts.cub.train);
      assert.ok(Math.abs(cost[0].diskGiB - (counts.cub.train * (channels.get(4)! + channels.get(7)!) * 16 * 2) / 2 ** 30) < 1e-12);
      const aircraftTest = cost.find((c) => c.what.startsWith("aircraft/test"))!;
      assert.equal(aircraftTest.images, counts.aircraft.test);
      assert.ok(Math.abs(aircraftTest.diskGiB - (counts.aircraft.test * channels.get(4)! * 16 * 2) / 2 ** 30) < 1e-12);
      assert.ok(cost.every((c) => c.secondsPerImage > 0 && c.hours > 0));

      // the CUB sweep: blocks x t at 4x4 in the store, linear heads at pooled 1 and 2, chosen on validation
      const cub = await prepareDataset({ label: "cub", root: store, extractor, train: sources.cub.train, test: sources.cub.test, numClasses: 3, jobs: [sweepJob], dtype: "float16", split: { seed: 0, fraction: 0.25 } });
      const training = probeTraining(0, { epochs: 3, batchSize: 4 });
      const grid = sweepCandidates(cub, [1, 2]);
      assert.deepEqual(grid.map((c) => `${c.setting.block!.number}@${c.setting.t}:${c.setting.pool}`), ["4@50:1x1", "4@50:2x2", "7@50:1x1", "7@50:2x2"]);
      const sweep = await selectAndTest("cub sweep", grid, { split: cub.split, training, showProgress: false });
      const best = sweep.grid.reduce((a, r, i) => (r.valAcc > sweep.grid[a].valAcc ? i : a), 0);
      assert.equal(sweep.index, best);
      assert.equal(sweep.chosen.testRows, counts.cub.test);
      assert.equal(sweep.chosen.split.rows, counts.cub.train);
      // only the chosen setting's test images were extracted
      const testSets = () => fs.readdirSync(store).map((d) => FeatureSet.open(path.join(store, d))).filter((s) => s.key.split === sources[s.key.dataset].test.split);
      assert.deepEqual(testSets().map((s) => `${s.key.dataset}:${s.key.block}`), [`cub:${sweep.chosen.block!.number}`]);
      // the store holds the model's own numbers for each image (extracted again here, outside the store)
      const set = findSet(cub.sets, 7, 50, 4);
      const direct = await extractor.extract(await sources.cub.train.load(5, 6), sources.cub.train.ids.slice(5, 6), { blocks: [7], timesteps: [50], pool: { kind: "adaptive", size: 4 }, noise: PLAN_NOISE });
      const want = direct.matrices[0].data;
      const got = await set.set.readRows([5]);
      assert.equal(got.length, want.length);
      for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i] - want[i]) <= 2e-3 * Math.max(1, Math.abs(want[i])), `value ${i}: ${got[i]} vs ${want[i]}`);

      // every dataset: the chosen (block, t), four heads with epochs chosen on validation, each scored once on test
      const block = sweep.chosen.block!.number, t = sweep.chosen.t!;
      const pool = Number(sweep.chosen.pool.split("x")[0]);
      const splits = new Set<string>();
      for (const d of SIX_DATASETS) {
        const data = d === "cub" ? cub : await prepareDataset({ label: d, root: store, extractor, train: sources[d].train, test: sources[d].test, numClasses: 3, jobs: [{ blocks: [block], timesteps: [t], pool: 4 }], dtype: "float16", split: { seed: 0, fraction: 0.25 } });
        const map = findSet(data.sets, block, t, 4).set.manifest.rowShape!;
        const heads = fineGrainedHeads(pool, map, { pool: 1, mlpRatio: 2, heads: 2 }, { mlpHidden: 8, cnnWidth: 4 });
        const grid = d === "cub" ? { linear: [1, 2], MLP: [1, 2], CNN: [1, 2], attention: [1, 2] } : [1, 2];
        const res = await headsOnSetting(data, block, t, heads, grid, training);
        assert.deepEqual(res.map((r) => r.name), ["linear", "MLP", "CNN", "attention"]);
        for (const r of res) {
          const c = r.selection.chosen;
          assert.equal(c.trainRows, counts[d].train, `${d} ${r.name}`);
          assert.equal(c.testRows, counts[d].test, `${d} ${r.name}`);
          assert.equal(c.split.rows, counts[d].train);
          assert.equal(c.split.hash, data.split.record.hash);
          assert.deepEqual(r.selection.grid.map((g) => g.epochs), [1, 2]);
          assert.equal(c.epochs, r.selection.grid[r.selection.index].epochs);
          assert.equal(r.edge, c.epochs === 2);
        }
        splits.add(`${d}:${data.split.record.hash}:${data.split.record.rows}`);
      }
      assert.equal(splits.size, 6);
      await assert.rejects(headsOnSetting(cub, block, t, fineGrainedHeads(pool, findSet(cub.sets, block, t, 4).set.manifest.rowShape!, PAPER_ATTENTION), { linear: [1] }, training), /no epoch counts for the MLP head/);
      assert.deepEqual(testSets().map((s) => s.key.dataset).sort(), [...SIX_DATASETS].sort());
    } finally {
      await extractor.close();
    }
  });
});
