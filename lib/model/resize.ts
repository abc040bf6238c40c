/**
 * Separable resampling of NHWC maps as matrix products, with PyTorch's semantics, so that the values
 * match PyTorch and the gradients are right on every backend (tfjs 4.22's ResizeBilinearGrad ignores
 * halfPixelCenters, so tf.image.resizeBilinear cannot be trained with PyTorch's pixel convention).
 *
 * - `adaptiveAvgPool`: nn.AdaptiveAvgPool2d, output cell i averages input [floor(i*S/s), ceil((i+1)*S/s)).
 * - `resizeBilinear`: F.interpolate(mode='bilinear', align_corners=False, antialias=False): source
 *   coordinate (i + 0.5) * S/s - 0.5, clamped at 0, linear between its two neighbours (the last clamped).
 */
import * as tf from "@tensorflow/tfjs";

/** [out, in] weights of nn.AdaptiveAvgPool along one axis. */
export function adaptiveAvgMatrix(sIn: number, sOut: number): Float32Array {
  const m = new Float32Array(sOut * sIn);
  for (let i = 0; i < sOut; i++) {
    const a = Math.floor((i * sIn) / sOut), b = Math.ceil(((i + 1) * sIn) / sOut);
    for (let j = a; j < b; j++) m[i * sIn + j] = 1 / (b - a);
  }
  return m;
}

/** [out, in] weights of bilinear interpolation (align_corners=False) along one axis. */
export function bilinearMatrix(sIn: number, sOut: number): Float32Array {
  const m = new Float32Array(sOut * sIn);
  const scale = sIn / sOut;
  for (let i = 0; i < sOut; i++) {
    const src = Math.max((i + 0.5) * scale - 0.5, 0);
    const i0 = Math.min(Math.floor(src), sIn - 1);
    const i1 = Math.min(i0 + 1, sIn - 1);
    const l1 = src - i0;
    m[i * sIn + i0] += 1 - l1;
    m[i * sIn + i1] += l1;
  }
  return m;
}

/** out[n, i, j, c] = sum_{y, x} mh[i, y] * mw[j, x] * m[n, y, x, c]. */
export function resampleSeparable(m: tf.Tensor4D, mh: Float32Array, sh: number, mw: Float32Array, sw: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, h, w, c] = m.shape;
    if (mh.length !== sh * h || mw.length !== sw * w) throw new Error(`resampleSeparable: matrices do not fit a ${h}x${w} map`);
    const alongW = tf.matMul(tf.tensor2d(mw, [sw, w]), m.transpose([2, 0, 1, 3]).reshape([w, n * h * c])); // [sw, n*h*c]
    const t = alongW.reshape([sw, n, h, c]).transpose([2, 1, 0, 3]).reshape([h, n * sw * c]);
    const alongH = tf.matMul(tf.tensor2d(mh, [sh, h]), t); // [sh, n*sw*c]
    return alongH.reshape([sh, n, sw, c]).transpose([1, 0, 2, 3]) as tf.Tensor4D;
  });
}

/** nn.AdaptiveAvgPool2d((sh, sw)) on NHWC (a plain average pool when the sizes divide; identity when equal). */
export function adaptiveAvgPool(m: tf.Tensor4D, sh: number, sw: number): tf.Tensor4D {
  const [, h, w] = m.shape;
  if (sh === h && sw === w) return m;
  if (h % sh === 0 && w % sw === 0) return tf.avgPool(m, [h / sh, w / sw], [h / sh, w / sw], "valid");
  return resampleSeparable(m, adaptiveAvgMatrix(h, sh), sh, adaptiveAvgMatrix(w, sw), sw);
}

/** F.interpolate(m, size=(sh, sw), mode='bilinear', align_corners=False) on NHWC (identity when equal). */
export function resizeBilinear(m: tf.Tensor4D, sh: number, sw: number): tf.Tensor4D {
  const [, h, w] = m.shape;
  if (sh === h && sw === w) return m;
  return resampleSeparable(m, bilinearMatrix(h, sh), sh, bilinearMatrix(w, sw), sw);
}
