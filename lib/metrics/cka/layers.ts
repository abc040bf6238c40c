/**
 * Which layers a CKA accumulator reads and which (layer, layer) pairs it compares, and the checks on
 * each batch of features handed to it (every layer present, whole rows, the same images in each).
 */
import { FeatureRows, RowData } from "./rows";

/** A layer: its name (any text, unique) and feature width. */
export interface LayerSpec {
  name: string;
  dim: number;
}

/** A pair of layer names; CKA is symmetric, so [a, b] and [b, a] give the same value. */
export type LayerPair = [string, string];

/** One batch: per layer name, its rows (row-major data, or a matrix with n/dim/data). Extra layers are ignored. */
export type FeatureBatchInput = Record<string, RowData | FeatureRows> | Map<string, RowData | FeatureRows>;

/** Every pair between two groups of layers: rows x cols (the heat-map layout). */
export function crossPairs(rows: readonly string[], cols: readonly string[]): LayerPair[] {
  return rows.flatMap((r) => cols.map((c) => [r, c] as LayerPair));
}

/** Every unordered pair of a group, the layer with itself included (a symmetric table's upper triangle). */
export function allPairs(names: readonly string[]): LayerPair[] {
  const out: LayerPair[] = [];
  names.forEach((a, i) => names.slice(i).forEach((b) => out.push([a, b])));
  return out;
}

/** Checked layers and pairs, as indexes. */
export interface LayerPlan {
  layers: LayerSpec[];
  /** Index of each layer by name. */
  index: Map<string, number>;
  /** Requested pairs as layer indexes, in the order asked (duplicates, in either order, dropped). */
  pairs: [number, number][];
  /** Layers that appear in some pair (the others are not read). */
  used: number[];
}

export function planLayers(layers: readonly LayerSpec[], pairs: readonly LayerPair[] | undefined, what: string): LayerPlan {
  if (!Array.isArray(layers) || layers.length === 0) throw new Error(`${what}: \`layers\` must list at least one { name, dim }`);
  const index = new Map<string, number>();
  layers.forEach((l, i) => {
    if (!l || typeof l.name !== "string" || l.name === "") throw new Error(`${what}: layer ${i} has no name`);
    if (!(Number.isInteger(l.dim) && l.dim > 0)) throw new Error(`${what}: layer ${JSON.stringify(l.name)} has width ${JSON.stringify(l.dim)}; expected a positive integer`);
    if (index.has(l.name)) throw new Error(`${what}: layer name ${JSON.stringify(l.name)} appears twice`);
    index.set(l.name, i);
  });
  const wanted = pairs ?? allPairs(layers.map((l) => l.name));
  if (wanted.length === 0) throw new Error(`${what}: \`pairs\` is empty`);
  const seen = new Set<string>();
  const out: [number, number][] = [];
  for (const p of wanted) {
    if (!Array.isArray(p) || p.length !== 2) throw new Error(`${what}: a pair must be [layerA, layerB], got ${JSON.stringify(p)}`);
    const ij = p.map((name) => {
      const i = index.get(name);
      if (i === undefined) throw new Error(`${what}: pair ${JSON.stringify(p)} names layer ${JSON.stringify(name)}, which is not among the layers (${[...index.keys()].join(", ")})`);
      return i;
    }) as [number, number];
    const key = ij[0] <= ij[1] ? `${ij[0]},${ij[1]}` : `${ij[1]},${ij[0]}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(ij);
  }
  const used = [...new Set(out.flat())].sort((a, b) => a - b);
  return { layers: layers.map((l) => ({ name: l.name, dim: l.dim })), index, pairs: out, used };
}

/**
 * The rows of every used layer in a batch, checked: each present, whole rows of its width, the same
 * number of rows in all. Returns that number and the data by layer index.
 */
export function readBatch(plan: LayerPlan, batch: FeatureBatchInput, what: string): { n: number; data: Map<number, RowData> } {
  if (!batch || typeof batch !== "object") throw new Error(`${what}: a batch must map layer names to feature rows`);
  const get = (name: string) => (batch instanceof Map ? batch.get(name) : (batch as Record<string, RowData | FeatureRows>)[name]);
  let n = -1;
  let first = "";
  const data = new Map<number, RowData>();
  for (const i of plan.used) {
    const { name, dim } = plan.layers[i];
    const v = get(name);
    if (v === undefined || v === null) throw new Error(`${what}: the batch has no features for layer ${JSON.stringify(name)}`);
    const values = v instanceof Float32Array || v instanceof Float64Array ? v : (v as FeatureRows).data;
    if (!(values instanceof Float32Array || values instanceof Float64Array)) throw new Error(`${what}: layer ${JSON.stringify(name)}: expected a Float32Array or Float64Array`);
    if (!(v instanceof Float32Array || v instanceof Float64Array) && (v as FeatureRows).dim !== dim) {
      throw new Error(`${what}: layer ${JSON.stringify(name)} rows have ${(v as FeatureRows).dim} values, the layer was declared with ${dim}`);
    }
    if (values.length % dim !== 0) throw new Error(`${what}: layer ${JSON.stringify(name)}: ${values.length} values are not whole rows of ${dim}`);
    const rows = values.length / dim;
    if (n < 0) {
      n = rows;
      first = name;
    } else if (rows !== n) {
      throw new Error(`${what}: layer ${JSON.stringify(name)} has ${rows} rows but layer ${JSON.stringify(first)} has ${n}; every layer must hold the same images`);
    }
    for (let k = 0; k < values.length; k++) {
      if (!Number.isFinite(values[k])) throw new Error(`${what}: layer ${JSON.stringify(name)}, row ${Math.floor(k / dim)}, column ${k % dim}: value ${values[k]} is not finite`);
    }
    data.set(i, values);
  }
  return { n, data };
}

/** One pair's result. */
export interface CkaPairValue {
  x: string;
  y: string;
  cka: number;
  /** The HSIC terms behind it (mean over batches for minibatch CKA; biased HSIC for linear CKA). */
  hsicXY: number;
  hsicXX: number;
  hsicYY: number;
}

export interface CkaResult {
  method: "minibatch" | "linear";
  /** Rows (images) that went into the estimate. */
  rows: number;
  /** Minibatches averaged (minibatch CKA); 1 for linear CKA. */
  batches: number;
  /** Rows left out: a last partial batch under 4 rows (the unbiased estimator needs 4), or by `tail: "drop"`. */
  droppedRows: number;
  pairs: CkaPairValue[];
}

/** The value of one pair in a result (either order); throws listing the pairs when absent. */
export function pairValue(result: CkaResult, x: string, y: string): CkaPairValue {
  const hit = result.pairs.find((p) => (p.x === x && p.y === y) || (p.x === y && p.y === x));
  if (!hit) throw new Error(`no CKA for (${JSON.stringify(x)}, ${JSON.stringify(y)}); the result has ${result.pairs.length} pairs, e.g. ${result.pairs.slice(0, 3).map((p) => `(${p.x}, ${p.y})`).join(", ")}`);
  return hit;
}
