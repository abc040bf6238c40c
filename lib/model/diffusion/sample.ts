/**
 * Sampling from an epsilon-prediction diffusion model, as guided-diffusion's GaussianDiffusion /
 * SpacedDiffusion (learn_sigma False):
 *
 * - DDPM ancestral sampling (`p_sample_loop`): pred_x0 = √(1/ᾱ_t)·x_t − √(1/ᾱ_t − 1)·ε̂ (clipped to
 *   [-1, 1]), mean = c1·pred_x0 + c2·x_t (the q-posterior), x_{t-1} = mean + σ_t·z (no noise at the last
 *   step). σ_t² is "fixed large" (guided-diffusion's default without sigma_small: β_t, with the posterior
 *   variance at t = 1 in place of β_0) or "fixed small" (the posterior variance).
 * - DDIM (`ddim_sample_loop`, eta 0 by default): ε̂ is recomputed from the clipped pred_x0, then
 *   x_{t-1} = pred_x0·√ᾱ_{t-1} + √(1 − ᾱ_{t-1} − σ²)·ε̂ + σ·z, σ = eta·√((1−ᾱ_{t-1})/(1−ᾱ_t))·√(1 − ᾱ_t/ᾱ_{t-1}).
 *
 * Respacing (`timestep_respacing`, e.g. 50 or "ddim50") runs on a subset of the T steps with the betas of
 * SpacedDiffusion; the model receives the original timesteps. Coefficients are float64 (numpy) rounded to
 * float32, as `_extract_into_tensor` does.
 *
 * Seeds: sample i draws all its randomness (x_T, then each step's z) from Rng(seed, i), so a sample does
 * not depend on the batch size or on which other samples are drawn with it.
 */
import * as tf from "@tensorflow/tfjs";
import { Rng } from "../../rng";
import { NoiseSchedule, spaceTimesteps } from "./schedule";

/** ε̂ = model(x_t, t): x_t NHWC, t the original (unspaced) timesteps; returns a tensor shaped like x. */
export type EpsModel = (x: tf.Tensor4D, t: number[]) => tf.Tensor4D;

/** The ε-prediction of a lib/model/unet UNet (its `out`; the extra outputs are freed). */
export function unetEps(model: { forward(x: tf.Tensor4D, t: number[]): { out?: tf.Tensor4D; emb: tf.Tensor; blocks: Map<string, tf.Tensor> } }): EpsModel {
  return (x, t) => {
    const r = model.forward(x, t);
    r.emb.dispose();
    for (const b of r.blocks.values()) b.dispose();
    if (!r.out) throw new Error("the model returned no output");
    return r.out;
  };
}

export interface SampleOptions {
  /** Number of samples. */
  n: number;
  /** [height, width, channels] of one sample. */
  shape: [number, number, number];
  seed: number;
  /** "ddpm" (ancestral) or "ddim". */
  method: "ddpm" | "ddim";
  /** timestep_respacing: "" (all T steps), a count (50 = "50": evenly spaced), "ddim50", or section counts. */
  respacing?: string | number;
  /** DDIM eta (default 0). */
  eta?: number;
  /** DDPM variance: "large" (guided-diffusion's default) or "small". */
  variance?: "large" | "small";
  /** Clip pred_x0 to [-1, 1] (default true, as guided-diffusion's samplers). */
  clipDenoised?: boolean;
  /** Samples per model call (default 16). */
  batchSize?: number;
  /** Called after every denoising step of every batch. */
  onStep?: (done: number, total: number) => void;
}

/** Per-step float64 coefficients of a (possibly respaced) schedule. */
export interface SamplerCoefficients {
  /** Original timestep for each (spaced) step index. */
  timesteps: number[];
  alphasCumprod: Float64Array;
  alphasCumprodPrev: Float64Array;
  sqrtRecip: Float64Array;
  sqrtRecipM1: Float64Array;
  posteriorCoef1: Float64Array;
  posteriorCoef2: Float64Array;
  posteriorVariance: Float64Array;
  betas: Float64Array;
}

/** guided-diffusion's GaussianDiffusion quantities for `base` respaced by `respacing`. */
export function samplerCoefficients(base: NoiseSchedule, respacing: string | number = ""): SamplerCoefficients {
  const spec = typeof respacing === "number" ? String(respacing) : respacing.trim();
  const keep = spaceTimesteps(base.steps, spec);
  const s = keep.length === base.steps ? base : base.respace(keep);
  const n = s.steps;
  const acp = s.alphasCumprod;
  const prev = new Float64Array(n);
  for (let i = 0; i < n; i++) prev[i] = i === 0 ? 1 : acp[i - 1];
  const c: SamplerCoefficients = {
    timesteps: s.timestepMap,
    alphasCumprod: acp,
    alphasCumprodPrev: prev,
    sqrtRecip: acp.map((a) => Math.sqrt(1 / a)),
    sqrtRecipM1: acp.map((a) => Math.sqrt(1 / a - 1)),
    posteriorCoef1: new Float64Array(n),
    posteriorCoef2: new Float64Array(n),
    posteriorVariance: new Float64Array(n),
    betas: s.betas,
  };
  for (let i = 0; i < n; i++) {
    const b = s.betas[i];
    c.posteriorVariance[i] = (b * (1 - prev[i])) / (1 - acp[i]);
    c.posteriorCoef1[i] = (b * Math.sqrt(prev[i])) / (1 - acp[i]);
    c.posteriorCoef2[i] = ((1 - prev[i]) * Math.sqrt(1 - b)) / (1 - acp[i]);
  }
  return c;
}

/**
 * Draw `opts.n` samples; returns NHWC float32 [n, h, w, c] (nominally in [-1, 1]).
 * `base` is the model's training schedule (e.g. NoiseSchedule.named("linear", 1000)).
 */
export async function sampleImages(eps: EpsModel, base: NoiseSchedule, opts: SampleOptions): Promise<Float32Array> {
  const [h, w, ch] = opts.shape;
  const per = h * w * ch;
  const co = samplerCoefficients(base, opts.respacing ?? "");
  const steps = co.timesteps.length;
  const bs = Math.max(1, opts.batchSize ?? 16);
  const clip = opts.clipDenoised ?? true;
  const eta = opts.eta ?? 0;
  const large = (opts.variance ?? "large") === "large";
  if (opts.method !== "ddpm" && opts.method !== "ddim") throw new Error(`unknown sampler ${JSON.stringify(opts.method)}: "ddpm" or "ddim"`);
  // DDPM "fixed large" variance: betas with the t=1 posterior variance in front (guided-diffusion).
  const ddpmVar = large ? Float64Array.from(co.betas, (b, i) => (i === 0 ? (steps > 1 ? co.posteriorVariance[1] : co.posteriorVariance[0]) : b)) : co.posteriorVariance;
  const out = new Float32Array(opts.n * per);
  const totalCalls = Math.ceil(opts.n / bs) * steps;
  let calls = 0;
  const f32 = Math.fround;
  for (let start = 0; start < opts.n; start += bs) {
    const b = Math.min(bs, opts.n - start);
    const rngs = Array.from({ length: b }, (_, i) => new Rng(opts.seed, start + i));
    const noise = () => {
      const z = new Float32Array(b * per);
      rngs.forEach((r, i) => r.fillNormal(z.subarray(i * per, (i + 1) * per)));
      return z;
    };
    let x = tf.tensor4d(noise(), [b, h, w, ch]);
    try {
      for (let i = steps - 1; i >= 0; i--) {
        const tOrig = new Array<number>(b).fill(co.timesteps[i]);
        const z = i > 0 && (opts.method === "ddpm" || eta > 0) ? noise() : null;
        const next = tf.tidy(() => {
          const e = eps(x, tOrig);
          let x0 = tf.sub(tf.mul(x, f32(co.sqrtRecip[i])), tf.mul(e, f32(co.sqrtRecipM1[i])));
          if (clip) x0 = tf.clipByValue(x0, -1, 1);
          if (opts.method === "ddpm") {
            const mean = tf.add(tf.mul(x0, f32(co.posteriorCoef1[i])), tf.mul(x, f32(co.posteriorCoef2[i])));
            return z ? tf.add(mean, tf.mul(tf.tensor4d(z, [b, h, w, ch]), f32(Math.exp(0.5 * Math.log(ddpmVar[i]))))) : mean;
          }
          const epsHat = tf.div(tf.sub(tf.mul(x, f32(co.sqrtRecip[i])), x0), f32(co.sqrtRecipM1[i]));
          const ab = co.alphasCumprod[i], abPrev = co.alphasCumprodPrev[i];
          const sigma = eta * Math.sqrt((1 - abPrev) / (1 - ab)) * Math.sqrt(1 - ab / abPrev);
          const mean = tf.add(tf.mul(x0, f32(Math.sqrt(abPrev))), tf.mul(epsHat, f32(Math.sqrt(1 - abPrev - sigma * sigma))));
          return z ? tf.add(mean, tf.mul(tf.tensor4d(z, [b, h, w, ch]), f32(sigma))) : mean;
        });
        x.dispose();
        x = next as tf.Tensor4D;
        calls++;
        opts.onStep?.(calls, totalCalls);
        if (calls % 10 === 0) await new Promise((r) => setImmediate(r)); // let a notebook display update
      }
      out.set(x.dataSync() as Float32Array, start * per);
    } finally {
      x.dispose();
    }
  }
  return out;
}
