/**
 * CNN head (the paper's Fig. 1 C). The paper does not publish its CNN head; this is our design:
 *
 *   [C, H, W] block map
 *   -> optional adaptive average pooling to prePool x prePool (lighter compute; null keeps the map)
 *   -> 1x1 conv C -> width, ReLU                       (channel reduction)
 *   -> depth x [3x3 conv width -> width, stride 2, TensorFlow "same" padding, ReLU] (halving H, W)
 *   -> global average pool -> dense width -> K
 *
 * Parameters (params.ts cnnParams): C*w + w + depth*(9w^2 + w) + w*K + K. The size knob is `width`
 * (and `depth`): on the paper's 1024 x 16 x 16 map with 1000 classes and depth 2, width 256 gives
 * 1.70M, 384 3.43M, 512 5.76M, 768 12.17M, 1024 20.95M, 1536 45.58M, 1792 61.44M, 1856 65.77M, covering
 * the 2.7M-66M range of the paper's CNN points. No normalisation or dropout; PyTorch-default init.
 */
import * as tf from "@tensorflow/tfjs";
import { CnnHeadConfig } from "./params";
import { Head, ParamBuilder, rowsToNHWC } from "./head";

export interface CnnHeadOptions extends CnnHeadConfig {
  /** [C, H, W]. */
  inShape: readonly number[];
  numClasses: number;
  seed: number;
}

export function createCnnHead(opts: CnnHeadOptions): Head {
  if (opts.inShape.length !== 3) throw new Error(`createCnnHead: rows must be [C, H, W], got ${JSON.stringify(opts.inShape)}`);
  if (!(Number.isInteger(opts.width) && opts.width > 0)) throw new Error(`createCnnHead: width ${opts.width} must be a positive integer`);
  if (!(Number.isInteger(opts.depth) && opts.depth >= 0)) throw new Error(`createCnnHead: depth ${opts.depth} must be a non-negative integer`);
  const [c, h, w] = opts.inShape;
  if (opts.prePool !== null && !(Number.isInteger(opts.prePool) && opts.prePool > 0 && opts.prePool <= Math.min(h, w) && h % opts.prePool === 0 && w % opts.prePool === 0)) {
    throw new Error(`createCnnHead: prePool ${opts.prePool} must divide the ${h}x${w} map`);
  }
  const pb = new ParamBuilder(opts.seed, 0xc22);
  const reduce = pb.conv("reduce", 1, c, opts.width);
  const convs = Array.from({ length: opts.depth }, (_, i) => pb.conv(`conv${i}`, 3, opts.width, opts.width));
  const fc = pb.dense("fc", opts.width, opts.numClasses);
  return {
    kind: "cnn",
    config: { width: opts.width, depth: opts.depth, prePool: opts.prePool },
    inShape: [...opts.inShape],
    numClasses: opts.numClasses,
    params: pb.params,
    apply(x) {
      let m: tf.Tensor4D = rowsToNHWC(x, opts.inShape);
      if (opts.prePool !== null && opts.prePool !== h) {
        // Exact adaptive pooling when prePool divides H and W: equal non-overlapping windows.
        m = tf.avgPool(m, [h / opts.prePool, w / opts.prePool], [h / opts.prePool, w / opts.prePool], "valid");
      }
      m = tf.relu(tf.conv2d(m, reduce.w as tf.Tensor4D, 1, "valid").add(reduce.b)) as tf.Tensor4D;
      for (const cv of convs) m = tf.relu(tf.conv2d(m, cv.w as tf.Tensor4D, 2, "same").add(cv.b)) as tf.Tensor4D;
      const pooled = m.mean([1, 2]) as tf.Tensor2D;
      return pooled.matMul(fc.w).add(fc.b as tf.Variable);
    },
    dispose() {
      for (const p of pb.params) p.variable.dispose();
    },
  };
}
