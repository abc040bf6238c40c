/**
 * Heads read from the store: a FeatureSource over a FeatureSet on disk (all its rows, or a subset such as
 * a validation split), so that training and scoring stream mini-batches from the store's parts and never
 * call `matrix()`. Stage three (heads) thus never recomputes features, and never needs the whole matrix.
 *
 * `withinBudget` is the one place a source may be copied into memory: when its rows fit a stated number
 * of bytes (repeated epochs then read memory, not disk); otherwise the source is returned as it is and
 * training streams from disk.
 */
import type { FeatureSet } from "../features/store/store";
import { FeatureSource, forEachChunk, memorySource, rowSize, subsetSource } from "./source";

export interface StoreSourceOptions {
  /** Number of classes (labels come from the set's manifest). */
  numClasses: number;
  /** Only these rows of the set, in this order (e.g. the fit or validation part of a split). */
  rows?: ArrayLike<number>;
  /** Rows as flat vectors [D] instead of the block's map [C, h, w] (the set's rowShape, which heads take). */
  asVector?: boolean;
}

/**
 * The one adapter from the store to the heads: a FeatureSource over the rows of a stored feature set
 * (labels from its manifest), rows shaped as stored ([C, s, s] for a pooled block map).
 */
export function storeSource(set: FeatureSet, opts: StoreSourceOptions): FeatureSource {
  const labels = set.labels;
  if (!labels) throw new Error(`storeSource: feature set ${set.dir} has no labels; heads need labelled rows`);
  const shape = opts.asVector ? [set.dim] : set.manifest.rowShape;
  if (!shape) throw new Error(`storeSource: feature set ${set.dir} does not record its row shape; heads need [C, H, W] rows (asVector: true gives vectors)`);
  if (rowSize(shape) !== set.dim) throw new Error(`storeSource: feature set ${set.dir}: row shape ${JSON.stringify(shape)} does not hold ${set.dim} values`);
  for (let i = 0; i < labels.length; i++) {
    if (!(labels[i] >= 0 && labels[i] < opts.numClasses)) throw new Error(`storeSource: feature set ${set.dir}: label ${labels[i]} at row ${i} is outside 0..${opts.numClasses - 1}`);
  }
  const whole: FeatureSource = {
    rows: set.rows,
    shape,
    labels,
    numClasses: opts.numClasses,
    readRows: async (indices) => set.readRows(indices),
  };
  return opts.rows ? subsetSource(whole, opts.rows) : whole;
}

/** Bytes the float32 rows of a source take in memory. */
export function sourceBytes(source: FeatureSource): number {
  return source.rows * rowSize(source.shape) * 4;
}

/**
 * The source copied into memory (read in chunks) when its rows take at most `budgetBytes`; otherwise the
 * source itself (heads then stream from it). `inMemory` says which. A source with epochs (`forEpoch`) is
 * never copied.
 */
export async function withinBudget(source: FeatureSource, budgetBytes: number): Promise<{ source: FeatureSource; inMemory: boolean }> {
  if (!(budgetBytes >= 0)) throw new Error(`withinBudget: budget must be a non-negative number of bytes, got ${budgetBytes}`);
  // a source whose rows change between epochs (views) is read from where it is, epoch by epoch
  if (source.forEpoch || sourceBytes(source) > budgetBytes) return { source, inMemory: false };
  const size = rowSize(source.shape);
  const data = new Float32Array(source.rows * size);
  await forEachChunk(source, 4096, (chunk, start) => {
    data.set(chunk, start * size);
  });
  return { source: memorySource(data, source.shape, source.labels, source.numClasses), inMemory: true };
}
