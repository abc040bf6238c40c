/**
 * Adaptive average pooling of rows that hold whole feature maps flattened channel-major ([C, H, W],
 * as lib/features returns them with `pool: { kind: "none" }`) down to [C, s, s], with PyTorch's bin
 * edges (lib/pooling's adaptiveBins) and float64 sums rounded once to float32 — the same numbers as
 * pooling the map directly. One extraction at full resolution thus serves several pooled sizes.
 */
import { adaptiveBins } from "../pooling";

/** Pool `n` rows of [C, H, W] maps to [C, rows, cols]; returns n x (C rows cols) float32 values. */
export function poolChannelMajorRows(data: Float32Array, n: number, mapShape: readonly [number, number, number] | readonly number[], size: number | [number, number]): Float32Array {
  const [c, h, w] = mapShape;
  const per = c * h * w;
  if (!(Number.isInteger(n) && n >= 0) || data.length !== n * per) throw new Error(`poolChannelMajorRows: ${data.length} values are not ${n} rows of [${c}, ${h}, ${w}]`);
  const [rows, cols] = typeof size === "number" ? [size, size] : size;
  const rb = adaptiveBins(h, rows);
  const cb = adaptiveBins(w, cols);
  const dim = c * rows * cols;
  const out = new Float32Array(n * dim);
  for (let r = 0; r < n; r++) {
    for (let ch = 0; ch < c; ch++) {
      const src = r * per + ch * h * w;
      for (let i = 0; i < rows; i++) {
        for (let j = 0; j < cols; j++) {
          let s = 0;
          for (let y = rb.start[i]; y < rb.end[i]; y++) for (let x = cb.start[j]; x < cb.end[j]; x++) s += data[src + y * w + x];
          out[r * dim + ch * rows * cols + i * cols + j] = s / ((rb.end[i] - rb.start[i]) * (cb.end[j] - cb.start[j]));
        }
      }
    }
  }
  return out;
}
