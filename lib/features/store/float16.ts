/**
 * IEEE 754 half precision (binary16) for feature storage: float32 -> float16 rounds to nearest, ties to
 * even (as numpy's astype(float16) and PyTorch's .half()), with subnormals, overflow to infinity and NaN
 * kept a (quiet) NaN; float16 -> float32 is exact. Half the disk of float32, ~3 significant digits.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The binary16 bit pattern of a number (first rounded to float32, as a Float32Array would). */
export function toHalfBits(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0); // inf, NaN (quiet)
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00; // too large: infinity
  if (e <= 0) {
    // subnormal half (or zero): the 24-bit significand shifted right, rounded to nearest even
    const shift = 14 - e;
    if (shift > 24) return sign;
    const m = mant | 0x800000;
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) === 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++; // a carry into the exponent is right, up to infinity
  return sign | h;
}

let table: Float32Array | null = null;

/** float32 value of every binary16 pattern (built once, 256 KiB). */
function decodeTable(): Float32Array {
  if (table) return table;
  table = new Float32Array(65536);
  const out = new Uint32Array(table.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) table[h] = (sign ? -1 : 1) * mant * 2 ** -24; // zero or subnormal: exact in float32
    else if (exp === 31) out[h] = (sign | 0x7f800000 | (mant << 13)) >>> 0;
    else out[h] = (sign | ((exp - 15 + 127) << 23) | (mant << 13)) >>> 0;
  }
  return table;
}

/** The float32 value of a binary16 bit pattern. */
export function fromHalfBits(h: number): number {
  return decodeTable()[h & 0xffff];
}

/** Encode float32 values as binary16 patterns. */
export function encodeHalf(values: Float32Array, out: Uint16Array = new Uint16Array(values.length)): Uint16Array {
  if (out.length < values.length) throw new Error(`encodeHalf: output holds ${out.length} values, needs ${values.length}`);
  for (let i = 0; i < values.length; i++) out[i] = toHalfBits(values[i]);
  return out;
}

/** Decode binary16 patterns to float32 (exact). */
export function decodeHalf(bits: Uint16Array, out: Float32Array = new Float32Array(bits.length)): Float32Array {
  if (out.length < bits.length) throw new Error(`decodeHalf: output holds ${out.length} values, needs ${bits.length}`);
  const t = decodeTable();
  for (let i = 0; i < bits.length; i++) out[i] = t[bits[i]];
  return out;
}
