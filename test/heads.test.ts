import { strict as assert } from "assert";
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../lib/backend";
import { trainLinearProbe, probePredict, columnStats, permutation, Features } from "../lib/heads/linear";
import { accuracy, topKAccuracy, confusionMatrix, meanPerClassAccuracy, wilsonInterval, mcnemarExact } from "../lib/metrics";
import { Rng } from "../lib/diffusion/rng";

/** Gaussian blobs: class c centred at a random point; `sep` scales the distance between centres. */
function blobs(n: number, dim: number, classes: number, sep: number, seed: number): { x: Features; y: Int32Array } {
  const rng = new Rng(seed);
  const centres = Array.from({ length: classes }, () => Array.from({ length: dim }, () => sep * rng.normal()));
  const data = new Float32Array(n * dim);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % classes;
    // a large offset and scale on every dimension checks the standardisation
    for (let j = 0; j < dim; j++) data[i * dim + j] = 1000 + 50 * (centres[y[i]][j] + rng.normal());
  }
  return { x: { data, rows: n, dim }, y };
}

describe("metrics", () => {
  it("accuracy, top-k, confusion, mean per-class", () => {
    assert.equal(accuracy([0, 1, 2, 2], [0, 1, 1, 2]), 0.75);
    assert.throws(() => accuracy([0], [0, 1]), /1 predictions for 2 labels/);
    const scores = Float32Array.from([0.1, 0.7, 0.2, /**/ 0.5, 0.2, 0.3]);
    assert.equal(topKAccuracy(scores, 3, [2, 2], 1), 0);
    assert.equal(topKAccuracy(scores, 3, [2, 2], 2), 1);
    assert.deepEqual(confusionMatrix([0, 1, 1], [0, 0, 1], 2), [[1, 1], [0, 1]]);
    assert.equal(meanPerClassAccuracy([0, 1, 1], [0, 0, 1], 2), 0.75);
  });
  it("Wilson interval: textbook values, inside [0, 1], narrower with more examples", () => {
    // 422 of 500: scipy.stats.binomtest(422, 500).proportion_ci(method="wilson") = [0.80958525, 0.87316921].
    const a = wilsonInterval(422 / 500, 500);
    assert.ok(Math.abs(a.low - 0.80958525) < 1e-8 && Math.abs(a.high - 0.87316921) < 1e-8, JSON.stringify(a));
    const zero = wilsonInterval(0, 20);
    assert.equal(zero.low, 0);
    assert.ok(Math.abs(zero.high - 0.16112516) < 1e-8, JSON.stringify(zero)); // scipy: binomtest(0, 20)
    assert.equal(wilsonInterval(1, 20).high, 1);
    const wide = wilsonInterval(0.8, 100), narrow = wilsonInterval(0.8, 10000);
    assert.ok(narrow.high - narrow.low < (wide.high - wide.low) / 5);
    assert.throws(() => wilsonInterval(0.5, 0), /n must be a positive integer, got 0/);
    assert.throws(() => wilsonInterval(1.5, 10), /accuracy must be in \[0, 1\], got 1.5/);
  });
  it("exact McNemar test: counts the disagreements, p-values as scipy's binomtest", () => {
    // Build predictions with given counts: onlyA, onlyB, both right, both wrong (label 0; a wrong guess is 1).
    const make = (onlyA: number, onlyB: number, both: number, neither: number) => {
      const a: number[] = [], b: number[] = [];
      const push = (ra: boolean, rb: boolean, k: number) => { for (let i = 0; i < k; i++) { a.push(ra ? 0 : 1); b.push(rb ? 0 : 1); } };
      push(true, false, onlyA); push(false, true, onlyB); push(true, true, both); push(false, false, neither);
      return mcnemarExact(a, b, new Array(a.length).fill(0));
    };
    const r = make(20, 10, 400, 70);
    assert.deepEqual([r.onlyA, r.onlyB, r.both, r.neither], [20, 10, 400, 70]);
    // scipy.stats.binomtest(k, n, 0.5).pvalue
    assert.ok(Math.abs(r.pValue - 0.09873714670538905) < 1e-12, `${r.pValue}`);
    assert.ok(Math.abs(make(0, 5, 0, 0).pValue - 0.0625) < 1e-12);
    assert.equal(make(15, 15, 3, 3).pValue, 1);
    assert.ok(Math.abs(make(60, 40, 0, 0).pValue - 0.05688793364098088) < 1e-12);
    assert.ok(Math.abs(make(1100, 900, 0, 0).pValue / 8.457089535503812e-6 - 1) < 1e-9); // no underflow at n = 2000
    assert.equal(make(0, 0, 10, 10).pValue, 1); // never disagree: no evidence either way
    assert.throws(() => mcnemarExact([0, 1], [0], [0, 1]), /1 predictions for 2 labels/);
  });
});

describe("linear probe", () => {
  before(async () => {
    await selectBackend("wasm");
  });

  it("standardises with the training split's column statistics", () => {
    const { mean, std } = columnStats({ data: Float32Array.from([1, 10, 3, 10]), rows: 2, dim: 2 });
    assert.deepEqual(Array.from(mean), [2, 10]);
    assert.equal(std[0], 1);
    assert.equal(std[1], Math.fround(1e-6)); // floored: a constant column stays finite
  });

  it("permutations are seeded and complete", () => {
    const a = permutation(50, new Rng(3));
    assert.deepEqual(Array.from(a), Array.from(permutation(50, new Rng(3))));
    assert.deepEqual(Array.from(a).sort((p, q) => p - q), Array.from({ length: 50 }, (_, i) => i));
    assert.notDeepEqual(Array.from(a), Array.from(permutation(50, new Rng(4))));
  });

  it("separates well-separated classes and stays near chance on label noise", async () => {
    const train = blobs(600, 16, 4, 2.0, 1);
    const test = blobs(400, 16, 4, 2.0, 1); // same centres (same seed) ...
    const probe = await trainLinearProbe(train.x, train.y, 4, { epochs: 20, showProgress: false });
    assert.ok(probe.lossHistory[19] < probe.lossHistory[0], "loss did not decrease");
    assert.ok(accuracy(probePredict(probe, test.x), test.y) > 0.95);

    const shuffled = Int32Array.from(train.y).reverse().map((v, i) => (v * 7 + i * 13) % 4);
    const noise = await trainLinearProbe(train.x, shuffled, 4, { epochs: 10, showProgress: false });
    const acc = accuracy(probePredict(noise, test.x), test.y);
    assert.ok(acc < 0.5, `accuracy ${acc} on unrelated labels`);
  });

  it("its written-out gradients train as tfjs autodiff does (optimizer.minimize on the same batches)", async () => {
    const d = blobs(150, 12, 3, 1.0, 7);
    const opts = { epochs: 3, batchSize: 64, learningRate: 1e-2, weightDecay: 1e-2, seed: 2 };
    const probe = await trainLinearProbe(d.x, d.y, 3, { ...opts, showProgress: false });
    // Reference: the textbook tfjs probe, differentiated by tfjs, batches in the same seeded order.
    const { mean, std } = columnStats(d.x);
    const xs = tf.tensor2d(d.x.data, [150, 12]).sub(tf.tensor1d(mean)).div(tf.tensor1d(std)) as tf.Tensor2D;
    const ys = tf.oneHot(tf.tensor1d(Int32Array.from(d.y), "int32"), 3) as tf.Tensor2D;
    const w = tf.variable(tf.zeros([12, 3])), b = tf.variable(tf.zeros([3]));
    const optimizer = tf.train.adam(opts.learningRate);
    const rng = new Rng(opts.seed, 0x9e0be);
    for (let e = 0; e < opts.epochs; e++) {
      const order = permutation(150, rng);
      for (let s = 0; s < 150; s += opts.batchSize) {
        const idx = tf.tensor1d(order.slice(s, s + opts.batchSize), "int32");
        const xb = tf.gather(xs, idx), yb = tf.gather(ys, idx);
        optimizer.minimize(() => tf.losses.softmaxCrossEntropy(yb, xb.matMul(w).add(b)).add(w.square().sum().mul(opts.weightDecay / 2)) as tf.Scalar, false, [w, b]);
        tf.dispose([idx, xb, yb]);
      }
    }
    const ref = w.dataSync();
    let worst = 0;
    for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(ref[i] - probe.weight[i]));
    const scale = Math.max(...Array.from(ref, Math.abs));
    assert.ok(scale > 0.05, `reference weights ${scale}: too small to compare`);
    assert.ok(worst < 1e-4 * scale, `max |w - w_ref| ${worst} (max |w_ref| ${scale})`);
    const refB = b.dataSync();
    refB.forEach((v, i) => assert.ok(Math.abs(v - probe.bias[i]) < 1e-4 * scale, `bias ${i}: ${probe.bias[i]} vs ${v}`));
    tf.dispose([xs, ys, w, b]);
    optimizer.dispose();
  });

  it("is deterministic for a seed", async () => {
    const d = blobs(200, 8, 3, 1.0, 5);
    const a = await trainLinearProbe(d.x, d.y, 3, { epochs: 3, seed: 1, showProgress: false });
    const b = await trainLinearProbe(d.x, d.y, 3, { epochs: 3, seed: 1, showProgress: false });
    assert.deepEqual(Array.from(a.weight), Array.from(b.weight));
  });

  it("names the bad label or shape", async () => {
    const d = blobs(10, 4, 2, 1.0, 5);
    await assert.rejects(trainLinearProbe(d.x, Int32Array.from(d.y).fill(5, 3, 4), 2), /label 5 at row 3 is outside 0..1/);
    await assert.rejects(trainLinearProbe({ ...d.x, rows: 11 }, d.y, 2), /40 values is not 11 rows x 4 dims/);
  });
});
