/**
 * The resumable training loop shared by the baseline trainers (./gan-trainer, ./supervised-trainer),
 * built from lib/train's pieces: checkpoints (state-<step>.safetensors + checkpoint.json, atomic, see
 * lib/train/checkpoint-state), the loss log (loss.csv), the config conflict check and lib/display/progress.
 *
 * Each step's randomness must be a pure function of (seed, step) (lib/train/batches), so that a run
 * resumed from a checkpoint reproduces the uninterrupted run. Besides loss.csv the loop keeps
 * metrics.csv (one row per step: the step's extra numbers) and eval.csv (one row per evaluation), both
 * cut back to the checkpoint's step on resume.
 */
import * as fs from "fs";
import * as path from "path";
import * as tf from "@tensorflow/tfjs";
import type { ProgressMode } from "../../display/progress";
import { readCheckpointInfo, restoreCheckpoint, saveCheckpoint } from "../checkpoint-state";
import { LossLog } from "../loss-log";
import { runSteps } from "../step-loop";
import { configConflicts, TrainConfig } from "../trainer";
import type { AdamW } from "../adamw";

/** What every baseline run config has. */
export interface LoopConfig {
  steps: number;
  batchSize: number;
  seed: number;
  checkpointEvery: number;
  keepCheckpoints: number;
  /** Evaluate (when the trainer can) every this many steps and at the end; 0: never. */
  evalEvery: number;
}

/** A model being trained, as the loop drives it. */
export interface Trainable {
  /** Every variable of the run by group (weights, optimizer moments...), for checkpoints. */
  groups: Record<string, Map<string, tf.Variable>>;
  /** Optimizers whose step counters are restored on resume. */
  optimizers: AdamW[];
  /** Run step `step` (0-based): returns the loss and any other numbers of the step. */
  step(step: number): { loss: number; metrics?: Record<string, number> };
  /** Numbers measured on held-out data (eval.csv). */
  evaluate?(step: number): Record<string, number>;
  /** Write the exported weights and model.json for `step` (called at every checkpoint). */
  export(step: number): Promise<void>;
  dispose(): void;
}

export interface LoopOptions<C extends LoopConfig> {
  dir: string;
  config: C;
  /** Builds the model from the run config (fresh weights; the loop restores a checkpoint into them). */
  build(config: C): Promise<Trainable>;
  /** Data description, kept in checkpoint.json. */
  data: Record<string, unknown>;
  label: string;
  maxStepsThisCall?: number;
  shouldStop?: () => boolean;
  progress?: ProgressMode | false;
  log?: (line: string) => void;
  /** Write a checkpoint when stopping before the end (default true; false behaves like a crash). */
  checkpointOnStop?: boolean;
}

export interface LoopResult<C> {
  step: number;
  finished: boolean;
  resumedFrom: number;
  seconds: number;
  meanLoss: number;
  config: C;
}

interface LoopExtra<C> { config: C; seconds: number; optimizerSteps: number[]; data: Record<string, unknown>; backend: string }

/** Fields that may change on resume. */
const RESUMABLE = new Set(["steps", "checkpointEvery", "keepCheckpoints", "evalEvery"]);

/** A CSV log with a fixed header, appended row by row, cut back to a step on resume. */
export class CsvLog {
  constructor(readonly file: string, readonly columns: string[]) {}

  read(): Record<string, number>[] {
    if (!fs.existsSync(this.file)) return [];
    const lines = fs.readFileSync(this.file, "utf8").split("\n").filter((l) => l.trim() !== "");
    if (lines[0] !== this.columns.join(",")) throw new Error(`${this.file}: header ${JSON.stringify(lines[0])}, expected ${JSON.stringify(this.columns.join(","))}`);
    return lines.slice(1).map((l) => l.split(",").map(Number)).filter((v) => v.length === this.columns.length && Number.isInteger(v[0]))
      .map((v) => Object.fromEntries(this.columns.map((c, i) => [c, v[i]])));
  }

  reset(step = 0): void {
    const keep = step > 0 ? this.read().filter((r) => r.step <= step) : [];
    const text = [this.columns.join(","), ...keep.map((r) => this.columns.map((c) => r[c]).join(","))].join("\n") + "\n";
    const tmp = `${this.file}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, this.file);
  }

  append(row: Record<string, number>): void {
    fs.appendFileSync(this.file, this.columns.map((c) => row[c]).join(",") + "\n");
  }
}

/** Train (or resume) a run in `dir`. */
export async function runTraining<C extends LoopConfig>(opts: LoopOptions<C>): Promise<LoopResult<C>> {
  const log = opts.log ?? ((l: string) => process.stderr.write(l + "\n"));
  const dir = opts.dir;
  fs.mkdirSync(dir, { recursive: true });
  let config = opts.config;
  const saved = readCheckpointInfo<LoopExtra<C>>(dir);
  if (saved) {
    const conflicts = configConflicts(saved.extra.config as unknown as TrainConfig, config as unknown as TrainConfig).filter((c) => !RESUMABLE.has(c.split(":")[0]));
    if (conflicts.length) throw new Error(`${dir} holds a run with another configuration; resume refused:\n  ${conflicts.join("\n  ")}`);
    config = { ...saved.extra.config, steps: config.steps, checkpointEvery: config.checkpointEvery, keepCheckpoints: config.keepCheckpoints, evalEvery: config.evalEvery };
  }
  const model = await opts.build(config);
  const lossLog = new LossLog(path.join(dir, "loss.csv"));
  let metricsLog: CsvLog | null = null;
  let evalLog: CsvLog | null = null;
  let step = 0;
  let seconds = 0;
  try {
    if (saved) {
      await restoreCheckpoint(dir, saved, model.groups);
      saved.extra.optimizerSteps.forEach((s, i) => (model.optimizers[i].step = s));
      step = saved.step;
      seconds = saved.extra.seconds;
      log(`resumed ${dir} at step ${step}/${config.steps} (${seconds.toFixed(0)} s of training so far)`);
    }
    lossLog.reset(step);
    for (const f of ["metrics.csv", "eval.csv"]) {
      const file = path.join(dir, f);
      if (fs.existsSync(file)) {
        const log = new CsvLog(file, fs.readFileSync(file, "utf8").split("\n")[0].split(","));
        log.reset(step);
        if (f === "metrics.csv") metricsLog = log;
        else evalLog = log;
      }
    }
    if (step === 0) for (const f of ["metrics.csv", "eval.csv"]) fs.rmSync(path.join(dir, f), { force: true });
    if (step === 0) {
      metricsLog = null;
      evalLog = null;
    }
    const resumedFrom = step;
    const extra = (seconds: number): LoopExtra<C> => ({ config, seconds, optimizerSteps: model.optimizers.map((o) => o.step), data: opts.data, backend: tf.getBackend() });
    const checkpoint = async (step: number, seconds: number) => {
      await saveCheckpoint(dir, step, model.groups, extra(seconds), config.keepCheckpoints);
      await model.export(step);
    };
    const evaluate = (step: number) => {
      if (!model.evaluate) return;
      const row = { step, ...model.evaluate(step) };
      evalLog ??= new CsvLog(path.join(dir, "eval.csv"), Object.keys(row));
      if (!fs.existsSync(evalLog.file)) evalLog.reset(0);
      evalLog.append(row);
      log(`step ${step}: ${Object.entries(row).filter(([k]) => k !== "step").map(([k, v]) => `${k} ${v.toFixed(4)}`).join(", ")}`);
    };
    if (step === 0 && config.evalEvery > 0) evaluate(step);
    // A run stopped early and then declared finished (resumed with --steps = its step): record the new
    // length in checkpoint.json and the exported model.json (evaluating once more if it evaluates).
    if (saved && step >= config.steps && saved.extra.config.steps !== config.steps) {
      if (config.evalEvery > 0 && !(evalLog?.read().some((r) => r.step === step))) evaluate(step);
      await checkpoint(step, seconds);
      log(`run finished at step ${step} (its length was ${saved.extra.config.steps}, now ${config.steps})`);
    }

    const r = await runSteps({
      step, seconds, steps: config.steps, checkpointEvery: config.checkpointEvery, maxStepsThisCall: opts.maxStepsThisCall,
      runStep: (s) => model.step(s),
      record: (s, r, sec) => {
        lossLog.append({ step: s, loss: r.loss, seconds: sec });
        if (r.metrics) {
          const row = { step: s, ...r.metrics };
          metricsLog ??= new CsvLog(path.join(dir, "metrics.csv"), Object.keys(row));
          if (!fs.existsSync(metricsLog.file)) metricsLog.reset(0);
          metricsLog.append(row);
        }
        if (config.evalEvery > 0 && (s % config.evalEvery === 0 || s === config.steps)) evaluate(s);
      },
      checkpoint, shouldStop: opts.shouldStop, checkpointOnStop: opts.checkpointOnStop,
      label: opts.label, progress: opts.progress, log,
    });
    return { step: r.step, finished: r.step >= config.steps, resumedFrom, seconds: r.seconds, meanLoss: r.meanLoss, config };
  } finally {
    model.dispose();
  }
}

/**
 * Ctrl-C / SIGTERM handling of the training scripts: the first signal asks the loop to stop after the
 * current step (a checkpoint is written); a second one more than a second later exits at once (the last
 * periodic checkpoint stays valid). Returns the `shouldStop` poll.
 */
export function stopOnSignals(write: (s: string) => void = (s) => process.stderr.write(s)): () => boolean {
  let stop = false;
  let stopAt = 0;
  const onSignal = (sig: string) => {
    if (stop) {
      if (Date.now() - stopAt < 1000) return; // the same Ctrl-C relayed by npm/tsx
      write(`\n${sig} again: exiting now (resume from the last checkpoint)\n`);
      process.exit(130);
    }
    stop = true;
    stopAt = Date.now();
    write(`\n${sig}: stopping after this step (a checkpoint will be written); ${sig} again to exit at once\n`);
  };
  process.on("SIGINT", () => onSignal("SIGINT"));
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  return () => stop;
}
