/**
 * Linear CKA with the biased HSIC (Kornblith et al. 2019), streamed over the images without an n x n
 * Gram matrix, for many layer pairs at once:
 *
 *   CKA(X, Y) = ||Yc' Xc||_F^2 / (||Xc' Xc||_F ||Yc' Yc||_F),   Xc, Yc: X, Y with column means removed.
 *
 * Per layer it keeps the running column means and the centred co-moment Xc' Xc (dim x dim); per pair
 * of different layers the centred cross co-moment Xc' Yc (dim_x x dim_y), all float64. Each chunk of
 * rows is centred on its own mean and merged with the pairwise update of Chan, Golub and LeVeque
 * (C += C_chunk + n k / (n + k) (mean_chunk - mean)(mean_chunk - mean)'), which avoids the
 * cancellation of accumulating raw sums X'Y - n mean mean'.
 *
 * Memory: 8 bytes x (sum over pairs of dim_x dim_y + sum over layers of dim^2), whatever the number
 * of images: `linearCkaBytes` tells it in advance, and the constructor refuses past `maxBytes`
 * (default 1 GiB) with a message that points at minibatch CKA (lib/metrics/cka/minibatch), whose memory does
 * not grow with the widths. Time per image: the same count of multiply-adds.
 */
import { CkaResult, FeatureBatchInput, LayerPair, LayerPlan, LayerSpec, planLayers, readBatch } from "./layers";
import { formatBytes } from "./rows";

export interface LinearCkaOptions {
  layers: readonly LayerSpec[];
  /** Pairs to compare (default: every pair of `layers`, each with itself included). */
  pairs?: readonly LayerPair[];
  /** Largest memory for the co-moment matrices, in bytes (default 1 GiB). */
  maxBytes?: number;
}

export const DEFAULT_LINEAR_CKA_MAX_BYTES = 2 ** 30;

/** Bytes of float64 co-moments that linear CKA over these pairs holds (see the module comment). */
export function linearCkaBytes(layers: readonly LayerSpec[], pairs?: readonly LayerPair[]): number {
  const plan = planLayers(layers, pairs, "linearCkaBytes");
  return planBytes(plan);
}

function planBytes(plan: LayerPlan): number {
  let values = 0;
  for (const i of plan.used) values += plan.layers[i].dim * (plan.layers[i].dim + 2);
  for (const [i, j] of plan.pairs) if (i !== j) values += plan.layers[i].dim * plan.layers[j].dim;
  return 8 * values;
}

export class LinearCka {
  private readonly plan: LayerPlan;
  private count = 0;
  /** Per used layer: column means, and the upper triangle of Xc' Xc (stored dim x dim). */
  private readonly means = new Map<number, Float64Array>();
  private readonly self = new Map<number, Float64Array>();
  /** Per pair of different layers: Xc' Yc (dim_x x dim_y, row-major); null for a layer with itself. */
  private readonly cross: (Float64Array | null)[];

  constructor(opts: LinearCkaOptions) {
    this.plan = planLayers(opts.layers, opts.pairs, "LinearCka");
    const budget = opts.maxBytes ?? DEFAULT_LINEAR_CKA_MAX_BYTES;
    const need = planBytes(this.plan);
    if (need > budget) {
      const big = this.plan.pairs
        .map(([i, j]) => ({ label: `${this.plan.layers[i].name} (${this.plan.layers[i].dim}) x ${this.plan.layers[j].name} (${this.plan.layers[j].dim})`, bytes: 8 * this.plan.layers[i].dim * this.plan.layers[j].dim }))
        .sort((a, b) => b.bytes - a.bytes)
        .slice(0, 3)
        .map((p) => `${p.label}: ${formatBytes(p.bytes)}`);
      throw new Error(
        `LinearCka: ${this.plan.pairs.length} pairs over ${this.plan.used.length} layers need ${formatBytes(need)} of float64 cross-products ` +
          `(largest: ${big.join("; ")}), over the budget of ${formatBytes(budget)} (maxBytes). ` +
          `Use minibatch CKA (MinibatchCka), whose memory is one batchSize^2 Gram per layer whatever the widths, or pool the features to fewer values.`,
      );
    }
    for (const i of this.plan.used) {
      const d = this.plan.layers[i].dim;
      this.means.set(i, new Float64Array(d));
      this.self.set(i, new Float64Array(d * d));
    }
    this.cross = this.plan.pairs.map(([i, j]) => (i === j ? null : new Float64Array(this.plan.layers[i].dim * this.plan.layers[j].dim)));
  }

  get layers(): LayerSpec[] {
    return this.plan.layers.map((l) => ({ ...l }));
  }

  /** Rows added so far. */
  get rows(): number {
    return this.count;
  }

  /** Add the next rows (the same images in every layer), in chunks of any size. */
  add(batch: FeatureBatchInput): void {
    const { n: k, data } = readBatch(this.plan, batch, "LinearCka.add");
    if (k === 0) return;
    const n = this.count;
    const w = (n * k) / (n + k); // weight of the mean-difference term
    // Per layer: the chunk centred on its own mean, and that mean minus the running mean.
    const centred = new Map<number, Float64Array>();
    const delta = new Map<number, Float64Array>();
    for (const i of this.plan.used) {
      const d = this.plan.layers[i].dim;
      const x = data.get(i)!;
      const mean = new Float64Array(d);
      for (let r = 0; r < k; r++) for (let c = 0; c < d; c++) mean[c] += x[r * d + c];
      for (let c = 0; c < d; c++) mean[c] /= k;
      const z = new Float64Array(k * d);
      for (let r = 0; r < k; r++) for (let c = 0; c < d; c++) z[r * d + c] = x[r * d + c] - mean[c];
      const run = this.means.get(i)!;
      const dm = new Float64Array(d);
      for (let c = 0; c < d; c++) dm[c] = mean[c] - run[c];
      centred.set(i, z);
      delta.set(i, dm);
    }
    for (const i of this.plan.used) {
      const d = this.plan.layers[i].dim;
      addUpper(this.self.get(i)!, centred.get(i)!, k, d, delta.get(i)!, w);
    }
    this.plan.pairs.forEach(([i, j], p) => {
      const c = this.cross[p];
      if (c) addCross(c, centred.get(i)!, this.plan.layers[i].dim, centred.get(j)!, this.plan.layers[j].dim, k, delta.get(i)!, delta.get(j)!, w);
    });
    for (const i of this.plan.used) {
      const run = this.means.get(i)!;
      const dm = delta.get(i)!;
      for (let c = 0; c < run.length; c++) run[c] += (dm[c] * k) / (n + k);
    }
    this.count = n + k;
  }

  /** CKA of every requested pair over the rows added so far (the accumulator can go on afterwards). */
  result(): CkaResult {
    if (this.count < 2) throw new Error(`LinearCka: needs at least 2 rows, got ${this.count}`);
    const scale = 1 / ((this.count - 1) * (this.count - 1)); // biased HSIC = ||Xc'Yc||^2 / (n-1)^2
    const selfNorm2 = new Map<number, number>();
    for (const i of this.plan.used) selfNorm2.set(i, upperFrobenius2(this.self.get(i)!, this.plan.layers[i].dim));
    const pairs = this.plan.pairs.map(([i, j], p) => {
      const c = this.cross[p];
      let xy: number;
      if (c) {
        xy = 0;
        for (let q = 0; q < c.length; q++) xy += c[q] * c[q];
      } else {
        xy = selfNorm2.get(i)!;
      }
      const xx = Math.sqrt(selfNorm2.get(i)!);
      const yy = Math.sqrt(selfNorm2.get(j)!);
      // ||Xc'Xc||_F^2 is HSIC(K, K) (n-1)^2 with K = XX'; CKA = xy / (||Xc'Xc||_F ||Yc'Yc||_F).
      const cka = xx > 0 && yy > 0 ? xy / (xx * yy) : NaN;
      return { x: this.plan.layers[i].name, y: this.plan.layers[j].name, cka, hsicXY: xy * scale, hsicXX: selfNorm2.get(i)! * scale, hsicYY: selfNorm2.get(j)! * scale };
    });
    return { method: "linear", rows: this.count, batches: 1, droppedRows: 0, pairs };
  }
}

/** C (upper triangle) += Z'Z + w dm dm' for a centred chunk Z (k x d). */
function addUpper(c: Float64Array, z: Float64Array, k: number, d: number, dm: Float64Array, w: number): void {
  for (let r = 0; r < k; r++) {
    const zr = r * d;
    for (let a = 0; a < d; a++) {
      const v = z[zr + a];
      if (v === 0) continue;
      const row = a * d;
      for (let b = a; b < d; b++) c[row + b] += v * z[zr + b];
    }
  }
  if (w > 0) {
    for (let a = 0; a < d; a++) {
      const v = w * dm[a];
      const row = a * d;
      for (let b = a; b < d; b++) c[row + b] += v * dm[b];
    }
  }
}

/** C += Zx'Zy + w dx dy' for centred chunks Zx (k x dx), Zy (k x dy). */
function addCross(c: Float64Array, zx: Float64Array, dx: number, zy: Float64Array, dy: number, k: number, mx: Float64Array, my: Float64Array, w: number): void {
  for (let r = 0; r < k; r++) {
    const xr = r * dx;
    const yr = r * dy;
    for (let a = 0; a < dx; a++) {
      const v = zx[xr + a];
      if (v === 0) continue;
      const row = a * dy;
      for (let b = 0; b < dy; b++) c[row + b] += v * zy[yr + b];
    }
  }
  if (w > 0) {
    for (let a = 0; a < dx; a++) {
      const v = w * mx[a];
      const row = a * dy;
      for (let b = 0; b < dy; b++) c[row + b] += v * my[b];
    }
  }
}

/** Squared Frobenius norm of a symmetric matrix from its upper triangle. */
function upperFrobenius2(c: Float64Array, d: number): number {
  let diag = 0;
  let off = 0;
  for (let a = 0; a < d; a++) {
    diag += c[a * d + a] * c[a * d + a];
    for (let b = a + 1; b < d; b++) off += c[a * d + b] * c[a * d + b];
  }
  return diag + 2 * off;
}
