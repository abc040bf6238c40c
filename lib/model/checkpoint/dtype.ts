/**
 * Element types of checkpoint tensors and their conversion to float32.
 *
 * All formats handled here (torch.save, safetensors, .npy) store little-endian values. Float16 and
 * bfloat16 have no JS typed array, so they are decoded bit by bit: float16 is IEEE half precision
 * (1 sign, 5 exponent, 10 mantissa bits); bfloat16 is the top 16 bits of a float32.
 */

export type DType =
  | "float32"
  | "float16"
  | "bfloat16"
  | "float64"
  | "int64"
  | "int32"
  | "int16"
  | "int8"
  | "uint8"
  | "bool";

/** Bytes per element of each dtype. */
export const DTYPE_SIZE: Record<DType, number> = {
  float32: 4,
  float16: 2,
  bfloat16: 2,
  float64: 8,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

/** Number of elements of a shape (1 for a scalar `[]`). */
export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** `[a, b, c]` as text, for error messages. */
export function shapeText(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/** Decode one IEEE half-precision value given as its 16 bits. */
export function float16BitsToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // zero / subnormal
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

let f16Table: Float32Array | null = null;
/** All 65536 half-precision values, decoded once (256 KiB) so bulk conversion is a table lookup. */
function float16Table(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) f16Table[i] = float16BitsToNumber(i);
  }
  return f16Table;
}

/**
 * View `bytes` (little-endian elements of `dtype`) as float32 values. `bytes.byteOffset` need not
 * be aligned. float32 input aligned to 4 bytes is returned without copying.
 */
export function toFloat32(bytes: Uint8Array, dtype: DType): Float32Array {
  const size = DTYPE_SIZE[dtype];
  if (bytes.byteLength % size !== 0) {
    throw new Error(`${bytes.byteLength} bytes is not a whole number of ${dtype} elements (${size} bytes each)`);
  }
  const n = bytes.byteLength / size;
  // Typed arrays need aligned offsets: copy when the source is not aligned.
  const aligned = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  const buf = aligned.buffer;
  const off = aligned.byteOffset;
  switch (dtype) {
    case "float32":
      return new Float32Array(buf, off, n);
    case "float64":
      return Float32Array.from(new Float64Array(buf, off, n));
    case "float16": {
      const src = new Uint16Array(buf, off, n);
      const table = float16Table();
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = table[src[i]];
      return out;
    }
    case "bfloat16": {
      const src = new Uint16Array(buf, off, n);
      const out = new Float32Array(n);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = src[i] << 16;
      return out;
    }
    case "int64": {
      const src = new BigInt64Array(buf, off, n);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = Number(src[i]);
      return out;
    }
    case "int32":
      return Float32Array.from(new Int32Array(buf, off, n));
    case "int16":
      return Float32Array.from(new Int16Array(buf, off, n));
    case "int8":
      return Float32Array.from(new Int8Array(buf, off, n));
    case "uint8":
    case "bool":
      return Float32Array.from(new Uint8Array(buf, off, n));
  }
}
