/**
 * What notebooks 04 and 05 run, on stored sets written by hand (Gaussian class clusters; one planted
 * informative setting): the learning-rate choice (checked against a brute-force search over the rates), the
 * sweeps (the planted setting wins, and is the one scored on test), the attention head's epoch search, the
 * main table's paired tests (against counts and an exact binomial tail computed here), the head families of
 * 05 with their 1000-way parameter counts; and permuting the test labels changes no choice.
 */
import { strict as assert } from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { selectBackend } from "../lib/model/backend";
import type { FeatureSetKey } from "../lib/features/store/key";
import { FeatureSet } from "../lib/features/store/store";
import type { StoredSet } from "../lib/experiments/extraction-plan";
import { storeSource } from "../lib/heads/store-source";
import { fitHead } from "../lib/experiments/protocol/select";
import { validationSplit } from "../lib/experiments/protocol/split";
import { linearHead } from "../lib/experiments/candidates";
import {
  attentionSelection, chooseLinearLr, linearRecipe, mainTable, StoredStudy, StudyContext, StudyPlan, studySweeps, sweepPoints,
} from "../lib/experiments/linear-study";
import { familyCandidates, selectFamily } from "../lib/experiments/heads-study";
import { gridPosition } from "../lib/experiments/grid-edge";
import { accuracy } from "../lib/metrics/classification";
import { Rng } from "../lib/rng";
import { tempDir } from "./helpers/tmp";

const K = 3, C = 4, SIDE = 2, DIM = C * SIDE * SIDE;
// 13-block model: paper 6 -> 3, 19 -> 7, 24 -> 9
const PLAN: StudyPlan = {
  tSweep: { paperBlock: 19, timesteps: [90, 150] },
  blockSweep: { paperBlocks: [6, 24], timesteps: [90, 150] },
  poolSweep: { settings: [{ paperBlock: 24, t: 90 }], pools: [1, 2] },
  main: { paperBlock: 24, t: 90 },
  sweepStoreSide: SIDE,
};
/** Only (block 9, t 150) carries the classes; the main setting (9, 90) a little; the rest is noise. */
const SIGNAL: Record<string, number> = { "9|150": 2.5, "9|90": 0.5 };

function labelsOf(n: number, seed: number): Int32Array {
  const out = Int32Array.from({ length: n }, (_, i) => i % K);
  const rng = new Rng(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.uint32() % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

function clusters(labels: Int32Array, signal: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const means = new Rng(77).fillNormal(new Float32Array(K * DIM));
  const x = new Float32Array(labels.length * DIM);
  for (let i = 0; i < labels.length; i++) for (let j = 0; j < DIM; j++) x[i * DIM + j] = signal * means[labels[i] * DIM + j] + rng.normal();
  return x;
}

function writeSet(root: string, split: string, block: number, t: number, labels: Int32Array, x: Float32Array): StoredSet {
  const key: FeatureSetKey = {
    model: "ckpt:0123456789abcdef01234567", schedule: "1000:abcdefabcdef", block, module: `m${block}`, t, pool: `adaptive${SIDE}x${SIDE}`,
    noise: "seeded:0", preprocessing: "synthetic", dataset: "study-test", split, images: `n${labels.length}:000000000000000${block % 10}`, dtype: "float32",
  };
  const set = FeatureSet.create(path.join(root, `${split}-${block}-${t}`), key, { dim: DIM, rowShape: [C, SIDE, SIDE], ids: Array.from(labels, (_, i) => `${split}${i}`), labels, partRows: 64 });
  for (let p = 0; p < set.parts; p++) {
    const [a, b] = set.partRange(p);
    set.writePart(p, x.subarray(a * DIM, b * DIM));
  }
  return { block: { number: block, module: `m${block}` }, t, side: SIDE, set };
}

const trainLabels = labelsOf(120, 1);
const testLabels = labelsOf(60, 2);
const permuted = (() => {
  const p = Int32Array.from(testLabels);
  for (let i = p.length - 1; i > 0; i--) {
    const j = (i * 7919 + 13) % (i + 1);
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
})();

/** A study whose train and test sets are all stored (test labels as given), so nothing is extracted. */
function study(root: string, test: Int32Array): StoredStudy {
  const settings = [3, 7, 9].flatMap((b) => [90, 150].map((t) => ({ b, t })));
  const signal = (b: number, t: number) => SIGNAL[`${b}|${t}`] ?? 0;
  return {
    train: settings.map(({ b, t }, i) => writeSet(root, "train", b, t, trainLabels, clusters(trainLabels, signal(b, t), 10 + i))),
    test: settings.map(({ b, t }, i) => writeSet(root, "test", b, t, test, clusters(testLabels, signal(b, t), 40 + i))),
    split: validationSplit(trainLabels, { seed: 0, fraction: 0.25 }),
  };
}

const CTX = {
  extractor: {
    modelId: "none", layout: () => [], engine: () => ({ name: "none", version: "0" }), close: async () => undefined,
    extract: () => Promise.reject(new Error("this study stores every set: nothing should be extracted")),
  },
  train: { dataset: "study-test", split: "train", ids: Array.from(trainLabels, (_, i) => `train${i}`), labels: trainLabels },
  test: { dataset: "study-test", split: "test", ids: Array.from(testLabels, (_, i) => `test${i}`), labels: testLabels },
  numClasses: K, ourBlocks: 13, storeRoot: "unused", valFraction: 0.25, seed: 0,
} as unknown as StudyContext;

const ATTENTION = {
  spec: { kind: "attention" as const, dim: C, heads: 2, mlpRatio: 2, blocks: 1, pool: 1, project: false },
  training: { epochs: 1, batchSize: 32, optimizer: { kind: "adamw" as const, lr: 3e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.05 }, schedule: null, seed: 0, showProgress: false },
  epochGrid: [1, 8],
};

/** min(1, 2 P(X <= k)), X ~ Binomial(n, 1/2), by exact integer sums (n is small here). */
function binomialTail(k: number, n: number): number {
  let c = 1, sum = 0;
  for (let i = 0; i <= k; i++) {
    sum += c;
    c = (c * (n - i)) / (i + 1);
  }
  return Math.min(1, (2 * sum) / 2 ** n);
}

describe("notebooks 04 and 05: the linear study and the head families", function () {
  this.timeout(120000);
  let root: string;
  let st: StoredStudy, stPermuted: StoredStudy;
  before(async () => {
    await selectBackend("wasm");
    root = tempDir("linear-study");
    st = study(path.join(root, "a"), testLabels);
    stPermuted = study(path.join(root, "b"), permuted);
  });
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  it("the learning rate: each pool's choice is the brute-force best on validation; an edge win is said", async () => {
    const lrs = [1e-4, 0.03, 3];
    const choice = await chooseLinearLr(CTX, PLAN, st, lrs);
    const mainSet = st.train.find((s) => s.block.number === 9 && s.t === 90)!;
    const valLabels = Int32Array.from(st.split.val, (i) => trainLabels[i]);
    for (const { pool, selection } of choice.byPool) {
      const brute: number[] = [];
      for (const lr of lrs) {
        const h = await fitHead(linearHead(pool), storeSource(mainSet.set, { numClasses: K }), st.split.fit, linearRecipe(0, lr));
        const val = await h.evaluate(storeSource(mainSet.set, { numClasses: K, rows: st.split.val }));
        h.dispose();
        brute.push(accuracy(val.predictions, valLabels));
      }
      assert.deepEqual(selection.grid.map((r) => r.valAcc), brute, `pool ${pool}`);
      const best = brute.indexOf(Math.max(...brute));
      assert.equal(selection.chosen.lr, lrs[best]);
      assert.equal(selection.chosen.block!.number, 9);
      assert.equal(selection.chosen.pool, `${pool}x${pool}`);
      const pos = gridPosition(lrs, lrs[best]);
      assert.equal(choice.edges.some((e) => e.startsWith(`linear pool ${pool}: learning rate ${lrs[best]} `)), pos === "high" || pos === "low");
    }
    assert.equal(choice.lr, choice.byPool[0].selection.chosen.lr);
    // the tiny rate cannot fit in 28 epochs: it never wins
    assert.notEqual(choice.lr, 1e-4);
  });

  it("the sweeps: one head per distinct (block, t, pool); the planted setting wins on validation and is the one scored on test", async () => {
    const sw = await studySweeps(CTX, PLAN, st, 1);
    assert.equal(sw.points.length, sweepPoints(PLAN).length);
    assert.equal(sw.points.length, 2 + 4 + 2);
    // distinct settings: (7, 90), (7, 150), (3, 90), (9, 90), (3, 150), (9, 150) at pool 1, and (9, 90) at pool 2
    assert.equal(sw.selection.grid.length, 7);
    assert.equal(sw.selection.chosen.block!.number, 9);
    assert.equal(sw.selection.chosen.t, 150);
    assert.ok(sw.selection.chosen.valAcc > 0.9, `chosen val ${sw.selection.chosen.valAcc}`);
    assert.equal(sw.selection.chosen.testAcc, accuracy(sw.selection.chosen.test.predictions, testLabels));
    assert.ok(sw.selection.chosen.testAcc > 0.9);
    for (const p of sw.points) {
      const r = sw.selection.grid.find((g) => g.block!.number === p.block.number && g.t === p.t && g.pool === `${p.pool}x${p.pool}`)!;
      assert.equal(p.valAcc, r.valAcc);
      assert.equal(accuracy(sw.valPredictions(p.block.number, p.t, p.pool), Int32Array.from(st.split.val, (i) => trainLabels[i])), p.valAcc);
    }
    assert.throws(() => sw.valPredictions(3, 10, 1), /no sweep head at block 3, t 10/);
  });

  it("the attention head's epochs are chosen on validation; the main table's paired tests match counts and an exact binomial tail", async () => {
    const lr = await chooseLinearLr(CTX, PLAN, st, [0.03, 0.3]);
    const att = await attentionSelection(CTX, PLAN, st, ATTENTION);
    assert.deepEqual(att.selection.grid.map((r) => r.epochs), [1, 8]);
    assert.equal(att.selection.chosen.epochs, att.selection.grid[att.selection.index].epochs);
    assert.equal(att.selection.index, att.selection.grid[1].valAcc > att.selection.grid[0].valAcc ? 1 : 0);
    assert.equal(att.edge !== null, true); // a grid of two: either value is an edge
    const table = mainTable(lr, att.selection, testLabels);
    const a = table.attention.chosen.test.predictions, b = table.pool2.chosen.test.predictions;
    let onlyA = 0, onlyB = 0;
    for (let i = 0; i < testLabels.length; i++) {
      if (a[i] === testLabels[i] && b[i] !== testLabels[i]) onlyA++;
      if (b[i] === testLabels[i] && a[i] !== testLabels[i]) onlyB++;
    }
    assert.equal(table.attentionVsPool2.onlyA, onlyA);
    assert.equal(table.attentionVsPool2.onlyB, onlyB);
    assert.ok(Math.abs(table.attentionVsPool2.pValue - binomialTail(Math.min(onlyA, onlyB), onlyA + onlyB)) < 1e-12);
    assert.equal(table.pool2VsPool1.a, "GD (L, pool 2x2)");
    await assert.rejects(attentionSelection(CTX, PLAN, st, { ...ATTENTION, epochGrid: [0] }), /epoch grid \[0\] must be positive integers/);
  });

  it("permuting the test labels changes no choice (learning rate, sweep winner, attention epochs, head families)", async () => {
    const runs = [];
    for (const s of [st, stPermuted]) {
      const lr = await chooseLinearLr(CTX, PLAN, s, [0.01, 0.3]);
      const sw = await studySweeps(CTX, PLAN, s, lr.lr);
      const att = await attentionSelection(CTX, PLAN, s, { ...ATTENTION, epochGrid: [1, 3] });
      const main = s.train.find((x) => x.block.number === 9 && x.t === 150)!;
      const fam = await selectFamily({ family: "linear", heads: [1, 2].map((p) => ({ setting: `pool ${p}`, head: linearHead(p) })), training: linearRecipe(0), search: { tag: "lr", values: [0.01, 0.3] } }, main, async (x) => s.test.find((y) => y.block.number === x.block.number && y.t === x.t)!, K, s.split);
      runs.push({ lr, sw, att, fam });
    }
    const [a, b] = runs;
    assert.deepEqual(a.lr.byPool.map((x) => x.selection.index), b.lr.byPool.map((x) => x.selection.index));
    assert.deepEqual(a.lr.byPool.map((x) => x.selection.grid.map((r) => r.valAcc)), b.lr.byPool.map((x) => x.selection.grid.map((r) => r.valAcc)));
    assert.equal(a.sw.selection.index, b.sw.selection.index);
    assert.deepEqual(a.sw.points.map((p) => p.valAcc), b.sw.points.map((p) => p.valAcc));
    assert.equal(a.att.selection.index, b.att.selection.index);
    assert.equal(a.fam.selection.index, b.fam.selection.index);
    // the same chosen heads predict the same test images; only the scores against the labels differ
    assert.deepEqual(Array.from(a.sw.selection.chosen.test.predictions), Array.from(b.sw.selection.chosen.test.predictions));
    assert.notEqual(a.sw.selection.chosen.testAcc, b.sw.selection.chosen.testAcc);
    assert.notDeepEqual(a.fam.rows.map((r) => r.testShown), b.fam.rows.map((r) => r.testShown));
  });

  it("05's families: heads x searched values as candidates; points are each head's best on validation; 1000-way counts", async () => {
    const set = st.train.find((x) => x.block.number === 9 && x.t === 150)!;
    const test = async (x: StoredSet) => st.test.find((y) => y.block.number === x.block.number && y.t === x.t)!;
    const grid = {
      family: "mlp", heads: [{ setting: "pool 1, hidden 8", head: { kind: "mlp" as const, pool: 1, hidden: [8] } }, { setting: "pool 2, hidden 8", head: { kind: "mlp" as const, pool: 2, hidden: [8] } }],
      training: ATTENTION.training, search: { tag: "epochs" as const, values: [1, 6] },
    };
    const cands = familyCandidates(grid, set, test, K);
    assert.deepEqual(cands.map((c) => [c.setting.tags!.setting, c.training!.epochs]), [["pool 1, hidden 8", 1], ["pool 1, hidden 8", 6], ["pool 2, hidden 8", 1], ["pool 2, hidden 8", 6]]);
    const r = await selectFamily(grid, set, test, K, st.split);
    assert.equal(r.rows.length, 4);
    assert.equal(r.rows.filter((x) => x.chosen).length, 1);
    const best = r.rows.reduce((x, y) => (y.valAcc > x.valAcc ? y : x));
    assert.ok(best.chosen);
    assert.equal(r.chosen.valAcc, best.valAcc);
    for (const p of r.points) assert.equal(p.valAcc, Math.max(...r.rows.filter((x) => x.setting === p.setting).map((x) => x.valAcc)));
    // MLP of D -> 8 -> classes: (D + 1) * 8 + (8 + 1) * classes, D = C * p * p
    for (const x of r.rows) {
      const d = C * (x.setting.startsWith("pool 1") ? 1 : 4);
      assert.equal(x.params, (d + 1) * 8 + 9 * K);
      assert.equal(x.params1000, (d + 1) * 8 + 9 * 1000);
    }
    assert.equal(r.chosen.params1000, r.rows[r.selection.index].params1000);
    assert.throws(() => familyCandidates({ ...grid, search: { tag: "epochs", values: [] } }, set, test, K), /mlp: searched epochs \[\] must be positive/);
  });

  it("gridPosition names the edges of a grid", () => {
    assert.equal(gridPosition([0.01, 0.1, 1], 1), "high");
    assert.equal(gridPosition([0.1, 0.01, 1], 0.01), "low");
    assert.equal(gridPosition([0.01, 0.1, 1, 0.1], 0.1), "inside");
    assert.equal(gridPosition([5, 5], 5), "single");
    assert.throws(() => gridPosition([1, 2], 3), /3 is not a value of the grid \[1,2\]/);
  });
});
