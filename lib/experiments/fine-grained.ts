/**
 * Notebook 06's pipeline, the same at every scale: images (a dataset of lib/data, or images in memory) ->
 * pooled block maps in the feature store (engine extractor, resumable, shardable) -> a validation split
 * carved from the training split -> a linear sweep over block x t x pooled size chosen on validation ->
 * heads (linear, MLP, CNN, attention) on the chosen setting, scored once on test.
 *
 * The store keeps maps pooled to `storePool` x `storePool` ([C, s, s] rows); linear and MLP heads pool them
 * further (poolSource, adaptive, exact when s is a multiple of the head's size), CNN and attention heads
 * read the maps.
 */
import type { Dataset } from "../data/types";
import type { FitValRows } from "./protocol/split";
import { subsetDataset } from "../data/index";
import { buildHead, HeadSpec } from "../heads/create";
import { evaluateHead, Evaluation } from "../heads/evaluate";
import { countParams } from "../heads/head";
import type { LrSchedule, OptimizerSpec } from "../heads/optim";
import { FeatureSource, subsetSource } from "../heads/source";
import { trainHead } from "../heads/train-head";
import { extractToStore } from "../features/store/extract";
import { engineExtractor } from "../features/store/extractor";
import { fileSource, ImageSource } from "../features/store/images";
import type { StoreDtype } from "../features/store/key";
import { defaultStoreRoot, FeatureSet } from "../features/store/store";
import type { ModelSource } from "../model/model-source";

/** A store set as a FeatureSource of [C, s, s] rows. */
export function setSource(set: FeatureSet, numClasses: number): FeatureSource {
  const shape = set.manifest.rowShape;
  if (!shape || shape.length !== 3) throw new Error(`${set.dir}: rows have no [C, H, W] shape in the manifest`);
  const labels = set.labels;
  if (!labels) throw new Error(`${set.dir}: the set has no labels`);
  return { rows: set.rows, shape, labels, numClasses, readRows: async (idx) => set.readRows(idx) };
}

/** A head and how it is trained. */
export interface HeadRecipe {
  name: string;
  spec: HeadSpec;
  epochs: number;
  batchSize: number;
  optimizer: OptimizerSpec;
  schedule?: LrSchedule | null;
}

export interface HeadScore {
  head: string;
  params: number;
  seconds: number;
  /** One evaluation per source asked (e.g. validation, test). */
  evaluations: Evaluation[];
}

/** Train `recipe` on `train`, evaluate on each of `evals`; the head is disposed afterwards. */
export async function fitAndScore(recipe: HeadRecipe, train: FeatureSource, evals: FeatureSource[], seed: number, label?: string): Promise<HeadScore> {
  const t0 = Date.now();
  const built = await buildHead(recipe.spec, train, seed);
  try {
    await trainHead(built.head, built.input(train), {
      epochs: recipe.epochs, batchSize: recipe.batchSize, optimizer: recipe.optimizer, schedule: recipe.schedule ?? null, seed,
      label: label ?? recipe.name, showProgress: label !== undefined,
    });
    const evaluations = [];
    for (const e of evals) evaluations.push(await evaluateHead(built.head, built.input(e)));
    return { head: recipe.name, params: countParams(built.head), seconds: (Date.now() - t0) / 1000, evaluations };
  } finally {
    built.head.dispose();
  }
}

/** The images of a dataset's train and test splits (optionally `perClass` per class, seeded), centre-cropped to `size`. */
export function datasetSources(ds: Dataset, size: number, subset?: { perClass: number | null; seed: number }): { train: ImageSource; test: ImageSource; dataset: Dataset } {
  const d = subset && subset.perClass ? subsetDataset(ds, { perClass: subset.perClass, seed: subset.seed, name: ds.name }) : ds;
  // The store keys sets by dataset and split: a subset is another dataset name, so it never meets the whole split's sets.
  const tag = subset && subset.perClass ? `${ds.name}-${subset.perClass}perclass-seed${subset.seed}` : ds.name;
  return {
    dataset: d,
    train: fileSource(tag, d.trainSplit, d.root, d.splits[d.trainSplit], size),
    test: fileSource(tag, d.testSplit, d.root, d.splits[d.testSplit], size),
  };
}

export interface ExtractPlan {
  model: ModelSource;
  blocks: number[];
  timesteps: number[];
  /** Maps are stored pooled to storePool x storePool. */
  storePool: number;
  dtype?: StoreDtype;
  /** Images per model call (default: the extractor's, from the model's activation memory: defaultBatchSize). */
  batchSize?: number;
  partRows?: number;
  store?: string;
  engine?: string;
  /** Noise seed (default 0). */
  noiseSeed?: number;
}

/** One (block, t) with its training and test sets in the store. */
export interface StoredSetting {
  block: number;
  module: string;
  t: number;
  train: FeatureSet;
  test: FeatureSet;
}

/**
 * Fill the store for both splits (only what is missing: a rerun continues where it stopped) and return
 * the sets per (block, t). `progress` labels the bars.
 */
export async function extractSplits(plan: ExtractPlan, sources: { train: ImageSource; test: ImageSource }, progressLabel: string): Promise<StoredSetting[]> {
  const extractor = engineExtractor(plan.model, { engine: plan.engine, batchSize: plan.batchSize });
  const root = plan.store ?? defaultStoreRoot();
  const sets: Record<string, FeatureSet[]> = {};
  try {
    for (const split of ["train", "test"] as const) {
      const images = sources[split];
      const r = await extractToStore({
        root, extractor, images, blocks: plan.blocks, timesteps: plan.timesteps, pool: { kind: "adaptive", size: plan.storePool },
        noise: { policy: "seeded", seed: plan.noiseSeed ?? 0 }, dtype: plan.dtype, partRows: plan.partRows, progress: `${progressLabel}: ${split}`,
      });
      sets[split] = r.sets;
    }
  } finally {
    await extractor.close();
  }
  return sets.train.map((tr, k) => {
    const te = sets.test[k];
    if (te.key.block !== tr.key.block || te.key.t !== tr.key.t) throw new Error(`extractSplits: train and test sets differ at ${k}`);
    return { block: tr.key.block, module: tr.key.module, t: tr.key.t, train: tr, test: te };
  });
}

/** Seconds per image of the extractor on `n` images of `images` (a timed run, nothing stored). */
export async function measureSecondsPerImage(plan: ExtractPlan, images: ImageSource, n: number): Promise<number> {
  const extractor = engineExtractor(plan.model, { engine: plan.engine, batchSize: plan.batchSize });
  try {
    const k = Math.min(n, images.ids.length);
    const batch = await images.load(0, k);
    const req = { blocks: plan.blocks, timesteps: plan.timesteps, pool: { kind: "adaptive" as const, size: plan.storePool }, noise: { policy: "seeded" as const, seed: 0 } };
    await extractor.extract(await images.load(0, 1), images.ids.slice(0, 1), req); // warm-up (engine build, first-call costs)
    const t0 = Date.now();
    await extractor.extract(batch, images.ids.slice(0, k), req);
    return (Date.now() - t0) / 1000 / k;
  } finally {
    await extractor.close();
  }
}

/** Bytes the store needs for `images` images of a plan whose blocks have `channels` channels each. */
export function storeBytes(images: number, channels: number[], timesteps: number, storePool: number, dtype: StoreDtype = "float32"): number {
  const perImage = channels.reduce((s, c) => s + c * storePool * storePool, 0) * timesteps * (dtype === "float16" ? 2 : 4);
  return images * perImage;
}

/** One cell of the block x t x pooled-size sweep (linear head), scored on validation. */
export interface SweepRow {
  block: number;
  module: string;
  t: number;
  pool: number;
  dim: number;
  valAcc: number;
  valN: number;
  fitN: number;
}

/**
 * The linear sweep: for each stored (block, t) and each pooled size, a linear head (`recipe(pool)`) fitted on
 * the fit rows and scored on the validation rows of the training split. Test rows are not read.
 */
export async function linearSweep(settings: StoredSetting[], pools: number[], numClasses: number, holdout: FitValRows, recipe: (pool: number) => HeadRecipe, seed: number, onRow?: (r: SweepRow) => void): Promise<SweepRow[]> {
  const rows: SweepRow[] = [];
  for (const s of settings) {
    const all = setSource(s.train, numClasses);
    const fit = subsetSource(all, holdout.fit), val = subsetSource(all, holdout.val);
    for (const p of pools) {
      const r = await fitAndScore(recipe(p), fit, [val], seed);
      const row = { block: s.block, module: s.module, t: s.t, pool: p, dim: all.shape[0] * p * p, valAcc: r.evaluations[0].top1, valN: holdout.val.length, fitN: holdout.fit.length };
      rows.push(row);
      onRow?.(row);
    }
  }
  return rows;
}

/** The best sweep row by validation accuracy (ties: the first, in the sweep's order). */
export function bestByVal(rows: SweepRow[]): SweepRow {
  if (rows.length === 0) throw new Error("bestByVal: no rows");
  return rows.reduce((a, b) => (b.valAcc > a.valAcc ? b : a));
}
