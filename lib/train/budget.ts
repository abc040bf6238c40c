/**
 * What a committed training run cost: steps, images seen and training wall time, read from a run folder's
 * `model.json` (its `train.batch_size`) and `loss.csv` (cumulative `seconds`, see ./loss-log). Used to put
 * models trained with different objectives on one compute axis (notebook 08).
 */
import * as fs from "fs";
import * as path from "path";
import { LossLog } from "./loss-log";

export interface TrainingBudget {
  step: number;
  batchSize: number;
  /** step × batch size. */
  imagesSeen: number;
  /** Cumulative training wall time at the end of `step` (all resumes together); null where loss.csv has no such row. */
  seconds: number | null;
}

/** The cost of the run in `dir` up to `step` (default: the step of its exported weights, model.json's `step`). */
export function trainingBudget(dir: string, step?: number): TrainingBudget {
  const manifestFile = path.join(dir, "model.json");
  if (!fs.existsSync(manifestFile)) throw new Error(`${manifestFile}: not found (a trained run folder has model.json)`);
  const manifest = JSON.parse(fs.readFileSync(manifestFile, "utf8"));
  const batchSize = manifest?.train?.batch_size;
  if (!Number.isInteger(batchSize) || batchSize <= 0) throw new Error(`${manifestFile}: train.batch_size missing or not a positive integer (${JSON.stringify(batchSize)})`);
  const at = step ?? manifest.step;
  if (!Number.isInteger(at) || at < 0) throw new Error(`${manifestFile}: step ${JSON.stringify(at)} is not a non-negative integer`);
  const row = at === 0 ? { seconds: 0 } : new LossLog(path.join(dir, "loss.csv")).read().find((r) => r.step === at);
  return { step: at, batchSize: batchSize, imagesSeen: at * batchSize, seconds: row ? row.seconds : null };
}
