/**
 * torchvision's VisionTransformer (torchvision.models.vision_transformer), evaluation mode, on tfjs.
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
import { ForwardOptions, selectLayers } from "./select";
import { checkInput, NetParam, NetWeights, nhwcToNchw } from "./weights";

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
    if (config.hiddenDim % config.numHeads !== 0) throw new Error(`VisionTransformer: hidden size ${config.hiddenDim} is not divisible by ${config.numHeads} heads`);
    if (config.imageSize % config.patchSize !== 0) throw new Error(`VisionTransformer: image size ${config.imageSize} is not divisible by patch size ${config.patchSize}`);
    return new VisionTransformer(config, await NetWeights.load(vitParams(config), sd, file));
  }

  layers(): string[] {
    return vitLayers(this.config);
  }

  get weightBytes(): number {
    return this.w.bytes;
  }

  /** nn.Linear on [..., in] tokens. */
  private linear(x: tf.Tensor, name: string, weight = `${name}.weight`, bias = `${name}.bias`): tf.Tensor {
    return tf.tidy(() => {
      const inDim = x.shape[x.rank - 1];
      const wt = this.w.get(weight) as tf.Tensor2D;
      const y = tf.add(tf.matMul(x.reshape([-1, inDim]) as tf.Tensor2D, wt), this.w.get(bias));
      return y.reshape([...x.shape.slice(0, -1), wt.shape[1]]);
    });
  }

  private layerNorm(x: tf.Tensor, name: string): tf.Tensor {
    return tf.tidy(() => {
      const mean = tf.mean(x, -1, true);
      const centred = tf.sub(x, mean);
      const variance = tf.mean(tf.square(centred), -1, true);
      const normed = tf.mul(centred, tf.rsqrt(tf.add(variance, 1e-6)));
      return tf.add(tf.mul(normed, this.w.get(`${name}.weight`)), this.w.get(`${name}.bias`));
    });
  }

  private attention(x: tf.Tensor3D, name: string): tf.Tensor3D {
    const { numHeads: h, hiddenDim: d } = this.config;
    const hd = d / h;
    return tf.tidy(() => {
      const [n, t] = x.shape;
      const qkv = this.linear(x, name, `${name}.in_proj_weight`, `${name}.in_proj_bias`); // [N, T, 3D]
      const heads = (i: number) => tf.transpose(tf.slice(qkv, [0, 0, i * d], [n, t, d]).reshape([n, t, h, hd]), [0, 2, 1, 3]); // [N, H, T, hd]
      const q = tf.div(heads(0), Math.sqrt(hd));
      const attn = tf.softmax(tf.matMul(q, heads(1), false, true)); // [N, H, T, T]
      const o = tf.transpose(tf.matMul(attn, heads(2)), [0, 2, 1, 3]).reshape([n, t, d]);
      return this.linear(o, `${name}.out_proj`) as tf.Tensor3D;
    });
  }

  private encoderLayer(x: tf.Tensor3D, l: string): tf.Tensor3D {
    return tf.tidy(() => {
      const a = tf.add(x, this.attention(this.layerNorm(x, `${l}.ln_1`) as tf.Tensor3D, `${l}.self_attention`));
      const u = this.linear(this.layerNorm(a, `${l}.ln_2`), `${l}.mlp.0`);
      const gelu = tf.mul(tf.mul(u, 0.5), tf.add(tf.erf(tf.mul(u, Math.SQRT1_2)), 1));
      return tf.add(a, this.linear(gelu, `${l}.mlp.3`)) as tf.Tensor3D;
    });
  }

  /**
   * Run on `x` (NCHW float32, imageSize x imageSize). Returns the requested layer outputs by name: "conv_proj"
   * NCHW, token outputs [N, 1 + patches, hidden], "heads" [N, classes]. The caller disposes them.
   */
  forward(x: tf.Tensor4D, opts: ForwardOptions = {}): Map<string, tf.Tensor> {
    const c = this.config;
    checkInput(x, c.inChannels, "VisionTransformer");
    if (x.shape[2] !== c.imageSize || x.shape[3] !== c.imageSize) {
      throw new Error(`VisionTransformer: input is ${x.shape[2]}x${x.shape[3]}; this network takes ${c.imageSize}x${c.imageSize} (shape [N, ${c.inChannels}, ${c.imageSize}, ${c.imageSize}])`);
    }
    const all = this.layers();
    const { wanted, last } = selectLayers(all, opts.layers, "VisionTransformer");
    const stopEarly = opts.stopEarly ?? true;
    const out = new Map<string, tf.Tensor>();
    let cur: tf.Tensor | null = null;
    const advance = (name: string, next: tf.Tensor): boolean => {
      if (cur && next !== cur) cur.dispose();
      cur = next;
      if (wanted.has(name)) out.set(name, cur.rank === 4 ? nhwcToNchw(cur as tf.Tensor4D) : cur.clone());
      return !(stopEarly && all.indexOf(name) >= last);
    };
    try {
      const grid = tf.tidy(() => {
        const nhwc = tf.transpose(x, [0, 2, 3, 1]) as tf.Tensor4D;
        return tf.add(tf.conv2d(nhwc, this.w.get("conv_proj.weight") as tf.Tensor4D, c.patchSize, "valid"), this.w.get("conv_proj.bias")) as tf.Tensor4D;
      });
      if (!advance("conv_proj", grid)) return out;
      const n = x.shape[0];
      const tokens = tf.tidy(() => {
        const patches = cur!.reshape([n, -1, c.hiddenDim]);
        const cls = tf.broadcastTo(this.w.get("class_token"), [n, 1, c.hiddenDim]);
        return tf.add(tf.concat([cls, patches], 1), this.w.get("encoder.pos_embedding"));
      });
      if (!advance("encoder.dropout", tokens)) return out;
      for (let i = 0; i < c.numLayers; i++) {
        if (!advance(`${LAYER}${i}`, this.encoderLayer(cur! as tf.Tensor3D, `${LAYER}${i}`))) return out;
      }
      if (!advance("encoder.ln", this.layerNorm(cur!, "encoder.ln"))) return out;
      if (c.numClasses !== null) {
        const logits = tf.tidy(() => {
          let y: tf.Tensor = tf.slice(cur!, [0, 0, 0], [n, 1, c.hiddenDim]).reshape([n, c.hiddenDim]);
          if (c.representationSize !== null) y = tf.tanh(this.linear(y, "heads.pre_logits"));
          return this.linear(y, "heads.head");
        });
        advance("heads", logits);
      }
      return out;
    } catch (e) {
      for (const t of out.values()) t.dispose();
      throw e;
    } finally {
      (cur as tf.Tensor | null)?.dispose();
    }
  }

  dispose(): void {
    this.w.dispose();
  }
}
