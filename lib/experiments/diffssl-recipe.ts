/**
 * The official training loop's settings (`soumik-kanad/diffssl` finetune.py and scripts/*.sh, as read into
 * assets/paper/later-paper.json `recipes_from_code`), one per script, as the trainer's options:
 *
 *   all scripts  SGD, momentum 0, weight decay 0; StepLR(7, 0.1) stepped per epoch; 28 epochs; frozen U-Net
 *   linear       lr 0.01, 32 images per GPU       attention   lr 0.05, 32 per GPU
 *   difformer    lr 0.05, 32 per GPU              diffeed     lr 0.01, 4 per GPU
 *
 * The scripts run on 4 GPUs under DistributedDataParallel, which averages the gradients of the 4 per-GPU
 * batches: one step of a batch 4x the per-GPU size, which is what `batchSize` is here (BatchNorm layers,
 * in DifFeed's feedback, see per-GPU batches there and the whole batch here: a deviation, stated where used).
 * The loop's views (a fresh augmentation and noise every epoch) are OFFICIAL_VIEWS (views.ts).
 */
import * as fs from "fs";
import * as path from "path";
import type { TrainHeadOptions } from "../heads/train-head";
import { projectRoot } from "../paths";

export type DiffsslScript = "linear" | "attention" | "difformer" | "diffeed";

/** GPUs the official scripts run on (finetune.py under torchrun with 4 processes). */
export const DIFFSSL_GPUS = 4;

interface RecipeRecord {
  lr: number;
  batch_per_gpu: number;
  t: number[];
  blocks?: number[];
  second_pass_blocks?: number[];
  pre_pool?: number;
}

export function laterPaperFile(): string {
  return path.join(projectRoot(), "assets", "paper", "later-paper.json");
}

/** The extended paper's record (tables and recipes), read once. */
let later: Record<string, unknown> | null = null;
export function laterPaper(): Record<string, unknown> & { imagenet_table1: { source: string; rows: { method: string; acc: number; code?: string }[] }; fine_grained: { source: string; columns: string[]; rows: Record<string, number[]> } } {
  later ??= JSON.parse(fs.readFileSync(laterPaperFile(), "utf8")) as Record<string, unknown>;
  return later as ReturnType<typeof laterPaper>;
}

/** A script's record: lr, per-GPU batch, t, blocks (as the file has it). */
export function diffsslRecord(script: DiffsslScript): RecipeRecord & { source: string } {
  const file = laterPaperFile();
  const all = laterPaper().recipes_from_code as Record<string, unknown> & { source: string };
  const r = all?.[script] as RecipeRecord | undefined;
  if (!r || typeof r.lr !== "number" || typeof r.batch_per_gpu !== "number") throw new Error(`${file}: recipes_from_code.${script} lacks lr or batch_per_gpu`);
  return { ...r, source: all.source };
}

/** The trainer's options of one official script; `over` changes any of them (say so where you do). */
export function diffsslRecipe(script: DiffsslScript, seed: number, over: Partial<TrainHeadOptions> = {}): TrainHeadOptions {
  const r = diffsslRecord(script);
  return {
    epochs: 28,
    batchSize: r.batch_per_gpu * DIFFSSL_GPUS,
    optimizer: { kind: "sgd", lr: r.lr, momentum: 0, weightDecay: 0 },
    schedule: { stepEpochs: 7, gamma: 0.1 },
    seed,
    showProgress: false,
    ...over,
  };
}
