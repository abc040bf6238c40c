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

export interface PairedComparison {
  /** Examples only A classifies correctly. */
  onlyA: number;
  /** Examples only B classifies correctly. */
  onlyB: number;
  /** Examples both classify correctly. */
  both: number;
  /** Examples neither classifies correctly. */
  neither: number;
  /** Two-sided exact McNemar p-value: P(a split at least this uneven | both are equally accurate). */
  pValue: number;
}

/**
 * Exact McNemar test of two classifiers on the same test examples. Only the examples on which they
 * disagree about correctness count; under "equally accurate" each of those falls either way with
 * probability 1/2, so the p-value is a two-sided binomial tail. More sensitive than comparing two
 * accuracy intervals, because the examples both get right (or wrong) add no noise.
 */
export function mcnemarExact(predA: ArrayLike<number>, predB: ArrayLike<number>, labels: ArrayLike<number>): PairedComparison {
  checkLengths(predA, labels);
  checkLengths(predB, labels);
  let onlyA = 0, onlyB = 0, both = 0, neither = 0;
  for (let i = 0; i < labels.length; i++) {
    const a = predA[i] === labels[i], b = predB[i] === labels[i];
    if (a && b) both++;
    else if (a) onlyA++;
    else if (b) onlyB++;
    else neither++;
  }
  return { onlyA, onlyB, both, neither, pValue: binomialTwoSided(Math.min(onlyA, onlyB), onlyA + onlyB) };
}

/** min(1, 2·P(X <= k)) for X ~ Binomial(n, 1/2), summed in log space (no underflow for large n). */
function binomialTwoSided(k: number, n: number): number {
  if (n === 0) return 1;
  let logC = 0; // log C(n, 0)
  const logs: number[] = [];
  for (let i = 0; i <= k; i++) {
    if (i > 0) logC += Math.log(n - i + 1) - Math.log(i);
    logs.push(logC - n * Math.LN2);
  }
  const top = Math.max(...logs);
  const tail = Math.exp(top) * logs.reduce((s, l) => s + Math.exp(l - top), 0);
  return Math.min(1, 2 * tail);
}

/** Row-wise argmax of row-major scores [N, C] (the first maximum on ties). */
export function argmaxRows(scores: Float32Array | Float64Array, numClasses: number): Int32Array {
  if (scores.length % numClasses !== 0) throw new Error(`argmaxRows: ${scores.length} scores is not a multiple of ${numClasses} classes`);
  const n = scores.length / numClasses;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < numClasses; c++) if (scores[i * numClasses + c] > scores[i * numClasses + best]) best = c;
    out[i] = best;
  }
  return out;
}

/** Accuracy of each class (NaN for a class with no examples). */
export function perClassAccuracy(pred: ArrayLike<number>, labels: ArrayLike<number>, numClasses: number): number[] {
  const m = confusionMatrix(pred, labels, numClasses);
  return m.map((row, c) => {
    const total = row.reduce((a, b) => a + b, 0);
    return total > 0 ? row[c] / total : NaN;
  });
}
