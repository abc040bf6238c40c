/**
 * Weighted k-nearest-neighbour classification on L2-normalised features, as DINO's evaluation
 * (Caron et al. 2021, eval_knn.py) does: similarity = cosine (dot product of unit vectors), the k most
 * similar training rows vote for their label with weight exp(similarity / temperature), the class
 * with the largest total wins (defaults k = 20, T = 0.07, DINO's).
 *
 * Streaming: test rows in batches, training rows in chunks read from the FeatureSource, a running
 * top-k per test row; neither matrix is ever held whole. Ties in similarity keep the earlier training
 * row. Similarities are float32 matrix products (tfjs).
 */
import * as tf from "@tensorflow/tfjs";
import { progress } from "../display/progress";
import { argmaxRows } from "../metrics/classification";
import { checkSource, chunkRows, FeatureSource, forEachChunk, rowSize } from "./source";

export interface KnnOptions {
  k: number;
  temperature: number;
  /** Training rows per chunk (default 2048). */
  trainChunk?: number;
  /** Test rows per batch (default 256). */
  testBatch?: number;
  showProgress?: boolean;
}

export const DINO_KNN = { k: 20, temperature: 0.07 };

export interface KnnResult {
  /** Vote totals [N_test, K] row-major. */
  scores: Float32Array;
  predictions: Int32Array;
}

/** Rows scaled to unit L2 norm (float64 norm; a zero row stays zero). */
export function l2NormaliseRows(data: Float32Array, dim: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let o = 0; o < data.length; o += dim) {
    let s = 0;
    for (let j = 0; j < dim; j++) s += data[o + j] * data[o + j];
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let j = 0; j < dim; j++) out[o + j] = data[o + j] * inv;
  }
  return out;
}

export async function knnClassify(train: FeatureSource, test: FeatureSource, opts: KnnOptions = DINO_KNN): Promise<KnnResult> {
  checkSource(train, "knnClassify train");
  const d = rowSize(train.shape);
  if (rowSize(test.shape) !== d) throw new Error(`knnClassify: train rows have ${d} values, test rows ${rowSize(test.shape)}`);
  const k = Math.min(opts.k, train.rows);
  if (!(Number.isInteger(opts.k) && opts.k > 0)) throw new Error(`knnClassify: k ${opts.k} must be a positive integer`);
  if (!(opts.temperature > 0)) throw new Error(`knnClassify: temperature ${opts.temperature} must be > 0`);
  const numClasses = train.numClasses;
  const trainChunk = opts.trainChunk ?? 2048, testBatch = opts.testBatch ?? 256;
  const scores = new Float32Array(test.rows * numClasses);
  const chunks = Math.ceil(train.rows / chunkRows(train.shape, trainChunk));
  const bar = opts.showProgress === false ? null : progress({ total: Math.ceil(test.rows / chunkRows(test.shape, testBatch)) * chunks, label: "kNN", unit: "block" });
  await forEachChunk(test, testBatch, async (testData, tStart, tn) => {
    const q = tf.tensor2d(l2NormaliseRows(testData, d), [tn, d]);
    // Running top-k per test row: similarities descending, with the neighbours' labels.
    const topSim = new Float32Array(tn * k).fill(-Infinity);
    const topLab = new Int32Array(tn * k).fill(-1);
    await forEachChunk(train, trainChunk, (trainData, rStart, rn) => {
      const simT = tf.tidy(() => tf.matMul(q, tf.tensor2d(l2NormaliseRows(trainData, d), [rn, d]), false, true));
      const sim = simT.dataSync();
      simT.dispose();
      for (let i = 0; i < tn; i++) {
        const s = topSim.subarray(i * k, (i + 1) * k), l = topLab.subarray(i * k, (i + 1) * k);
        for (let j = 0; j < rn; j++) {
          const v = sim[i * rn + j];
          if (!(v > s[k - 1])) continue;
          let p = k - 1;
          while (p > 0 && v > s[p - 1]) {
            s[p] = s[p - 1];
            l[p] = l[p - 1];
            p--;
          }
          s[p] = v;
          l[p] = train.labels[rStart + j];
        }
      }
      bar?.tick();
    });
    q.dispose();
    for (let i = 0; i < tn; i++) {
      const row = (tStart + i) * numClasses;
      for (let p = 0; p < k; p++) scores[row + topLab[i * k + p]] += Math.exp(topSim[i * k + p] / opts.temperature);
    }
  });
  bar?.done();
  return { scores, predictions: argmaxRows(scores, numClasses) };
}
