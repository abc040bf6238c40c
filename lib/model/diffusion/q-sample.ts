/**
 * Forward noising `GaussianDiffusion.q_sample(x_start, t, noise)`:
 *   x_t = float32(sqrt(acp[t])) * x0 + float32(sqrt(1 - acp[t])) * eps     (per sample, float32 arithmetic)
 * Layout-agnostic (NCHW or NHWC): the first axis is the batch.
 */
import * as tf from "@tensorflow/tfjs";
import { Rng } from "../../rng";
import { NoiseSchedule } from "./schedule";

/** q_sample on tfjs tensors. `t` holds unscaled integer timesteps, one per sample. */
export function qSample<T extends tf.Tensor>(schedule: NoiseSchedule, x0: T, t: ArrayLike<number>, eps: T): T {
  if (!tf.util.arraysEqual(x0.shape, eps.shape)) throw new Error(`q_sample: x0 [${x0.shape}] and noise [${eps.shape}] differ in shape`);
  if (x0.shape[0] !== t.length) throw new Error(`q_sample: ${t.length} timesteps for a batch of ${x0.shape[0]}`);
  const { signal, noise } = schedule.coefficients(t);
  const bshape = [t.length, ...x0.shape.slice(1).map(() => 1)];
  return tf.tidy(() => tf.add(tf.mul(x0, tf.tensor(signal, bshape)), tf.mul(eps, tf.tensor(noise, bshape)))) as T;
}

/**
 * The one forward-noising loop: one sample's x_t = float32(signal * x0 + noise * eps), each product rounded
 * to float32 (signal = float32(sqrt(acp[t])), noise = float32(sqrt(1 - acp[t]))), into `out`.
 */
export function qSampleInto(out: Float32Array, x0: Float32Array, eps: Float32Array, signal: number, noise: number): Float32Array {
  if (x0.length !== out.length || eps.length !== out.length) throw new Error(`q_sample: x0 has ${x0.length} values, noise ${eps.length}, out ${out.length}`);
  const f = Math.fround;
  const a = f(signal), b = f(noise);
  for (let i = 0; i < out.length; i++) out[i] = f(f(a * x0[i]) + f(b * eps[i]));
  return out;
}

/** The float32 coefficients of one step from alphas_cumprod (float64): sqrt(abar), sqrt(1 - abar). */
export function qSampleCoefficients(abar: number): { signal: number; noise: number } {
  return { signal: Math.fround(Math.sqrt(abar)), noise: Math.fround(Math.sqrt(1 - abar)) };
}

/** q_sample on flat float32 arrays ([N, ...] row-major, N = t.length); same float32 rounding as the tensor version. */
export function qSampleArray(schedule: NoiseSchedule, x0: Float32Array, t: ArrayLike<number>, eps: Float32Array): Float32Array {
  if (x0.length !== eps.length) throw new Error(`q_sample: x0 has ${x0.length} values, noise ${eps.length}`);
  if (x0.length % t.length !== 0) throw new Error(`q_sample: ${x0.length} values do not split into ${t.length} samples`);
  const { signal, noise } = schedule.coefficients(t);
  const per = x0.length / t.length;
  const out = new Float32Array(x0.length);
  for (let s = 0; s < t.length; s++) {
    const r = [s * per, (s + 1) * per] as const;
    qSampleInto(out.subarray(...r), x0.subarray(...r), eps.subarray(...r), signal[s], noise[s]);
  }
  return out;
}

/**
 * Seeded Gaussian noise for a batch, one independent stream per sample key (e.g. a dataset index), so a
 * sample's noise does not depend on which batch or worker it lands in. Returns [keys.length, ...shape].
 */
export function noiseFor(keys: number[], shape: number[], seed: number): Float32Array {
  const per = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(keys.length * per);
  keys.forEach((k, i) => new Rng(seed, k).fillNormal(out.subarray(i * per, (i + 1) * per)));
  return out;
}
