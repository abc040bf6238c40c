/**
 * Seeded random numbers in plain JavaScript, identical on every tfjs backend and every machine
 * (tf.randomNormal depends on the backend and is not used for anything that must be reproduced).
 *
 * Generator: xoshiro128** (32-bit state words, Math.imul), seeded through splitmix32 from a
 * (seed, stream) pair, so independent streams (e.g. one per image index) need no coordination.
 * Normals: Box-Muller on 53-bit uniforms in (0, 1), computed in float64 and rounded to float32 on store.
 */

function splitmix32(state: { a: number }): number {
  state.a = (state.a + 0x9e3779b9) | 0;
  let t = state.a ^ (state.a >>> 16);
  t = Math.imul(t, 0x21f0aaad);
  t ^= t >>> 15;
  t = Math.imul(t, 0x735a2d97);
  return (t ^ (t >>> 15)) >>> 0;
}

const rotl = (x: number, k: number) => (x << k) | (x >>> (32 - k));

export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  private spare: number | null = null;

  /**
   * @param seed   any integer in [0, 2^53) (negative values and fractions are rejected)
   * @param stream an independent sub-stream, e.g. an image index (integer in [0, 2^53))
   */
  constructor(seed: number, stream = 0) {
    for (const [k, v] of [["seed", seed], ["stream", stream]] as const) {
      if (!Number.isSafeInteger(v) || v < 0) throw new Error(`Rng ${k} must be a non-negative safe integer, got ${v}`);
    }
    const st = { a: 0 };
    // Mix all 106 input bits (seed and stream, high and low words) into the splitmix state.
    for (const word of [seed >>> 0, Math.floor(seed / 2 ** 32), stream >>> 0, Math.floor(stream / 2 ** 32)]) {
      st.a = (st.a ^ word) | 0;
      splitmix32(st);
    }
    this.s0 = splitmix32(st) | 0;
    this.s1 = splitmix32(st) | 0;
    this.s2 = splitmix32(st) | 0;
    this.s3 = splitmix32(st) | 0;
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** Next 32 random bits as an unsigned integer. */
  uint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform double in the open interval (0, 1), 53 random bits. */
  uniform(): number {
    const hi = this.uint32() >>> 5; // 27 bits
    const lo = this.uint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo + 0.5) / 9007199254740992;
  }

  /** Standard normal (Box-Muller; pairs are used in order). */
  normal(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    const r = Math.sqrt(-2 * Math.log(this.uniform()));
    const theta = 2 * Math.PI * this.uniform();
    this.spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  /** Fill `out` with mean + std * U, U uniform on [-sqrt(3), sqrt(3)) (mean 0, variance 1); one draw per value. */
  fillUniform<T extends Float32Array | Float64Array>(out: T, mean = 0, std = 1): T {
    const k = (2 * Math.sqrt(3) * std) / 4294967296;
    const lo = mean - Math.sqrt(3) * std;
    for (let i = 0; i < out.length; i++) out[i] = lo + k * this.uint32();
    return out;
  }

  /** Fill `out` with mean + std * N(0, 1) (float32). */
  fillNormal<T extends Float32Array | Float64Array>(out: T, mean = 0, std = 1): T {
    for (let i = 0; i < out.length; i++) out[i] = mean + std * this.normal();
    return out;
  }
}

/** `n` float32 standard normals from (seed, stream). */
export function gaussian(n: number, seed: number, stream = 0): Float32Array {
  return new Rng(seed, stream).fillNormal(new Float32Array(n));
}
