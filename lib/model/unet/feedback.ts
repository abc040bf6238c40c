/**
 * DifFeed's feedback layers (the extended paper, arXiv 2311.17921; `soumik-kanad/diffssl`
 * ssl_model_feedback_fusion.py, scripts/feedback.sh).
 *
 * A first U-Net pass collects the outputs of decoder blocks b (paper numbers, 1-based). Each goes through
 * its own layer, Conv1x1 (no bias) C_b -> C_m, BatchNorm2d(C_m), ReLU, where m = 2E + 2 - b is the mirror
 * encoder block of b (E = number of input blocks: the input block whose output decoder block b
 * concatenates as its skip; the official code hard-codes ADM-256's 38 - b). A second pass with the same
 * x_t and t adds each map, resized bilinearly, to the output of its encoder block m before it goes on
 * and onto the skip stack (UNet.forward's `addToInputBlocks`); the chosen blocks of that pass feed a head.
 * The U-Net stays frozen, but the second pass is differentiable, so gradients reach these layers.
 *
 * Parameters per layer: C_b * C_m (conv) + 2 C_m (BatchNorm affine); running statistics are buffers.
 * Weights are named as the official state_dict (`<i>.0.weight` [C_m, C_b, 1, 1] there, stored [C_b, C_m]
 * here; `<i>.1.weight/bias/running_mean/running_var`).
 */
import * as tf from "@tensorflow/tfjs";
import { ParamBuilder } from "../../heads/head";
import { blockCount, parseBlock } from "./blocks";
import { UNetConfig } from "./config";
import { toNCHW } from "./layers";
import { UNet } from "./model";
import { buildPlan } from "./plan";

export const BATCH_NORM_EPS = 1e-5;
/** PyTorch's BatchNorm2d default (the official feedback layers keep it). */
export const BATCH_NORM_MOMENTUM = 0.1;

/** The encoder block whose output decoder block `b` takes as its skip: 2E + 2 - b. Throws unless b is a decoder block. */
export function mirrorBlock(config: UNetConfig, b: number): number {
  const blocks = buildPlan(config).blocks;
  const e = blocks.filter((x) => x.section === "input").length;
  if (!(Number.isInteger(b) && b >= e + 2 && b <= blockCount(config))) {
    throw new Error(`feedback block ${b}: feedback comes from decoder blocks ${e + 2}..${blocks.length} of this ${blocks.length}-block U-Net`);
  }
  const m = 2 * e + 2 - b;
  const skip = blocks[b - 1].skipFrom;
  if (skip !== blocks[m - 1].name) throw new Error(`feedback block ${b}: mirror ${m} (${blocks[m - 1].name}) is not its skip source ${skip}`);
  return m;
}

export interface FeedbackLayerSpec {
  /** Decoder block (paper number) whose first-pass output feeds the layer. */
  source: number;
  /** Encoder block it is added to (mirrorBlock). */
  target: number;
  inCh: number;
  outCh: number;
}

/** One layer per source block, in the order given. */
export function feedbackPlan(config: UNetConfig, sources: readonly number[]): FeedbackLayerSpec[] {
  if (new Set(sources).size !== sources.length) throw new Error(`feedback blocks ${JSON.stringify(sources)} repeat a block`);
  return sources.map((source) => {
    const target = mirrorBlock(config, source);
    return { source, target, inCh: parseBlock(config, source).outCh, outCh: parseBlock(config, target).outCh };
  });
}

/** Trainable values of the feedback layers (conv + BatchNorm weight and bias). */
export function feedbackParams(specs: readonly FeedbackLayerSpec[]): number {
  return specs.reduce((s, l) => s + l.inCh * l.outCh + 2 * l.outCh, 0);
}

interface Layer {
  spec: FeedbackLayerSpec;
  conv: tf.Variable;
  gamma: tf.Variable;
  beta: tf.Variable;
  runningMean: tf.Variable;
  runningVar: tf.Variable;
}

export class FeedbackLayers {
  /** Trainable parameters, by official state_dict name. */
  readonly params: { name: string; variable: tf.Variable }[];
  /** BatchNorm running statistics (not trained), by official name. */
  readonly buffers: { name: string; variable: tf.Variable }[] = [];
  private readonly layers: Layer[];

  /** PyTorch's default initialisation: conv uniform +-1/sqrt(C_b), BatchNorm weight 1, bias 0, mean 0, var 1. */
  constructor(readonly config: UNetConfig, sources: readonly number[], seed = 0) {
    const specs = feedbackPlan(config, sources);
    const pb = new ParamBuilder(seed, 0xfeed);
    this.layers = specs.map((spec, i) => {
      const conv = pb.dense(`${i}.0`, spec.inCh, spec.outCh, false).w;
      const gamma = pb.constant(`${i}.1.weight`, [spec.outCh], 1);
      const beta = pb.constant(`${i}.1.bias`, [spec.outCh], 0);
      const runningMean = tf.variable(tf.zeros([spec.outCh]), false);
      const runningVar = tf.variable(tf.ones([spec.outCh]), false);
      this.buffers.push({ name: `${i}.1.running_mean`, variable: runningMean }, { name: `${i}.1.running_var`, variable: runningVar });
      return { spec, conv, gamma, beta, runningMean, runningVar };
    });
    this.params = pb.params;
  }

  get specs(): FeedbackLayerSpec[] {
    return this.layers.map((l) => l.spec);
  }

  /**
   * The feedback map of each layer from the first-pass output of its source block (NHWC), keyed by
   * target encoder block. `training`: BatchNorm on batch statistics (over N, H, W; biased variance) as
   * in the official training loop; otherwise on the running statistics (eval). `updateRunningStats`
   * (training only): then move the running statistics as PyTorch's train-mode BatchNorm2d does
   * (momentum 0.1; the variance's batch estimate unbiased).
   */
  maps(features: ReadonlyMap<number, tf.Tensor4D>, training = false, updateRunningStats = false): Map<number, tf.Tensor4D> {
    const out = new Map<number, tf.Tensor4D>();
    for (const l of this.layers) {
      const f = features.get(l.spec.source);
      if (!f) throw new Error(`feedback: no first-pass output of block ${l.spec.source}`);
      if (f.rank !== 4 || f.shape[3] !== l.spec.inCh) throw new Error(`feedback: block ${l.spec.source}'s output has shape [${f.shape.join(", ")}]; expected NHWC with ${l.spec.inCh} channels`);
      out.set(l.spec.target, tf.tidy(() => {
        const [n, h, w, c] = f.shape;
        const y = f.reshape([n * h * w, c]).matMul(l.conv as tf.Tensor2D);
        let mean: tf.Tensor = l.runningMean, variance: tf.Tensor = l.runningVar;
        if (training) {
          mean = y.mean(0);
          variance = y.sub(mean).square().mean(0);
          if (updateRunningStats) {
            const m = n * h * w;
            l.runningMean.assign(l.runningMean.mul(1 - BATCH_NORM_MOMENTUM).add(mean.mul(BATCH_NORM_MOMENTUM)));
            l.runningVar.assign(l.runningVar.mul(1 - BATCH_NORM_MOMENTUM).add(variance.mul((BATCH_NORM_MOMENTUM * m) / Math.max(m - 1, 1))));
          }
        }
        const z = y.sub(mean).mul(tf.rsqrt(variance.add(BATCH_NORM_EPS))).mul(l.gamma).add(l.beta);
        return tf.relu(z).reshape([n, h, w, l.spec.outCh]) as tf.Tensor4D;
      }));
    }
    return out;
  }

  dispose(): void {
    for (const p of [...this.params, ...this.buffers]) p.variable.dispose();
  }
}

/**
 * DifFeed's two passes for one timestep (per sample `t`) on x_t (NHWC). `first` / `second`: blocks
 * (paper numbers) whose first- / second-pass outputs to return, NHWC. The first pass also yields the
 * feedback sources; it runs outside any gradient (call it before tf.variableGrads, as the official code
 * runs it under no_grad). The second pass is differentiable in the feedback layers' parameters (on wasm,
 * with lib/train/wasm-kernels' installTrainingKernels(), as for every U-Net gradient). Second-pass `opts`
 * are FeedbackLayers.maps' `training` and `updateRunningStats`.
 */
export function difFeedFirstPass(unet: UNet, layers: FeedbackLayers, x: tf.Tensor4D, t: number[], first: readonly number[] = []): Map<number, tf.Tensor4D> {
  const want = [...new Set([...layers.specs.map((s) => s.source), ...first])];
  const r = unet.forward(x, t, { capture: want.map(String) });
  r.emb.dispose();
  return new Map(want.map((b) => [b, r.blocks.get(parseBlock(unet.config, b).name)!]));
}

export function difFeedSecondPass(
  unet: UNet,
  layers: FeedbackLayers,
  x: tf.Tensor4D,
  t: number[],
  firstPass: ReadonlyMap<number, tf.Tensor4D>,
  second: readonly number[],
  opts: { training?: boolean; updateRunningStats?: boolean } = {},
): Map<number, tf.Tensor4D> {
  const maps = layers.maps(firstPass, opts.training, opts.updateRunningStats);
  try {
    const r = unet.forward(x, t, { capture: second.map(String), addToInputBlocks: maps });
    r.emb.dispose();
    return new Map(second.map((b) => [b, r.blocks.get(parseBlock(unet.config, b).name)!]));
  } finally {
    for (const m of maps.values()) m.dispose();
  }
}

/** NHWC block output -> channel-major rows [n, C*H*W] (the heads' row layout). */
export function blockRows(m: tf.Tensor4D): tf.Tensor2D {
  return tf.tidy(() => toNCHW(m).reshape([m.shape[0], -1]) as tf.Tensor2D);
}
