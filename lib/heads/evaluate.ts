/**
 * From a head's class scores to the numbers a results table reports: top-1 and top-5 accuracy with
 * Wilson 95% intervals, per-class and mean per-class accuracy, the confusion matrix. Scores are
 * computed in batches streamed from the FeatureSource. Two probes on the same images are compared
 * with lib/metrics/classification.ts mcnemarExact(evaluationA.predictions, evaluationB.predictions, labels).
 */
import * as tf from "@tensorflow/tfjs";
import { argmaxRows, confusionMatrix, perClassAccuracy, topKAccuracy, wilsonInterval } from "../metrics/classification";
import { Head } from "./head";
import { FeatureSource, forEachChunk, rowSize } from "./source";

export interface Evaluation {
  n: number;
  numClasses: number;
  predictions: Int32Array;
  top1: number;
  top1Interval: { low: number; high: number };
  /** Top-min(5, K) accuracy. */
  top5: number;
  top5Interval: { low: number; high: number };
  perClass: number[];
  /** Mean over the classes present of per-class accuracy. */
  meanPerClass: number;
  /** confusion[label][prediction]. */
  confusion: number[][];
}

/** Class scores (logits) [N, K] row-major of every row of `source`, in evaluation mode. */
export async function headScores(head: Head, source: FeatureSource, batchSize = 256): Promise<Float32Array> {
  const k = head.numClasses, size = rowSize(source.shape);
  head.setTraining?.(false); // evaluation mode (BatchNorm on its running statistics)
  const out = new Float32Array(source.rows * k);
  await forEachChunk(source, batchSize, (data, start, n) => {
    const s = tf.tidy(() => head.apply(tf.tensor2d(data, [n, size])));
    out.set(s.dataSync(), start * k);
    s.dispose();
  });
  return out;
}

export function evaluateScores(scores: Float32Array, labels: ArrayLike<number>, numClasses: number): Evaluation {
  const n = labels.length;
  if (scores.length !== n * numClasses) throw new Error(`evaluateScores: ${scores.length} scores for ${n} labels x ${numClasses} classes`);
  const predictions = argmaxRows(scores, numClasses);
  const correct = predictions.reduce((s, p, i) => s + (p === labels[i] ? 1 : 0), 0);
  const top1 = correct / n;
  const top5 = topKAccuracy(scores, numClasses, labels, Math.min(5, numClasses));
  const perClass = perClassAccuracy(predictions, labels, numClasses);
  const present = perClass.filter((a) => !Number.isNaN(a));
  return {
    n,
    numClasses,
    predictions,
    top1,
    top1Interval: wilsonInterval(top1, n),
    top5,
    top5Interval: wilsonInterval(top5, n),
    perClass,
    meanPerClass: present.reduce((a, b) => a + b, 0) / present.length,
    confusion: confusionMatrix(predictions, labels, numClasses),
  };
}

export async function evaluateHead(head: Head, source: FeatureSource, batchSize = 256): Promise<Evaluation> {
  return evaluateScores(await headScores(head, source, batchSize), source.labels, head.numClasses);
}
