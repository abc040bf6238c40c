/**
 * DifFeed as a trainable head (the extended paper, arXiv 2311.17921; the pieces are in
 * lib/model/unet/feedback.ts): rows are noised images x_t, channel-major [C, H, W], all at one timestep
 * `t`. Per batch:
 *
 *   first pass   the frozen U-Net on x_t, stopped at the deepest feedback source block; no gradient
 *   feedback     one Conv1x1 -> BatchNorm2d -> ReLU layer per source decoder block b, onto its mirror
 *                encoder block 2E+2-b (trainable)
 *   second pass  the same U-Net on the same x_t with the (bilinearly resized) feedback added after those
 *                encoder blocks, stopped at `block`; differentiable in the feedback layers
 *   head         the attention head (./attention.ts) on the second pass's `block` map
 *
 * `params` = feedback layers' (prefixed `feedback.`, official state_dict names after it) + the attention
 * head's (prefixed `attention.`); the U-Net's weights are never among them and are never written.
 * `buffers` = the BatchNorm running statistics. Training mode (`setTraining(true)`, switched by trainHead)
 * normalises with the batch statistics and moves the running ones as PyTorch's train-mode BatchNorm2d does;
 * otherwise (the default, and evaluateHead) the running statistics are used.
 *
 * The U-Net in the spec: a `FrozenUNet`, a runtime value (the loaded model and its model id) whose JSON
 * form is the id, so a spec stays printable and fingerprintable ({"kind":"diffeed","unet":"ckpt:...",...}).
 * Make one with `frozenUNet(unet, id)` or `loadFrozenUNet(source)` (id = modelIdOf(source)); `unetShape(config,
 * id)` gives one without weights, enough for `specParams`. A head does not own its U-Net: head.dispose()
 * frees the feedback layers and the attention head; the caller disposes the U-Net after its heads.
 *
 * The first pass does not depend on any trainable value, so it runs as one custom-gradient op: tfjs
 * records nothing inside a kernel (its tape is off while a kernel runs), so none of its activations is
 * kept for a backward pass that would never reach them (as the official code runs it under no_grad).
 */
import * as tf from "@tensorflow/tfjs";
import { loadModel } from "../model/load-model";
import { ModelSource, modelIdOf } from "../model/model-source";
import { peakActivationBytes } from "../model/unet/activations";
import { parseBlock } from "../model/unet/blocks";
import { UNetConfig } from "../model/unet/config";
import { blockRows, difFeedFirstPass, difFeedSecondPass, FeedbackLayers, feedbackParams, feedbackPlan } from "../model/unet/feedback";
import { UNet } from "../model/unet/model";
import { buildPlan } from "../model/unet/plan";
import { createAttentionHead } from "./attention";
import { Head, HeadTrace, rowsToNHWC } from "./head";
import { AttentionHeadConfig, attentionParams } from "./params";

/** The frozen U-Net of a DifFeed spec: its config, its model id (its JSON form) and, to build a head, the model. */
export interface FrozenUNet {
  readonly id: string;
  readonly config: UNetConfig;
  /** The loaded model; null for a shape-only value (parameter counts). */
  readonly unet: UNet | null;
  toJSON(): string;
  toString(): string;
}

function frozen(id: string, config: UNetConfig, unet: UNet | null): FrozenUNet {
  if (typeof id !== "string" || !id) throw new Error(`frozenUNet: the model id must be a non-empty string, got ${JSON.stringify(id)}`);
  return { id, config, unet, toJSON: () => id, toString: () => id };
}

/** A loaded U-Net with its model id (e.g. modelIdOf(source)). */
export function frozenUNet(unet: UNet, id: string): FrozenUNet {
  return frozen(id, unet.config, unet);
}

/** A U-Net described by its config only: enough for specParams, not for building a head. */
export function unetShape(config: UNetConfig, id: string): FrozenUNet {
  return frozen(id, config, null);
}

/** Load the model of a source as a FrozenUNet (id: modelIdOf(source)). The caller disposes `.unet`. */
export async function loadFrozenUNet(source: ModelSource): Promise<FrozenUNet> {
  return frozenUNet(await loadModel(source), modelIdOf(source));
}

export interface DifFeedConfig extends AttentionHeadConfig {
  unet: FrozenUNet;
  /** The timestep of every row (unscaled, 0..T-1 of the model's schedule). */
  t: number;
  /** Decoder blocks (paper numbers) whose first-pass outputs feed back. */
  feedback: number[];
  /** The second-pass block the attention head reads. */
  block: number;
}

export interface DifFeedHeadOptions extends DifFeedConfig {
  /** x_t, [C, H, W]. */
  inShape: readonly number[];
  numClasses: number;
  seed: number;
}

export interface DifFeedHead extends Head {
  readonly feedback: FeedbackLayers;
  /** The attention head on the second pass's block (its own, unprefixed parameter names). */
  readonly attention: Head;
  readonly buffers: ReadonlyArray<{ name: string; variable: tf.Variable }>;
  readonly training: boolean;
  setTraining(on: boolean): void;
  /** Rows per U-Net call in evaluation mode (default: difFeedEvalBatch); training uses the trainer's batches. */
  evalBatch: number;
}

/** [C, H, W] of `block`'s output for x_t of `inShape` [C, H, W]; checks the spec against the U-Net. */
export function difFeedBlockShape(cfg: DifFeedConfig, inShape: readonly number[]): [number, number, number] {
  const config = cfg.unet.config;
  const where = `diffeed head (U-Net ${cfg.unet.id})`;
  if (config.numClasses !== null) throw new Error(`${where}: the U-Net is class-conditional (${config.numClasses} classes); DifFeed runs it without labels, so it needs an unconditional one`);
  if (inShape.length !== 3) throw new Error(`${where}: rows must be noised images x_t [C, H, W], got ${JSON.stringify(inShape)}`);
  const [c, h, w] = inShape;
  const m = buildPlan(config).sizeMultiple;
  if (c !== config.inChannels || h % m || w % m || h < m || w < m) {
    throw new Error(`${where}: rows ${JSON.stringify(inShape)} are not images this U-Net takes ([${config.inChannels}, H, W], H and W multiples of ${m})`);
  }
  if (!(Number.isInteger(cfg.t) && cfg.t >= 0)) throw new Error(`${where}: t ${cfg.t} must be a non-negative integer timestep`);
  if (!Array.isArray(cfg.feedback) || !cfg.feedback.length) throw new Error(`${where}: feedback must list at least one decoder block, got ${JSON.stringify(cfg.feedback)}`);
  const plan = feedbackPlan(config, cfg.feedback);
  const b = parseBlock(config, cfg.block);
  for (const l of plan) {
    if (l.target > b.number) throw new Error(`${where}: the head's block ${b.number} runs before encoder block ${l.target}, where feedback from block ${l.source} is added; choose a later block`);
  }
  return [b.outCh, h / b.outDs, w / b.outDs];
}

function attentionConfig(cfg: DifFeedConfig): AttentionHeadConfig {
  return { dim: cfg.dim, heads: cfg.heads, mlpRatio: cfg.mlpRatio, blocks: cfg.blocks, pool: cfg.pool, project: cfg.project };
}

/** Feedback layers + attention head on `block` (no tensors built). */
export function difFeedParams(cfg: DifFeedConfig, inShape: readonly number[], numClasses: number): number {
  const shape = difFeedBlockShape(cfg, inShape);
  return feedbackParams(feedbackPlan(cfg.unet.config, cfg.feedback)) + attentionParams(shape, numClasses, attentionConfig(cfg));
}

/** Activation memory one evaluation chunk may take (the feature extractor's default-batch budget). */
const EVAL_ACTIVATION_BUDGET = 2 * 2 ** 30;

/**
 * Rows per U-Net call in evaluation: the largest power of two up to 64 whose two passes' estimated
 * activations (peakActivationBytes at the rows' size, both passes counted in full) fit the budget; at least 1.
 */
export function difFeedEvalBatch(config: UNetConfig, blocks: number[], inShape: readonly number[]): number {
  const scale = (inShape[1] * inShape[2]) / (config.imageSize * config.imageSize);
  const per = 2 * peakActivationBytes(config, blocks) * scale;
  let b = 1;
  while (b * 2 <= 64 && b * 2 * per <= EVAL_ACTIVATION_BUDGET) b *= 2;
  return b;
}

/** The first pass as one op with no recorded gradient (see the module comment). Caller disposes the maps. */
function firstPassUntaped(unet: UNet, layers: FeedbackLayers, x: tf.Tensor4D, t: number[]): Map<number, tf.Tensor4D> {
  let maps: Map<number, tf.Tensor4D> | null = null;
  const token = tf.customGrad((xin) => {
    maps = difFeedFirstPass(unet, layers, xin as tf.Tensor4D, t);
    for (const v of maps.values()) tf.keep(v); // out of the op's own tidy; disposed by the caller
    return { value: tf.scalar(0), gradFunc: () => tf.zerosLike(xin as tf.Tensor) };
  })(x);
  token.dispose();
  return maps!;
}

export function createDifFeedHead(opts: DifFeedHeadOptions): DifFeedHead {
  const shape = difFeedBlockShape(opts, opts.inShape);
  const unet = opts.unet.unet;
  if (!unet) throw new Error(`diffeed head: U-Net ${opts.unet.id} has no weights here (made with unetShape, for parameter counts); build with frozenUNet(unet, id)`);
  const { t, block } = opts;
  const feedback = new FeedbackLayers(unet.config, opts.feedback, opts.seed);
  const attention = createAttentionHead({ ...attentionConfig(opts), inShape: shape, numClasses: opts.numClasses, seed: opts.seed });
  const params = [...feedback.params.map((p) => ({ name: `feedback.${p.name}`, variable: p.variable })), ...attention.params.map((p) => ({ name: `attention.${p.name}`, variable: p.variable }))];
  const buffers = feedback.buffers.map((p) => ({ name: `feedback.${p.name}`, variable: p.variable }));
  let training = false;
  const inShape = [...opts.inShape];
  const forward = (x: tf.Tensor2D, trace?: HeadTrace): tf.Tensor2D => {
    const n = x.shape[0];
    const ts = new Array<number>(n).fill(t);
    const xt = rowsToNHWC(x, inShape);
    const first = firstPassUntaped(unet, feedback, xt, ts);
    let second: Map<number, tf.Tensor4D>;
    try {
      second = difFeedSecondPass(unet, feedback, xt, ts, first, [block], { training, updateRunningStats: training });
    } finally {
      for (const v of first.values()) v.dispose();
    }
    const m = second.get(block)!;
    const rows = blockRows(m);
    m.dispose();
    return attention.apply(rows, trace);
  };
  const head: DifFeedHead = {
    kind: "diffeed",
    config: { unet: opts.unet.id, t, feedback: [...opts.feedback], block, ...attention.config },
    inShape,
    numClasses: opts.numClasses,
    params,
    buffers,
    feedback,
    attention,
    get training() {
      return training;
    },
    setTraining(on: boolean) {
      training = on;
    },
    evalBatch: difFeedEvalBatch(unet.config, [...opts.feedback, block], inShape),
    apply(x, trace) {
      const n = x.shape[0];
      const chunk = head.evalBatch;
      if (training || n <= chunk) return forward(x, trace);
      // Evaluation in chunks that fit memory (evaluateHead's batches are sized for stored rows, not U-Net passes).
      const parts: tf.Tensor2D[] = [];
      for (let s = 0; s < n; s += chunk) parts.push(tf.tidy(() => forward(x.slice([s, 0], [Math.min(chunk, n - s), -1]))));
      return tf.concat(parts, 0);
    },
    dispose() {
      feedback.dispose();
      attention.dispose();
    },
  };
  return head;
}
