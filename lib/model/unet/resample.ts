/**
 * Upsample / Downsample of unet.py, on NHWC.
 *
 * - inside an up/down ResBlock (`resblock_updown True`) they carry no weights: nearest x2 and 2x2 average pool;
 * - as stand-alone blocks (`resblock_updown False`) with conv_resample: nearest x2 then conv3x3 (`.conv`),
 *   or conv3x3 stride 2 padding 1 (`.op`).
 */
import * as tf from "@tensorflow/tfjs";
import { avgPool2x, conv2d, upsampleNearest2x, WeightSource } from "./layers";
import { DownSpec, UpSpec } from "./plan";

export function downsample(x: tf.Tensor4D, w: WeightSource, spec: DownSpec): tf.Tensor4D {
  if (!spec.useConv) return avgPool2x(x);
  const [, h, wd] = x.shape;
  if (h % 2 || wd % 2) throw new Error(`${spec.name}: Downsample needs even height and width, got ${h}x${wd}`);
  return conv2d(x, w, `${spec.name}.op`, 2);
}

export function upsample(x: tf.Tensor4D, w: WeightSource, spec: UpSpec): tf.Tensor4D {
  const up = upsampleNearest2x(x);
  return spec.useConv ? conv2d(up, w, `${spec.name}.conv`) : up;
}
