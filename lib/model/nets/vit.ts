/**
 * torchvision's VisionTransformer (torchvision.models.vision_transformer), evaluation mode, on tfjs or ONNX
 * Runtime (the forward pass is written once, vitStages, and lowered to each).
 * NCHW images in; tokens are [N, 1 + patches, hidden] with the class token first.
 *
 *   conv_proj (patch x patch conv, stride patch) -> flatten to tokens -> prepend class_token
 *   -> + encoder.pos_embedding ("encoder.dropout": identity in eval)
 *   -> encoder layers: x = x + out_proj(MHA(ln_1(x)));  x = x + mlp.3(GELU(mlp.0(ln_2(x))))
 *   -> encoder.ln -> class token -> heads (heads.head, after heads.pre_logits + tanh when present)
 *
 * LayerNorm eps 1e-6; GELU is the exact erf form; nn.MultiheadAttention's packed in_proj_weight /
 * in_proj_bias hold q, k, v in that order, and q is scaled by 1/sqrt(head dim) before q k^T.
 * Layer outputs are named as torchvision's modules: "conv_proj" (NCHW patch grid), "encoder.dropout",
 * "encoder.layers.encoder_layer_N", "encoder.ln" (all tokens), "heads" (logits).
 */
import * as tf from "@tensorflow/tfjs";
import type { StateDict } from "../checkpoint/state-dict";
import { runStagesTfjs } from "./lower-tfjs";
import type { Stage } from "./ops";
import type { ForwardOptions } from "./select";
import { checkInput, NetParam, NetWeights } from "./weights";

export interface ViTConfig {
  imageSize: number;
  patchSize: number;
  numLayers: number;
  numHeads: number;
  hiddenDim: number;
  mlpDim: number;
  /** Classes of heads.head; null for a backbone without a head (self-supervised checkpoints). */
  numClasses: number | null;
  /** heads.pre_logits width (torchvision's representation_size), or null. */
  representationSize: number | null;
  inChannels: number;
}

const vit = (patchSize: number, numLayers: number, numHeads: number, hiddenDim: number, mlpDim: number): ViTConfig => ({
  imageSize: 224, patchSize, numLayers, numHeads, hiddenDim, mlpDim, numClasses: 1000, representationSize: null, inChannels: 3,
});

export const VIT_PRESETS: Record<string, ViTConfig> = {
  vit_b_16: vit(16, 12, 12, 768, 3072),
  vit_b_32: vit(32, 12, 12, 768, 3072),
  vit_l_16: vit(16, 24, 16, 1024, 4096),
  vit_l_32: vit(32, 24, 16, 1024, 4096),
};

/** From torchvision's VisionTransformer(**kwargs) arguments (as in a fixture manifest). */
export function vitConfigFromKwargs(kwargs: Record<string, unknown>): ViTConfig {
  const need = (k: string) => {
    if (kwargs[k] === undefined) throw new Error(`VisionTransformer kwargs: "${k}" is missing`);
    return Number(kwargs[k]);
  };
  return {
    imageSize: need("image_size"),
    patchSize: need("patch_size"),
    numLayers: need("num_layers"),
    numHeads: need("num_heads"),
    hiddenDim: need("hidden_dim"),
    mlpDim: need("mlp_dim"),
    numClasses: kwargs.num_classes === null ? null : Number(kwargs.num_classes ?? 1000),
    representationSize: kwargs.representation_size == null ? null : Number(kwargs.representation_size),
    inChannels: 3,
  };
}

const LAYER = "encoder.layers.encoder_layer_";

/**
 * torchvision < 0.14 named the MLP's linears `mlp.linear_1` / `mlp.linear_2`; 0.14 calls them `mlp.0` / `mlp.3`
 * (and renames on load, as this does). The published vit_b_16 weights may use either.
 */
export function normalizeVitKeys(sd: StateDict): StateDict {
  const out: StateDict = new Map();
  for (const [k, v] of sd) out.set(k.replace(/\.mlp\.linear_1\./, ".mlp.0.").replace(/\.mlp\.linear_2\./, ".mlp.3."), v);
  return out;
}

/**
 * The configuration a state dict implies. The number of heads is not in any shape: it is `numHeads` when
 * given, else hidden / 64 (every published ViT uses 64-wide heads).
 */
export function vitConfigFromStateDict(sdIn: StateDict, opts: { numHeads?: number; file?: string } = {}): ViTConfig {
  const file = opts.file ?? "state dict";
  const sd = normalizeVitKeys(sdIn);
  const shape = (k: string) => {
    const t = sd.get(k);
    if (!t) throw new Error(`${file}: not a torchvision VisionTransformer state dict: no "${k}"`);
    return t.shape;
  };
  const proj = shape("conv_proj.weight");
  const hiddenDim = proj[0];
  const patchSize = proj[2];
  const seq = shape("encoder.pos_embedding")[1];
  const side = Math.round(Math.sqrt(seq - 1));
  if (side * side !== seq - 1) throw new Error(`${file}: encoder.pos_embedding has ${seq} positions, not 1 + a square number of patches`);
  let numLayers = 0;
  while (sd.has(`${LAYER}${numLayers}.ln_1.weight`)) numLayers++;
  if (numLayers === 0) throw new Error(`${file}: not a torchvision VisionTransformer state dict: no "${LAYER}0.ln_1.weight"`);
  const numHeads = opts.numHeads ?? hiddenDim / 64;
  if (!Number.isInteger(numHeads) || numHeads < 1 || hiddenDim % numHeads !== 0) {
    throw new Error(`${file}: hidden size ${hiddenDim} is not a multiple of 64: give the number of heads (numHeads)`);
  }
  const pre = sd.get("heads.pre_logits.weight");
  return {
    imageSize: side * patchSize,
    patchSize,
    numLayers,
    numHeads,
    hiddenDim,
    mlpDim: shape(`${LAYER}0.mlp.0.weight`)[0],
    numClasses: sd.has("heads.head.weight") ? shape("heads.head.weight")[0] : null,
    representationSize: pre ? pre.shape[0] : null,
    inChannels: proj[1],
  };
}

/** Every tensor of the state dict, in torchvision's order. */
export function vitParams(c: ViTConfig): NetParam[] {
  const d = c.hiddenDim;
  const seq = (c.imageSize / c.patchSize) ** 2 + 1;
  const p: NetParam[] = [
    { name: "class_token", shape: [1, 1, d], kind: "plain" },
    { name: "conv_proj.weight", shape: [d, c.inChannels, c.patchSize, c.patchSize], kind: "conv2d" },
    { name: "conv_proj.bias", shape: [d], kind: "plain" },
    { name: "encoder.pos_embedding", shape: [1, seq, d], kind: "plain" },
  ];
  const lin = (name: string, o: number, i: number) => p.push({ name: `${name}.weight`, shape: [o, i], kind: "linear" }, { name: `${name}.bias`, shape: [o], kind: "plain" });
  const ln = (name: string) => p.push({ name: `${name}.weight`, shape: [d], kind: "plain" }, { name: `${name}.bias`, shape: [d], kind: "plain" });
  for (let i = 0; i < c.numLayers; i++) {
    const l = `${LAYER}${i}`;
    ln(`${l}.ln_1`);
    p.push({ name: `${l}.self_attention.in_proj_weight`, shape: [3 * d, d], kind: "linear" }, { name: `${l}.self_attention.in_proj_bias`, shape: [3 * d], kind: "plain" });
    lin(`${l}.self_attention.out_proj`, d, d);
    ln(`${l}.ln_2`);
    lin(`${l}.mlp.0`, c.mlpDim, d);
    lin(`${l}.mlp.3`, d, c.mlpDim);
  }
  ln("encoder.ln");
  let width = d;
  if (c.representationSize !== null) {
    lin("heads.pre_logits", c.representationSize, d);
    width = c.representationSize;
  }
  if (c.numClasses !== null) lin("heads.head", c.numClasses, width);
  return p;
}

export function vitLayers(c: ViTConfig): string[] {
  const names = ["conv_proj", "encoder.dropout"];
  for (let i = 0; i < c.numLayers; i++) names.push(`${LAYER}${i}`);
  names.push("encoder.ln");
  if (c.numClasses !== null) names.push("heads");
  return names;
}

/**
 * The network as named stages (./ops), lowered to tfjs (VisionTransformer.forward) and to ONNX (./onnx-net):
 * one definition of torchvision's forward pass.
 */
export function vitStages(c: ViTConfig): Stage[] {
  const hd = c.hiddenDim / c.numHeads;
  const encoderLayer = (l: string): Stage => ({
    name: l,
    apply: (o, x) => {
      const qkv = o.linear(o.layerNorm(x, `${l}.ln_1`, 1e-6), `${l}.self_attention`, `${l}.self_attention.in_proj_weight`, `${l}.self_attention.in_proj_bias`);
      const a = o.add(x, o.linear(o.selfAttention(qkv, c.numHeads, hd), `${l}.self_attention.out_proj`));
      return o.add(a, o.linear(o.gelu(o.linear(o.layerNorm(a, `${l}.ln_2`, 1e-6), `${l}.mlp.0`)), `${l}.mlp.3`));
    },
  });
  const stages: Stage[] = [
    { name: "conv_proj", apply: (o, x) => o.conv(x, "conv_proj", { stride: c.patchSize, pad: 0, bias: true }) },
    { name: "encoder.dropout", apply: (o, grid) => o.addParam(o.prependToken(o.mapToTokens(grid), "class_token"), "encoder.pos_embedding") },
  ];
  for (let i = 0; i < c.numLayers; i++) stages.push(encoderLayer(`${LAYER}${i}`));
  stages.push({ name: "encoder.ln", apply: (o, x) => o.layerNorm(x, "encoder.ln", 1e-6) });
  if (c.numClasses !== null) {
    stages.push({
      name: "heads",
      apply: (o, x) => {
        let y = o.firstToken(x);
        if (c.representationSize !== null) y = o.tanh(o.linear(y, "heads.pre_logits"));
        return o.linear(y, "heads.head");
      },
    });
  }
  return stages;
}

/** Check that a ViT configuration is consistent (heads divide the width, patches tile the image). */
export function checkVitConfig(config: ViTConfig): void {
  if (config.hiddenDim % config.numHeads !== 0) throw new Error(`VisionTransformer: hidden size ${config.hiddenDim} is not divisible by ${config.numHeads} heads`);
  if (config.imageSize % config.patchSize !== 0) throw new Error(`VisionTransformer: image size ${config.imageSize} is not divisible by patch size ${config.patchSize}`);
}

export class VisionTransformer {
  private constructor(readonly config: ViTConfig, private readonly w: NetWeights) {}

  /**
   * Build from a state dict (torchvision names; `mlp.linear_1/2` accepted). The configuration is derived from
   * the shapes unless given (numHeads: see vitConfigFromStateDict); every key is checked first.
   */
  static async fromStateDict(sdIn: StateDict, opts: { config?: ViTConfig; numHeads?: number; file?: string } = {}): Promise<VisionTransformer> {
    const file = opts.file ?? "state dict";
    const sd = normalizeVitKeys(sdIn);
    const config = opts.config ?? vitConfigFromStateDict(sd, { numHeads: opts.numHeads, file });
    checkVitConfig(config);
    return new VisionTransformer(config, await NetWeights.load(vitParams(config), sd, file));
  }

  layers(): string[] {
    return vitLayers(this.config);
  }

  get weightBytes(): number {
    return this.w.bytes;
  }

  /**
   * Run on `x` (NCHW float32, imageSize x imageSize). Returns the requested layer outputs by name: "conv_proj"
   * NCHW, token outputs [N, 1 + patches, hidden], "heads" [N, classes]. The caller disposes them.
   */
  forward(x: tf.Tensor4D, opts: ForwardOptions = {}): Map<string, tf.Tensor> {
    const c = this.config;
    checkInput(x, c.inChannels, "VisionTransformer");
    checkVitInputSize(c, x.shape);
    const nhwc = tf.transpose(x, [0, 2, 3, 1]);
    try {
      return runStagesTfjs(vitStages(c), this.w, nhwc, { ...opts, what: "VisionTransformer" });
    } finally {
      nhwc.dispose();
    }
  }

  dispose(): void {
    this.w.dispose();
  }
}

/** A ViT takes exactly imageSize x imageSize inputs (its position embedding has one entry per patch). */
export function checkVitInputSize(c: ViTConfig, shape: readonly number[]): void {
  if (shape[2] !== c.imageSize || shape[3] !== c.imageSize) {
    throw new Error(`VisionTransformer: input is ${shape[2]}x${shape[3]}; this network takes ${c.imageSize}x${c.imageSize} (shape [N, ${c.inChannels}, ${c.imageSize}, ${c.imageSize}])`);
  }
}
