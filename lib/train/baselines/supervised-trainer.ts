/**
 * Training of the supervised reference (./encoder-classifier: the embedded DDPM's encoder half with a
 * classification head) on Fashion-MNIST's train split, resumable (./train-loop).
 *
 * Per step: the step's batch (data order a pure function of (seed, step), lib/train/batches),
 * loss = mean cross-entropy of the logits, AdamW. A seeded, class-stratified holdout of the train split
 * (`valPerClass` images per class) is never trained on: its accuracy is logged every `evalEvery` steps
 * (eval.csv) for the model card. (Probing in notebook 08 carves its own validation split.)
 *
 * Run folder: as ./train-loop, plus
 *   supervised.safetensors   encoder (U-Net names: time_embed.*, input_blocks.*, middle_block.*) + head
 *                            (out.0 GroupNorm, out.3 linear), PyTorch layout
 *   model.json               U-Net kwargs, classes, step, holdout, training settings
 *   loss.csv (cross-entropy), metrics.csv (loss, train_acc per step), eval.csv (val_acc, val_loss)
 */
import * as fs from "fs";
import * as path from "path";
import * as tf from "@tensorflow/tfjs";
import { writeAtomically } from "../../model/checkpoint/atomic";
import { Rng } from "../../rng";
import { shuffleInPlace } from "../../data/fashion-mnist";
import { AdamW } from "../adamw";
import { StepSampler } from "../batches";
import { DEFAULT_TRAIN_CONFIG } from "../trainer";
import { installTrainingKernels } from "../wasm-kernels";
import { configToKwargs, createUNetConfig, UNetConfig, UNetFlags } from "../../model/unet/index";
import { encoderClassifierInit, encoderClassifierSpecs, encoderClassify } from "./encoder-classifier";
import { NamedVariables, readNamed, saveNamed, variablesFrom, weightSource } from "./named-params";
import { LoopConfig, LoopResult, runTraining, Trainable } from "./train-loop";
import type { ProgressMode } from "../../display/progress";

export interface SupervisedTrainConfig extends LoopConfig {
  /** U-Net flags (the embedded DDPM's by default); only the encoder half is built. */
  model: Partial<UNetFlags>;
  classes: number;
  lr: number;
  weightDecay: number;
  /** Holdout images per class (never trained on). */
  valPerClass: number;
}

/**
 * 300 steps x 32 = 9,600 images (0.16 epoch): what ~25 minutes of this 2-core machine allow at ~5 s a
 * step (the encoder half costs more per image than the GAN, and the run was bounded in wall-clock).
 */
export const DEFAULT_SUPERVISED_CONFIG: Readonly<SupervisedTrainConfig> = Object.freeze({
  model: DEFAULT_TRAIN_CONFIG.model, classes: 10, steps: 300, batchSize: 32, seed: 0, lr: 1e-3, weightDecay: 0,
  valPerClass: 50, checkpointEvery: 50, keepCheckpoints: 2, evalEvery: 100,
}) as SupervisedTrainConfig;

export const SUPERVISED_WEIGHTS = "supervised.safetensors";

/** Labelled training images: positions 0..n-1, NHWC batches in [-1, 1]. */
export interface LabelledData {
  n: number;
  shape: [number, number, number];
  labels: Int32Array;
  batch(idx: ArrayLike<number>): Float32Array;
  description?: string;
}

/**
 * The supervised trainer's own held-out set (its validation curve in the model card): `perClass` positions of
 * each class, the first met in one seeded shuffle of all positions, go to `val`, the rest to `train`.
 * Not the notebooks' validation split (lib/experiments/protocol/split.ts): this rule is frozen because the
 * committed run (assets/fashion-mnist-supervised, model.json `holdout`) was trained with it, and resuming or
 * re-checking that run must hold out the same images.
 */
export function stratifiedHoldout(labels: Int32Array, perClass: number, seed: number): { train: Int32Array; val: Int32Array } {
  const order = Int32Array.from({ length: labels.length }, (_, i) => i);
  shuffleInPlace(order, new Rng(seed, 2 ** 44));
  const taken = new Map<number, number>();
  const val: number[] = [];
  const train: number[] = [];
  for (const i of order) {
    const k = taken.get(labels[i]) ?? 0;
    if (k < perClass) {
      val.push(i);
      taken.set(labels[i], k + 1);
    } else train.push(i);
  }
  return { train: Int32Array.from(train).sort(), val: Int32Array.from(val).sort() };
}

/** The encoder-classifier as named variables. */
export class EncoderClassifier {
  constructor(readonly unet: UNetConfig, readonly classes: number, readonly vars: NamedVariables) {}

  static fresh(unet: UNetConfig, classes: number, seed: number): EncoderClassifier {
    return new EncoderClassifier(unet, classes, variablesFrom(encoderClassifierSpecs(unet, classes), encoderClassifierInit(unet, classes, seed), "encoder-classifier init"));
  }

  static async load(file: string, unet: UNetConfig, classes = 10): Promise<EncoderClassifier> {
    const specs = encoderClassifierSpecs(unet, classes);
    return new EncoderClassifier(unet, classes, variablesFrom(specs, await readNamed(file, specs), file));
  }

  async save(file: string, metadata: Record<string, string> = {}): Promise<void> {
    await saveNamed(file, encoderClassifierSpecs(this.unet, this.classes), this.vars, { model: "encoder-classifier", unet_kwargs: JSON.stringify(configToKwargs(this.unet)), ...metadata });
  }

  forward(x: tf.Tensor4D, opts: { capture?: string[]; stopEarly?: boolean } = {}) {
    return encoderClassify(this.unet, weightSource(this.vars), x, opts);
  }

  /** Accuracy and mean cross-entropy on images (positions of `data`), in batches. */
  score(data: LabelledData, positions: Int32Array, batch = 100): { acc: number; loss: number } {
    let correct = 0;
    let loss = 0;
    const [h, w, c] = data.shape;
    for (let s = 0; s < positions.length; s += batch) {
      const idx = positions.subarray(s, s + batch);
      tf.tidy(() => {
        const logits = this.forward(tf.tensor4d(data.batch(idx), [idx.length, h, w, c])).logits!;
        const y = tf.tensor1d(Array.from(idx, (i) => data.labels[i]), "int32");
        correct += tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), y), "float32")).dataSync()[0];
        loss += tf.sum(crossEntropy(logits, y, this.classes)).dataSync()[0];
      });
    }
    return { acc: correct / positions.length, loss: loss / positions.length };
  }

  dispose(): void {
    for (const v of this.vars.values()) v.dispose();
  }
}

/** Per-sample cross-entropy of logits [B, K] for labels y [B]. */
function crossEntropy(logits: tf.Tensor2D, y: tf.Tensor1D, classes: number): tf.Tensor1D {
  return tf.neg(tf.sum(tf.mul(tf.oneHot(y, classes), tf.logSoftmax(logits)), 1)) as tf.Tensor1D;
}

class SupervisedReplica implements Trainable {
  readonly optimizers: AdamW[];
  private readonly sampler: StepSampler;
  constructor(private readonly dir: string, private readonly config: SupervisedTrainConfig, private readonly data: LabelledData, private readonly split: { train: Int32Array; val: Int32Array }, readonly net: EncoderClassifier) {
    this.optimizers = [new AdamW(net.vars, { lr: config.lr, weightDecay: config.weightDecay })];
    this.sampler = new StepSampler(split.train.length, config.batchSize, 1, 1, config.seed);
  }

  get groups() {
    return { param: this.net.vars, adam_m: this.optimizers[0].m, adam_v: this.optimizers[0].v };
  }

  step(step: number) {
    const pos = Int32Array.from(this.sampler.draw(step).indices, (i) => this.split.train[i]);
    const [h, w, c] = this.data.shape;
    let loss = NaN;
    let acc = NaN;
    tf.tidy(() => {
      const x = tf.tensor4d(this.data.batch(pos), [pos.length, h, w, c]);
      const y = tf.tensor1d(Array.from(pos, (i) => this.data.labels[i]), "int32");
      let logits: tf.Tensor2D | null = null;
      const r = tf.variableGrads(() => {
        logits = this.net.forward(x).logits!;
        return tf.mean(crossEntropy(logits, y, this.net.classes)) as tf.Scalar;
      }, [...this.net.vars.values()]);
      loss = r.value.dataSync()[0];
      acc = tf.mean(tf.cast(tf.equal(tf.argMax(logits!, 1), y), "float32")).dataSync()[0];
      const grads = new Map<string, tf.Tensor>();
      for (const [name, v] of this.net.vars) grads.set(name, r.grads[v.name]);
      this.optimizers[0].update(grads);
    });
    return { loss, metrics: { loss, train_acc: acc } };
  }

  evaluate() {
    const s = this.net.score(this.data, this.split.val);
    return { val_acc: s.acc, val_loss: s.loss };
  }

  async export(step: number): Promise<void> {
    await this.net.save(path.join(this.dir, SUPERVISED_WEIGHTS), { step: String(step) });
    const manifest = {
      model: "encoder-classifier", weights: SUPERVISED_WEIGHTS, step, steps: this.config.steps, classes: this.net.classes,
      unet_kwargs: configToKwargs(this.net.unet), flags: this.config.model, timestep: 0,
      head: "out.0 GroupNorm32 - SiLU - global average pool - out.3 linear (guided-diffusion EncoderUNetModel, pool 'adaptive')",
      holdout: { per_class: this.config.valPerClass, seed: this.config.seed, n: this.split.val.length, note: "train-split positions never trained on (validation curve of the model card)" },
      data: { n: this.data.n, trained_on: this.split.train.length, shape: this.data.shape, range: [-1, 1], layout: "NHWC", description: this.data.description },
      train: { batch_size: this.config.batchSize, lr: this.config.lr, weight_decay: this.config.weightDecay, seed: this.config.seed, loss: "cross-entropy", images_seen: step * this.config.batchSize },
    };
    await writeAtomically(path.join(this.dir, "model.json"), async (tmp) => fs.promises.writeFile(tmp, JSON.stringify(manifest, null, 2) + "\n"));
  }

  dispose(): void {
    this.optimizers[0].dispose();
    this.net.dispose();
  }
}

export interface SupervisedTrainOptions {
  dir: string;
  data: LabelledData;
  config?: Partial<SupervisedTrainConfig>;
  maxStepsThisCall?: number;
  shouldStop?: () => boolean;
  progress?: ProgressMode | false;
  log?: (line: string) => void;
  checkpointOnStop?: boolean;
}

export async function trainSupervised(opts: SupervisedTrainOptions): Promise<LoopResult<SupervisedTrainConfig>> {
  const config: SupervisedTrainConfig = { ...DEFAULT_SUPERVISED_CONFIG, ...opts.config, model: { ...DEFAULT_SUPERVISED_CONFIG.model, ...(opts.config?.model ?? {}) } };
  installTrainingKernels();
  return runTraining({
    dir: opts.dir, config, label: "train supervised", data: { n: opts.data.n, shape: opts.data.shape, description: opts.data.description },
    build: async (c) => {
      const unet = createUNetConfig(c.model);
      const [h, w, ch] = opts.data.shape;
      if (h !== unet.imageSize || w !== unet.imageSize || ch !== unet.inChannels) throw new Error(`data is ${h}x${w}x${ch}, the model takes ${unet.imageSize}x${unet.imageSize}x${unet.inChannels}`);
      const split = stratifiedHoldout(opts.data.labels, c.valPerClass, c.seed);
      return new SupervisedReplica(opts.dir, c, opts.data, split, EncoderClassifier.fresh(unet, c.classes, c.seed));
    },
    maxStepsThisCall: opts.maxStepsThisCall, shouldStop: opts.shouldStop, progress: opts.progress, log: opts.log, checkpointOnStop: opts.checkpointOnStop,
  });
}
