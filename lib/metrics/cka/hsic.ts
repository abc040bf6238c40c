/**
 * HSIC estimators on linear Gram matrices (float64, n x n, symmetric, row-major).
 *
 * - biased (Gretton et al. 2005): tr(K H L H) / (n - 1)^2, H = I - 11'/n the centring matrix; the
 *   linear CKA of Kornblith et al. (2019) is the biased HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L));
 * - unbiased (Song et al. 2012), with K~, L~ the Grams with zeroed diagonals:
 *     [tr(K~L~) + (1'K~1)(1'L~1) / ((n-1)(n-2)) - 2/(n-2) 1'K~L~1] / (n(n-3)),
 *   defined for n >= 4; minibatch CKA (Nguyen, Raghu and Kornblith 2021) averages it over batches.
 *
 * For many pairs over the same rows, `gramStats` precomputes per matrix what the unbiased estimator
 * needs (K~, its row sums and total), so that each pair costs one n^2 dot product.
 */
import { FeatureRows, checkRows } from "./rows";

/** K = X X' in float64 (n x n, row-major), from the rows of X. */
export function linearGram(x: FeatureRows, out?: Float64Array): Float64Array {
  checkRows(x, "linearGram");
  const { n, dim, data } = x;
  const k = out ?? new Float64Array(n * n);
  if (k.length < n * n) throw new Error(`linearGram: output holds ${k.length} values, need ${n * n}`);
  for (let i = 0; i < n; i++) {
    const a = i * dim;
    for (let j = i; j < n; j++) {
      const b = j * dim;
      let s = 0;
      for (let c = 0; c < dim; c++) s += data[a + c] * data[b + c];
      k[i * n + j] = s;
      k[j * n + i] = s;
    }
  }
  return k;
}

function checkGram(k: Float64Array, n: number, what: string): void {
  if (!(Number.isInteger(n) && n > 0)) throw new Error(`${what}: n must be a positive integer, got ${n}`);
  if (!(k instanceof Float64Array) || k.length < n * n) throw new Error(`${what}: expected a Float64Array of ${n} x ${n} values`);
}

/** What the unbiased estimator needs of one Gram matrix: K with a zeroed diagonal, its row sums and total. */
export interface GramStats {
  n: number;
  /** K~: K with its diagonal set to zero (n x n). */
  k: Float64Array;
  /** Row sums of K~ (= K~ 1). */
  rowSums: Float64Array;
  /** 1' K~ 1. */
  total: number;
}

/** Zero the diagonal of K (in place unless `copy`) and sum its rows. */
export function gramStats(k: Float64Array, n: number, copy = true): GramStats {
  checkGram(k, n, "gramStats");
  const kt = copy ? Float64Array.from(k.subarray(0, n * n)) : k;
  const rowSums = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    kt[i * n + i] = 0;
    let s = 0;
    for (let j = 0; j < n; j++) s += kt[i * n + j];
    rowSums[i] = s;
    total += s;
  }
  return { n, k: kt, rowSums, total };
}

/** The unbiased HSIC of two Grams' stats (same n >= 4). */
export function hsicUnbiasedStats(a: GramStats, b: GramStats): number {
  const n = a.n;
  if (b.n !== n) throw new Error(`hsicUnbiased: Gram matrices over ${a.n} and ${b.n} rows`);
  if (n < 4) throw new Error(`hsicUnbiased: needs at least 4 rows, got ${n} (the estimator divides by n(n-3))`);
  let tr = 0; // tr(K~ L~) = sum_ij K~_ij L~_ij (both symmetric)
  const ka = a.k;
  const kb = b.k;
  for (let i = 0; i < n * n; i++) tr += ka[i] * kb[i];
  let cross = 0; // 1' K~ L~ 1 = (K~ 1) . (L~ 1)
  for (let i = 0; i < n; i++) cross += a.rowSums[i] * b.rowSums[i];
  return (tr + (a.total * b.total) / ((n - 1) * (n - 2)) - (2 / (n - 2)) * cross) / (n * (n - 3));
}

/** Unbiased HSIC (Song et al. 2012) of two n x n Gram matrices. */
export function hsicUnbiased(k: Float64Array, l: Float64Array, n: number): number {
  checkGram(k, n, "hsicUnbiased");
  checkGram(l, n, "hsicUnbiased");
  return hsicUnbiasedStats(gramStats(k, n), gramStats(l, n));
}

/** Biased HSIC: tr(K H L H) / (n - 1)^2, with H the centring matrix. */
export function hsicBiased(k: Float64Array, l: Float64Array, n: number): number {
  checkGram(k, n, "hsicBiased");
  checkGram(l, n, "hsicBiased");
  if (n < 2) throw new Error(`hsicBiased: needs at least 2 rows, got ${n}`);
  // tr(KHLH) = sum_ij Kc_ij L_ij with Kc = H K H (double-centred K): Kc_ij = K_ij - r_i - r_j + m.
  const r = new Float64Array(n);
  let m = 0;
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < n; j++) s += k[i * n + j];
    r[i] = s / n;
    m += s;
  }
  m /= n * n;
  let tr = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) tr += (k[i * n + j] - r[i] - r[j] + m) * l[i * n + j];
  }
  return tr / ((n - 1) * (n - 1));
}

/** CKA from three HSIC values: hsic(K,L) / sqrt(hsic(K,K) hsic(L,L)); NaN when a self term is not positive. */
export function ckaFromHsic(kl: number, kk: number, ll: number): number {
  const d = kk * ll;
  return d > 0 ? kl / Math.sqrt(d) : NaN;
}
