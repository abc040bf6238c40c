/**
 * Attention head (the paper's Fig. 1 D), after the authors' later public code as summarised in
 * ../shared/paper/results.json (imagenet50_heads.attention_head):
 *
 *   [C, H, W] block map
 *   -> average pooling, kernel = stride = `pool` (paper: 2; 16x16 -> 8x8 = 64 tokens), tokens in
 *      row-major (h, w) order, each the C values of one position
 *   -> optional (`project`): LayerNorm over the whole [C, s, s] pooled map (one affine value per
 *      element), then a 1x1 conv (= dense) C -> dim; needed when C != dim (recipes.attention)
 *   -> a learned CLS token (initialised at zero) prepended; no positional embedding
 *   -> `blocks` pre-norm transformer blocks: x += proj(MHA(LN1(x))), x += fc2(GELU(fc1(LN2(x))));
 *      `heads` heads, qkv without bias, scale 1/sqrt(dim/heads), MLP hidden floor(dim * mlpRatio),
 *      exact (erf) GELU, LayerNorm eps 1e-5
 *   -> no final norm; the CLS token -> dense -> K logits.
 *
 * Weights are stored [in, out]; qkv's output columns are ordered (q|k|v, head, channel) as PyTorch's
 * reshape(B, N, 3, heads, dim/heads) reads them. The projection LayerNorm's affine is stored [s, s, C]
 * (tfjs layout; PyTorch's is [C, s, s]). Parameter count: params.ts attentionParams.
 */
import * as tf from "@tensorflow/tfjs";
import { AttentionHeadConfig } from "./params";
import { Head, ParamBuilder, rowsToNHWC } from "./head";

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
  const hidden = Math.floor(dim * opts.mlpRatio);
  const hd = dim / heads;

  const pb = new ParamBuilder(opts.seed, 0xa77);
  const proj = opts.project
    ? { g: pb.constant("proj_norm.weight", [sh, sw, c], 1), b: pb.constant("proj_norm.bias", [sh, sw, c], 0), fc: pb.dense("proj_conv", c, dim) }
    : null;
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
  const out = pb.dense("head", dim, opts.numClasses);

  const dense = (x: tf.Tensor, l: { w: tf.Variable; b: tf.Variable | null }): tf.Tensor => {
    const [fin, fout] = l.w.shape as [number, number];
    const y = x.reshape([-1, fin]).matMul(l.w as tf.Tensor2D);
    return (l.b ? y.add(l.b) : y).reshape([...x.shape.slice(0, -1), fout]);
  };
  // [n, T, D] -> [n * heads, T, hd]
  const split = (x: tf.Tensor, n: number, t: number) => x.reshape([n, t, heads, hd]).transpose([0, 2, 1, 3]).reshape([n * heads, t, hd]) as tf.Tensor3D;

  return {
    kind: "attention",
    config: { dim, heads, mlpRatio: opts.mlpRatio, blocks, pool, project: opts.project },
    inShape: [...opts.inShape],
    numClasses: opts.numClasses,
    params: pb.params,
    apply(x) {
      const n = x.shape[0];
      let m: tf.Tensor4D = rowsToNHWC(x, opts.inShape);
      if (pool > 1) m = tf.avgPool(m, pool, pool, "valid");
      let z: tf.Tensor = m;
      if (proj) z = dense(layerNorm(z, proj.g, proj.b, [1, 2, 3]), proj.fc);
      const t = tokens + 1;
      z = tf.concat([tf.tile(cls, [n, 1, 1]), z.reshape([n, tokens, dim])], 1);
      for (const L of layers) {
        const y = layerNorm(z, L.n1g, L.n1b, [2]);
        const [q, k, v] = tf.split(dense(y, { w: L.qkv, b: null }), 3, 2).map((p) => split(p, n, t));
        const attn = tf.softmax(tf.matMul(q, k, false, true).mul(1 / Math.sqrt(hd)));
        const mixed = tf.matMul(attn, v).reshape([n, heads, t, hd]).transpose([0, 2, 1, 3]).reshape([n, t, dim]);
        z = z.add(dense(mixed, L.proj));
        z = z.add(dense(geluExact(dense(layerNorm(z, L.n2g, L.n2b, [2]), L.fc1)), L.fc2));
      }
      const clsOut = z.slice([0, 0, 0], [n, 1, dim]).reshape([n, dim]);
      return dense(clsOut, out) as tf.Tensor2D;
    },
    dispose() {
      for (const p of pb.params) p.variable.dispose();
    },
  };
}
