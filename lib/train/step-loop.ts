/**
 * The inner loop of every trainer here (the DDPM's, lib/train/trainer.ts, and the baselines',
 * lib/train/baselines/train-loop.ts): run steps up to a limit, keep the training clock, refuse a
 * non-finite loss, checkpoint every N steps and at the end, and stop cleanly when asked (Ctrl-C), writing a
 * checkpoint unless the caller wants crash behaviour. What a step records (loss log, metrics, evaluations)
 * is the caller's `record`.
 */
import { progress as makeProgress, ProgressMode } from "../display/progress";

export interface StepResult {
  loss: number;
  metrics?: Record<string, number>;
}

export interface StepLoopOptions {
  /** Steps done so far and their training time (seconds), as read from the checkpoint (0, 0 for a new run). */
  step: number;
  seconds: number;
  /** The run's length and checkpoint period. */
  steps: number;
  checkpointEvery: number;
  /** Also checkpoint after these steps (e.g. the steps whose exports are kept). */
  checkpointAlso?: ReadonlySet<number>;
  /** Stop (resumably) after this many steps of this call. */
  maxStepsThisCall?: number;
  /** Run step `step` (0-based). */
  runStep(step: number): StepResult | Promise<StepResult>;
  /** After step `step` (1-based count of steps done) finished with a finite loss: log it. */
  record(step: number, r: StepResult, seconds: number): void;
  /** Write a checkpoint of the state after `step` steps. */
  checkpoint(step: number, seconds: number): Promise<void>;
  shouldStop?: () => boolean;
  /** Write a checkpoint when stopping before the end (default true; false behaves like a crash). */
  checkpointOnStop?: boolean;
  /** Progress bar label (" (from step N)" is added on resume); false: no bar. */
  label: string;
  progress?: ProgressMode | false;
  /** Give the event loop a turn after each step (signals, notebook displays); default true. */
  yieldEachStep?: boolean;
  log: (line: string) => void;
}

export interface StepLoopResult {
  step: number;
  seconds: number;
  /** Mean loss of the steps of this call (NaN when none ran). */
  meanLoss: number;
}

export async function runSteps(o: StepLoopOptions): Promise<StepLoopResult> {
  let step = o.step;
  let seconds = o.seconds;
  const limit = Math.min(o.steps, o.maxStepsThisCall !== undefined ? step + o.maxStepsThisCall : Infinity);
  const bar = o.progress === false || step >= limit ? null : makeProgress({
    total: limit - step, label: step > 0 ? `${o.label} (from step ${step})` : o.label, unit: "step", mode: o.progress || undefined,
  });
  let lossSum = 0;
  let lossCount = 0;
  try {
    while (step < limit) {
      const t0 = performance.now();
      const r = await o.runStep(step);
      step++;
      seconds += (performance.now() - t0) / 1000;
      if (!Number.isFinite(r.loss)) throw new Error(`loss became ${r.loss} at step ${step}: stopping (the last checkpoint is intact)`);
      lossSum += r.loss;
      lossCount++;
      bar?.tick(1, { loss: Number(r.loss.toPrecision(4)) });
      o.record(step, r, seconds);
      const checkpointed = step % o.checkpointEvery === 0 || step === o.steps || (o.checkpointAlso?.has(step) ?? false);
      if (checkpointed) await o.checkpoint(step, seconds);
      if (o.shouldStop?.() || step >= limit) {
        if (!checkpointed && (o.checkpointOnStop ?? true)) {
          await o.checkpoint(step, seconds);
          o.log(`stopped at step ${step}/${o.steps}; checkpoint written`);
        }
        break;
      }
      if (o.yieldEachStep ?? true) await new Promise((res) => setImmediate(res));
    }
  } finally {
    bar?.done();
  }
  return { step, seconds, meanLoss: lossCount ? lossSum / lossCount : NaN };
}
