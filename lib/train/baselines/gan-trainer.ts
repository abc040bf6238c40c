/**
 * Training of the DCGAN baseline (./dcgan) on Fashion-MNIST, resumable (./train-loop).
 *
 * Per step (the non-saturating GAN loss of Goodfellow et al., as in DCGAN):
 *   x: the step's batch of real images; z ~ N(0, I) (zDim per sample)
 *   D step:  L_D = mean(softplus(−D(x))) + mean(softplus(D(G(z))))     (AdamW on D's weights)
 *   G step:  L_G = mean(softplus(−D(G(z))))  with the same z            (AdamW on G's weights)
 * Data order and z are pure functions of (seed, step) (lib/train/batches' StepSampler).
 *
 * Run folder: as ./train-loop, plus
 *   gan.safetensors   generator and discriminator weights (g.*, d.*; PyTorch layout), every checkpoint
 *   model.json        config, step, data, training settings
 *   loss.csv          L_D per step; metrics.csv: d_loss, g_loss, d_real (mean σ(D(x))), d_fake (mean σ(D(G(z))))
 */
import * as fs from "fs";
import * as path from "path";
import * as tf from "@tensorflow/tfjs";
import { writeAtomically } from "../../model/checkpoint/atomic";
import { AdamW } from "../adamw";
import { StepSampler } from "../batches";
import type { TrainData } from "../data-spec";
import { installTrainingKernels } from "../wasm-kernels";
import { DcganConfig, dcganInit, DEFAULT_DCGAN, discriminate, discriminatorSpecs, generate, generatorSpecs } from "./dcgan";
import { NamedVariables, readNamed, saveNamed, variablesFrom } from "./named-params";
import { LoopConfig, LoopResult, runTraining, Trainable } from "./train-loop";
import type { ProgressMode } from "../../display/progress";

export interface GanTrainConfig extends LoopConfig {
  model: DcganConfig;
  lr: number;
  beta1: number;
  beta2: number;
}

/** 1,200 steps x 64 = 76,800 real images: the images seen by the embedded DDPM (4,800 x 16). */
export const DEFAULT_GAN_CONFIG: Readonly<GanTrainConfig> = Object.freeze({
  model: DEFAULT_DCGAN, steps: 1200, batchSize: 64, seed: 0, lr: 2e-4, beta1: 0.5, beta2: 0.999,
  checkpointEvery: 100, keepCheckpoints: 2, evalEvery: 0,
}) as GanTrainConfig;

export const GAN_WEIGHTS = "gan.safetensors";

/** The generator and discriminator as named variables. */
export class Dcgan {
  constructor(readonly config: DcganConfig, readonly g: NamedVariables, readonly d: NamedVariables) {}

  static fresh(config: DcganConfig, seed: number): Dcgan {
    const gs = generatorSpecs(config);
    const ds = discriminatorSpecs(config);
    return new Dcgan(config, variablesFrom(gs, dcganInit(gs, seed), "generator init"), variablesFrom(ds, dcganInit(ds, seed + 1), "discriminator init"));
  }

  /** Load gan.safetensors (or a run folder's) with its model.json config. */
  static async load(file: string, config: DcganConfig = DEFAULT_DCGAN): Promise<Dcgan> {
    const gs = generatorSpecs(config);
    const ds = discriminatorSpecs(config);
    const all = await readNamed(file, [...gs, ...ds]);
    const pick = (specs: typeof gs) => new Map(specs.map((s) => [s.name, all.get(s.name)!]));
    return new Dcgan(config, variablesFrom(gs, pick(gs), file), variablesFrom(ds, pick(ds), file));
  }

  get specs() {
    return [...generatorSpecs(this.config), ...discriminatorSpecs(this.config)];
  }

  async save(file: string, metadata: Record<string, string> = {}): Promise<void> {
    await saveNamed(file, this.specs, new Map<string, tf.Tensor>([...this.g, ...this.d]), { model: "dcgan", config: JSON.stringify(this.config), ...metadata });
  }

  /** Samples for the seeded latents (batch statistics of the generator's BatchNorm over this batch). */
  sample(n: number, seed: number): Float32Array {
    const z = new StepSampler(1, n, 1, this.config.zDim, seed).draw(0).noise;
    return tf.tidy(() => generate(this.config, { get: (k) => this.g.get(k)! }, tf.tensor2d(z, [n, this.config.zDim])).dataSync() as Float32Array);
  }

  dispose(): void {
    for (const v of [...this.g.values(), ...this.d.values()]) v.dispose();
  }
}

class GanReplica implements Trainable {
  readonly optimizers: AdamW[];
  private readonly sampler: StepSampler;
  constructor(private readonly dir: string, private readonly config: GanTrainConfig, private readonly data: TrainData, readonly gan: Dcgan) {
    const o = { lr: config.lr, beta1: config.beta1, beta2: config.beta2, eps: 1e-8, weightDecay: 0 };
    this.optimizers = [new AdamW(gan.d, o), new AdamW(gan.g, o)];
    this.sampler = new StepSampler(data.n, config.batchSize, 1, config.model.zDim, config.seed);
  }

  get groups() {
    const [od, og] = this.optimizers;
    return { g: this.gan.g, d: this.gan.d, adam_d_m: od.m, adam_d_v: od.v, adam_g_m: og.m, adam_g_v: og.v };
  }

  step(step: number) {
    const c = this.config.model;
    const draw = this.sampler.draw(step);
    const b = this.config.batchSize;
    const [od, og] = this.optimizers;
    const G = { get: (k: string) => this.gan.g.get(k)! };
    const D = { get: (k: string) => this.gan.d.get(k)! };
    const out = { d_loss: NaN, g_loss: NaN, d_real: NaN, d_fake: NaN };
    tf.tidy(() => {
      const x = tf.tensor4d(this.data.batch(draw.indices), [b, 32, 32, 1]);
      const z = tf.tensor2d(draw.noise, [b, c.zDim]);
      const fake = generate(c, G, z);
      let realLogits: tf.Tensor1D | null = null;
      let fakeLogits: tf.Tensor1D | null = null;
      const dr = tf.variableGrads(() => {
        realLogits = discriminate(c, D, x).logits!;
        fakeLogits = discriminate(c, D, fake).logits!;
        return tf.add(tf.mean(tf.softplus(tf.neg(realLogits))), tf.mean(tf.softplus(fakeLogits))) as tf.Scalar;
      }, [...this.gan.d.values()]);
      out.d_loss = dr.value.dataSync()[0];
      out.d_real = tf.mean(tf.sigmoid(realLogits!)).dataSync()[0];
      out.d_fake = tf.mean(tf.sigmoid(fakeLogits!)).dataSync()[0];
      od.update(byName(this.gan.d, dr.grads));
      const gr = tf.variableGrads(() => tf.mean(tf.softplus(tf.neg(discriminate(c, D, generate(c, G, z)).logits!))) as tf.Scalar, [...this.gan.g.values()]);
      out.g_loss = gr.value.dataSync()[0];
      og.update(byName(this.gan.g, gr.grads));
    });
    return { loss: out.d_loss, metrics: out };
  }

  async export(step: number): Promise<void> {
    await this.gan.save(path.join(this.dir, GAN_WEIGHTS), { step: String(step) });
    const manifest = {
      model: "dcgan", weights: GAN_WEIGHTS, step, steps: this.config.steps, config: this.config.model,
      probed_layers: ["d.conv0", "d.conv1", "d.conv2"],
      data: { n: this.data.n, shape: this.data.shape, range: [-1, 1], layout: "NHWC", description: this.data.description },
      train: { batch_size: this.config.batchSize, lr: this.config.lr, betas: [this.config.beta1, this.config.beta2], seed: this.config.seed, loss: "non-saturating (softplus)", images_seen: step * this.config.batchSize },
    };
    await writeAtomically(path.join(this.dir, "model.json"), async (tmp) => fs.promises.writeFile(tmp, JSON.stringify(manifest, null, 2) + "\n"));
  }

  dispose(): void {
    for (const o of this.optimizers) o.dispose();
    this.gan.dispose();
  }
}

/** tf.variableGrads' result (keyed by variable name) keyed by parameter name. */
function byName(vars: NamedVariables, grads: Record<string, tf.Tensor>): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  for (const [name, v] of vars) {
    const g = grads[v.name];
    if (!g) throw new Error(`no gradient for ${name}`);
    out.set(name, g);
  }
  return out;
}

export interface GanTrainOptions {
  dir: string;
  data: TrainData;
  config?: Partial<GanTrainConfig>;
  maxStepsThisCall?: number;
  shouldStop?: () => boolean;
  progress?: ProgressMode | false;
  log?: (line: string) => void;
  checkpointOnStop?: boolean;
}

export async function trainGan(opts: GanTrainOptions): Promise<LoopResult<GanTrainConfig>> {
  const config: GanTrainConfig = { ...DEFAULT_GAN_CONFIG, ...opts.config, model: { ...DEFAULT_GAN_CONFIG.model, ...(opts.config?.model ?? {}) } };
  const [h, w, ch] = opts.data.shape;
  if (h !== 32 || w !== 32 || ch !== 1) throw new Error(`the DCGAN takes 32x32x1 images, the data is ${h}x${w}x${ch}`);
  installTrainingKernels();
  return runTraining({
    dir: opts.dir, config, label: "train GAN", data: { n: opts.data.n, shape: opts.data.shape, description: opts.data.description },
    build: async (c) => new GanReplica(opts.dir, c, opts.data, Dcgan.fresh(c.model, c.seed)),
    maxStepsThisCall: opts.maxStepsThisCall, shouldStop: opts.shouldStop, progress: opts.progress, log: opts.log, checkpointOnStop: opts.checkpointOnStop,
  });
}
