/**
 * The supervised reference (the paper's "U-Net encoder" row): the embedded DDPM's encoder half — its
 * time embedding, input blocks and middle block, with lib/model/unet's parameter names, shapes and code — and
 * a classification head as guided-diffusion's EncoderUNetModel (pool "adaptive"):
 *
 *   out.0 GroupNorm32 - SiLU - global average pool - out.3 linear (ch -> classes)
 *
 * (EncoderUNetModel's out.3 is a 1x1 conv on the pooled map, the same map as this linear layer.) The
 * network is always called at timestep 0 on clean images: the time embedding is a learned constant.
 * A file of this model (encoder weights + head) loads into lib/model/unet's UNet blocks (same names).
 */
import * as tf from "@tensorflow/tfjs";
import { attentionBlock } from "../../model/unet/attention";
import type { UNetConfig } from "../../model/unet/config";
import { conv2d, linear, normSilu, silu, timestepEmbedding, WeightSource } from "../../model/unet/layers";
import { parameterSpecs } from "../../model/unet/parameters";
import { BlockSpec, buildPlan, ModuleSpec } from "../../model/unet/plan";
import { downsample, upsample } from "../../model/unet/resample";
import { resBlock } from "../../model/unet/resblock";
import { guidedDiffusionInit } from "../model-params";
import type { ParamSpec } from "./named-params";

/** The encoder blocks (input blocks then the middle block) of a U-Net config. */
export function encoderBlocks(config: UNetConfig): BlockSpec[] {
  return buildPlan(config).blocks.filter((b) => b.section !== "output");
}

const isEncoderParam = (name: string) => /^(time_embed|input_blocks|middle_block)\./.test(name);

/** Channels leaving the middle block. */
export function encoderChannels(config: UNetConfig): number {
  const b = encoderBlocks(config);
  return b[b.length - 1].outCh;
}

/** Parameters: the U-Net's time_embed.*, input_blocks.*, middle_block.* (same names, order) + the head. */
export function encoderClassifierSpecs(config: UNetConfig, classes: number): ParamSpec[] {
  const ch = encoderChannels(config);
  return [
    ...parameterSpecs(config).filter((s) => isEncoderParam(s.name)),
    { name: "out.0.weight", shape: [ch], kind: "vector", uses: 1 },
    { name: "out.0.bias", shape: [ch], kind: "vector", uses: 1 },
    { name: "out.3.weight", shape: [classes, ch], kind: "linear", uses: 1 },
    { name: "out.3.bias", shape: [classes], kind: "vector", uses: 1 },
  ];
}

/**
 * Initial weights (PyTorch layout): guided-diffusion's U-Net initialisation for the shared blocks (the
 * DDPM's init.safetensors for the same seed and config has the same values), GroupNorm 1/0, and
 * EncoderUNetModel's zero_module on the final layer.
 */
export function encoderClassifierInit(config: UNetConfig, classes: number, seed: number): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const t of guidedDiffusionInit(config, seed)) if (isEncoderParam(t.name)) out.set(t.name, t.data);
  const ch = encoderChannels(config);
  out.set("out.0.weight", new Float32Array(ch).fill(1));
  out.set("out.0.bias", new Float32Array(ch));
  out.set("out.3.weight", new Float32Array(classes * ch));
  out.set("out.3.bias", new Float32Array(classes));
  return out;
}

function runModule(m: ModuleSpec, h: tf.Tensor4D, emb: tf.Tensor2D, w: WeightSource, config: UNetConfig): tf.Tensor4D {
  const norm = { groups: config.groupNormGroups, eps: config.groupNormEps };
  switch (m.kind) {
    case "conv": return conv2d(h, w, m.name, m.stride);
    case "res": return resBlock(h, emb, w, m, norm);
    case "attn": return attentionBlock(h, w, m, norm);
    case "down": return downsample(h, w, m);
    case "up": return upsample(h, w, m);
  }
}

/**
 * Forward pass on clean images x (NHWC in [-1, 1]): logits [B, classes] and the captured encoder block
 * outputs (NHWC, by module name or paper number; the caller disposes them). With `stopEarly` the pass
 * ends after the deepest captured block (no logits).
 */
export function encoderClassify(
  config: UNetConfig,
  w: WeightSource,
  x: tf.Tensor4D,
  opts: { capture?: string[]; stopEarly?: boolean } = {},
): { logits?: tf.Tensor2D; blocks: Map<string, tf.Tensor4D> } {
  const blocks = encoderBlocks(config);
  const want = new Set<string>();
  for (const c of opts.capture ?? []) {
    const hit = blocks.find((b) => b.name === c || String(b.number) === String(c));
    if (!hit) throw new Error(`the encoder-classifier has no block ${JSON.stringify(c)} (blocks: ${blocks.map((b) => `${b.number}/${b.name}`).join(", ")})`);
    want.add(hit.name);
  }
  const last = opts.stopEarly ? Math.max(-1, ...blocks.map((b, i) => (want.has(b.name) ? i : -1))) : blocks.length - 1;
  const captured = new Map<string, tf.Tensor4D>();
  let logits: tf.Tensor2D | undefined;
  tf.tidy(() => {
    const b = x.shape[0];
    const te = tf.tensor2d(timestepEmbedding(new Array(b).fill(0), config.modelChannels), [b, config.modelChannels]);
    const emb = linear(silu(linear(te, w, "time_embed.0")), w, "time_embed.2");
    let h = x;
    for (let i = 0; i <= last; i++) {
      for (const m of blocks[i].modules) h = runModule(m, h, emb, w, config);
      if (want.has(blocks[i].name)) captured.set(blocks[i].name, tf.keep(h));
    }
    if (last === blocks.length - 1) {
      const pooled = tf.mean(normSilu(h, w, "out.0", config.groupNormGroups, config.groupNormEps), [1, 2]) as tf.Tensor2D;
      logits = tf.keep(linear(pooled, w, "out.3"));
    }
  });
  return { logits, blocks: captured };
}
