/**
 * Linear probe: multinomial logistic regression on frozen features (the paper's "linear" head).
 *
 * Features are standardised with the training split's mean and std, then a softmax classifier is
 * trained with Adam on cross-entropy + L2 weight decay, mini-batches shuffled by a seeded generator,
 * weights initialised at zero (the problem is convex, so the result does not depend on a random init).
 * Training reads its mini-batches through a FeatureSource (`trainLinearProbeOn`, e.g. rows of the feature
 * store), so it never needs the whole matrix; `trainLinearProbe` is the same on a matrix in memory.
 */
import * as tf from "@tensorflow/tfjs";
import { Rng, permutation } from "../rng";

export { permutation };
import { Progress, progress } from "../display/progress";
import { FeatureSource, featureStats, forEachChunk, memorySource, rowSize } from "./source";

export interface LinearProbeOptions {
  epochs: number;
  batchSize: number;
  learningRate: number;
  weightDecay: number;
  seed: number;
  /** Show a progress display (default true). */
  showProgress?: boolean;
}

export const DEFAULT_LINEAR_PROBE: LinearProbeOptions = { epochs: 30, batchSize: 256, learningRate: 1e-3, weightDecay: 1e-4, seed: 0 };

/** A feature matrix: N rows of D values, row-major. */
export interface Features {
  data: Float32Array;
  rows: number;
  dim: number;
}

export interface LinearProbe {
  dim: number;
  numClasses: number;
  mean: Float32Array;
  std: Float32Array;
  /** [D, C] row-major. */
  weight: Float32Array;
  bias: Float32Array;
  /** Training loss at the end of each epoch. */
  lossHistory: number[];
}

function checkFeatures(x: Features, labels: ArrayLike<number> | null, what: string): void {
  if (x.data.length !== x.rows * x.dim) throw new Error(`${what}: ${x.data.length} values is not ${x.rows} rows x ${x.dim} dims`);
  if (labels && labels.length !== x.rows) throw new Error(`${what}: ${x.rows} feature rows but ${labels.length} labels`);
}

/** Per-dimension mean and std (std floored at 1e-6 so constant features stay finite). */
export function columnStats(x: Features): { mean: Float32Array; std: Float32Array } {
  const mean = new Float64Array(x.dim);
  const sq = new Float64Array(x.dim);
  for (let i = 0; i < x.rows; i++) {
    const o = i * x.dim;
    for (let j = 0; j < x.dim; j++) mean[j] += x.data[o + j];
  }
  for (let j = 0; j < x.dim; j++) mean[j] /= x.rows;
  for (let i = 0; i < x.rows; i++) {
    const o = i * x.dim;
    for (let j = 0; j < x.dim; j++) {
      const d = x.data[o + j] - mean[j];
      sq[j] += d * d;
    }
  }
  const std = new Float32Array(x.dim);
  for (let j = 0; j < x.dim; j++) std[j] = Math.max(Math.sqrt(sq[j] / x.rows), 1e-6);
  return { mean: Float32Array.from(mean), std };
}

/** (x - mean) / std as a new row-major float32 array (for training and for scoring). */
function standardiseArray(x: Features, mean: Float32Array, std: Float32Array): Float32Array {
  const out = new Float32Array(x.rows * x.dim);
  for (let i = 0; i < x.rows; i++) {
    const o = i * x.dim;
    for (let j = 0; j < x.dim; j++) out[o + j] = Math.fround(x.data[o + j] - mean[j]) / std[j];
  }
  return out;
}

/**
 * One mini-batch as the step needs it, laid out in plain JS (tfjs-wasm's gather, and a matMul with a
 * transposed operand, cost more than the whole step): standardised rows [n, D], their transpose [D, n],
 * one-hot [n, C].
 */
class BatchBuffers {
  private readonly x: Float32Array;
  private readonly xT: Float32Array;
  private readonly y: Float32Array;
  constructor(private readonly dim: number, private readonly numClasses: number, batchSize: number) {
    this.x = new Float32Array(batchSize * dim);
    this.xT = new Float32Array(batchSize * dim);
    this.y = new Float32Array(batchSize * numClasses);
  }
  /** `raw`: the batch's n rows as read from the source; `labels`: theirs. */
  fill(raw: Float32Array, labels: ArrayLike<number>, n: number, mean: Float32Array, std: Float32Array): { x: tf.Tensor2D; xT: tf.Tensor2D; y: tf.Tensor2D } {
    const { dim, numClasses: c } = this;
    this.y.fill(0, 0, n * c);
    for (let r = 0; r < n; r++) {
      const o = r * dim;
      for (let j = 0; j < dim; j++) {
        const v = Math.fround(raw[o + j] - mean[j]) / std[j];
        this.x[o + j] = v;
        this.xT[j * n + r] = v;
      }
      this.y[r * c + labels[r]] = 1;
    }
    return {
      x: tf.tensor2d(this.x.subarray(0, n * dim), [n, dim]),
      xT: tf.tensor2d(this.xT.subarray(0, n * dim), [dim, n]),
      y: tf.tensor2d(this.y.subarray(0, n * c), [n, c]),
    };
  }
}

/** Rows of `x` as a FeatureSource of vectors (what the in-memory entry points train and score through). */
function featuresSource(x: Features, labels: ArrayLike<number> | null, numClasses: number): FeatureSource {
  return memorySource(x.data, [x.dim], labels ?? new Int32Array(x.rows), numClasses);
}

/** In-memory entry point: standardised with columnStats, then trained as `trainLinearProbeOn`. */
export async function trainLinearProbe(
  x: Features,
  labels: ArrayLike<number>,
  numClasses: number,
  options: Partial<LinearProbeOptions> = {},
): Promise<LinearProbe> {
  checkFeatures(x, labels, "trainLinearProbe");
  checkLabels(labels, numClasses, "trainLinearProbe");
  return trainLinearProbeOn(featuresSource(x, labels, numClasses), options, columnStats(x));
}

function checkLabels(labels: ArrayLike<number>, numClasses: number, what: string): void {
  for (let i = 0; i < labels.length; i++) {
    if (!(labels[i] >= 0 && labels[i] < numClasses && Number.isInteger(labels[i]))) {
      throw new Error(`${what}: label ${labels[i]} at row ${i} is outside 0..${numClasses - 1}`);
    }
  }
}

/**
 * The linear probe over a FeatureSource: mini-batches are read from the source (in the epoch's seeded
 * order, one batch ahead), never the whole matrix, so a source on the feature store trains in the memory
 * of a few batches. Standardisation statistics: `stats` when given, else one streaming pass (featureStats).
 * The same source, options and statistics give the same probe, whatever holds the rows.
 */
export async function trainLinearProbeOn(
  source: FeatureSource,
  options: Partial<LinearProbeOptions> = {},
  stats?: { mean: Float32Array; std: Float32Array },
): Promise<LinearProbe> {
  const opts = { ...DEFAULT_LINEAR_PROBE, ...options };
  const what = "trainLinearProbe";
  if (!(Number.isInteger(source.rows) && source.rows > 0)) throw new Error(`${what}: source has ${source.rows} rows`);
  checkLabels(source.labels, source.numClasses, what);
  if (source.labels.length !== source.rows) throw new Error(`${what}: ${source.rows} feature rows but ${source.labels.length} labels`);
  const dim = rowSize(source.shape);
  const numClasses = source.numClasses;
  const { mean, std } = stats ?? (await featureStats(source));
  if (mean.length !== dim || std.length !== dim) throw new Error(`${what}: statistics of ${mean.length} values for rows of ${dim}`);
  const rows = source.rows;
  const w = tf.variable(tf.zeros([dim, numClasses]));
  const b = tf.variable(tf.zeros([numClasses]));
  const optimizer = tf.train.adam(opts.learningRate);
  const rng = new Rng(opts.seed, 0x9e0be);
  const batches = Math.ceil(rows / opts.batchSize);
  const buffers = new BatchBuffers(dim, numClasses, Math.min(opts.batchSize, rows));
  const bar: Progress | null = opts.showProgress === false ? null : progress({ total: opts.epochs, label: "linear probe", unit: "epoch" });
  const lossHistory: number[] = [];
  try {
    for (let epoch = 0; epoch < opts.epochs; epoch++) {
      const order = permutation(rows, rng);
      const batchIdx = (bi: number) => order.subarray(bi * opts.batchSize, Math.min(rows, (bi + 1) * opts.batchSize));
      let next = source.readRows(batchIdx(0));
      let lossSum = 0;
      for (let bi = 0; bi < batches; bi++) {
        const idx = batchIdx(bi);
        const n = idx.length;
        const raw = await next;
        if (raw.length !== n * dim) throw new Error(`${what}: readRows returned ${raw.length} values for ${n} rows of ${dim}`);
        if (bi + 1 < batches) next = source.readRows(batchIdx(bi + 1));
        const labels = Int32Array.from(idx, (i) => source.labels[i]);
        // Cross-entropy + (weightDecay / 2)·|W|², gradients written out (softmax - onehot) / n:
        // what optimizer.minimize would differentiate, without its transposed matMul.
        const loss = tf.tidy(() => {
          const batch = buffers.fill(raw, labels, n, mean, std);
          const logp = tf.logSoftmax(batch.x.matMul(w).add(b));
          const ce = batch.y.mul(logp).sum().neg().div(n);
          const dLogits = tf.exp(logp).sub(batch.y).div(n);
          const dW = batch.xT.matMul(dLogits).add(w.mul(opts.weightDecay));
          const value = ce.add(w.square().sum().mul(opts.weightDecay / 2));
          optimizer.applyGradients([{ name: w.name, tensor: dW }, { name: b.name, tensor: dLogits.sum(0) }]);
          return value;
        });
        lossSum += (await loss.data())[0];
        loss.dispose();
      }
      lossHistory.push(lossSum / batches);
      bar?.tick(1, { loss: lossSum / batches });
    }
    bar?.done();
    return { dim, numClasses, mean, std, weight: (await w.data()) as Float32Array, bias: (await b.data()) as Float32Array, lossHistory };
  } finally {
    tf.dispose([w, b]);
    optimizer.dispose();
  }
}

/** Predicted class of every row of a source, scored in chunks (never the whole matrix). */
export async function probePredictOn(probe: LinearProbe, source: FeatureSource, chunk = 1024): Promise<Int32Array> {
  const dim = rowSize(source.shape);
  if (dim !== probe.dim) throw new Error(`probePredict: features have ${dim} dims, the probe was trained on ${probe.dim}`);
  const out = new Int32Array(source.rows);
  await forEachChunk(source, chunk, (data, start, n) => {
    out.set(probePredict(probe, { data, rows: n, dim }), start);
  });
  return out;
}

/** Class scores [N, C] row-major. */
export function probeScores(probe: LinearProbe, x: Features): Float32Array {
  checkFeatures(x, null, "probeScores");
  if (x.dim !== probe.dim) throw new Error(`probeScores: features have ${x.dim} dims, the probe was trained on ${probe.dim}`);
  return tf.tidy(() => {
    const xs = tf.tensor2d(standardiseArray(x, probe.mean, probe.std), [x.rows, x.dim]);
    return xs.matMul(tf.tensor2d(probe.weight, [probe.dim, probe.numClasses])).add(tf.tensor1d(probe.bias));
  }).dataSync() as Float32Array;
}

/** Predicted class per row. */
export function probePredict(probe: LinearProbe, x: Features): Int32Array {
  const s = probeScores(probe, x);
  const out = new Int32Array(x.rows);
  for (let i = 0; i < x.rows; i++) {
    let best = 0;
    for (let c = 1; c < probe.numClasses; c++) if (s[i * probe.numClasses + c] > s[i * probe.numClasses + best]) best = c;
    out[i] = best;
  }
  return out;
}
