/**
 * Where heads read their features from: a `FeatureSource`, so that no head, trainer or kNN ever
 * needs the whole feature matrix in memory.
 *
 * The contract (kept minimal so the on-disk feature store, lib/features/store/, can implement it directly):
 *
 *   rows        number of examples
 *   shape       shape of one row, channel-major as PyTorch: [C, H, W] for a block map, [D] for a vector
 *   labels      one integer class per row (Int32Array or number[]), 0..numClasses-1
 *   numClasses  number of classes
 *   readRows(indices) -> Promise<Float32Array>
 *               the rows at `indices` (any order, repeats allowed), concatenated row-major in the order
 *               asked: indices.length * rowSize(shape) float32 values. Must not keep or mutate `indices`.
 *   forEpoch(e) -> Promise<FeatureSource>   (optional)
 *               the rows a trainer reads in (0-based) epoch e, for sources whose rows change between epochs
 *               (augmented and re-noised views: lib/experiments/views.ts): same rows, labels, shape and order
 *               of examples, other values. The source's own readRows are what everything but the
 *               trainer reads (views.ts: the centre images; validation rows, statistics). The views of this file
 *               (subset, pooling) pass it on; a trainer calls it once per epoch (trainHead).
 *
 * Helpers here: an in-memory source (tests, small runs), a subset view (train/test splits), a pooling
 * view (adaptive average pooling of [C, H, W] rows to [C * p * p], PyTorch-exact bins, channel-major),
 * and streaming per-dimension statistics for standardisation.
 */
import { poolChannelMajorRows } from "../features/pooling";

export interface FeatureSource {
  readonly rows: number;
  readonly shape: readonly number[];
  readonly labels: ArrayLike<number>;
  readonly numClasses: number;
  readRows(indices: ArrayLike<number>): Promise<Float32Array>;
  forEpoch?(epoch: number): Promise<FeatureSource>;
}

/**
 * The rows of `source` for epoch `epoch` (the source itself when its rows never change), checked to be
 * the same examples: a view that changed its row count, shape or labels is an error naming `what`.
 */
export async function sourceForEpoch(source: FeatureSource, epoch: number, what = "source"): Promise<FeatureSource> {
  if (!source.forEpoch) return source;
  const s = await source.forEpoch(epoch);
  if (s.rows !== source.rows || rowSize(s.shape) !== rowSize(source.shape) || s.shape.length !== source.shape.length) {
    throw new Error(`${what}: epoch ${epoch}'s rows are ${s.rows} x ${JSON.stringify(s.shape)}, the source's own ${source.rows} x ${JSON.stringify(source.shape)}`);
  }
  for (let i = 0; i < s.rows; i++) {
    if (s.labels[i] !== source.labels[i]) throw new Error(`${what}: epoch ${epoch}'s label at row ${i} is ${s.labels[i]}, the source's own ${source.labels[i]}`);
  }
  return s;
}

/** `view(source)` with the source's epochs passed on: epoch e of the result is view(source.forEpoch(e)). */
function withEpochs(source: FeatureSource, viewed: FeatureSource, view: (s: FeatureSource) => FeatureSource): FeatureSource {
  if (!source.forEpoch) return viewed;
  return { ...viewed, forEpoch: async (e) => view(await source.forEpoch!(e)) };
}

/** Number of float32 values in one row of this shape. */
export function rowSize(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Throw, naming `what`, unless labels are integers in 0..numClasses-1 and match rows. */
export function checkSource(source: FeatureSource, what: string): void {
  if (!(Number.isInteger(source.rows) && source.rows > 0)) throw new Error(`${what}: source has ${source.rows} rows`);
  if (!source.shape.length || !source.shape.every((d) => Number.isInteger(d) && d > 0)) {
    throw new Error(`${what}: row shape ${JSON.stringify(source.shape)} must be positive integers`);
  }
  if (source.labels.length !== source.rows) throw new Error(`${what}: ${source.rows} rows but ${source.labels.length} labels`);
  if (!(Number.isInteger(source.numClasses) && source.numClasses >= 2)) throw new Error(`${what}: numClasses ${source.numClasses} must be an integer >= 2`);
  for (let i = 0; i < source.rows; i++) {
    const y = source.labels[i];
    if (!(Number.isInteger(y) && y >= 0 && y < source.numClasses)) {
      throw new Error(`${what}: label ${y} at row ${i} is outside 0..${source.numClasses - 1}`);
    }
  }
}

/** A source over a row-major float32 array held in memory. */
export function memorySource(data: Float32Array, shape: readonly number[], labels: ArrayLike<number>, numClasses: number): FeatureSource {
  const size = rowSize(shape);
  if (data.length % size !== 0) throw new Error(`memorySource: ${data.length} values is not a whole number of rows of shape ${JSON.stringify(shape)}`);
  const rows = data.length / size;
  if (labels.length !== rows) throw new Error(`memorySource: ${rows} rows of shape ${JSON.stringify(shape)} but ${labels.length} labels`);
  return {
    rows,
    shape: [...shape],
    labels,
    numClasses,
    async readRows(indices) {
      const out = new Float32Array(indices.length * size);
      for (let r = 0; r < indices.length; r++) {
        const i = indices[r];
        if (!(Number.isInteger(i) && i >= 0 && i < rows)) throw new Error(`memorySource: row ${i} is outside 0..${rows - 1}`);
        out.set(data.subarray(i * size, (i + 1) * size), r * size);
      }
      return out;
    },
  };
}

/** The rows of `source` at `indices` (e.g. a train or test split), as a source of their own. */
export function subsetSource(source: FeatureSource, indices: ArrayLike<number>): FeatureSource {
  const map = Int32Array.from(indices as ArrayLike<number>);
  for (const i of map) if (!(i >= 0 && i < source.rows)) throw new Error(`subsetSource: row ${i} is outside 0..${source.rows - 1}`);
  const labels = Int32Array.from(map, (i) => source.labels[i]);
  const viewed: FeatureSource = {
    rows: map.length,
    shape: source.shape,
    labels,
    numClasses: source.numClasses,
    async readRows(idx) {
      const inner = new Int32Array(idx.length);
      for (let r = 0; r < idx.length; r++) {
        const i = idx[r];
        if (!(Number.isInteger(i) && i >= 0 && i < map.length)) throw new Error(`subsetSource: row ${i} is outside 0..${map.length - 1}`);
        inner[r] = map[i];
      }
      return source.readRows(inner);
    },
  };
  return withEpochs(source, viewed, (s) => subsetSource(s, map));
}

/**
 * Adaptive average pooling of [C, H, W] rows to [C * p * p] (channel-major, PyTorch's
 * torch.flatten(AdaptiveAvgPool2d(p)(x), 1)); sums in float64, rounded once.
 */
export function poolSource(source: FeatureSource, p: number): FeatureSource {
  if (source.shape.length !== 3) throw new Error(`poolSource: rows must be [C, H, W], got ${JSON.stringify(source.shape)}`);
  const [c, h, w] = source.shape;
  const outSize = c * p * p;
  const viewed: FeatureSource = {
    rows: source.rows,
    shape: [outSize],
    labels: source.labels,
    numClasses: source.numClasses,
    async readRows(indices) {
      return poolChannelMajorRows(await source.readRows(indices), indices.length, [c, h, w], p);
    },
  };
  return withEpochs(source, viewed, (s) => poolSource(s, p));
}

/** At most this many float32 values (64 MiB) are read at once by the streaming passes. */
export const MAX_CHUNK_VALUES = 1 << 24;

/** `chunk`, lowered where that many rows of `shape` would exceed MAX_CHUNK_VALUES (at least 1). */
export function chunkRows(shape: readonly number[], chunk: number): number {
  return Math.max(1, Math.min(chunk, Math.floor(MAX_CHUNK_VALUES / rowSize(shape))));
}

/** Rows 0..rows-1 in consecutive chunks of chunkRows(shape, chunk) rows, for streaming passes. */
export async function forEachChunk(source: FeatureSource, chunk: number, fn: (data: Float32Array, start: number, n: number) => void | Promise<void>): Promise<void> {
  chunk = chunkRows(source.shape, chunk);
  for (let start = 0; start < source.rows; start += chunk) {
    const n = Math.min(chunk, source.rows - start);
    const idx = new Int32Array(n);
    for (let i = 0; i < n; i++) idx[i] = start + i;
    await fn(await source.readRows(idx), start, n);
  }
}

/**
 * Per-value mean and population std over all rows, streamed in chunks (float64 sums: Chan's parallel
 * update of mean and M2 per chunk, so a large offset does not cancel). Std floored at 1e-6.
 */
export async function featureStats(source: FeatureSource, chunk = 1024): Promise<{ mean: Float32Array; std: Float32Array }> {
  const d = rowSize(source.shape);
  const mean = new Float64Array(d), m2 = new Float64Array(d);
  const cm = new Float64Array(d), cq = new Float64Array(d);
  let count = 0;
  await forEachChunk(source, chunk, (data, _start, n) => {
    cm.fill(0);
    cq.fill(0);
    for (let r = 0; r < n; r++) for (let j = 0; j < d; j++) cm[j] += data[r * d + j];
    for (let j = 0; j < d; j++) cm[j] /= n;
    for (let r = 0; r < n; r++) {
      for (let j = 0; j < d; j++) {
        const e = data[r * d + j] - cm[j];
        cq[j] += e * e;
      }
    }
    const total = count + n;
    for (let j = 0; j < d; j++) {
      const delta = cm[j] - mean[j];
      mean[j] += (delta * n) / total;
      m2[j] += cq[j] + (delta * delta * count * n) / total;
    }
    count = total;
  });
  const std = new Float32Array(d);
  for (let j = 0; j < d; j++) std[j] = Math.max(Math.sqrt(m2[j] / count), 1e-6);
  return { mean: Float32Array.from(mean), std };
}

/**
 * The rows of several sources side by side (same examples, same order): row i is parts[0]'s row i, then
 * parts[1]'s, ... flattened, shape [sum of row sizes] (DifFormer's rows: maps of several blocks and
 * timesteps, difformer.ts difformerRowLayout). Labels must agree; epochs are passed on when every part has them.
 */
export function concatSource(parts: readonly FeatureSource[]): FeatureSource {
  if (parts.length === 0) throw new Error("concatSource: no sources");
  const [first] = parts;
  parts.forEach((p, k) => {
    if (p.rows !== first.rows) throw new Error(`concatSource: source ${k} has ${p.rows} rows, source 0 ${first.rows}`);
    for (let i = 0; i < p.rows; i++) if (p.labels[i] !== first.labels[i]) throw new Error(`concatSource: source ${k}'s label at row ${i} is ${p.labels[i]}, source 0's ${first.labels[i]}`);
  });
  const sizes = parts.map((p) => rowSize(p.shape));
  const total = sizes.reduce((a, b) => a + b, 0);
  const out: FeatureSource = {
    rows: first.rows,
    shape: [total],
    labels: first.labels,
    numClasses: first.numClasses,
    async readRows(indices) {
      const chunks = await Promise.all(parts.map((p) => p.readRows(indices)));
      const data = new Float32Array(indices.length * total);
      for (let r = 0; r < indices.length; r++) {
        let at = r * total;
        chunks.forEach((c, k) => {
          data.set(c.subarray(r * sizes[k], (r + 1) * sizes[k]), at);
          at += sizes[k];
        });
      }
      return data;
    },
  };
  if (!parts.every((p) => p.forEpoch)) return out;
  return { ...out, forEpoch: async (e) => concatSource(await Promise.all(parts.map((p) => p.forEpoch!(e)))) };
}
