/**
 * One copy of the training state (model weights as variables, AdamW moments, EMA) and the step
 * arithmetic: per step  t ~ U{0..T-1}, ε ~ N(0, I), x_t = q_sample(x0, t, ε), loss = mean((ε̂(x_t, t) − ε)²),
 * then AdamW and EMA updates. The trainer drives one replica in-process, or one per worker thread
 * (./parallel), each computing the gradient of a shard of the batch.
 */
import * as fs from "fs";
import * as path from "path";
import * as tf from "@tensorflow/tfjs";
import { loadStateDict, saveSafetensors } from "../model/checkpoint/index";
import { writeAtomically } from "../model/checkpoint/atomic";
import { NoiseSchedule, qSampleArray } from "../model/diffusion/index";
import { configToKwargs, createUNetConfig, UNet, UNetConfig } from "../model/unet/index";
import { AdamW } from "./adamw";
import { StepSampler } from "./batches";
import { CheckpointInfo, restoreCheckpoint, saveCheckpoint } from "./checkpoint-state";
import type { TrainData } from "./data-spec";
import { Ema } from "./ema";
import { guidedDiffusionInit, Params, torchStateDict, trainableParams } from "./model-params";
import type { TrainConfig } from "./trainer";
import { installTrainingKernels } from "./wasm-kernels";

/** The loss and gradient of one shard of a step's batch. */
export interface ShardGrads {
  loss: number;
  /** Samples in the shard. */
  count: number;
  /** Gradients of the shard's mean loss, concatenated in parameter order. */
  flat: Float32Array;
}

export class Replica {
  readonly unet: UNetConfig;
  private readonly varList: tf.Variable[];
  private readonly names = new Map<string, string>();
  private readonly schedule: NoiseSchedule;
  private readonly sampler: StepSampler;

  private constructor(
    readonly dir: string,
    readonly config: TrainConfig,
    readonly data: TrainData,
    private readonly model: UNet,
    readonly params: Params,
    readonly opt: AdamW,
    readonly ema: Ema,
  ) {
    this.unet = model.config;
    this.varList = [...params.values()];
    for (const [name, v] of params) this.names.set(v.name, name);
    this.schedule = NoiseSchedule.named(config.noiseSchedule, config.diffusionSteps);
    const [h, w, c] = data.shape;
    this.sampler = new StepSampler(data.n, config.batchSize, config.diffusionSteps, h * w * c, config.seed);
  }

  /**
   * Build from the run folder's init.safetensors (written from guidedDiffusionInit when `writeInit` and
   * absent), through the ordinary checkpoint loader; the weights then become variables.
   */
  static async create(dir: string, config: TrainConfig, data: TrainData, writeInit: boolean): Promise<Replica> {
    const unet = createUNetConfig(config.model);
    const [h, w, c] = data.shape;
    if (h !== unet.imageSize || w !== unet.imageSize || c !== unet.inChannels) {
      throw new Error(`data is ${h}x${w}x${c}, the model takes ${unet.imageSize}x${unet.imageSize}x${unet.inChannels}`);
    }
    installTrainingKernels();
    const initFile = path.join(dir, "init.safetensors");
    if (writeInit && !fs.existsSync(initFile)) {
      await saveSafetensors(initFile, guidedDiffusionInit(unet, config.seed), { format: "pt", unet_kwargs: JSON.stringify(configToKwargs(unet)) });
    }
    const model = await UNet.fromCheckpoint(unet, initFile, { residency: "resident" });
    const params = trainableParams(model);
    const opt = new AdamW(params, { lr: config.lr, beta1: config.beta1, beta2: config.beta2, eps: config.eps, weightDecay: config.weightDecay });
    return new Replica(dir, config, data, model, params, opt, new Ema(params, config.emaRate));
  }

  get groups(): Record<string, Map<string, tf.Variable>> {
    return { param: this.params, ema: this.ema.shadow, adam_m: this.opt.m, adam_v: this.opt.v };
  }

  /** Loss and gradients (by parameter name) of samples [from, to) of step `step`'s batch; caller disposes. */
  private lossAndGrads(step: number, from: number, to: number): { loss: number; grads: Map<string, tf.Tensor> } {
    const [h, w, c] = this.data.shape;
    const per = h * w * c;
    const draw = this.sampler.draw(step);
    const n = to - from;
    const idx = draw.indices.subarray(from, to);
    const t = draw.t.subarray(from, to);
    const noise = draw.noise.subarray(from * per, to * per);
    const xt = qSampleArray(this.schedule, this.data.batch(idx), t, noise);
    const ts = Array.from(t);
    let loss = NaN;
    const byName = new Map<string, tf.Tensor>();
    tf.tidy(() => {
      const x = tf.tensor4d(xt, [n, h, w, c]);
      const eps = tf.tensor4d(noise, [n, h, w, c]);
      const { value, grads } = tf.variableGrads(() => {
        const r = this.model.forward(x, ts);
        r.emb.dispose();
        return tf.mean(tf.squaredDifference(r.out!, eps)) as tf.Scalar;
      }, this.varList);
      for (const [vn, g] of Object.entries(grads)) byName.set(this.names.get(vn)!, tf.keep(g));
      loss = value.dataSync()[0];
    });
    return { loss, grads: byName };
  }

  /** One whole step in this replica: gradient of the full batch, AdamW, EMA. Returns the loss. */
  step(step: number): number {
    const { loss, grads } = this.lossAndGrads(step, 0, this.config.batchSize);
    try {
      this.opt.update(grads);
      this.ema.update();
    } finally {
      tf.dispose([...grads.values()]);
    }
    return loss;
  }

  /** Gradient of a shard of step `step`'s batch, flattened (for parallel training). */
  shardGrads(step: number, from: number, to: number): ShardGrads {
    const { loss, grads } = this.lossAndGrads(step, from, to);
    try {
      let total = 0;
      for (const v of this.params.values()) total += v.size;
      const flat = new Float32Array(total);
      let off = 0;
      for (const name of this.params.keys()) {
        const g = grads.get(name)!.dataSync() as Float32Array;
        flat.set(g, off);
        off += g.length;
      }
      return { loss, count: to - from, flat };
    } finally {
      tf.dispose([...grads.values()]);
    }
  }

  /** Apply flattened gradients (parameter order): AdamW, then EMA. */
  apply(flat: Float32Array): void {
    const grads = new Map<string, tf.Tensor>();
    let off = 0;
    try {
      for (const [name, v] of this.params) {
        grads.set(name, tf.tensor(flat.subarray(off, off + v.size), v.shape, "float32"));
        off += v.size;
      }
      if (off !== flat.length) throw new Error(`apply: ${flat.length} gradient values for ${off} parameters`);
      this.opt.update(grads);
      this.ema.update();
    } finally {
      tf.dispose([...grads.values()]);
    }
  }

  /** Restore from a checkpoint of the run folder. */
  async restore(info: CheckpointInfo<unknown>): Promise<void> {
    await restoreCheckpoint(this.dir, info, this.groups);
    this.opt.step = info.step;
  }

  /** Write the resumable checkpoint, then ema.safetensors and model.json. */
  async checkpoint<E>(step: number, extra: E): Promise<void> {
    await saveCheckpoint(this.dir, step, this.groups, extra, this.config.keepCheckpoints);
    await exportEma(this.dir, this.unet, this.ema.shadow, this.config, step, this.data);
  }

  dispose(): void {
    this.opt.dispose();
    this.ema.dispose();
    this.model.dispose();
  }
}

/**
 * Write ema.safetensors (PyTorch layout, guided-diffusion names) and model.json.
 *
 * The exported average is bias-corrected: guided-diffusion's EMA after n steps still holds a share
 * rate^n of the random initial weights θ0 (0.999^1000 = 37%), which ruins a short run's EMA model. The
 * file holds (ema − rate^n·θ0) / (1 − rate^n), the same weighted average of θ1..θn with weights that sum
 * to one (Adam's bias correction); it equals guided-diffusion's EMA once rate^n is negligible. θ0 is the
 * run folder's init.safetensors; without it the plain EMA is written.
 */
export async function exportEma(dir: string, unet: UNetConfig, ema: Map<string, tf.Tensor>, config: TrainConfig, step: number, data: TrainData): Promise<void> {
  const kwargs = configToKwargs(unet);
  const initFile = path.join(dir, "init.safetensors");
  const initShare = step > 0 && fs.existsSync(initFile) ? Math.pow(config.emaRate, step) : 0;
  const init = initShare > 0 ? await loadStateDict(initFile) : null;
  const tensors = torchStateDict(unet, ema).map((t) => ({
    ...t,
    data: async () => {
      const e = t.data();
      if (!init) return e;
      const entry = init.get(t.name);
      if (!entry) throw new Error(`${initFile}: no tensor ${t.name} (needed to bias-correct the EMA)`);
      const theta0 = await entry.readFloat32();
      const out = new Float32Array(e.length);
      for (let i = 0; i < e.length; i++) out[i] = (e[i] - initShare * theta0[i]) / (1 - initShare);
      return out;
    },
  }));
  await saveSafetensors(path.join(dir, "ema.safetensors"), tensors, {
    format: "pt", unet_kwargs: JSON.stringify(kwargs), step: String(step), ema_rate: String(config.emaRate),
    ema_bias_corrected: String(init !== null),
  });
  const manifest = {
    weights: "ema.safetensors",
    step,
    steps: config.steps,
    unet_kwargs: kwargs,
    flags: config.model,
    diffusion: { diffusion_steps: config.diffusionSteps, noise_schedule: config.noiseSchedule, learn_sigma: false, predict: "epsilon", timestep_respacing: "" },
    ema_rate: config.emaRate,
    ema_bias_corrected: init !== null,
    data: { n: data.n, shape: data.shape, range: [-1, 1], layout: "NHWC", description: data.description },
    train: { batch_size: config.batchSize, lr: config.lr, betas: [config.beta1, config.beta2], eps: config.eps, weight_decay: config.weightDecay, seed: config.seed },
  };
  await writeAtomically(path.join(dir, "model.json"), async (tmp) => fs.promises.writeFile(tmp, JSON.stringify(manifest, null, 2) + "\n"));
}
