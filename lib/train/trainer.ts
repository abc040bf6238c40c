/**
 * DDPM training of a guided-diffusion U-Net (epsilon prediction, learn_sigma False), resumable.
 *
 * Per step (as guided-diffusion's TrainLoop with UniformSampler and loss "mse"):
 *   t ~ U{0..T-1}, eps ~ N(0, I), x_t = q_sample(x0, t, eps),  loss = mean((model(x_t, t) - eps)²)
 *   AdamW update, then EMA update.
 * Randomness (data order, t, eps) is a pure function of (seed, step) (./batches), so a run resumed from a
 * checkpoint reproduces the uninterrupted run exactly. The arithmetic lives in ./replica; with
 * `workers: K` the batch is split over K worker threads (./parallel), one core each.
 *
 * Run folder:
 *   init.safetensors         the initial weights (PyTorch layout; the model is built from it)
 *   state-<step>.safetensors + checkpoint.json   resumable state (./checkpoint-state), every N steps
 *   loss.csv                 step,loss,seconds (./loss-log)
 *   ema.safetensors          EMA weights, guided-diffusion names and PyTorch layout (OIHW, [out, in]),
 *                            written at every checkpoint and at the end: `UNet.fromCheckpoint` reads it
 *   model.json               U-Net kwargs and flags, diffusion settings, step: what a loader needs
 */
import * as fs from "fs";
import * as path from "path";
import * as tf from "@tensorflow/tfjs";
import type { ProgressMode } from "../display/progress";
import { configToKwargs, createUNetConfig, UNet, UNetConfig, UNetFlags } from "../model/unet/index";
import { CheckpointInfo, readCheckpointInfo } from "./checkpoint-state";
import type { TrainData } from "./data-spec";
import { LossLog } from "./loss-log";
import type { Params } from "./model-params";
import { ParallelReplicas } from "./parallel";
import { Replica } from "./replica";
import { runSteps } from "./step-loop";
import { emaExportName } from "./kept-exports";

export type { TrainData, DataSpec } from "./data-spec";
export { makeTrainData } from "./data-spec";

export interface TrainConfig {
  /** U-Net flags (guided-diffusion script_util vocabulary + in_channels); learn_sigma must be false. */
  model: Partial<UNetFlags>;
  diffusionSteps: number;
  noiseSchedule: "linear" | "cosine";
  batchSize: number;
  /** Total optimizer steps of the run. */
  steps: number;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** EMA rate (see ./ema for the choice of 0.999 for short runs). */
  emaRate: number;
  /** Seeds the initial weights, the data order, t and the noise. */
  seed: number;
  checkpointEvery: number;
  /** Tensor files kept (the newest). */
  keepCheckpoints: number;
}

/** The proposed Fashion-MNIST model and run (see docs/fashion-mnist.md for the timings behind it). */
export const DEFAULT_TRAIN_CONFIG: Readonly<TrainConfig> = Object.freeze({
  model: Object.freeze({
    image_size: 32, in_channels: 1, num_channels: 32, num_res_blocks: 1, channel_mult: "1,2,2", attention_resolutions: "8",
    num_head_channels: 32, resblock_updown: true, use_scale_shift_norm: true, learn_sigma: false, class_cond: false, dropout: 0,
  }) as Partial<UNetFlags>,
  diffusionSteps: 1000,
  noiseSchedule: "linear",
  batchSize: 16,
  steps: 6000,
  lr: 2e-4,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  weightDecay: 0,
  emaRate: 0.999,
  seed: 0,
  checkpointEvery: 100,
  keepCheckpoints: 2,
}) as TrainConfig;

/** Fields that may change when a run is resumed. */
const RESUMABLE_CHANGES = new Set(["steps", "checkpointEvery", "keepCheckpoints"]);

export interface TrainOptions {
  /** Run folder (created; resumed when it holds a checkpoint). */
  dir: string;
  data: TrainData;
  config?: Partial<TrainConfig>;
  /** Stop (resumably) after this many steps in this call. */
  maxStepsThisCall?: number;
  /** Polled after every step; true stops the run (resumably). */
  shouldStop?: () => boolean;
  /**
   * Write a checkpoint when stopping before the end (shouldStop, maxStepsThisCall; default true).
   * false behaves like a crash: the steps after the last periodic checkpoint are redone on resume.
   */
  checkpointOnStop?: boolean;
  /** Progress display (default: automatic); false for none. */
  progress?: ProgressMode | false;
  /** Called after every step. */
  onStep?: (step: number, loss: number) => void;
  /** One-line messages (resume, checkpoints); default stderr. */
  log?: (line: string) => void;
  /**
   * Worker threads (default 1: train in this thread). With K >= 2 each step's batch is split over K
   * replicas (./parallel); needs `data.spec`. Results then differ from K = 1 by float rounding only.
   */
  workers?: number;
  /**
   * Keep the EMA export of these steps as ema-<step>.safetensors beside ema.safetensors (a checkpoint is
   * written at each of them); notebook 08 probes every kept export.
   */
  keepExportsAt?: number[];
}

export interface TrainResult {
  /** Steps completed (the run's, not this call's). */
  step: number;
  /** The run reached `config.steps`. */
  finished: boolean;
  /** Step this call started from (0 for a fresh run). */
  resumedFrom: number;
  /** Cumulative training seconds of the run. */
  seconds: number;
  /** Mean loss over this call's steps (NaN when none). */
  meanLoss: number;
  config: TrainConfig;
  unet: UNetConfig;
}

/** What the trainer keeps in checkpoint.json besides the step. */
export interface TrainExtra {
  config: TrainConfig;
  seconds: number;
  unetKwargs: ReturnType<typeof configToKwargs>;
  rng: { algorithm: string; seed: number; nextStep: number };
  data: { n: number; shape: number[]; description?: string };
  backend: string;
  workers: number;
}

export function resolveTrainConfig(partial: Partial<TrainConfig> = {}): TrainConfig {
  const c: TrainConfig = { ...DEFAULT_TRAIN_CONFIG, ...partial, model: { ...DEFAULT_TRAIN_CONFIG.model, ...(partial.model ?? {}) } };
  const ints: (keyof TrainConfig)[] = ["diffusionSteps", "batchSize", "steps", "checkpointEvery", "keepCheckpoints", "seed"];
  for (const k of ints) {
    const v = c[k] as number;
    if (!Number.isSafeInteger(v) || v < (k === "seed" || k === "steps" ? 0 : 1)) throw new Error(`train config ${k} must be an integer, got ${v}`);
  }
  if (c.model.learn_sigma) throw new Error("learn_sigma must be false: this trainer predicts epsilon only (loss mse)");
  return c;
}

/** Differences between the saved and the requested config that forbid resuming. */
export function configConflicts(saved: TrainConfig, wanted: TrainConfig): string[] {
  const out: string[] = [];
  const keys = new Set([...Object.keys(saved), ...Object.keys(wanted)]);
  for (const k of keys) {
    if (RESUMABLE_CHANGES.has(k)) continue;
    const a = canonicalJson((saved as unknown as Record<string, unknown>)[k]);
    const b = canonicalJson((wanted as unknown as Record<string, unknown>)[k]);
    if (a !== b) out.push(`${k}: run has ${a}, asked ${b}`);
  }
  return out;
}

/** JSON with object keys sorted (so that key order does not count as a difference). */
function canonicalJson(v: unknown): string {
  if (v && typeof v === "object" && !Array.isArray(v)) {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`).join(",")}}`;
  }
  return JSON.stringify(v);
}

const RNG_ALGORITHM = "xoshiro128** streams Rng(seed, purpose*2^40 + index): purpose 1 epoch permutation, 2 timesteps, 3 noise (lib/train/batches.ts)";

/**
 * Train (or resume) a run. Select the backend first (wasm recommended); the wasm training kernels are
 * installed here. Returns when the run is finished or stopped; stopping loses only the steps after the
 * last checkpoint.
 */
export async function trainDdpm(opts: TrainOptions): Promise<TrainResult> {
  const log = opts.log ?? ((l: string) => process.stderr.write(l + "\n"));
  const dir = opts.dir;
  fs.mkdirSync(dir, { recursive: true });
  let config = resolveTrainConfig(opts.config);
  const saved = readCheckpointInfo<TrainExtra>(dir);
  if (saved) {
    const conflicts = configConflicts(saved.extra.config, config);
    if (conflicts.length) throw new Error(`${dir} holds a run with another configuration; resume refused:\n  ${conflicts.join("\n  ")}`);
    config = { ...saved.extra.config, steps: config.steps, checkpointEvery: config.checkpointEvery, keepCheckpoints: config.keepCheckpoints };
  }
  const unet = createUNetConfig(config.model);
  const workers = opts.workers ?? 1;
  if (workers > 1 && !opts.data.spec) throw new Error("parallel training needs data with a spec (see makeTrainData)");

  // The in-thread replica writes init.safetensors; workers read it.
  const local = await Replica.create(dir, config, opts.data, true);
  let par: ParallelReplicas | null = null;
  const lossLog = new LossLog(path.join(dir, "loss.csv"));
  let step = 0;
  let seconds = 0;
  try {
    if (saved) {
      step = saved.step;
      seconds = saved.extra.seconds;
    }
    if (workers > 1) {
      local.dispose();
      par = await ParallelReplicas.start(workers, dir, config, opts.data.spec!, tf.getBackend());
      if (saved) await par.restore();
    } else if (saved) {
      await local.restore(saved);
    }
    if (saved) {
      lossLog.reset(step);
      const w = saved.extra.workers ?? 1;
      log(`resumed ${dir} at step ${step}/${config.steps} (${seconds.toFixed(0)} s of training so far)${w !== workers ? `; workers ${w} -> ${workers}` : ""}`);
    } else {
      lossLog.reset(0);
    }
    const resumedFrom = step;

    const extra = (step: number, seconds: number): TrainExtra => ({
      config, seconds, unetKwargs: configToKwargs(unet),
      rng: { algorithm: RNG_ALGORITHM, seed: config.seed, nextStep: step },
      data: { n: opts.data.n, shape: opts.data.shape, description: opts.data.description },
      backend: tf.getBackend(),
      workers,
    });
    const keep = new Set(opts.keepExportsAt ?? []);
    const r = await runSteps({
      step, seconds, steps: config.steps, checkpointEvery: config.checkpointEvery, maxStepsThisCall: opts.maxStepsThisCall,
      runStep: async (s) => ({ loss: par ? await par.step(s) : local.step(s) }),
      record: (s, { loss }, sec) => {
        lossLog.append({ step: s, loss, seconds: sec });
        opts.onStep?.(s, loss);
      },
      checkpointAlso: keep,
      checkpoint: async (s, sec) => {
        await (par ? par.checkpoint(s, extra(s, sec)) : local.checkpoint(s, extra(s, sec)));
        if (keep.has(s)) keepExport(dir, s, log);
      },
      shouldStop: opts.shouldStop, checkpointOnStop: opts.checkpointOnStop,
      label: "train", progress: opts.progress, yieldEachStep: !par, log,
    });
    return { step: r.step, finished: r.step >= config.steps, resumedFrom, seconds: r.seconds, meanLoss: r.meanLoss, config, unet };
  } finally {
    if (par) await par.close();
    else local.dispose();
  }
}

/** Copy the EMA export just written (ema.safetensors) to ema-<step>.safetensors (atomically). */
function keepExport(dir: string, step: number, log: (line: string) => void): void {
  const file = path.join(dir, emaExportName(step));
  const tmp = `${file}.tmp-${process.pid}`;
  fs.copyFileSync(path.join(dir, "ema.safetensors"), tmp);
  fs.renameSync(tmp, file);
  log(`kept the EMA export of step ${step} as ${path.basename(file)}`);
}

/** Load a trained run's EMA model (reads model.json and ema.safetensors). */
export async function loadTrainedModel(dir: string): Promise<{ model: UNet; manifest: { step: number; diffusion: { diffusion_steps: number; noise_schedule: string } } & Record<string, unknown> }> {
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, "model.json"), "utf8"));
  const model = await UNet.fromCheckpoint(createUNetConfig(manifest.unet_kwargs), path.join(dir, manifest.weights));
  return { model, manifest };
}

export type { CheckpointInfo, Params };
