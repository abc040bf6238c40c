/**
 * ResBlock of unet.py, on NHWC.
 *
 *   h = in_layers(x)            GroupNorm - SiLU - [resample h and x] - conv3x3
 *   e = emb_layers(emb)         SiLU - Linear (2*out channels with scale-shift norm)
 *   scale-shift:  h = out_norm(h) * (1 + scale) + shift;  h = conv3x3(dropout(SiLU(h)))
 *   otherwise:    h = h + e;                              h = conv3x3(dropout(SiLU(out_norm(h))))
 *   return skip(x) + h          skip: identity, or a 1x1 conv when channels change
 *
 * Dropout is the identity (inference). Each stage runs in its own tf.tidy so that at most a few
 * activation-sized tensors are alive at once (at 256x256x512 one tensor is 134 MB).
 */
import * as tf from "@tensorflow/tfjs";
import { avgPool2x, conv2d, groupNorm, linear, normSilu, silu, upsampleNearest2x, WeightSource } from "./layers";
import { ResSpec } from "./plan";

export interface NormParams { groups: number; eps: number }

export function resBlock(x: tf.Tensor4D, emb: tf.Tensor2D, w: WeightSource, spec: ResSpec, norm: NormParams): tf.Tensor4D {
  const n = spec.name;
  const [b, , , c] = x.shape;
  if (c !== spec.inCh) throw new Error(`${n}: expected ${spec.inCh} input channels, got ${c}`);
  const resample = spec.updown === "up" ? upsampleNearest2x : spec.updown === "down" ? avgPool2x : null;

  // in_layers, with h resampled between the SiLU and the conv.
  let h = tf.tidy(() => {
    let t = normSilu(x, w, `${n}.in_layers.0`, norm.groups, norm.eps);
    if (resample) t = resample(t);
    return conv2d(t, w, `${n}.in_layers.2`);
  });

  // emb_layers and out_layers up to (not including) the final conv.
  const pre = tf.tidy((): tf.Tensor4D => {
    const e = linear(silu(emb), w, `${n}.emb_layers.1`);
    if (spec.scaleShift) {
      const scale = e.slice([0, 0], [b, spec.outCh]).reshape([b, 1, 1, spec.outCh]);
      const shift = e.slice([0, spec.outCh], [b, spec.outCh]).reshape([b, 1, 1, spec.outCh]);
      const modulated = tf.tidy((): tf.Tensor4D => tf.add(tf.mul(groupNorm(h, w, `${n}.out_layers.0`, norm.groups, norm.eps), tf.add(scale, 1)), shift));
      const act = silu(modulated);
      modulated.dispose();
      return act;
    }
    const added: tf.Tensor4D = tf.add(h, e.reshape([b, 1, 1, spec.outCh]));
    return normSilu(added, w, `${n}.out_layers.0`, norm.groups, norm.eps);
  });
  h.dispose();
  h = tf.tidy(() => conv2d(pre, w, `${n}.out_layers.3`));
  pre.dispose();

  const out: tf.Tensor4D = tf.tidy(() => {
    const xr = resample ? resample(x) : x;
    const skip = spec.skip === "identity" ? xr : conv2d(xr, w, `${n}.skip_connection`);
    return tf.add(skip, h);
  });
  h.dispose();
  return out;
}
