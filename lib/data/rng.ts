/**
 * A small seeded random number generator (sfc32 seeded through splitmix32), so that subsets, shuffles and
 * augmentations are reproducible from one integer seed. Not Python's Mersenne Twister: the same seed does
 * not give guided-diffusion's exact draws, only the same distribution.
 */
export interface Rng {
  /** Uniform float in [0, 1). */
  random(): number;
  /** Python's `random.randrange(start, stop)`: an integer in [start, stop); `randrange(n)` is [0, n). */
  randrange(start: number, stop?: number): number;
  /** Fisher-Yates shuffle in place; returns the array. */
  shuffle<T>(a: T[]): T[];
}

function splitmix32(seed: number): () => number {
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
export function makeRng(seed: number): Rng {
  if (!Number.isSafeInteger(seed)) throw new Error(`makeRng: seed must be a safe integer, got ${seed}`);
  const sm = splitmix32((seed >>> 0) ^ Math.floor(seed / 2 ** 32));
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
  const rng: Rng = {
    // 53-bit float from two draws.
    random: () => ((next() >>> 5) * 67108864 + (next() >>> 6)) / 9007199254740992,
    randrange(start: number, stop?: number) {
      const lo = stop === undefined ? 0 : start;
      const hi = stop === undefined ? start : stop;
      if (!(Number.isInteger(lo) && Number.isInteger(hi)) || hi <= lo) throw new Error(`randrange: empty range [${lo}, ${hi})`);
      return lo + Math.floor(rng.random() * (hi - lo));
    },
    shuffle<T>(arr: T[]): T[] {
      for (let i = arr.length - 1; i > 0; i--) {
        const j = Math.floor(rng.random() * (i + 1));
        const t = arr[i];
        arr[i] = arr[j];
        arr[j] = t;
      }
      return arr;
    },
  };
  return rng;
}
