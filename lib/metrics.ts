/** Classification metrics on plain arrays. */

function checkLengths(pred: ArrayLike<number>, labels: ArrayLike<number>): void {
  if (pred.length !== labels.length) throw new Error(`metrics: ${pred.length} predictions for ${labels.length} labels`);
  if (labels.length === 0) throw new Error("metrics: no examples");
}

/** Fraction of predictions equal to the label. */
export function accuracy(pred: ArrayLike<number>, labels: ArrayLike<number>): number {
  checkLengths(pred, labels);
  let ok = 0;
  for (let i = 0; i < labels.length; i++) if (pred[i] === labels[i]) ok++;
  return ok / labels.length;
}

/** Top-k accuracy from row-major scores [N, C]. */
export function topKAccuracy(scores: Float32Array, numClasses: number, labels: ArrayLike<number>, k: number): number {
  const n = labels.length;
  if (scores.length !== n * numClasses) throw new Error(`topKAccuracy: scores hold ${scores.length} values, expected ${n}x${numClasses}`);
  let ok = 0;
  for (let i = 0; i < n; i++) {
    const target = scores[i * numClasses + labels[i]];
    let higher = 0;
    for (let c = 0; c < numClasses; c++) if (scores[i * numClasses + c] > target) higher++;
    if (higher < k) ok++;
  }
  return ok / n;
}

/** Confusion matrix: m[label][pred] counts. */
export function confusionMatrix(pred: ArrayLike<number>, labels: ArrayLike<number>, numClasses: number): number[][] {
  checkLengths(pred, labels);
  const m = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
  for (let i = 0; i < labels.length; i++) m[labels[i]][pred[i]]++;
  return m;
}

/** Mean over classes of per-class accuracy (the metric of some fine-grained benchmarks). */
export function meanPerClassAccuracy(pred: ArrayLike<number>, labels: ArrayLike<number>, numClasses: number): number {
  const m = confusionMatrix(pred, labels, numClasses);
  let sum = 0;
  let present = 0;
  for (let c = 0; c < numClasses; c++) {
    const total = m[c].reduce((a, b) => a + b, 0);
    if (total > 0) {
      sum += m[c][c] / total;
      present++;
    }
  }
  return sum / present;
}

/**
 * Wilson score interval of an accuracy measured on n examples: the range a reader should allow around
 * a test accuracy before calling two of them different (default 95%: z is the normal 0.975 quantile).
 * Unlike the normal approximation it stays inside [0, 1] and is not empty at 0% or 100%.
 */
export function wilsonInterval(acc: number, n: number, z = 1.959963984540054): { low: number; high: number } {
  if (!(n > 0) || !Number.isInteger(n)) throw new Error(`wilsonInterval: n must be a positive integer, got ${n}`);
  if (!(acc >= 0 && acc <= 1)) throw new Error(`wilsonInterval: accuracy must be in [0, 1], got ${acc}`);
  const z2 = z * z;
  const centre = (acc + z2 / (2 * n)) / (1 + z2 / n);
  const half = (z / (1 + z2 / n)) * Math.sqrt((acc * (1 - acc)) / n + z2 / (4 * n * n));
  return { low: Math.max(0, centre - half), high: Math.min(1, centre + half) };
}
