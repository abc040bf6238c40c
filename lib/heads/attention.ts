/**
 * Attention head (the paper's Fig. 1 D), after the authors' later public code (`soumik-kanad/diffssl`,
 * ssl_diff/attention_fusion.py + attention_head.py; ../shared/paper/results.json imagenet50_heads.attention_head):
 *
 *   [C, H, W] block map
 *   -> average pooling, kernel = stride = `pool` (paper: 2; 16x16 -> 8x8 = 64 tokens), tokens in
 *      row-major (h, w) order, each the C values of one position. The official `AdaptiveAvgPool2d(min(S,
 *      pre_pool_size))` is this pooling with pool = S / min(S, pre_pool_size) when that divides S.
 *   -> optional (`project`): LayerNorm over the whole [C, s, s] pooled map (one affine value per
 *      element), then a 1x1 conv (= dense) C -> dim; needed when C != dim (recipes.attention)
 *   -> a learned CLS token (initialised at zero) prepended; no positional embedding
 *   -> `blocks` pre-norm transformer blocks: x += proj(MHA(LN1(x))), x += fc2(GELU(fc1(LN2(x))));
 *      `heads` heads, qkv without bias, scale 1/sqrt(dim/heads), MLP hidden floor(dim * mlpRatio),
 *      exact (erf) GELU, LayerNorm eps 1e-5
 *   -> no final norm; the CLS token -> dense -> K logits.
 *
 * The pieces (pre-layer, CLS + transformer) are exported for the DifFormer head (./difformer.ts), which
 * runs the same transformer over the tokens of several blocks at several timesteps. Checked against
 * the official code's outputs by `npm run check-reference -- ../shared/fixtures/diffssl/attn-head`.
 *
 * Weights are stored [in, out]; qkv's output columns are ordered (q|k|v, head, channel) as PyTorch's
 * reshape(B, N, 3, heads, dim/heads) reads them. The projection LayerNorm's affine is stored [s, s, C]
 * (tfjs layout; PyTorch's is [C, s, s]). Parameter count: params.ts attentionParams.
 */
import * as tf from "@tensorflow/tfjs";
import { AttentionHeadConfig } from "./params";
import { Head, HeadTrace, ParamBuilder, rowsToNHWC } from "./head";

export interface AttentionHeadOptions extends AttentionHeadConfig {
  /** [C, H, W]. */
  inShape: readonly number[];
  numClasses: number;
  seed: number;
}

export const LAYER_NORM_EPS = 1e-5;

/** LayerNorm over `axes` with affine gamma, beta (broadcast over the other axes). */
export function layerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, axes: number[]): tf.Tensor {
  // Written with sub/square/mean rather than tf.moments, whose squaredDifference gradient does not
  // reduce over broadcast axes in tfjs 4.22.
  const centred = x.sub(x.mean(axes, true));
  const variance = centred.square().mean(axes, true);
  return centred.mul(tf.rsqrt(variance.add(LAYER_NORM_EPS))).mul(gamma).add(beta);
}

/** Exact GELU: x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)). */
export function geluExact(x: tf.Tensor): tf.Tensor {
  return x.mul(0.5).mul(tf.erf(x.mul(Math.SQRT1_2)).add(1));
}

export interface DenseParams {
  w: tf.Variable;
  b: tf.Variable | null;
}

/** x [..., in] -> [..., out]. */
export function denseApply(x: tf.Tensor, l: DenseParams): tf.Tensor {
  const [fin, fout] = l.w.shape as [number, number];
  const y = x.reshape([-1, fin]).matMul(l.w as tf.Tensor2D);
  return (l.b ? y.add(l.b) : y).reshape([...x.shape.slice(0, -1), fout]);
}

/** LayerNorm over a whole [s, s, C] map, then a 1x1 conv C -> dim (the official pre-layer after its pooling). */
export interface PreLayer {
  g: tf.Variable;
  b: tf.Variable;
  fc: DenseParams;
}

/** Parameters `<prefix>_norm.weight/bias` ([sh, sw, C]) and `<prefix>_conv.weight/bias` ([C, dim], [dim]). */
export function buildPreLayer(pb: ParamBuilder, prefix: string, c: number, sh: number, sw: number, dim: number): PreLayer {
  return { g: pb.constant(`${prefix}_norm.weight`, [sh, sw, c], 1), b: pb.constant(`${prefix}_norm.bias`, [sh, sw, c], 0), fc: pb.dense(`${prefix}_conv`, c, dim) };
}

/** A pooled NHWC map [n, s, s, C] -> tokens [n, s*s, dim] (row-major positions); traces "norm", "conv", "tokens" (NHWC maps). */
export function applyPreLayer(m: tf.Tensor4D, p: PreLayer, trace?: HeadTrace): tf.Tensor3D {
  const [n, sh, sw] = m.shape;
  const normed = layerNorm(m, p.g, p.b, [1, 2, 3]);
  trace?.("norm", normed);
  const conv = denseApply(normed, p.fc);
  trace?.("conv", conv);
  const tokens = conv.reshape([n, sh * sw, conv.shape[3]!]) as tf.Tensor3D;
  trace?.("tokens", tokens);
  return tokens;
}

/** The CLS token and the pre-norm transformer blocks (the official `AttentionHead`). */
export interface Transformer {
  dim: number;
  heads: number;
  cls: tf.Variable;
  layers: {
    n1g: tf.Variable; n1b: tf.Variable; qkv: tf.Variable; proj: DenseParams;
    n2g: tf.Variable; n2b: tf.Variable; fc1: DenseParams; fc2: DenseParams;
  }[];
}

/** Parameters `cls_token` and `blocks.<i>.*`, in this order. */
export function buildTransformer(pb: ParamBuilder, dim: number, heads: number, mlpRatio: number, blocks: number): Transformer {
  const hidden = Math.floor(dim * mlpRatio);
  const cls = pb.constant("cls_token", [1, 1, dim], 0);
  const layers = Array.from({ length: blocks }, (_, i) => ({
    n1g: pb.constant(`blocks.${i}.norm1.weight`, [dim], 1),
    n1b: pb.constant(`blocks.${i}.norm1.bias`, [dim], 0),
    qkv: pb.dense(`blocks.${i}.attn.qkv`, dim, 3 * dim, false).w,
    proj: pb.dense(`blocks.${i}.attn.proj`, dim, dim),
    n2g: pb.constant(`blocks.${i}.norm2.weight`, [dim], 1),
    n2b: pb.constant(`blocks.${i}.norm2.bias`, [dim], 0),
    fc1: pb.dense(`blocks.${i}.mlp.fc1`, dim, hidden),
    fc2: pb.dense(`blocks.${i}.mlp.fc2`, hidden, dim),
  }));
  return { dim, heads, cls, layers };
}

/**
 * Tokens [n, L, dim] -> the CLS output [n, dim]: CLS prepended, every block, `x[:, 0]`. Traces "cls_in",
 * "block<k>" and inside each block "block<k>_norm1", "_qkv", "_attn" ([n, heads, L+1, L+1] softmax),
 * "_attnout" (proj output), "_norm2", "_fc1", "_gelu", "_mlpout" (fc2 output); then "cls".
 */
export function applyTransformer(tokens: tf.Tensor3D, tr: Transformer, trace?: HeadTrace): tf.Tensor2D {
  const [n, l] = tokens.shape;
  const { dim, heads } = tr;
  const hd = dim / heads;
  const t = l + 1;
  // [n, T, D] -> [n * heads, T, hd]
  const split = (x: tf.Tensor) => x.reshape([n, t, heads, hd]).transpose([0, 2, 1, 3]).reshape([n * heads, t, hd]) as tf.Tensor3D;
  let z: tf.Tensor = tf.concat([tf.tile(tr.cls, [n, 1, 1]), tokens], 1);
  trace?.("cls_in", z);
  tr.layers.forEach((L, k) => {
    const y = layerNorm(z, L.n1g, L.n1b, [2]);
    trace?.(`block${k}_norm1`, y);
    const qkv = denseApply(y, { w: L.qkv, b: null });
    trace?.(`block${k}_qkv`, qkv);
    const [q, kk, v] = tf.split(qkv, 3, 2).map(split);
    const attn = tf.softmax(tf.matMul(q, kk, false, true).mul(1 / Math.sqrt(hd)));
    if (trace) trace(`block${k}_attn`, attn.reshape([n, heads, t, t]));
    const mixed = tf.matMul(attn, v).reshape([n, heads, t, hd]).transpose([0, 2, 1, 3]).reshape([n, t, dim]);
    const attnOut = denseApply(mixed, L.proj);
    trace?.(`block${k}_attnout`, attnOut);
    z = z.add(attnOut);
    const y2 = layerNorm(z, L.n2g, L.n2b, [2]);
    trace?.(`block${k}_norm2`, y2);
    const f1 = denseApply(y2, L.fc1);
    trace?.(`block${k}_fc1`, f1);
    const g = geluExact(f1);
    trace?.(`block${k}_gelu`, g);
    const mlpOut = denseApply(g, L.fc2);
    trace?.(`block${k}_mlpout`, mlpOut);
    z = z.add(mlpOut);
    trace?.(`block${k}`, z);
  });
  const cls = z.slice([0, 0, 0], [n, 1, dim]).reshape([n, dim]) as tf.Tensor2D;
  trace?.("cls", cls);
  return cls;
}

export function createAttentionHead(opts: AttentionHeadOptions): Head {
  if (opts.inShape.length !== 3) throw new Error(`createAttentionHead: rows must be [C, H, W], got ${JSON.stringify(opts.inShape)}`);
  const [c, h, w] = opts.inShape;
  const { dim, heads, blocks, pool } = opts;
  if (!(Number.isInteger(pool) && pool >= 1 && pool <= Math.min(h, w))) throw new Error(`createAttentionHead: pool ${pool} must be an integer in 1..${Math.min(h, w)}`);
  if (!(Number.isInteger(dim) && Number.isInteger(heads) && heads > 0 && dim % heads === 0)) throw new Error(`createAttentionHead: dim ${dim} must be a multiple of heads ${heads}`);
  if (!(Number.isInteger(blocks) && blocks >= 0)) throw new Error(`createAttentionHead: blocks ${blocks} must be a non-negative integer`);
  if (!opts.project && c !== dim) throw new Error(`createAttentionHead: the map has ${c} channels but dim is ${dim}; set project: true`);
  const sh = Math.floor(h / pool), sw = Math.floor(w / pool);
  const tokens = sh * sw;

  const pb = new ParamBuilder(opts.seed, 0xa77);
  const proj = opts.project ? buildPreLayer(pb, "proj", c, sh, sw, dim) : null;
  const tr = buildTransformer(pb, dim, heads, opts.mlpRatio, blocks);
  const out = pb.dense("head", dim, opts.numClasses);

  return {
    kind: "attention",
    config: { dim, heads, mlpRatio: opts.mlpRatio, blocks, pool, project: opts.project },
    inShape: [...opts.inShape],
    numClasses: opts.numClasses,
    params: pb.params,
    apply(x, trace) {
      const n = x.shape[0];
      let m: tf.Tensor4D = rowsToNHWC(x, opts.inShape);
      if (pool > 1) m = tf.avgPool(m, pool, pool, "valid");
      trace?.("pool", m);
      const z = proj ? applyPreLayer(m, proj, trace) : (m.reshape([n, tokens, dim]) as tf.Tensor3D);
      if (!proj) trace?.("tokens", z);
      const cls = applyTransformer(z, tr, trace);
      const logits = denseApply(cls, out) as tf.Tensor2D;
      trace?.("logits", logits);
      return logits;
    },
    dispose() {
      for (const p of pb.params) p.variable.dispose();
    },
  };
}
