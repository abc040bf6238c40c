/**
 * A DCGAN-style generator and discriminator for 32x32x1 images (the GAN baseline of issue 13), as
 * functional tfjs code over named weights (PyTorch names and layouts in files, see ./named-params).
 *
 *   G: z [B, zDim] -> g.fc (linear, 4·4·4w) -> reshape 4x4x4w -> BN, ReLU
 *      -> [nearest x2, conv3x3, BN, ReLU] 8x8x2w -> [x2, conv3x3, BN, ReLU] 16x16xw -> [x2, conv3x3] 32x32x1 -> tanh
 *   D: x [B, 32, 32, 1] -> d.conv0 3x3/2, LeakyReLU(0.2) 16x16xw -> d.conv1 3x3/2, LReLU 8x8x2w
 *      -> d.conv2 3x3/2, LReLU 4x4x4w -> flatten (channel-major, as PyTorch) -> d.fc -> logit
 * Upsampling is nearest x2 + conv (not a transposed conv) and the discriminator has no normalisation,
 * so the probed features of an image do not depend on the rest of its batch. The generator's BatchNorm
 * always uses the batch's statistics (train mode; samples are drawn in batches). Stride-2 convs pad 1
 * on every side (PyTorch's Conv2d(k=3, s=2, p=1)).
 *
 * Probed layers ("blocks"): d.conv0, d.conv1, d.conv2 (after the LeakyReLU), numbered 1..3. The discriminator is
 * written once as stages (discriminatorStages) and run on tfjs (discriminate, training included) or lowered to
 * ONNX for ONNX Runtime (./extractor loadDiscriminatorModel).
 */
import * as tf from "@tensorflow/tfjs";
import { Rng } from "../../rng";
import { tfjsOps } from "../../model/nets/lower-tfjs";
import type { Stage } from "../../model/nets/ops";
import type { ParamSpec } from "./named-params";

export interface DcganConfig {
  /** Latent size. */
  zDim: number;
  /** Base width w (channels of the first discriminator layer and of G's last hidden layer). */
  width: number;
  imageSize: 32;
  channels: 1;
}

export const DEFAULT_DCGAN: Readonly<DcganConfig> = Object.freeze({ zDim: 64, width: 32, imageSize: 32, channels: 1 });

export const DISCRIMINATOR_LAYERS = ["d.conv0", "d.conv1", "d.conv2"] as const;

/** Output shape [H, W, C] of a probed discriminator layer for 32x32 inputs. */
export function discriminatorLayerShape(c: DcganConfig, layer: string): [number, number, number] {
  const i = DISCRIMINATOR_LAYERS.indexOf(layer as (typeof DISCRIMINATOR_LAYERS)[number]);
  if (i < 0) throw new Error(`unknown discriminator layer ${JSON.stringify(layer)} (layers: ${DISCRIMINATOR_LAYERS.join(", ")})`);
  const s = c.imageSize >> (i + 1);
  return [s, s, c.width << i];
}

const conv = (name: string, i: number, o: number, k = 3): ParamSpec[] => [
  { name: `${name}.weight`, shape: [o, i, k, k], kind: "conv2d", uses: 1 },
  { name: `${name}.bias`, shape: [o], kind: "vector", uses: 1 },
];
const lin = (name: string, i: number, o: number): ParamSpec[] => [
  { name: `${name}.weight`, shape: [o, i], kind: "linear", uses: 1 },
  { name: `${name}.bias`, shape: [o], kind: "vector", uses: 1 },
];
const bn = (name: string, ch: number): ParamSpec[] => [
  { name: `${name}.weight`, shape: [ch], kind: "vector", uses: 1 },
  { name: `${name}.bias`, shape: [ch], kind: "vector", uses: 1 },
];

export function generatorSpecs(c: DcganConfig): ParamSpec[] {
  const w = c.width;
  return [
    ...lin("g.fc", c.zDim, 16 * 4 * w), ...bn("g.bn0", 4 * w),
    ...conv("g.conv1", 4 * w, 2 * w), ...bn("g.bn1", 2 * w),
    ...conv("g.conv2", 2 * w, w), ...bn("g.bn2", w),
    ...conv("g.conv3", w, c.channels),
  ];
}

export function discriminatorSpecs(c: DcganConfig): ParamSpec[] {
  const w = c.width;
  return [...conv("d.conv0", c.channels, w), ...conv("d.conv1", w, 2 * w), ...conv("d.conv2", 2 * w, 4 * w), ...lin("d.fc", 16 * 4 * w, 1)];
}

/**
 * Seeded initialisation in PyTorch layout: DCGAN's N(0, 0.02) for conv and linear weights, zero biases,
 * BatchNorm weight N(1, 0.02) and bias 0.
 */
export function dcganInit(specs: ParamSpec[], seed: number): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  specs.forEach((s, index) => {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const rng = new Rng(seed, 2 ** 46 + index);
    if (s.name.endsWith(".weight")) {
      const isBn = /\.bn\d\./.test(s.name);
      rng.fillNormal(data);
      for (let i = 0; i < n; i++) data[i] = (isBn ? 1 : 0) + 0.02 * data[i];
    }
    out.set(s.name, data);
  });
  return out;
}

type W = { get(name: string): tf.Tensor };

/** The generator's conv 3x3, pad 1 (its forward pass runs in training only, on tfjs). */
function conv2d(x: tf.Tensor4D, w: W, name: string, stride = 1): tf.Tensor4D {
  return tf.conv2d(x, w.get(`${name}.weight`) as tf.Tensor4D, stride, [[0, 0], [1, 1], [1, 1], [0, 0]]).add(w.get(`${name}.bias`));
}

function batchNorm(x: tf.Tensor4D, w: W, name: string): tf.Tensor4D {
  const { mean, variance } = tf.moments(x, [0, 1, 2]);
  return x.sub(mean).div(variance.add(1e-5).sqrt()).mul(w.get(`${name}.weight`)).add(w.get(`${name}.bias`));
}

const up = (x: tf.Tensor4D) => tf.image.resizeNearestNeighbor(x, [x.shape[1] * 2, x.shape[2] * 2]);

/** Generator: z [B, zDim] -> images [B, 32, 32, 1] in (-1, 1). */
export function generate(c: DcganConfig, w: W, z: tf.Tensor2D): tf.Tensor4D {
  return tf.tidy(() => {
    const b = z.shape[0];
    const w4 = 4 * c.width;
    // g.fc's output is laid out channel-major (PyTorch .view(B, 4w, 4, 4)), then moved to NHWC.
    let h = tf.matMul(z, w.get("g.fc.weight") as tf.Tensor2D).add(w.get("g.fc.bias")).reshape([b, w4, 4, 4]).transpose([0, 2, 3, 1]) as tf.Tensor4D;
    h = tf.relu(batchNorm(h, w, "g.bn0"));
    h = tf.relu(batchNorm(conv2d(up(h), w, "g.conv1"), w, "g.bn1"));
    h = tf.relu(batchNorm(conv2d(up(h), w, "g.conv2"), w, "g.bn2"));
    return tf.tanh(conv2d(up(h), w, "g.conv3"));
  });
}

/**
 * The discriminator as named stages (lib/model/nets/ops): d.conv0..2 (conv 3x3/2, pad 1, LeakyReLU 0.2), then
 * "d.fc" (channel-major flatten, linear: [B, 1]). One definition, run on tfjs by `discriminate` and lowered to
 * ONNX for ONNX Runtime (./extractor's discriminator model).
 */
export function discriminatorStages(): Stage[] {
  const layer = (name: string): Stage => ({ name, apply: (o, h) => o.leakyRelu(o.conv(h, name, { stride: 2, pad: 1, bias: true }), 0.2) });
  return [...DISCRIMINATOR_LAYERS.map(layer), { name: "d.fc", apply: (o, h) => o.linear(o.flatten(h), "d.fc") }];
}

/**
 * Discriminator: images [B, 32, 32, 1] -> logits [B] and the captured layer outputs (NHWC; the caller
 * disposes them). With `stopEarly` the pass ends after the deepest captured layer (no logits).
 */
export function discriminate(c: DcganConfig, w: W, x: tf.Tensor4D, opts: { capture?: string[]; stopEarly?: boolean } = {}): { logits?: tf.Tensor1D; layers: Map<string, tf.Tensor4D> } {
  const capture = new Set(opts.capture ?? []);
  for (const l of capture) discriminatorLayerShape(c, l); // validates the name
  const last = opts.stopEarly ? Math.max(-1, ...[...capture].map((l) => DISCRIMINATOR_LAYERS.indexOf(l as (typeof DISCRIMINATOR_LAYERS)[number]))) : Infinity;
  const layers = new Map<string, tf.Tensor4D>();
  let logits: tf.Tensor1D | undefined;
  tf.tidy(() => {
    const ops = tfjsOps(w);
    const stages = discriminatorStages();
    let h: tf.Tensor = x;
    for (let i = 0; i < DISCRIMINATOR_LAYERS.length && i <= last; i++) {
      h = stages[i].apply(ops, h);
      if (capture.has(stages[i].name)) layers.set(stages[i].name, tf.keep(h as tf.Tensor4D));
    }
    if (last === Infinity) logits = tf.keep(stages[DISCRIMINATOR_LAYERS.length].apply(ops, h).reshape([-1]) as tf.Tensor1D);
  });
  return { logits, layers };
}
