/**
 * AttentionBlock of unet.py, on NHWC: self-attention over the H*W positions.
 *
 *   qkv = Conv1d(C, 3C, 1)(GroupNorm(x))              tokens [B, T, 3C]
 *   per head (ch = C / heads): w = softmax((q*s)^T (k*s)) with s = 1/sqrt(sqrt(ch)) on q and k each,
 *   a = w v;  out = x + Conv1d(C, C, 1)(a)   (a's channel = head * ch + c)
 *
 * The qkv channel layout differs between the two orders:
 * - legacy (QKVAttentionLegacy, `use_new_attention_order False`): per head [q | k | v]:
 *   channel = head * 3ch + {0, ch, 2ch} + c, i.e. 3C viewed as [heads, 3, ch];
 * - new (QKVAttention): [q of all heads | k | v]: channel = {0, C, 2C} + head * ch + c, i.e. [3, heads, ch].
 * The softmax runs in float32 (as upstream, which casts to float32 for it).
 */
import * as tf from "@tensorflow/tfjs";
import { conv1x1Tokens, groupNorm, WeightSource } from "./layers";
import { AttnSpec } from "./plan";
import { NormParams } from "./resblock";

export function attentionBlock(x: tf.Tensor4D, w: WeightSource, spec: AttnSpec, norm: NormParams): tf.Tensor4D {
  const [b, hgt, wid, c] = x.shape;
  if (c !== spec.ch) throw new Error(`${spec.name}: expected ${spec.ch} channels, got ${c}`);
  const heads = spec.heads;
  const ch = c / heads;
  const t = hgt * wid;
  const tokens = x.reshape([b, t, c]) as tf.Tensor3D;
  const qkv = conv1x1Tokens(groupNorm(tokens, w, `${spec.name}.norm`, norm.groups, norm.eps), w, `${spec.name}.qkv`);
  // Tokens-major [B, T, 3C] -> [B, 3C, T, ch]-style grouping: move the qkv channel groups before the tokens so
  // q, k and v of every head are contiguous runs (rank <= 4 ops only: wasm runs rank-5 slices in slow code).
  // Legacy: 3C = [heads, 3, ch] -> [B*heads, 3, T*ch];  new: 3C = [3, heads, ch] -> [B, 3, heads*T*ch].
  const perHead = tf.transpose(qkv.reshape([b, t, 3 * heads, ch]), [0, 2, 1, 3]); // [B, 3*heads, T, ch]
  const grouped = spec.order === "legacy" ? perHead.reshape([b * heads, 3, t * ch]) : perHead.reshape([b, 3, heads * t * ch]);
  const part = (j: number): tf.Tensor3D => {
    const [n0, , n2] = grouped.shape;
    return grouped.slice([0, j, 0], [n0, 1, n2]).reshape([b * heads, t, ch]);
  };
  const scale = 1 / Math.sqrt(Math.sqrt(ch));
  const q = tf.mul(part(0), scale);
  const k = tf.mul(part(1), scale);
  const v = part(2);
  const a = attend(q as tf.Tensor3D, k as tf.Tensor3D, v); // [B*heads, T, ch]
  const merged = tf.transpose(a.reshape([b, heads, t, ch]), [0, 2, 1, 3]).reshape([b, t, c]) as tf.Tensor3D;
  const h = conv1x1Tokens(merged, w, `${spec.name}.proj_out`);
  return tf.add(tokens, h).reshape([b, hgt, wid, c]);
}

/**
 * Tokens at or above which attention runs one head at a time with 2-D matmuls: tfjs-wasm's batched
 * matmul takes a slow generic path (measured ~9x slower at T = 1024, 2x at T = 256, but faster at T = 64).
 */
export const PER_HEAD_MIN_TOKENS = 256;

/** softmax(q k^T) v for each of the B*heads slices; q, k already scaled. [B*heads, T, ch] each. */
export function attend(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D): tf.Tensor3D {
  const t = q.shape[1];
  if (t < PER_HEAD_MIN_TOKENS) return tf.matMul(tf.softmax(tf.matMul(q, k, false, true)), v);
  const qs = tf.unstack(q) as tf.Tensor2D[];
  const ks = tf.unstack(k) as tf.Tensor2D[];
  const vs = tf.unstack(v) as tf.Tensor2D[];
  const heads = qs.map((qi, i) => tf.tidy(() => tf.matMul(tf.softmax(tf.matMul(qi, tf.transpose(ks[i]))), vs[i])));
  return tf.stack(heads) as tf.Tensor3D;
}
