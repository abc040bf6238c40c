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

/** q_sample on flat float32 arrays ([N, ...] row-major, N = t.length); same float32 rounding as the tensor version. */
export function qSampleArray(schedule: NoiseSchedule, x0: Float32Array, t: ArrayLike<number>, eps: Float32Array): Float32Array {
  if (x0.length !== eps.length) throw new Error(`q_sample: x0 has ${x0.length} values, noise ${eps.length}`);
  if (x0.length % t.length !== 0) throw new Error(`q_sample: ${x0.length} values do not split into ${t.length} samples`);
  const { signal, noise } = schedule.coefficients(t);
  const per = x0.length / t.length;
  const out = new Float32Array(x0.length);
  const f = Math.fround;
  for (let i = 0; i < x0.length; i++) {
    const s = Math.floor(i / per);
    out[i] = f(f(signal[s] * x0[i]) + f(noise[s] * eps[i]));
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
