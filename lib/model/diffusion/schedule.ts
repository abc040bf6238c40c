/**
 * Noise schedules of guided-diffusion (`gaussian_diffusion.get_named_beta_schedule`, `respace.space_timesteps`),
 * in float64 exactly as numpy computes them.
 */

export type ScheduleName = "linear" | "cosine";

/**
 * numpy.linspace(start, stop, num) bit for bit: y[i] = i * step + start with step = (stop - start) / (num - 1),
 * and the last element set to `stop`.
 */
export function linspace(start: number, stop: number, num: number): Float64Array {
  const out = new Float64Array(num);
  if (num === 1) {
    out[0] = start;
    return out;
  }
  const step = (stop - start) / (num - 1);
  for (let i = 0; i < num; i++) out[i] = i * step + start;
  out[num - 1] = stop;
  return out;
}

/**
 * `betas_for_alpha_bar(T, alpha_bar, max_beta)`: beta_i = min(1 - alpha_bar((i+1)/T) / alpha_bar(i/T), max_beta).
 */
export function betasForAlphaBar(steps: number, alphaBar: (t: number) => number, maxBeta = 0.999): Float64Array {
  const out = new Float64Array(steps);
  for (let i = 0; i < steps; i++) {
    const t1 = i / steps;
    const t2 = (i + 1) / steps;
    out[i] = Math.min(1 - alphaBar(t2) / alphaBar(t1), maxBeta);
  }
  return out;
}

/**
 * `get_named_beta_schedule(name, T)`:
 * - linear: scale = 1000 / T; linspace(scale * 1e-4, scale * 0.02, T) (the DDPM schedule, scaled to any T);
 * - cosine: betas_for_alpha_bar with alpha_bar(t) = cos((t + 0.008) / 1.008 * pi / 2) ** 2 (Nichol & Dhariwal).
 */
export function betaSchedule(name: ScheduleName | string, steps: number): Float64Array {
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`diffusion steps must be a positive integer, got ${steps}`);
  if (name === "linear") {
    const scale = 1000 / steps;
    return linspace(scale * 0.0001, scale * 0.02, steps);
  }
  if (name === "cosine") return betasForAlphaBar(steps, (t) => Math.cos(((t + 0.008) / 1.008) * Math.PI / 2) ** 2);
  throw new Error(`unknown beta schedule ${JSON.stringify(name)}: expected "linear" or "cosine"`);
}

/**
 * `respace.space_timesteps(num_timesteps, section_counts)`: which original steps a respaced sampler keeps.
 * `sectionCounts` is "" (keep all), "ddimN" (evenly strided), or comma-separated counts per equal section.
 */
export function spaceTimesteps(numTimesteps: number, sectionCounts: string | number[]): number[] {
  if (typeof sectionCounts === "string") {
    const s = sectionCounts.trim();
    if (s === "") return Array.from({ length: numTimesteps }, (_, i) => i);
    if (s.startsWith("ddim")) {
      const desired = Number(s.slice(4));
      for (let stride = 1; stride < numTimesteps; stride++) {
        const kept: number[] = [];
        for (let i = 0; i < numTimesteps; i += stride) kept.push(i);
        if (kept.length === desired) return kept;
      }
      throw new Error(`cannot create exactly ${desired} steps with an integer stride from ${numTimesteps}`);
    }
    sectionCounts = s.split(",").map((x) => Number(x));
  }
  const counts = sectionCounts;
  const sizePer = Math.floor(numTimesteps / counts.length);
  const extra = numTimesteps % counts.length;
  let start = 0;
  const all: number[] = [];
  counts.forEach((count, i) => {
    const size = sizePer + (i < extra ? 1 : 0);
    if (size < count) throw new Error(`cannot divide section of ${size} steps into ${count}`);
    const fracStride = count <= 1 ? 1 : (size - 1) / (count - 1);
    let cur = 0;
    for (let j = 0; j < count; j++) {
      all.push(start + roundHalfEven(cur)); // Python 3 round()
      cur += fracStride;
    }
    start += size;
  });
  return [...new Set(all)].sort((a, b) => a - b);
}

/** Python 3's round(): ties go to the even integer. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The quantities of `GaussianDiffusion.__init__` that noising needs, in float64. */
export class NoiseSchedule {
  readonly steps: number;
  readonly alphasCumprod: Float64Array;
  readonly sqrtAlphasCumprod: Float64Array;
  readonly sqrtOneMinusAlphasCumprod: Float64Array;
  /** For respaced schedules: original timestep of each step (identity otherwise). */
  readonly timestepMap: number[];

  constructor(readonly betas: Float64Array, timestepMap?: number[]) {
    const n = betas.length;
    this.steps = n;
    for (let i = 0; i < n; i++) {
      if (!(betas[i] > 0 && betas[i] <= 1)) throw new Error(`beta[${i}] = ${betas[i]} is outside (0, 1]`);
    }
    this.alphasCumprod = new Float64Array(n);
    let acc = 1;
    for (let i = 0; i < n; i++) {
      acc *= 1 - betas[i]; // numpy.cumprod: sequential float64 products
      this.alphasCumprod[i] = acc;
    }
    this.sqrtAlphasCumprod = this.alphasCumprod.map(Math.sqrt);
    this.sqrtOneMinusAlphasCumprod = this.alphasCumprod.map((a) => Math.sqrt(1 - a));
    this.timestepMap = timestepMap ?? Array.from({ length: n }, (_, i) => i);
  }

  /** `get_named_beta_schedule(name, steps)`, optionally respaced like `SpacedDiffusion`. */
  static named(name: ScheduleName | string, steps = 1000, respacing: string | number[] = ""): NoiseSchedule {
    const base = new NoiseSchedule(betaSchedule(name, steps));
    const keep = spaceTimesteps(steps, respacing);
    return keep.length === steps ? base : base.respace(keep);
  }

  /** `SpacedDiffusion`: new betas so that the kept steps have the same alphas_cumprod. */
  respace(useTimesteps: number[]): NoiseSchedule {
    const keep = new Set(useTimesteps);
    const betas: number[] = [];
    const map: number[] = [];
    let last = 1;
    this.alphasCumprod.forEach((acp, i) => {
      if (keep.has(i)) {
        betas.push(1 - acp / last);
        last = acp;
        map.push(this.timestepMap[i]);
      }
    });
    return new NoiseSchedule(Float64Array.from(betas), map);
  }

  /** Per-sample float32 coefficients (sqrt(acp[t]), sqrt(1 - acp[t])) as `_extract_into_tensor` gives them. */
  coefficients(t: ArrayLike<number>): { signal: Float32Array; noise: Float32Array } {
    const signal = new Float32Array(t.length);
    const noise = new Float32Array(t.length);
    for (let i = 0; i < t.length; i++) {
      const s = t[i];
      if (!Number.isInteger(s) || s < 0 || s >= this.steps) throw new Error(`timestep ${s} is outside 0..${this.steps - 1}`);
      signal[i] = this.sqrtAlphasCumprod[s];
      noise[i] = this.sqrtOneMinusAlphasCumprod[s];
    }
    return { signal, noise };
  }
}
