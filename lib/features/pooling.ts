/**
 * Pooling of U-Net feature maps into fixed-length vectors, as in the paper's code:
 *
 *   torch.flatten(torch.nn.AdaptiveAvgPool2d(p)(x), 1)      x: N x C x H x W
 *
 * Our feature maps are NHWC (tfjs layout); the vectors produced here are nevertheless in PyTorch's
 * channel-major order (index = c * oh * ow + i * ow + j), so a pooled vector equals the PyTorch one
 * element for element and heads trained on either side are interchangeable.
 *
 * Bin edges follow PyTorch's adaptive pooling: output cell i covers input rows
 * [floor(i * H / oh), ceil((i + 1) * H / oh)), which overlap when H is not a multiple of oh and repeat
 * rows when oh > H. Sums are accumulated in float64 and rounded once to float32.
 */

/** How a feature map becomes a vector. */
export type PoolSpec =
  /** Adaptive average pooling to `size` x `size` (or [rows, cols]), flattened channel-major. */
  | { kind: "adaptive"; size: number | [number, number] }
  /** Mean over all positions: one value per channel (= adaptive with size 1). */
  | { kind: "global" }
  /** No pooling: the whole map, flattened channel-major (C * H * W values). */
  | { kind: "none" };

/** A batch of pooled vectors: `n` rows of `dim` float32 values, row-major. */
export interface PooledBatch {
  data: Float32Array;
  n: number;
  dim: number;
  /** Shape of one row before flattening, channel-major: [C, rows, cols]. */
  rowShape: [number, number, number];
}

/** Start (inclusive) and end (exclusive) input index of each of the `outSize` adaptive bins. */
export function adaptiveBins(inSize: number, outSize: number): { start: Int32Array; end: Int32Array } {
  if (!(Number.isInteger(inSize) && inSize > 0)) throw new Error(`adaptiveBins: input size must be a positive integer, got ${inSize}`);
  if (!(Number.isInteger(outSize) && outSize > 0)) throw new Error(`adaptiveBins: output size must be a positive integer, got ${outSize}`);
  const start = new Int32Array(outSize);
  const end = new Int32Array(outSize);
  for (let i = 0; i < outSize; i++) {
    // Integer arithmetic, exactly as PyTorch's start_index / end_index.
    start[i] = Math.floor((i * inSize) / outSize);
    end[i] = Math.floor(((i + 1) * inSize + outSize - 1) / outSize);
  }
  return { start, end };
}

/** Output grid [rows, cols] of a pooling spec applied to an H x W map. */
export function poolGrid(spec: PoolSpec, height: number, width: number): [number, number] {
  switch (spec.kind) {
    case "global":
      return [1, 1];
    case "none":
      return [height, width];
    case "adaptive": {
      const [r, c] = typeof spec.size === "number" ? [spec.size, spec.size] : spec.size;
      if (!(Number.isInteger(r) && r > 0 && Number.isInteger(c) && c > 0)) {
        throw new Error(`pool: adaptive size must be positive integers, got ${JSON.stringify(spec.size)}`);
      }
      return [r, c];
    }
    default:
      throw new Error(`pool: unknown kind ${JSON.stringify((spec as { kind: unknown }).kind)} (expected "adaptive", "global" or "none")`);
  }
}

/** Length of the vector a spec makes from an H x W x C map. */
export function pooledDim(spec: PoolSpec, shapeHWC: readonly [number, number, number] | readonly number[]): number {
  const [h, w, c] = shapeHWC;
  const [r, k] = poolGrid(spec, h, w);
  return c * r * k;
}

/** Short stable text for a spec, for cache keys and labels: "adaptive2x2", "global", "none". */
export function poolLabel(spec: PoolSpec): string {
  if (spec.kind === "adaptive") {
    const [r, c] = typeof spec.size === "number" ? [spec.size, spec.size] : spec.size;
    return `adaptive${r}x${c}`;
  }
  return spec.kind;
}

function checkShape(data: ArrayLike<number>, shape: readonly number[], what: string): [number, number, number, number] {
  if (shape.length !== 4 || !shape.every((d) => Number.isInteger(d) && d > 0)) {
    throw new Error(`${what}: expected an NHWC shape of 4 positive integers, got [${shape.join(", ")}]`);
  }
  const [n, h, w, c] = shape;
  if (data.length !== n * h * w * c) {
    throw new Error(`${what}: data has ${data.length} values but shape [${shape.join(", ")}] needs ${n * h * w * c}`);
  }
  return [n, h, w, c];
}

/**
 * Pool an NHWC batch (flat, row-major) into channel-major vectors.
 * `out` may be given to write into an existing array of n * dim values (at `outOffset`).
 */
export function poolNHWC(
  data: Float32Array | Float64Array,
  shape: readonly number[],
  spec: PoolSpec,
  out?: Float32Array,
  outOffset = 0,
): PooledBatch {
  const [n, h, w, c] = checkShape(data, shape, `pool(${poolLabel(spec)})`);
  const [rows, cols] = poolGrid(spec, h, w);
  const cells = rows * cols;
  const dim = c * cells;
  if (out && out.length < outOffset + n * dim) {
    throw new Error(`pool(${poolLabel(spec)}): output array has ${out.length} values, needs ${outOffset + n * dim}`);
  }
  const result = out ?? new Float32Array(n * dim);
  const base0 = out ? outOffset : 0;

  if (spec.kind === "none") {
    // Transpose each image HWC -> CHW.
    const hw = h * w;
    for (let b = 0; b < n; b++) {
      const src = b * hw * c;
      const dst = base0 + b * dim;
      for (let p = 0; p < hw; p++) {
        const s = src + p * c;
        for (let ch = 0; ch < c; ch++) result[dst + ch * hw + p] = data[s + ch];
      }
    }
    return { data: result, n, dim, rowShape: [c, rows, cols] };
  }

  const rb = adaptiveBins(h, rows);
  const cb = adaptiveBins(w, cols);
  const acc = new Float64Array(c);
  for (let b = 0; b < n; b++) {
    const img = b * h * w * c;
    const dst = base0 + b * dim;
    for (let i = 0; i < rows; i++) {
      const y0 = rb.start[i];
      const y1 = rb.end[i];
      for (let j = 0; j < cols; j++) {
        const x0 = cb.start[j];
        const x1 = cb.end[j];
        acc.fill(0);
        for (let y = y0; y < y1; y++) {
          let s = img + (y * w + x0) * c;
          for (let x = x0; x < x1; x++, s += c) {
            for (let ch = 0; ch < c; ch++) acc[ch] += data[s + ch];
          }
        }
        const count = (y1 - y0) * (x1 - x0);
        const cell = i * cols + j;
        for (let ch = 0; ch < c; ch++) result[dst + ch * cells + cell] = acc[ch] / count;
      }
    }
  }
  return { data: result, n, dim, rowShape: [c, rows, cols] };
}

/** Adaptive average pooling of an NHWC batch to `size` (PyTorch AdaptiveAvgPool2d + flatten). */
export function adaptiveAvgPool(data: Float32Array, shapeNHWC: readonly number[], size: number | [number, number]): PooledBatch {
  return poolNHWC(data, shapeNHWC, { kind: "adaptive", size });
}

/** Mean over positions of an NHWC batch: [N, C]. */
export function globalAvgPool(data: Float32Array, shapeNHWC: readonly number[]): PooledBatch {
  return poolNHWC(data, shapeNHWC, { kind: "global" });
}

/** NHWC batch flattened channel-major, like torch.flatten(x_nchw, 1): [N, C*H*W]. */
export function flattenChannelMajor(data: Float32Array, shapeNHWC: readonly number[]): PooledBatch {
  return poolNHWC(data, shapeNHWC, { kind: "none" });
}

/**
 * Adaptive average pooling of rows that hold whole feature maps flattened channel-major ([C, H, W], as
 * lib/features/extract returns them with `pool: { kind: "none" }`) down to [C, rows, cols], with PyTorch's bin edges
 * and float64 sums rounded once to float32: the same numbers as pooling the map directly.
 */
export function poolChannelMajorRows(data: Float32Array, n: number, mapShape: readonly [number, number, number] | readonly number[], size: number | [number, number]): Float32Array {
  const [c, h, w] = mapShape;
  const per = c * h * w;
  if (!(Number.isInteger(n) && n >= 0) || data.length !== n * per) throw new Error(`poolChannelMajorRows: ${data.length} values are not ${n} rows of [${c}, ${h}, ${w}]`);
  const [rows, cols] = typeof size === "number" ? [size, size] : size;
  if (rows === h && cols === w) return data.slice(); // each bin is one value: the rows as they are
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
