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
