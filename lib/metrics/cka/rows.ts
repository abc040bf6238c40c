/**
 * Feature matrices as CKA reads them: `n` rows (images) of `dim` values, row-major. Float32 or
 * float64 storage; every sum over them is taken in float64. lib/features/extract's FeatureMatrix fits.
 */

export type RowData = Float32Array | Float64Array;

export interface FeatureRows {
  n: number;
  dim: number;
  data: RowData;
}

/** Wrap row-major data as a matrix of `dim` columns, checking that the rows fill it. `what` names it in errors. */
export function featureRows(data: RowData, dim: number, what = "features"): FeatureRows {
  if (!(data instanceof Float32Array || data instanceof Float64Array)) {
    throw new Error(`${what}: expected a Float32Array or Float64Array, got ${data === null ? "null" : (data as object)?.constructor?.name ?? typeof data}`);
  }
  if (!(Number.isInteger(dim) && dim > 0)) throw new Error(`${what}: width must be a positive integer, got ${JSON.stringify(dim)}`);
  if (data.length % dim !== 0) throw new Error(`${what}: ${data.length} values are not whole rows of ${dim}`);
  return { n: data.length / dim, dim, data };
}

/** Check a matrix's fields (n x dim values, integer sizes); returns it. */
export function checkRows(m: FeatureRows, what = "features"): FeatureRows {
  if (!m || !(m.data instanceof Float32Array || m.data instanceof Float64Array)) throw new Error(`${what}: expected { n, dim, data: Float32Array | Float64Array }`);
  if (!(Number.isInteger(m.n) && m.n >= 0 && Number.isInteger(m.dim) && m.dim > 0)) throw new Error(`${what}: bad shape n=${m.n}, dim=${m.dim}`);
  if (m.data.length !== m.n * m.dim) throw new Error(`${what}: ${m.data.length} values for ${m.n} rows x ${m.dim}`);
  return m;
}

/** Human-readable bytes: "512 MiB", "3.2 GiB". */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v >= 100 || u === 0 ? v.toFixed(0) : v.toPrecision(3)} ${units[u]}`;
}
