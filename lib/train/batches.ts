/**
 * What each training step sees, as a pure function of (seed, step): no generator state to save.
 *
 * - Data order: the training set is visited in epochs, each a seeded permutation; step s takes
 *   positions [s·B, (s+1)·B) of the endless concatenation of epochs (a batch may span two epochs).
 * - Timesteps: uniform in 0..T-1 (guided-diffusion's UniformSampler), one per sample.
 * - Noise: standard normals, one stream per step.
 * Streams are `Rng(seed, purpose · 2^40 + index)` (xoshiro128**, ../rng), so a run resumed at
 * step s draws exactly what the uninterrupted run would have drawn.
 */
import { Rng } from "../rng";

const STREAM = { epoch: 1, timestep: 2, noise: 3 } as const;
const stream = (purpose: number, index: number) => purpose * 2 ** 40 + index;

/** Seeded permutation of 0..n-1 for one epoch (Fisher-Yates). */
export function epochPermutation(n: number, seed: number, epoch: number): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  const rng = new Rng(seed, stream(STREAM.epoch, epoch));
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng.uniform() * (i + 1));
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

export interface StepDraw {
  /** Positions in the training set. */
  indices: Int32Array;
  /** Diffusion timesteps 0..T-1. */
  t: Int32Array;
  /** N(0, 1) noise, batch · sampleSize values. */
  noise: Float32Array;
}

/** Draws for the steps of one run; caches the current epoch's permutation. */
export class StepSampler {
  private cachedEpoch = -1;
  private perm: Int32Array = new Int32Array(0);

  constructor(
    readonly n: number,
    readonly batchSize: number,
    readonly numTimesteps: number,
    /** Values per sample (H·W·C). */
    readonly sampleSize: number,
    readonly seed: number,
  ) {
    if (!(n > 0) || !(batchSize > 0)) throw new Error(`StepSampler: need data (n=${n}) and a batch size (${batchSize})`);
  }

  private permutation(epoch: number): Int32Array {
    if (epoch !== this.cachedEpoch) {
      this.perm = epochPermutation(this.n, this.seed, epoch);
      this.cachedEpoch = epoch;
    }
    return this.perm;
  }

  /** Everything step `step` (0-based) uses. */
  draw(step: number): StepDraw {
    if (!Number.isSafeInteger(step) || step < 0) throw new Error(`step must be a non-negative integer, got ${step}`);
    const b = this.batchSize;
    const indices = new Int32Array(b);
    for (let i = 0; i < b; i++) {
      const pos = step * b + i;
      indices[i] = this.permutation(Math.floor(pos / this.n))[pos % this.n];
    }
    const tr = new Rng(this.seed, stream(STREAM.timestep, step));
    const t = Int32Array.from({ length: b }, () => Math.floor(tr.uniform() * this.numTimesteps));
    const noise = new Rng(this.seed, stream(STREAM.noise, step)).fillNormal(new Float32Array(b * this.sampleSize));
    return { indices, t, noise };
  }
}
