import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { selectBackend } from "../lib/model/backend";
import { FeatureSource, memorySource, subsetSource } from "../lib/heads/source";
import { storeSource, withinBudget } from "../lib/heads/store-source";
import { accuracy, mcnemarExact } from "../lib/metrics/classification";
import { validationSplit } from "../lib/experiments/protocol/split";
import { Candidate, chooseOnValidation, disposeGrid, fitCheckpoint, fitHead, gridOnTest, pairedOnTest, probeTraining, repeatSeeds, selectAndTest, TEST_SHOWN_LABEL, validationCurve } from "../lib/experiments/protocol/select";
import { Rng } from "../lib/rng";
import type { FeatureSetKey } from "../lib/features/store/key";
import { FeatureSet } from "../lib/features/store/store";
import { tempDir, removeTempDir } from "./helpers/tmp";

const KEY: FeatureSetKey = {
  model: "ckpt:0123456789abcdef01234567", schedule: "1000:abcdefabcdef", block: 9, module: "input_blocks.8", t: 100, pool: "adaptive4x4",
  noise: "seeded:0", preprocessing: "synthetic", dataset: "protocol-test", split: "train", images: "n10:0000000000000000", dtype: "float32",
};

/** Labels 0..k-1 with uneven class sizes (class c has 10 + 7c rows), in a shuffled order. */
function unevenLabels(k: number, seed: number): Int32Array {
  const out: number[] = [];
  for (let c = 0; c < k; c++) for (let i = 0; i < 10 + 7 * c; i++) out.push(c);
  const rng = new Rng(seed);
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.uint32() % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return Int32Array.from(out);
}

/** Gaussian class clusters in `dim` dimensions; `signal` scales the class means (0: pure noise). */
function clusters(labels: ArrayLike<number>, dim: number, signal: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const means = new Rng(99).fillNormal(new Float32Array(10 * dim));
  const x = new Float32Array(labels.length * dim);
  for (let i = 0; i < labels.length; i++) for (let j = 0; j < dim; j++) x[i * dim + j] = signal * means[labels[i] * dim + j] + rng.normal();
  return x;
}

describe("selection protocol", function () {
  before(async () => {
    await selectBackend("wasm");
  });

  describe("validation split", () => {
    it("is stratified (round(fraction · n_c) of each class), disjoint, complete and sorted", () => {
      const labels = unevenLabels(4, 1);
      const s = validationSplit(labels, { seed: 5, fraction: 0.2 });
      const all = [...s.fit, ...s.val].sort((a, b) => a - b);
      assert.deepEqual(all, Array.from({ length: labels.length }, (_, i) => i));
      assert.equal(new Set([...s.fit, ...s.val]).size, labels.length);
      for (const part of [s.fit, s.val]) for (let i = 1; i < part.length; i++) assert.ok(part[i] > part[i - 1]);
      for (let c = 0; c < 4; c++) {
        const n = 10 + 7 * c;
        const val = Array.from(s.val).filter((i) => labels[i] === c).length;
        assert.equal(val, Math.round(0.2 * n), `class ${c}`);
        assert.deepEqual(s.record.perClass[String(c)], [n - val, val]);
      }
      assert.equal(s.record.valRows + s.record.fitRows, labels.length);
      assert.match(s.record.hash, /^[0-9a-f]{16}$/);
    });

    it("is deterministic for a seed; another seed gives another split; a count per class works too", () => {
      const labels = unevenLabels(3, 2);
      const a = validationSplit(labels, { seed: 1, fraction: 0.25 });
      const b = validationSplit(labels, { seed: 1, fraction: 0.25 });
      const c = validationSplit(labels, { seed: 2, fraction: 0.25 });
      assert.deepEqual(Array.from(a.val), Array.from(b.val));
      assert.equal(a.record.hash, b.record.hash);
      assert.notDeepEqual(Array.from(a.val), Array.from(c.val));
      assert.notEqual(a.record.hash, c.record.hash);
      const k = validationSplit(labels, { seed: 1, perClass: 4 });
      assert.equal(k.val.length, 12);
      assert.deepEqual(Object.values(k.record.perClass).map((x) => x[1]), [4, 4, 4]);
      // the hash of ids names the images, whatever positions they have
      const ids = Array.from(labels, (_, i) => `img${i}`);
      const h = validationSplit(labels, { seed: 1, fraction: 0.25, ids });
      assert.equal(h.record.hashOf, "ids");
      assert.deepEqual(Array.from(h.val), Array.from(a.val));
    });

    it("a fraction holds out at least one row and keeps at least one to fit; a class of one row stays in fit, recorded", () => {
      const labels = [...Array(10).fill(0), ...Array(3).fill(1), 2, ...Array(7).fill(3), 4, 4];
      const s = validationSplit(labels, { seed: 4, fraction: 0.25 });
      const count = (idx: Int32Array, k: number) => Array.from(idx).filter((i) => labels[i] === k).length;
      // round(2.5) = 3; max(1, round(0.75)) = 1; a single row stays in fit; round(1.75) = 2; min(2 - 1, round(0.5) -> 1) = 1
      assert.deepEqual([0, 1, 2, 3, 4].map((k) => count(s.val, k)), [3, 1, 0, 2, 1]);
      assert.deepEqual(s.record.unvalidated, [2]);
      assert.equal(s.fit.length + s.val.length, labels.length);
      const high = validationSplit(labels, { seed: 4, fraction: 0.9 });
      assert.deepEqual([0, 1, 2, 3, 4].map((k) => count(high.fit, k)), [1, 1, 1, 1, 1]);
      assert.notDeepEqual(Array.from(validationSplit(labels, { seed: 5, fraction: 0.25 }).val), Array.from(s.val));
    });

    it("refuses bad input with a clear message", () => {
      const labels = unevenLabels(2, 3);
      assert.throws(() => validationSplit(labels, { seed: 1 }), /exactly one of fraction and perClass/);
      assert.throws(() => validationSplit(labels, { seed: 1, fraction: 1 }), /fraction must be in \(0, 1\)/);
      assert.throws(() => validationSplit(labels, { seed: 1, perClass: 10 }), /class 0 has 10 training rows; holding out 10/);
      assert.throws(() => validationSplit(labels, { seed: -1, fraction: 0.1 }), /seed must be a non-negative integer/);
    });
  });

  describe("heads read from the store", () => {
    it("a probe trained from a stored set (streamed, never matrix()) equals one trained on the same rows in memory", async () => {
      const dir = tempDir("protocol-store");
      try {
        const labels = unevenLabels(3, 4);
        const dim = 6;
        const x = clusters(labels, dim, 1, 5);
        const set = FeatureSet.create(dir, KEY, { dim, rowShape: [dim, 1, 1], ids: Array.from(labels, (_, i) => `r${i}`), labels, partRows: 8 });
        for (let p = 0; p < set.parts; p++) {
          const [a, b] = set.partRange(p);
          set.writePart(p, x.subarray(a * dim, b * dim));
        }
        set.matrix = () => {
          throw new Error("matrix() called");
        };
        const rows = validationSplit(labels, { seed: 0, fraction: 0.3 }).fit;
        const fromStore = subsetSource(storeSource(set, { numClasses: 3 }), rows);
        const inMemory = subsetSource(memorySource(x, [dim, 1, 1], labels, 3), rows);
        assert.deepEqual(Array.from(fromStore.labels), Array.from(inMemory.labels));
        const training = probeTraining(0, { epochs: 5, batchSize: 16 });
        const head = { kind: "linear" as const, pool: 1 };
        const a = await fitHead(head, fromStore, null, training, 0);
        const b = await fitHead(head, inMemory, null, training, 0);
        assert.equal(a.inMemory, false);
        const ea = await a.evaluate(inMemory), eb = await b.evaluate(inMemory);
        assert.deepEqual(Array.from(ea.predictions), Array.from(eb.predictions));
        a.dispose();
        b.dispose();
        // the memory budget: a source that does not fit is not copied
        assert.equal((await withinBudget(fromStore, rows.length * dim * 4 - 1)).inMemory, false);
        const held = await withinBudget(fromStore, rows.length * dim * 4);
        assert.equal(held.inMemory, true);
        assert.deepEqual(Array.from(await held.source.readRows([0, 5])), Array.from(await inMemory.readRows([0, 5])));
        assert.throws(() => storeSource(set, { numClasses: 2 }), /label 2 at row \d+ is outside 0..1/);
      } finally {
        removeTempDir(dir);
      }
    });
  });

  describe("choosing on validation, testing once", () => {
    const k = 3;
    const trainLabels = unevenLabels(k, 11);
    const testLabels = unevenLabels(k, 12);
    const split = validationSplit(trainLabels, { seed: 3, fraction: 0.3 });
    const dim = 5;
    const signals = [0.05, 1.5, 0.4];
    /** Candidates of increasing signal at index 1; tests count how often test sources are asked for and read. */
    function candidates(labelsOfTest: Int32Array, reads: number[], asked: number[]): Candidate[] {
      return signals.map((sig, i) => {
        const tr = memorySource(clusters(trainLabels, dim, sig, 20 + i), [dim, 1, 1], trainLabels, k);
        const teData = clusters(testLabels, dim, sig, 40 + i);
        return {
          setting: { block: { number: i + 1, module: `block${i + 1}` }, t: 10 * i, pool: "1x1" },
          head: { kind: "linear", pool: 1, init: "zeros" },
          train: () => tr,
          test: (): FeatureSource => {
            asked[i]++;
            const te = memorySource(teData, [dim, 1, 1], labelsOfTest, k);
            return { ...te, readRows: (idx) => ((reads[i] += idx.length), te.readRows(idx)) };
          },
        };
      });
    }

    it("chooses the highest validation accuracy (checked by brute force), refits on all training rows, reads the test split once", async () => {
      const reads = [0, 0, 0], asked = [0, 0, 0];
      const cands = candidates(testLabels, reads, asked);
      const training = probeTraining(0, { epochs: 15, batchSize: 16 });
      const sel = await selectAndTest("synthetic", cands, { split, training, showProgress: false, keepGridHeads: true });
      // brute force: copy each candidate's fit rows out, fit a head on them, score the validation rows
      const bruteVal: number[] = [];
      for (const c of cands) {
        const all = await c.train().readRows(Int32Array.from({ length: trainLabels.length }, (_, i) => i));
        const pick = (idx: Int32Array) => {
          const out = new Float32Array(idx.length * dim);
          idx.forEach((r, j) => out.set(all.subarray(r * dim, (r + 1) * dim), j * dim));
          return memorySource(out, [dim, 1, 1], Int32Array.from(idx, (i) => trainLabels[i]), k);
        };
        const h = await fitHead(c.head, pick(split.fit), null, training);
        const pred = (await h.evaluate(pick(split.val))).predictions;
        h.dispose();
        bruteVal.push(accuracy(pred, Int32Array.from(split.val, (i) => trainLabels[i])));
      }
      sel.grid.forEach((r, i) => assert.ok(Math.abs(r.valAcc - bruteVal[i]) <= 1 / split.val.length + 1e-12, `candidate ${i}: ${r.valAcc} vs ${bruteVal[i]}`));
      assert.equal(sel.index, chooseOnValidation(sel.grid));
      assert.equal(sel.index, 1, `val accuracies ${sel.grid.map((r) => r.valAcc)}`);
      assert.deepEqual(sel.grid.map((r) => r.chosen), [false, true, false]);
      assert.equal(sel.chosen.block!.number, 2);
      assert.equal(sel.chosen.trainRows, trainLabels.length);
      assert.equal(sel.chosen.valAcc, sel.grid[1].valAcc);
      assert.equal(sel.chosen.split.hash, split.record.hash);
      // the test split: asked for once, of the chosen candidate only, every row read exactly once
      assert.deepEqual(asked, [0, 1, 0]);
      assert.deepEqual(reads, [0, testLabels.length, 0]);
      assert.equal(sel.chosen.testAcc, accuracy(sel.chosen.test.predictions, testLabels));
      assert.ok(sel.chosen.testLow < sel.chosen.testAcc && sel.chosen.testAcc < sel.chosen.testHigh);
      // the grid on test comes after, labelled, from the grid's probes
      const shown = await gridOnTest(sel, cands);
      assert.equal(shown.length, 3);
      for (const r of shown) assert.ok(r[TEST_SHOWN_LABEL] >= 0 && r[TEST_SHOWN_LABEL] <= 1);
      disposeGrid(sel);
      await assert.rejects(gridOnTest(sel, cands), /were not kept/);
    });

    it("the choice never reads test labels: permuted test labels leave the grid and the choice unchanged", async () => {
      const perm = Int32Array.from(testLabels);
      for (let i = perm.length - 1; i > 0; i--) {
        const j = (i * 7919 + 13) % (i + 1);
        [perm[i], perm[j]] = [perm[j], perm[i]];
      }
      assert.notDeepEqual(Array.from(perm), Array.from(testLabels));
      const opts = { split, training: probeTraining(0, { epochs: 15, batchSize: 16 }), showProgress: false };
      const a = await selectAndTest("synthetic", candidates(testLabels, [0, 0, 0], [0, 0, 0]), opts);
      const b = await selectAndTest("synthetic", candidates(perm, [0, 0, 0], [0, 0, 0]), opts);
      assert.equal(a.index, b.index);
      assert.deepEqual(a.grid.map((r) => r.valAcc), b.grid.map((r) => r.valAcc));
      // the same chosen probe predicts the same test images: only the score against the labels differs
      assert.deepEqual(Array.from(a.chosen.test.predictions), Array.from(b.chosen.test.predictions));
      assert.notEqual(a.chosen.testAcc, b.chosen.testAcc);
    });

    it("paired McNemar takes only settings chosen on validation, on the same split", async () => {
      const opts = { split, training: probeTraining(0, { epochs: 10, batchSize: 16 }), showProgress: false };
      const cands = candidates(testLabels, [0, 0, 0], [0, 0, 0]);
      const a = await selectAndTest("best of grid", cands, opts);
      const b = await selectAndTest("weak only", [cands[0]], opts);
      const p = pairedOnTest(a.chosen, b.chosen, testLabels);
      const ref = mcnemarExact(a.chosen.test.predictions, b.chosen.test.predictions, testLabels);
      assert.deepEqual({ onlyA: p.onlyA, onlyB: p.onlyB, both: p.both, neither: p.neither, pValue: p.pValue }, ref);
      assert.equal(p.onlyA + p.onlyB + p.both + p.neither, testLabels.length);
      // a grid row, or a copy of a chosen row, is not a pre-chosen setting
      const copy = Object.assign({ ...a.chosen }, { test: a.chosen.test });
      assert.throws(() => pairedOnTest(copy, b.chosen, testLabels), /not a setting chosen on validation/);
      const other = await selectAndTest("other split", [cands[1]], { ...opts, split: validationSplit(trainLabels, { seed: 4, fraction: 0.3 }) });
      assert.throws(() => pairedOnTest(a.chosen, other.chosen, testLabels), /different validation splits/);
    });

    it("an epoch grid is fit once to its largest count and scored at each count, value for value as separate fits", async () => {
      const training = probeTraining(0, { epochs: 4, batchSize: 16 });
      const base = candidates(testLabels, [0, 0, 0], [0, 0, 0])[1];
      const grid = [6, 2, 4].map((epochs): Candidate => ({ ...base, setting: { ...base.setting, tags: { epochs } }, training: { epochs } }));
      let fits = 0;
      const counted = grid.map((c) => ({ ...c, train: () => (fits++, c.train()) }));
      const sel = await selectAndTest("epochs", counted, { split, training, showProgress: false, keepGridHeads: true });
      assert.equal(fits, 2, "one fit for the grid, one refit of the winner");
      assert.deepEqual(sel.grid.map((r) => r.epochs), [6, 2, 4]);
      const shown = await gridOnTest(sel, grid);
      for (const [i, c] of grid.entries()) {
        const h = await fitHead(c.head, c.train(), split.fit, { ...training, epochs: c.training!.epochs! });
        const val = await h.evaluate(subsetSource(c.train(), split.val));
        const te = await h.evaluate(await c.test());
        h.dispose();
        assert.equal(sel.grid[i].valAcc, val.top1, `${c.training!.epochs} epochs: validation`);
        assert.deepEqual(Array.from(sel.valPredictions[i]), Array.from(val.predictions));
        assert.equal(shown[i][TEST_SHOWN_LABEL], te.top1, `${c.training!.epochs} epochs: the kept head on test`);
        assert.ok(sel.grid[i].training.includes(`${c.training!.epochs} epochs`));
      }
      disposeGrid(sel);
    });

    it("the setting chosen on validation is the one scored on test, refit on every training row", async () => {
      const training = probeTraining(0, { epochs: 15, batchSize: 16 });
      const cands = candidates(testLabels, [0, 0, 0], [0, 0, 0]);
      const sel = await selectAndTest("synthetic", cands, { split, training, showProgress: false });
      const c = cands[sel.index];
      const h = await fitHead(c.head, c.train(), null, training);
      const direct = await h.evaluate(await c.test());
      h.dispose();
      assert.deepEqual(Array.from(sel.chosen.test.predictions), Array.from(direct.predictions));
      assert.equal(sel.chosen.testAcc, direct.top1);
    });

    it("checkpointed fits: a rerun loads every finished fit, a run killed mid-fit resumes, both equal to one uninterrupted run", async () => {
      const training = probeTraining(0, { epochs: 6, batchSize: 16 });
      const withIds = (ids: (string | undefined)[]) => candidates(testLabels, [0, 0, 0], [0, 0, 0]).map((c, i) => ({ ...c, ...(ids[i] ? { dataId: ids[i] } : {}) }));
      const ids = ["set-a", "set-b", undefined]; // the third has no dataId: never checkpointed
      const plain = await selectAndTest("synthetic", withIds(ids), { split, training, showProgress: false });
      const dir = tempDir("heads");
      try {
        const sel = (t: typeof training) => selectAndTest("synthetic", withIds(ids), { split, training: t, showProgress: false, checkpointDir: dir });
        const same = (a: typeof plain, b: typeof plain, what: string) => {
          assert.deepEqual(a.grid.map((r) => r.valAcc), plain.grid.map((r) => r.valAcc), `${what}: validation`);
          assert.deepEqual(a.valPredictions.map((p) => Array.from(p)), b.valPredictions.map((p) => Array.from(p)), `${what}: validation predictions`);
          assert.equal(a.index, b.index);
          assert.deepEqual(Array.from(a.chosen.test.predictions), Array.from(b.chosen.test.predictions), `${what}: test predictions`);
        };
        // a run killed during its second checkpointed fit (candidate 1, after 2 epochs)
        let epochs = 0;
        const killer = { ...training, onEpoch: () => { if (++epochs === training.epochs + 2) throw new Error("killed"); } };
        await assert.rejects(sel(killer), /killed/);
        assert.equal(fs.readdirSync(dir).filter((f) => f.endsWith(".head")).length, 2, "candidate 0 finished, candidate 1 part-way");
        // the rerun: candidate 0 loaded (no epoch), candidate 1 continues from epoch 2, candidate 2 (no id) and the refit run whole
        let trained = 0;
        const resumed = await sel({ ...training, onEpoch: () => void trained++ });
        same(resumed, plain, "resumed");
        assert.equal(trained, training.epochs - 2 + training.epochs + training.epochs);
        assert.deepEqual(resumed.grid.map((r) => r.resumedEpochs), [training.epochs, 2, 0], "the rows say what an earlier run did");
        assert.equal(resumed.chosen.resumedEpochs, 0);
        assert.deepEqual(plain.grid.map((r) => r.resumedEpochs), [0, 0, 0]);
        const files = fs.readdirSync(dir).filter((f) => f.endsWith(".head"));
        assert.equal(files.length, 3, "two grid fits and the refit of the chosen candidate (it has a dataId)");
        // a third run trains nothing that has a dataId
        trained = 0;
        const reloaded = await sel({ ...training, onEpoch: () => void trained++ });
        same(reloaded, plain, "reloaded");
        assert.equal(trained, training.epochs, "only the candidate without a dataId");
        assert.equal(reloaded.chosen.resumedEpochs, training.epochs);
        // another seed, another split or other data are other files
        const c = withIds(ids)[0];
        const name = (cc: typeof c, rows: string, t: typeof training) => fitCheckpoint(dir, cc, rows, t);
        const a = name(c, "all", training);
        assert.ok(a && a.startsWith(dir));
        assert.notEqual(name(c, "all", { ...training, seed: 1 }), a);
        assert.notEqual(name(c, "fit of x", training), a);
        assert.notEqual(name({ ...c, dataId: "set-z" }, "all", training), a);
        assert.equal(name(c, "all", { ...training, showProgress: true, onEpoch: () => undefined }), a, "progress and callbacks are not options of the fit");
        assert.equal(name({ ...c, dataId: undefined }, "all", training), null);
        assert.equal(fitCheckpoint(null, c, "all", training), null);
      } finally {
        removeTempDir(dir);
      }
    });

    it("validationCurve: one fit scored after each epoch count equals a separate fit of that count, on validation rows only", async () => {
      const training = probeTraining(0, { epochs: 99, batchSize: 16 });
      const reads = [0, 0, 0], asked = [0, 0, 0];
      const c = candidates(testLabels, reads, asked)[1];
      const curve = await validationCurve("synthetic", c, { split, training, epochs: [6, 2, 4, 4] });
      assert.deepEqual(curve.map((r) => r.epochs), [2, 4, 6]);
      for (const r of curve) {
        const h = await fitHead(c.head, c.train(), split.fit, { ...training, epochs: r.epochs });
        const val = await h.evaluate(subsetSource(c.train(), split.val));
        h.dispose();
        assert.equal(r.valAcc, val.top1, `${r.epochs} epochs`);
        assert.ok(r.valLow <= r.valAcc && r.valAcc <= r.valHigh);
        assert.equal(r.steps, r.epochs * Math.ceil(split.fit.length / 16));
      }
      assert.deepEqual(asked, [0, 0, 0], "the test split is never asked for");
      await assert.rejects(validationCurve("synthetic", c, { split, training, epochs: [0, 3] }), /positive integers/);
    });

    it("repeatSeeds refits the fixed setting once per seed; the spread is the sample standard deviation", async () => {
      const training = probeTraining(0, { epochs: 8, batchSize: 16 });
      const cands = candidates(testLabels, [0, 0, 0], [0, 0, 0]);
      const seen: number[] = [];
      const r = await repeatSeeds("synthetic", [0, 1, 2], (seed) => (seen.push(seed), cands[1]), { training });
      assert.deepEqual(seen, [0, 1, 2]);
      assert.deepEqual(r.rows.map((x) => x.seed), [0, 1, 2]);
      const accs = r.rows.map((x) => x.testAcc);
      const mean = accs.reduce((a, b) => a + b) / 3;
      assert.ok(Math.abs(r.mean - mean) < 1e-12);
      assert.ok(Math.abs(r.sd - Math.sqrt(accs.reduce((a, x) => a + (x - mean) ** 2, 0) / 2)) < 1e-12);
      // seed 0 is the selection's own refit
      const sel = await selectAndTest("synthetic", [cands[1]], { split, training, showProgress: false });
      assert.equal(r.rows[0].testAcc, sel.chosen.testAcc);
    });
  });
});
