/**
 * tfjs building blocks of guided-diffusion's nn.py / unet.py, on NHWC activations.
 *
 * Weights come from a {@link WeightSource} already in tfjs layout (conv HWIO, linear/Conv1d [in, out]);
 * see ./weights for the conversion from PyTorch's OIHW / [out, in].
 */
import * as tf from "@tensorflow/tfjs";

/** Weight lookup by PyTorch parameter name ("input_blocks.1.0.in_layers.2.weight"), in tfjs layout. */
export interface WeightSource {
  /**
   * The tensor for `name`. Resident weights are returned as is; streamed ones are created on the fly and
   * belong to the caller's tf.tidy scope. Throws naming the key when absent.
   */
  get(name: string): tf.Tensor;
}

/**
 * 2-D convolution with bias: `nn.Conv2d(in, out, k, stride, padding=(k-1)/2)`.
 * PyTorch pads explicitly (k-1)/2 on every side; tfjs 'same' would pad a stride-2 conv asymmetrically
 * (0 before, 1 after), so the padding is always given as a number.
 */
export function conv2d(x: tf.Tensor4D, w: WeightSource, name: string, stride = 1): tf.Tensor4D {
  const filter = w.get(`${name}.weight`) as tf.Tensor4D;
  const bias = w.get(`${name}.bias`) as tf.Tensor1D;
  const pad = (filter.shape[0] - 1) / 2;
  return tf.fused.conv2d({ x, filter, bias, strides: stride, pad });
}

/** `nn.Linear` on [N, in] (weight stored [in, out]). */
export function linear(x: tf.Tensor2D, w: WeightSource, name: string): tf.Tensor2D {
  return tf.fused.matMul({ a: x, b: w.get(`${name}.weight`) as tf.Tensor2D, bias: w.get(`${name}.bias`) }) as tf.Tensor2D;
}

/** `conv_nd(1, in, out, 1)` applied to tokens [B, T, in] (weight stored [in, out]). */
export function conv1x1Tokens(x: tf.Tensor3D, w: WeightSource, name: string): tf.Tensor3D {
  const [b, t, c] = x.shape;
  const y = tf.fused.matMul({ a: x.reshape([b * t, c]) as tf.Tensor2D, b: w.get(`${name}.weight`) as tf.Tensor2D, bias: w.get(`${name}.bias`) });
  return y.reshape([b, t, y.shape[y.rank - 1] as number]);
}

/** SiLU: x * sigmoid(x). */
export function silu<T extends tf.Tensor>(x: T): T {
  return tf.tidy(() => tf.mul(x, tf.sigmoid(x)));
}

/**
 * GroupNorm32 (`normalization(ch)`): GroupNorm(groups, ch, eps) computed in float32, on NHWC input of
 * any rank >= 2 ([B, ..., C]; statistics over all non-batch positions and the group's channels).
 * Same arithmetic as PyTorch's CPU kernel: per (sample, group) mean and biased variance (two passes),
 * then y = x * (gamma * rstd) + (beta - mean * gamma * rstd).
 * Each statistic runs in its own tidy, so at most two activation-sized temporaries exist at a time
 * (tf.moments would keep four: two transposed copies, the difference and its square).
 */
export function groupNorm<T extends tf.Tensor>(x: T, w: WeightSource, name: string, groups: number, eps: number): T {
  const shape = x.shape;
  const b = shape[0];
  const c = shape[shape.length - 1];
  if (c % groups !== 0) throw new Error(`${name}: GroupNorm(${groups}) on ${c} channels`);
  const cg = c / groups;
  return tf.tidy(() => {
    const positions = x.size / (b * c);
    const outer = splitFactor(positions);
    // [B, outer, inner, G, cg]: each statistic is a mean of row means (two levels), see twoLevelMean.
    const xg = x.reshape([b, outer, positions / outer, groups, cg]);
    const mean = tf.tidy(() => twoLevelMean(xg)); // [B,1,1,G,1]
    const variance = tf.tidy(() => twoLevelMean(tf.squaredDifference(xg, mean)));
    const { scale, shift } = tf.tidy(() => {
      const rstd = tf.rsqrt(tf.add(variance, eps));
      const gamma = w.get(`${name}.weight`).reshape([1, 1, 1, groups, cg]);
      const beta = w.get(`${name}.bias`).reshape([1, 1, 1, groups, cg]);
      const s = tf.mul(rstd, gamma); // [B,1,1,G,cg]
      return { scale: s, shift: tf.sub(beta, tf.mul(mean, s)) };
    });
    const scaled = tf.mul(xg, scale);
    const y = tf.add(scaled, shift);
    scaled.dispose();
    return y.reshape(shape) as T;
  });
}

/**
 * The divisor of n nearest to sqrt(n) from below (n = 65,536 -> 256), so a reduction over n values can run as
 * two reductions of ~sqrt(n) values each.
 */
export function splitFactor(n: number): number {
  for (let d = Math.floor(Math.sqrt(n)); d > 1; d--) if (n % d === 0) return d;
  return 1;
}

/**
 * Mean over axes 1, 2 and 4 of [B, outer, inner, G, cg] as a mean of partial means: first over (inner, cg),
 * then over outer. tfjs sums a reduction sequentially in float32, whose error grows with the count (a plain
 * mean over the 524,288 values of one group at 256x256 is off by ~1e-5 relative); two levels of ~sqrt(n)
 * values each keep it near 1e-7. The partial groups are equal in size, so the result is the same mean.
 */
function twoLevelMean(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mean(tf.mean(x, [2, 4], true), 1, true));
}

/** GroupNorm then SiLU, freeing the normalised tensor before returning (one activation-sized temporary less). */
export function normSilu<T extends tf.Tensor>(x: T, w: WeightSource, name: string, groups: number, eps: number): T {
  return tf.tidy(() => silu(groupNorm(x, w, name, groups, eps)));
}

/** `F.interpolate(x, scale_factor=2, mode="nearest")` on NHWC: out[i, j] = x[floor(i/2), floor(j/2)]. */
export function upsampleNearest2x(x: tf.Tensor4D): tf.Tensor4D {
  const [, h, w] = x.shape;
  // Without align-corners / half-pixel centres, tfjs maps output i to input floor(i * in / out) = floor(i / 2).
  return tf.image.resizeNearestNeighbor(x, [2 * h, 2 * w], false, false);
}

/** `avg_pool2d(kernel 2, stride 2)` on NHWC. */
export function avgPool2x(x: tf.Tensor4D): tf.Tensor4D {
  const [, h, w] = x.shape;
  if (h % 2 || w % 2) throw new Error(`avg_pool 2x2 needs even height and width, got ${h}x${w}`);
  return tf.avgPool(x, 2, 2, "valid");
}

/**
 * float32 exp as PyTorch's CPU kernels compute it (ATen's vectorized exp is SLEEF's expf_u10, which is
 * not correctly rounded: it differs from round(exp(x)) by 1 ulp for ~10% of inputs). Emulated with float32
 * rounding after every step and fused multiply-adds (a*b of float32 values is exact in float64).
 * Matches torch 1.13's float32 th.exp bit for bit on the embedding frequencies of every model width tried.
 */
export function torchExpf(x: number): number {
  const f = Math.fround;
  const fma = (a: number, b: number, c: number) => f(a * b + c);
  const d = f(x);
  if (d < -104) return 0;
  if (d > 104) return Infinity;
  const q = roundHalfEven(f(d * f(1.442695040888963407359924681001892137426645954152985934135449406931)));
  let s = fma(q, f(-0.693145751953125), d);
  s = fma(q, f(-1.428606765330187045e-6), s);
  let u = f(0.000198527617612853646278381);
  u = fma(u, s, f(0.00139304355252534151077271));
  u = fma(u, s, f(0.00833336077630519866943359));
  u = fma(u, s, f(0.0416664853692054748535156));
  u = fma(u, s, f(0.166666671633720397949219));
  u = fma(u, s, f(0.5));
  u = f(1 + fma(f(s * s), u, s));
  return f(u * 2 ** q);
}

function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Sinusoidal timestep embedding (`timestep_embedding(timesteps, dim)` in nn.py), in plain JS so every
 * backend gets identical numbers. Emulates PyTorch's float32 steps:
 * freqs = exp(-ln(10000) * arange(half) / half), args = t * freqs, out = [cos(args), sin(args)]
 * (cos first), zero column appended for odd `dim`. Returns [N, dim] row-major.
 * The arguments reach ~1000 rad, where one float32 ulp of a frequency moves cos/sin by ~3e-5, so the
 * frequencies follow PyTorch's exp exactly ({@link torchExpf}); cos/sin are correctly rounded (PyTorch's
 * are within 1 ulp of that).
 */
export function timestepEmbedding(timesteps: ArrayLike<number>, dim: number, maxPeriod = 10000): Float32Array {
  const half = Math.floor(dim / 2);
  const f = Math.fround;
  const negLog = f(-Math.log(maxPeriod));
  const freqs = new Float32Array(half);
  for (let i = 0; i < half; i++) freqs[i] = torchExpf(f(f(negLog * i) / half));
  const n = timesteps.length;
  const out = new Float32Array(n * dim); // odd dim: the last column stays 0
  for (let r = 0; r < n; r++) {
    const t = f(timesteps[r]);
    for (let i = 0; i < half; i++) {
      const arg = f(t * freqs[i]);
      out[r * dim + i] = Math.cos(arg);
      out[r * dim + half + i] = Math.sin(arg);
    }
  }
  return out;
}

/** NHWC -> NCHW (PyTorch / the paper's channel-major order). */
export function toNCHW<T extends tf.Tensor>(x: T): T {
  if (x.rank !== 4) return x.clone() as T;
  return tf.transpose(x, [0, 3, 1, 2]) as T;
}

/** NCHW -> NHWC. */
export function toNHWC<T extends tf.Tensor>(x: T): T {
  if (x.rank !== 4) return x.clone() as T;
  return tf.transpose(x, [0, 2, 3, 1]) as T;
}
