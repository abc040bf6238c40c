/**
 * The project's one module of seeded random numbers, in plain JavaScript, identical on every tfjs backend
 * and every machine (tf.randomNormal depends on the backend and is not used for anything that must be
 * reproduced), and its one shuffle.
 *
 * `Rng`: the generator of noise, weights, batch orders and splits. `makeRng`: the small Python-`random`-like
 * interface the dataset code uses (subsets, crops). `shuffleInPlace` / `permutation`: the one Fisher-Yates
 * shuffle, over any generator with uniform draws.
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

/** Fisher-Yates shuffle in place: position i swaps with floor(u · (i + 1)), u a uniform draw in [0, 1). The project's one shuffle. */
export function shuffleInPlace<A extends { length: number; [i: number]: any }>(a: A, rng: { uniform(): number }): A {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rng.uniform() * (i + 1));
    const t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
  return a;
}

/** A seeded permutation of 0..n-1 (shuffleInPlace of the identity). */
export function permutation(n: number, rng: { uniform(): number }): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  return shuffleInPlace(p, rng);
}

/**
 * A second, small generator (sfc32 seeded through splitmix32) behind a Python-`random`-like interface,
 * so that dataset subsets and augmentations are reproducible from one integer seed. Not Python's Mersenne
 * Twister: the same seed does not give guided-diffusion's exact draws, only the same distribution.
 */
export interface SeededRandom {
  /** Uniform float in [0, 1). */
  random(): number;
  /** Python's `random.randrange(start, stop)`: an integer in [start, stop); `randrange(n)` is [0, n). */
  randrange(start: number, stop?: number): number;
  /** Fisher-Yates shuffle in place; returns the array. */
  shuffle<T>(a: T[]): T[];
}

function splitmix32Stream(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** A generator from an integer seed (any safe integer; the low 32 bits and the high bits both matter). */
export function makeRng(seed: number): SeededRandom {
  if (!Number.isSafeInteger(seed)) throw new Error(`makeRng: seed must be a safe integer, got ${seed}`);
  const sm = splitmix32Stream((seed >>> 0) ^ Math.floor(seed / 2 ** 32));
  let a = sm(), b = sm(), c = sm(), d = sm();
  const next = () => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = ((c << 21) | (c >>> 11)) >>> 0;
    c = (c + t) >>> 0;
    return t;
  };
  for (let i = 0; i < 12; i++) next();
  const rng: SeededRandom = {
    // 53-bit float from two draws.
    random: () => ((next() >>> 5) * 67108864 + (next() >>> 6)) / 9007199254740992,
    randrange(start: number, stop?: number) {
      const lo = stop === undefined ? 0 : start;
      const hi = stop === undefined ? start : stop;
      if (!(Number.isInteger(lo) && Number.isInteger(hi)) || hi <= lo) throw new Error(`randrange: empty range [${lo}, ${hi})`);
      return lo + Math.floor(rng.random() * (hi - lo));
    },
    shuffle<T>(arr: T[]): T[] {
      shuffleInPlace(arr, { uniform: rng.random });
      return arr;
    },
  };
  return rng;
}
