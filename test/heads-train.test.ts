import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../lib/model/backend";
import { Rng } from "../lib/rng";
import { Head } from "../lib/heads/head";
import { createMlpHead } from "../lib/heads/mlp";
import { createCnnHead } from "../lib/heads/cnn";
import { createAttentionHead } from "../lib/heads/attention";
import { createDifFormerHead } from "../lib/heads/difformer";
import { FeatureSource, featureStats, memorySource, poolSource } from "../lib/heads/source";
import { crossEntropy, trainHead, TrainHeadOptions } from "../lib/heads/train-head";
import { evaluateHead } from "../lib/heads/evaluate";
import { createOptimizer, learningRate, OptimizerSpec, PAPER_LINEAR_RECIPE } from "../lib/heads/optim";
import { knnClassify } from "../lib/heads/knn";
import { installTrainingKernels } from "../lib/train/wasm-kernels";
import { tempDir, removeTempDir } from "./helpers/tmp";

const C = 8, H = 4, W = 4, K = 4;
const ADAMW: OptimizerSpec = { kind: "adamw", lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-2 };

/**
 * Block maps [C, H, W] of N(0, 1) noise. With `learnable`, class y adds +1.5 to channel y in its own
 * quadrant (4 of 16 positions): visible to a linear head on 2x2-pooled maps (+1.5 against a noise std of
 * 0.5 in one of 32 values) and to every spatial head. Without, labels are drawn from their own seeded stream,
 * independently of the features.
 */
function synthetic(n: number, seed: number, learnable: boolean): FeatureSource {
  const rng = new Rng(seed, 1), lab = new Rng(seed, 2);
  const data = new Float32Array(n * C * H * W);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const o = i * C * H * W;
    for (let j = 0; j < C * H * W; j++) data[o + j] = rng.normal();
    labels[i] = lab.uint32() % K;
    if (learnable) {
      const y = labels[i], qy = (y >> 1) * 2, qx = (y & 1) * 2;
      for (let dy = 0; dy < 2; dy++) for (let dx = 0; dx < 2; dx++) data[o + y * H * W + (qy + dy) * W + qx + dx] += 1.5;
    }
  }
  return memorySource(data, [C, H, W], labels, K);
}

/** Each row followed by itself: [2 * C * H * W] rows. */
function twice(s: FeatureSource): FeatureSource {
  const size = C * H * W;
  return {
    rows: s.rows, shape: [2 * size], labels: s.labels, numClasses: s.numClasses,
    async readRows(idx) {
      const one = await s.readRows(idx);
      const out = new Float32Array(2 * one.length);
      for (let i = 0; i < idx.length; i++) {
        out.set(one.subarray(i * size, (i + 1) * size), 2 * i * size);
        out.set(one.subarray(i * size, (i + 1) * size), (2 * i + 1) * size);
      }
      return out;
    },
  };
}

type Maker = (src: FeatureSource) => Promise<{ head: Head; wrap: (s: FeatureSource) => FeatureSource }>;
const identity = (s: FeatureSource) => s;
const HEADS: { name: string; make: Maker; epochs: number; minAcc: number }[] = [
  {
    name: "linear (pool 2, standardised)",
    make: async (src) => ({ head: createMlpHead({ inShape: [C * 4], numClasses: K, hidden: [], seed: 1, stats: await featureStats(poolSource(src, 2)) }), wrap: (s) => poolSource(s, 2) }),
    epochs: 6,
    minAcc: 0.85,
  },
  {
    name: "MLP (pool 2, hidden [32])",
    make: async (src) => ({ head: createMlpHead({ inShape: [C * 4], numClasses: K, hidden: [32], seed: 1, stats: await featureStats(poolSource(src, 2)) }), wrap: (s) => poolSource(s, 2) }),
    epochs: 6,
    minAcc: 0.85,
  },
  {
    name: "CNN (width 16, depth 1)",
    make: async () => ({ head: createCnnHead({ inShape: [C, H, W], numClasses: K, width: 16, depth: 1, prePool: null, seed: 1 }), wrap: identity }),
    epochs: 12,
    minAcc: 0.85,
  },
  {
    name: "attention (pool 2, dim 16 by projection, 1 block)",
    make: async () => ({ head: createAttentionHead({ inShape: [C, H, W], numClasses: K, dim: 16, heads: 2, mlpRatio: 2, blocks: 1, pool: 2, project: true, seed: 1 }), wrap: identity }),
    epochs: 6,
    minAcc: 0.85,
  },
  {
    // Two "timesteps" (the row twice), adaptive pooling 4x4 -> 3x3 (uneven bins): the multi-timestep path.
    name: "DifFormer (pre-pool 3, dim 16, 1 block, 2 timesteps)",
    make: async () => ({
      head: createDifFormerHead({ maps: [[C, H, W]], timesteps: 2, prePool: 3, numClasses: K, dim: 16, heads: 2, mlpRatio: 2, blocks: 1, seed: 1 }),
      wrap: twice,
    }),
    epochs: 6,
    minAcc: 0.85,
  },
];

describe("heads: training", function () {
  before(async () => {
    await selectBackend("wasm");
    installTrainingKernels(); // trainHead installs them; the gradient checks below call tf.variableGrads first
  });

  describe("gradients: tfjs autodiff against central finite differences of the same forward pass", () => {
    for (const h of HEADS) {
      it(h.name, async () => {
        const src = synthetic(12, 5, true);
        const { head, wrap } = await h.make(src);
        const s = wrap(src);
        const x = tf.tensor2d(await s.readRows(Array.from({ length: 12 }, (_, i) => i)), [12, s.shape.reduce((a, b) => a * b, 1)]);
        const y = tf.tensor1d(Int32Array.from(s.labels), "int32");
        const vars = head.params.map((p) => p.variable);
        const loss = () => tf.tidy(() => crossEntropy(head.apply(x), y).dataSync()[0]);
        const { grads } = tf.variableGrads(() => crossEntropy(head.apply(x), y), vars);
        const rng = new Rng(9);
        for (let trial = 0; trial < 3; trial++) {
          // A random unit direction over all parameters; compare g.v with (L(p + eps v) - L(p - eps v)) / 2 eps.
          const dirs = vars.map((v) => rng.fillNormal(new Float32Array(v.size)));
          const norm = Math.sqrt(dirs.reduce((s2, d) => s2 + d.reduce((a, b) => a + b * b, 0), 0));
          let analytic = 0;
          vars.forEach((v, i) => {
            const g = grads[v.name].dataSync();
            for (let j = 0; j < g.length; j++) analytic += (g[j] * dirs[i][j]) / norm;
          });
          const eps = 1e-2;
          const saved = vars.map((v) => v.dataSync().slice());
          const shift = (sign: number) => vars.forEach((v, i) => v.assign(tf.tensor(saved[i].map((p, j) => p + (sign * eps * dirs[i][j]) / norm), v.shape)));
          shift(1);
          const up = loss();
          shift(-1);
          const down = loss();
          vars.forEach((v, i) => v.assign(tf.tensor(saved[i], v.shape)));
          const numeric = (up - down) / (2 * eps);
          assert.ok(Math.abs(analytic) > 1e-3, `directional derivative ${analytic} too small to compare`);
          assert.ok(Math.abs(numeric - analytic) < 2e-2 * Math.abs(analytic) + 2e-4, `trial ${trial}: autodiff ${analytic}, finite differences ${numeric}`);
        }
        tf.dispose([x, y, ...Object.values(grads)]);
        head.dispose();
      });
    }
  });

  describe("learns a class signal and stays at chance on labels drawn independently of the features", () => {
    const train = synthetic(400, 1, true), test = synthetic(200, 2, true);
    const noiseTrain = synthetic(400, 3, false), noiseTest = synthetic(200, 4, false);
    // Chance is 1/4; a 99.9% binomial interval for 200 test rows is 0.25 +- 3.29 * sqrt(0.25 * 0.75 / 200) = +-0.10.
    const chanceBand = 3.29 * Math.sqrt((0.25 * 0.75) / 200);
    for (const h of HEADS) {
      it(`${h.name}: >= ${h.minAcc} after ${h.epochs} epochs; within 0.25 +- ${chanceBand.toFixed(3)} on noise`, async () => {
        const opts: TrainHeadOptions = { epochs: h.epochs, batchSize: 32, optimizer: ADAMW, seed: 3, showProgress: false };
        const a = await h.make(train);
        const r = await trainHead(a.head, a.wrap(train), opts);
        assert.ok(r.lossHistory[h.epochs - 1] < r.lossHistory[0], `loss ${r.lossHistory}`);
        const acc = (await evaluateHead(a.head, a.wrap(test))).top1;
        a.head.dispose();
        assert.ok(acc >= h.minAcc, `test accuracy ${acc} on the learnable problem`);

        const b = await h.make(noiseTrain);
        await trainHead(b.head, b.wrap(noiseTrain), opts);
        const noiseAcc = (await evaluateHead(b.head, b.wrap(noiseTest))).top1;
        b.head.dispose();
        assert.ok(Math.abs(noiseAcc - 0.25) <= chanceBand, `test accuracy ${noiseAcc} on labels independent of the features`);
      });
    }
  });

  describe("optimisers against a hand computation (float64, PyTorch's update rules)", () => {
    const p0 = [0.5, -1.25], gs = [[0.1, -0.2], [0.3, 0.05], [-0.4, 0.25]];
    const run = (spec: OptimizerSpec, lrs: number[]) => {
      const v = tf.variable(tf.tensor1d(p0));
      const opt = createOptimizer(spec);
      gs.forEach((g, i) => opt.step([v], [tf.tensor1d(g)], lrs[i]));
      const out = Array.from(v.dataSync());
      opt.dispose();
      v.dispose();
      return out;
    };
    it("SGD with momentum and weight decay", () => {
      const spec: OptimizerSpec = { kind: "sgd", lr: 0.1, momentum: 0.9, weightDecay: 0.01 };
      const lrs = [0.1, 0.1, 0.01];
      const p = p0.slice(), buf = [0, 0];
      gs.forEach((g, t) => p.forEach((_, j) => {
        const d = g[j] + 0.01 * p[j];
        buf[j] = t === 0 ? d : 0.9 * buf[j] + d;
        p[j] -= lrs[t] * buf[j];
      }));
      run(spec, lrs).forEach((v, j) => assert.ok(Math.abs(v - p[j]) < 1e-6, `${v} vs ${p[j]}`));
    });
    it("AdamW with decoupled weight decay and bias correction", () => {
      const spec: OptimizerSpec = { kind: "adamw", lr: 0.05, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 };
      const lrs = [0.05, 0.05, 0.05];
      const p = p0.slice(), m = [0, 0], v = [0, 0];
      gs.forEach((g, i) => {
        const t = i + 1;
        p.forEach((_, j) => {
          p[j] *= 1 - lrs[i] * 0.1;
          m[j] = 0.9 * m[j] + 0.1 * g[j];
          v[j] = 0.999 * v[j] + 0.001 * g[j] * g[j];
          p[j] -= (lrs[i] * (m[j] / (1 - 0.9 ** t))) / (Math.sqrt(v[j] / (1 - 0.999 ** t)) + 1e-8);
        });
      });
      run(spec, lrs).forEach((x, j) => assert.ok(Math.abs(x - p[j]) < 1e-6, `${x} vs ${p[j]}`));
    });
    it("step decay: the authors' recipe (lr 1e-2, x0.1 every 7 epochs, 28 epochs)", () => {
      const { optimizer, schedule, epochs } = PAPER_LINEAR_RECIPE;
      const lrs = Array.from({ length: epochs }, (_, e) => learningRate(optimizer.lr, schedule, e));
      for (const [e, want] of [[0, 1e-2], [6, 1e-2], [7, 1e-3], [13, 1e-3], [14, 1e-4], [21, 1e-5], [27, 1e-5]]) {
        assert.ok(Math.abs(lrs[e] / want - 1) < 1e-12, `epoch ${e}: ${lrs[e]}`);
      }
      assert.equal(learningRate(0.3, null, 100), 0.3);
    });
  });

  describe("checkpoints", () => {
    let dir = "";
    before(() => {
      dir = tempDir("heads-ckpt");
    });
    after(() => removeTempDir(dir));
    const data = synthetic(96, 7, true);
    const specs: [string, OptimizerSpec][] = [
      ["SGD momentum + step decay", { kind: "sgd", lr: 0.05, momentum: 0.9, weightDecay: 1e-3 }],
      ["AdamW", ADAMW],
    ];
    for (const [name, spec] of specs) {
      it(`a run killed after epoch 2 and resumed ends as an uninterrupted one (${name})`, async () => {
        const opts: TrainHeadOptions = { epochs: 4, batchSize: 20, optimizer: spec, schedule: { stepEpochs: 2, gamma: 0.1 }, seed: 11, showProgress: false };
        const make = () => createCnnHead({ inShape: [C, H, W], numClasses: K, width: 6, depth: 1, prePool: null, seed: 4 });
        const ref = make();
        const full = await trainHead(ref, data, opts);
        const file = path.join(dir, `${spec.kind}.ckpt`);
        const a = make();
        await assert.rejects(
          trainHead(a, data, { ...opts, checkpoint: file, onEpoch: (e) => { if (e === 1) throw new Error("killed"); } }),
          /killed/,
        );
        a.dispose();
        const b = make(); // fresh initial weights: everything must come from the checkpoint
        const resumed = await trainHead(b, data, { ...opts, checkpoint: file });
        assert.equal(resumed.resumedFrom, 2);
        assert.deepEqual(resumed.lossHistory, full.lossHistory);
        b.params.forEach((p, i) => assert.deepEqual(Array.from(p.variable.dataSync()), Array.from(ref.params[i].variable.dataSync()), p.name));
        ref.dispose();
        b.dispose();
        // Resuming a finished run trains nothing more.
        const c = make();
        const again = await trainHead(c, data, { ...opts, checkpoint: file });
        assert.equal(again.resumedFrom, 4);
        c.dispose();
      });
    }
    it("refuses a checkpoint written for another run, naming the file", async () => {
      const file = path.join(dir, "other.ckpt");
      const h = createMlpHead({ inShape: [C, H, W], numClasses: K, hidden: [], seed: 1 });
      await trainHead(h, data, { epochs: 1, batchSize: 32, optimizer: ADAMW, seed: 1, showProgress: false, checkpoint: file });
      await assert.rejects(
        trainHead(h, data, { epochs: 1, batchSize: 16, optimizer: ADAMW, seed: 1, showProgress: false, checkpoint: file }),
        new RegExp(`checkpoint ${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} was written for a different run`),
      );
      h.dispose();
    });
  });

  it("training, scoring and kNN leave no tensors behind", async () => {
    const data = synthetic(40, 3, true);
    const head = createAttentionHead({ inShape: [C, H, W], numClasses: K, dim: 8, heads: 2, mlpRatio: 2, blocks: 1, pool: 2, project: true, seed: 1 });
    await trainHead(head, data, { epochs: 1, batchSize: 16, optimizer: ADAMW, seed: 0, showProgress: false }); // first call may cache constants
    const before = tf.memory().numTensors;
    await trainHead(head, data, { epochs: 2, batchSize: 16, optimizer: { kind: "sgd", lr: 0.01, momentum: 0.9, weightDecay: 0 }, seed: 0, showProgress: false });
    await evaluateHead(head, data, 7);
    await knnClassify(poolSource(data, 1), poolSource(data, 1), { k: 3, temperature: 0.1, trainChunk: 16, testBatch: 8, showProgress: false });
    assert.equal(tf.memory().numTensors, before);
    head.dispose();
  });

  it("trainHead names a mismatched source", async () => {
    const h = createMlpHead({ inShape: [C * 4], numClasses: K, hidden: [], seed: 1 });
    await assert.rejects(trainHead(h, synthetic(10, 1, true), { epochs: 1, batchSize: 4, optimizer: ADAMW, seed: 0, showProgress: false }), /source rows are \[8,4,4\] but the head takes \[32\]/);
    h.dispose();
  });

  describe("kNN", () => {
    it("equals a brute-force float64 computation (cosine, top-k, exp(sim / T) votes), across chunk boundaries", async () => {
      const rng = new Rng(21);
      const d = 16, nTrain = 300, nTest = 50, classes = 5;
      const trainX = rng.fillNormal(new Float32Array(nTrain * d)), testX = rng.fillNormal(new Float32Array(nTest * d));
      // Class-dependent offsets so that votes are not uniform.
      const trainY = Int32Array.from({ length: nTrain }, () => rng.uint32() % classes);
      for (let i = 0; i < nTrain; i++) trainX[i * d + trainY[i]] += 1.5;
      const testY = Int32Array.from({ length: nTest }, () => rng.uint32() % classes);
      for (let i = 0; i < nTest; i++) testX[i * d + testY[i]] += 1.5;
      for (let j = 0; j < d; j++) trainX[7 * d + j] = 0; // a zero row must not break the normalisation
      const k = 7, T = 0.1;
      const res = await knnClassify(memorySource(trainX, [d], trainY, classes), memorySource(testX, [d], testY, classes), { k, temperature: T, trainChunk: 64, testBatch: 16, showProgress: false });
      const unit = (x: Float32Array, i: number) => {
        const v = Array.from(x.subarray(i * d, (i + 1) * d));
        const n = Math.sqrt(v.reduce((a, b) => a + b * b, 0));
        return v.map((a) => (n > 0 ? a / n : 0));
      };
      const trainU = Array.from({ length: nTrain }, (_, i) => unit(trainX, i));
      let agree = 0;
      for (let i = 0; i < nTest; i++) {
        const q = unit(testX, i);
        const sims = trainU.map((t, j) => ({ s: t.reduce((a, b, m) => a + b * q[m], 0), j }));
        sims.sort((a, b) => b.s - a.s || a.j - b.j);
        const votes = new Array(classes).fill(0);
        for (const { s, j } of sims.slice(0, k)) votes[trainY[j]] += Math.exp(s / T);
        for (let c = 0; c < classes; c++) {
          const got = res.scores[i * classes + c];
          assert.ok(Math.abs(got - votes[c]) <= 1e-4 * Math.max(1, votes[c]), `test row ${i} class ${c}: ${got} vs ${votes[c]}`);
        }
        assert.equal(res.predictions[i], votes.indexOf(Math.max(...votes)), `test row ${i}`);
        if (res.predictions[i] === testY[i]) agree++;
      }
      assert.ok(agree / nTest > 0.5, `kNN accuracy ${agree / nTest}: the votes carry the class signal`);
    });
  });
});
