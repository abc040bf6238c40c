/**
 * MLP head (the paper's Fig. 1 B) and, with no hidden layer, the linear head (Fig. 1 A), as a Head for
 * the generic trainer (train-head.ts). As in the authors' later code: dense layers with bias, ReLU
 * between them, no normalisation, no dropout.
 *
 * Input: any row shape, flattened (use poolSource(source, p) to train on adaptive-average-pooled block
 * maps, channel-major as PyTorch). Optional standardisation with statistics computed by
 * featureStats(trainSource) (streamed), applied inside the head so scoring uses the same ones.
 */
import * as tf from "@tensorflow/tfjs";
import { Head, ParamBuilder } from "./head";
import { rowSize } from "./source";

export interface MlpHeadOptions {
  inShape: readonly number[];
  numClasses: number;
  /** Hidden widths; [] = linear head. */
  hidden: readonly number[];
  seed: number;
  /** Per-value mean and std (featureStats): rows become (x - mean) / std before the first layer. */
  stats?: { mean: Float32Array; std: Float32Array } | null;
  /** Start a linear head (no hidden layer) from zero weights and bias (a convex problem: any start reaches the optimum). */
  zeros?: boolean;
}

export function createMlpHead(opts: MlpHeadOptions): Head {
  const inDim = rowSize(opts.inShape);
  for (const h of opts.hidden) if (!(Number.isInteger(h) && h > 0)) throw new Error(`createMlpHead: hidden width ${h} must be a positive integer`);
  if (opts.stats && (opts.stats.mean.length !== inDim || opts.stats.std.length !== inDim)) {
    throw new Error(`createMlpHead: stats hold ${opts.stats.mean.length} means and ${opts.stats.std.length} stds for rows of ${inDim} values`);
  }
  const pb = new ParamBuilder(opts.seed, 0x31f);
  const layers: { w: tf.Variable; b: tf.Variable }[] = [];
  let prev = inDim;
  if (opts.zeros && opts.hidden.length) throw new Error("createMlpHead: zero initialisation is for a linear head (no hidden layer)");
  [...opts.hidden, opts.numClasses].forEach((out, i) => {
    const { w, b } = opts.zeros ? { w: pb.constant(`fc${i}.weight`, [prev, out], 0), b: pb.constant(`fc${i}.bias`, [out], 0) } : pb.dense(`fc${i}`, prev, out);
    layers.push({ w, b: b as tf.Variable });
    prev = out;
  });
  const mean = opts.stats ? tf.keep(tf.tensor1d(opts.stats.mean)) : null;
  const invStd = opts.stats ? tf.keep(tf.tensor1d(opts.stats.std.map((s) => 1 / s))) : null;
  return {
    kind: "mlp",
    config: { hidden: [...opts.hidden], standardised: !!opts.stats },
    inShape: [...opts.inShape],
    numClasses: opts.numClasses,
    params: pb.params,
    apply(x) {
      let h: tf.Tensor2D = mean && invStd ? x.sub(mean).mul(invStd) : x;
      layers.forEach((l, i) => {
        h = h.matMul(l.w).add(l.b);
        if (i < layers.length - 1) h = tf.relu(h);
      });
      return h;
    },
    dispose() {
      for (const p of pb.params) p.variable.dispose();
      mean?.dispose();
      invStd?.dispose();
    },
  };
}
