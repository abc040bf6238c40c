/**
 * The network stages (./ops) on tfjs: maps are NHWC inside, weights in tfjs layout (conv HWIO, linear
 * [in, out]: ./weights). Each stage runs in its own tf.tidy, so a pass holds one stage's temporaries at a time.
 */
import * as tf from "@tensorflow/tfjs";
import type { NetOps, Stage } from "./ops";
import { selectLayers } from "./select";
import { nhwcToNchw } from "./weights";

/** Weights by PyTorch name, in tfjs layout. */
export interface TfWeights {
  get(name: string): tf.Tensor;
}

export function tfjsOps(w: TfWeights): NetOps<tf.Tensor> {
  const linear = (x: tf.Tensor, name: string, weight = `${name}.weight`, bias = `${name}.bias`): tf.Tensor => {
    const inDim = x.shape[x.rank - 1];
    const wt = w.get(weight) as tf.Tensor2D;
    const y = tf.add(tf.matMul(x.reshape([-1, inDim]) as tf.Tensor2D, wt), w.get(bias));
    return y.reshape([...x.shape.slice(0, -1), wt.shape[1]]);
  };
  return {
    conv(x, name, s) {
      const pad: [[number, number], [number, number], [number, number], [number, number]] = [[0, 0], [s.pad, s.pad], [s.pad, s.pad], [0, 0]];
      const y = tf.conv2d(x as tf.Tensor4D, w.get(`${name}.weight`) as tf.Tensor4D, s.stride, s.pad === 0 ? "valid" : pad);
      return s.bias ? tf.add(y, w.get(`${name}.bias`)) : y;
    },
    batchNorm: (x, name) => tf.add(tf.mul(x, w.get(`${name}.scale`)), w.get(`${name}.shift`)),
    relu: (x) => tf.relu(x),
    leakyRelu: (x, alpha) => tf.leakyRelu(x, alpha),
    gelu: (u) => tf.mul(tf.mul(u, 0.5), tf.add(tf.erf(tf.mul(u, Math.SQRT1_2)), 1)),
    tanh: (x) => tf.tanh(x),
    add: (a, b) => tf.add(a, b),
    maxPool: (x, k, stride, pad) => tf.maxPool(tf.pad(x as tf.Tensor4D, [[0, 0], [pad, pad], [pad, pad], [0, 0]], -Infinity), k, stride, "valid"),
    spatialMean: (x) => tf.mean(x, [1, 2]),
    flatten: (x) => tf.transpose(x, [0, 3, 1, 2]).reshape([x.shape[0], -1]),
    mapToTokens: (x) => x.reshape([x.shape[0], -1, x.shape[3]!]),
    linear,
    layerNorm(x, name, eps) {
      const mean = tf.mean(x, -1, true);
      const centred = tf.sub(x, mean);
      const variance = tf.mean(tf.square(centred), -1, true);
      const normed = tf.mul(centred, tf.rsqrt(tf.add(variance, eps)));
      return tf.add(tf.mul(normed, w.get(`${name}.weight`)), w.get(`${name}.bias`));
    },
    prependToken(x, name) {
      const [n, , d] = x.shape;
      return tf.concat([tf.broadcastTo(w.get(name), [n, 1, d]), x], 1);
    },
    addParam: (x, name) => tf.add(x, w.get(name)),
    selfAttention(qkv, h, hd) {
      const [n, t] = qkv.shape;
      const d = h * hd;
      const heads = (i: number) => tf.transpose(tf.slice(qkv, [0, 0, i * d], [n, t, d]).reshape([n, t, h, hd]), [0, 2, 1, 3]); // [N, H, T, hd]
      const q = tf.div(heads(0), Math.sqrt(hd));
      const attn = tf.softmax(tf.matMul(q, heads(1), false, true)); // [N, H, T, T]
      return tf.transpose(tf.matMul(attn, heads(2)), [0, 2, 1, 3]).reshape([n, t, d]);
    },
    firstToken: (x) => {
      const [n, , d] = x.shape as number[];
      return tf.slice(x, [0, 0, 0], [n, 1, d]).reshape([n, d]);
    },
  };
}

/**
 * Run `stages` on `x` (NHWC for image networks), returning the requested stage outputs by name: maps as NCHW
 * (`nchw`, default) or NHWC, other outputs as they are. With stopEarly (default) the pass ends after the
 * last requested stage. The caller disposes the returned tensors.
 */
export function runStagesTfjs(
  stages: Stage[],
  w: TfWeights,
  x: tf.Tensor,
  opts: { layers?: string[]; stopEarly?: boolean; nchw?: boolean; what: string },
): Map<string, tf.Tensor> {
  const all = stages.map((s) => s.name);
  const { wanted, last } = selectLayers(all, opts.layers, opts.what);
  const stopEarly = opts.stopEarly ?? true;
  const nchw = opts.nchw ?? true;
  const ops = tfjsOps(w);
  const out = new Map<string, tf.Tensor>();
  let cur: tf.Tensor = x;
  try {
    for (let i = 0; i < stages.length && !(stopEarly && i > last); i++) {
      const prev = cur;
      cur = tf.tidy(() => stages[i].apply(ops, prev));
      if (prev !== cur && prev !== x) prev.dispose();
      if (wanted.has(stages[i].name)) out.set(stages[i].name, cur.rank === 4 && nchw ? nhwcToNchw(cur as tf.Tensor4D) : cur.clone());
    }
    return out;
  } catch (e) {
    for (const t of out.values()) t.dispose();
    throw e;
  } finally {
    if (cur !== x) cur.dispose();
  }
}
