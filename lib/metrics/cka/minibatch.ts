/**
 * Minibatch CKA (Nguyen, Raghu and Kornblith 2021), streamed over the images, for many layer pairs at
 * once:
 *
 *   const acc = new MinibatchCka({ layers: [{ name: "gd:24", dim: 1024 }, ...], pairs: crossPairs(gd, resnet), batchSize: 256 });
 *   for (...) acc.add({ "gd:24": rows, "resnet:layer3.5": rows2, ... });   // any number of rows per call
 *   const result = acc.result();
 *
 * Rows are regrouped into consecutive batches of exactly `batchSize` images in the order they arrive,
 * however they are chunked by the caller. For each batch: one b x b linear Gram per layer (float64),
 * then the unbiased HSIC (lib/metrics/cka/hsic) of every requested pair and of every layer with itself,
 * summed in float64. The result is, per pair, mean HSIC(K, L) / sqrt(mean HSIC(K, K) mean HSIC(L, L)).
 *
 * The last batch may be shorter (the image count is rarely a multiple of b): with `tail: "batch"`
 * (default, as numpy's `range(0, n, b)` loop of ../shared/tools/fixtures/make_cka_fixtures.py does) it
 * counts as one more batch if it has at least 4 rows (the estimator's minimum), else it is dropped
 * and reported in `droppedRows`; `tail: "drop"` always drops it.
 *
 * Memory: one Gram (b^2 float64) per layer read, plus at most b - 1 buffered rows per layer when the
 * caller's chunks do not line up with b; never an n x n matrix, never all the features. Time per
 * batch: b^2/2 x (sum of widths) multiply-adds for the Grams, b^2 per pair.
 */
import { ckaFromHsic, gramStats, GramStats, hsicUnbiasedStats, linearGram } from "./hsic";
import { CkaResult, FeatureBatchInput, LayerPair, LayerPlan, LayerSpec, planLayers, readBatch } from "./layers";
import { RowData } from "./rows";

export interface MinibatchCkaOptions {
  layers: readonly LayerSpec[];
  /** Pairs to compare (default: every pair of `layers`, each with itself included). */
  pairs?: readonly LayerPair[];
  /** Images per minibatch (>= 4). */
  batchSize: number;
  /** The last, shorter batch: "batch" (default: one more batch if it has >= 4 rows) or "drop". */
  tail?: "batch" | "drop";
}

/** Bytes a MinibatchCka holds for these widths and batch size (Grams + worst-case row buffer). */
export function minibatchCkaBytes(layers: readonly LayerSpec[], batchSize: number): number {
  const widths = layers.reduce((s, l) => s + l.dim, 0);
  return layers.length * 8 * (batchSize * batchSize + batchSize) + 4 * batchSize * widths;
}

export class MinibatchCka {
  private readonly plan: LayerPlan;
  readonly batchSize: number;
  readonly tail: "batch" | "drop";
  /** Sums over batches of HSIC per pair, and of each used layer with itself. */
  private readonly sumPair: Float64Array;
  private readonly sumSelf: Float64Array;
  private batches = 0;
  private rowsDone = 0;
  /** Rows waiting for their batch to fill: per used layer, a b x dim buffer. */
  private readonly buffer = new Map<number, RowData>();
  private filled = 0;
  private readonly grams: Float64Array[];

  constructor(opts: MinibatchCkaOptions) {
    this.plan = planLayers(opts.layers, opts.pairs, "MinibatchCka");
    const b = opts.batchSize;
    if (!(Number.isInteger(b) && b >= 4)) throw new Error(`MinibatchCka: batchSize must be an integer >= 4 (the unbiased HSIC needs 4 rows), got ${JSON.stringify(b)}`);
    if (opts.tail !== undefined && opts.tail !== "batch" && opts.tail !== "drop") throw new Error(`MinibatchCka: tail must be "batch" or "drop", got ${JSON.stringify(opts.tail)}`);
    this.batchSize = b;
    this.tail = opts.tail ?? "batch";
    this.sumPair = new Float64Array(this.plan.pairs.length);
    this.sumSelf = new Float64Array(this.plan.layers.length);
    this.grams = this.plan.layers.map(() => new Float64Array(0));
  }

  get layers(): LayerSpec[] {
    return this.plan.layers.map((l) => ({ ...l }));
  }

  /** Rows added so far. */
  get rows(): number {
    return this.rowsDone + this.filled;
  }

  /** Add the next rows (the same images in every layer). */
  add(batch: FeatureBatchInput): void {
    const { n, data } = readBatch(this.plan, batch, "MinibatchCka.add");
    const b = this.batchSize;
    let start = 0;
    // Complete a partly filled batch first.
    if (this.filled > 0) {
      const take = Math.min(b - this.filled, n);
      this.bufferRows(data, start, take);
      start += take;
      if (this.filled === b) {
        this.process(this.bufferView(b), b, this.sumPair, this.sumSelf);
        this.filled = 0;
      }
    }
    // Whole batches straight from the input, without copying.
    while (n - start >= b) {
      const view = new Map<number, RowData>();
      for (const [i, d] of data) view.set(i, d.subarray(start * this.plan.layers[i].dim, (start + b) * this.plan.layers[i].dim));
      this.process(view, b, this.sumPair, this.sumSelf);
      start += b;
    }
    if (start < n) this.bufferRows(data, start, n - start);
  }

  private bufferRows(data: Map<number, RowData>, start: number, count: number): void {
    if (count <= 0) return;
    for (const [i, d] of data) {
      const dim = this.plan.layers[i].dim;
      let buf = this.buffer.get(i);
      const wide = d instanceof Float64Array;
      if (!buf || (wide && buf instanceof Float32Array)) {
        const fresh = wide ? new Float64Array(this.batchSize * dim) : new Float32Array(this.batchSize * dim);
        if (buf) fresh.set(buf.subarray(0, this.filled * dim));
        buf = fresh;
        this.buffer.set(i, buf);
      }
      buf.set(d.subarray(start * dim, (start + count) * dim), this.filled * dim);
    }
    this.filled += count;
  }

  private bufferView(rows: number): Map<number, RowData> {
    const view = new Map<number, RowData>();
    for (const [i, buf] of this.buffer) view.set(i, buf.subarray(0, rows * this.plan.layers[i].dim));
    return view;
  }

  /** One batch of `m` rows: Grams, then HSIC of every pair and self term, added to the sums. */
  private process(data: Map<number, RowData>, m: number, sumPair: Float64Array, sumSelf: Float64Array): void {
    const stats = new Map<number, GramStats>();
    for (const i of this.plan.used) {
      const dim = this.plan.layers[i].dim;
      if (this.grams[i].length !== m * m) this.grams[i] = new Float64Array(m * m);
      linearGram({ n: m, dim, data: data.get(i)! }, this.grams[i]);
      const s = gramStats(this.grams[i], m, false);
      stats.set(i, s);
      sumSelf[i] += hsicUnbiasedStats(s, s);
    }
    this.plan.pairs.forEach(([i, j], p) => {
      sumPair[p] += i === j ? hsicUnbiasedStats(stats.get(i)!, stats.get(i)!) : hsicUnbiasedStats(stats.get(i)!, stats.get(j)!);
    });
    if (sumPair === this.sumPair) {
      this.batches++;
      this.rowsDone += m;
    }
  }

  /**
   * CKA of every requested pair over the rows added so far (the accumulator can go on afterwards).
   * A buffered partial batch counts per `tail`.
   */
  result(): CkaResult {
    let sumPair = this.sumPair;
    let sumSelf = this.sumSelf;
    let batches = this.batches;
    let rows = this.rowsDone;
    let dropped = 0;
    if (this.filled > 0) {
      if (this.tail === "batch" && this.filled >= 4) {
        sumPair = Float64Array.from(this.sumPair);
        sumSelf = Float64Array.from(this.sumSelf);
        this.process(this.bufferView(this.filled), this.filled, sumPair, sumSelf);
        batches++;
        rows += this.filled;
      } else {
        dropped = this.filled;
      }
    }
    if (batches === 0) {
      throw new Error(`MinibatchCka: no batch to average (${this.rows} rows added, batchSize ${this.batchSize}; at least 4 rows are needed)`);
    }
    const pairs = this.plan.pairs.map(([i, j], p) => {
      const xy = sumPair[p] / batches;
      const xx = sumSelf[i] / batches;
      const yy = sumSelf[j] / batches;
      return { x: this.plan.layers[i].name, y: this.plan.layers[j].name, cka: ckaFromHsic(xy, xx, yy), hsicXY: xy, hsicXX: xx, hsicYY: yy };
    });
    return { method: "minibatch", rows, batches, droppedRows: dropped, pairs };
  }
}
