/**
 * Notebook 04's experiment in stages that work the same on every scale (the embedded model on Fashion-MNIST,
 * ADM-256 on ImageNet, a tiny checkpoint on a synthetic ImageNet tree): the paper's three sweeps of its
 * block/time figure (t at one block; blocks at two t; pooled sizes at two settings) and its main table
 * (linear pool 1 and 2 and an attention head at the chosen block and t).
 *
 * Protocol: features of the training images and the test images go to the store; the training rows are
 * split (stratified, seeded) into fit and val; every sweep point is a head fitted on fit and scored on val;
 * only settings fixed in advance (the paper's block 24, t 90 mapped to our model; the best-on-val setting)
 * are scored on test, once.
 */
import type { ImageSource } from "../store/images";
import type { FeatureExtractor } from "../store/extractor";
import type { StoreDtype } from "../store/key";
import type { HeadSpec } from "../heads/create";
import type { TrainHeadOptions } from "../heads/train-head";
import type { Evaluation } from "../heads/evaluate";
import { PAPER_LINEAR_RECIPE } from "../heads/optim";
import { mcnemarExact, PairedComparison } from "../metrics";
import { findSet, PlanJob, runPlan, StoredSet } from "./extraction-plan";
import { featureSetSource, sweepHeads, fitHead, SweepRow } from "./heads-on-store";
import { stratifiedSplit, ValSplit } from "./val-split";
import { mapPaperBlock } from "./block-depth";

export interface StudyPlan {
  /** The paper's figure: t sweep at block 19; block sweep at t 90 and 150; pool sweep at (24, 90) and (19, 150). */
  tSweep: { paperBlock: number; timesteps: number[] };
  blockSweep: { paperBlocks: number[]; timesteps: number[] };
  poolSweep: { settings: { paperBlock: number; t: number }[]; pools: number[] };
  main: { paperBlock: number; t: number };
  /** Pooled size the block and t sweeps are stored at: 1 (smallest store), or the largest pool (one job for all). */
  sweepStoreSide: number;
}

/** The paper's figure as a plan (results.json imagenet_sweeps), with the t list given (demo may shorten it). */
export function paperPlan(sweeps: { timestep_sweep_block19_pool1: { t: number[] }; block_sweep_pool1: { block: number[] }; pool_sweep: { pool: number[] } }, sweepStoreSide: number, tList?: number[]): StudyPlan {
  return {
    tSweep: { paperBlock: 19, timesteps: tList ?? sweeps.timestep_sweep_block19_pool1.t },
    blockSweep: { paperBlocks: sweeps.block_sweep_pool1.block, timesteps: [90, 150] },
    poolSweep: { settings: [{ paperBlock: 24, t: 90 }, { paperBlock: 19, t: 150 }], pools: sweeps.pool_sweep.pool },
    main: { paperBlock: 24, t: 90 },
    sweepStoreSide,
  };
}

/** The store jobs of a plan on a model of `ourBlocks` blocks. */
export function studyJobs(plan: StudyPlan, ourBlocks: number): PlanJob[] {
  const map = (b: number) => mapPaperBlock(b, ourBlocks);
  const maxPool = Math.max(...plan.poolSweep.pools);
  const blocks = [...new Set(plan.blockSweep.paperBlocks.map(map))];
  const jobs: PlanJob[] = [{ blocks, timesteps: plan.blockSweep.timesteps, pool: plan.sweepStoreSide }];
  const poolBlocks = [...new Set([...plan.poolSweep.settings.map((s) => map(s.paperBlock)), map(plan.main.paperBlock)])];
  const poolTs = [...new Set([...plan.poolSweep.settings.map((s) => s.t), plan.main.t])];
  if (plan.sweepStoreSide % maxPool !== 0) jobs.push({ blocks: poolBlocks, timesteps: poolTs, pool: maxPool });
  const otherT = plan.tSweep.timesteps.filter((t) => !plan.blockSweep.timesteps.includes(t));
  if (otherT.length) jobs.push({ blocks: [map(plan.tSweep.paperBlock)], timesteps: otherT, pool: 1 });
  return jobs;
}

export interface StudyContext {
  extractor: FeatureExtractor;
  train: ImageSource;
  test: ImageSource;
  numClasses: number;
  ourBlocks: number;
  storeRoot: string;
  dtype?: StoreDtype;
  valFraction: number;
  seed: number;
  /** Linear heads: the authors' recipe unless given. */
  linear?: TrainHeadOptions;
  attention: { spec: HeadSpec; train: TrainHeadOptions };
}

export function linearRecipe(seed: number, batchSize = 128): TrainHeadOptions {
  return { epochs: PAPER_LINEAR_RECIPE.epochs, batchSize, optimizer: PAPER_LINEAR_RECIPE.optimizer, schedule: PAPER_LINEAR_RECIPE.schedule, seed, showProgress: false };
}

export interface StoredStudy {
  train: StoredSet[];
  test: StoredSet[];
  split: ValSplit;
}

/** Fill the store for the plan (train and test images; resumable) and carve the validation rows. */
export async function studyExtract(ctx: StudyContext, jobs: PlanJob[]): Promise<StoredStudy> {
  const train = await runPlan({ root: ctx.storeRoot, extractor: ctx.extractor, images: ctx.train, jobs, dtype: ctx.dtype });
  const test = await runPlan({ root: ctx.storeRoot, extractor: ctx.extractor, images: ctx.test, jobs, dtype: ctx.dtype });
  if (!ctx.train.labels) throw new Error(`${ctx.train.dataset}/${ctx.train.split}: no labels`);
  return { train, test, split: stratifiedSplit(ctx.train.labels, ctx.valFraction, ctx.seed) };
}

export interface SweepPoint extends SweepRow {
  sweep: string;
  paperBlock: number | null;
  block: number;
  t: number;
  pool: number;
}

/** One sweep point per (sweep, block, t, pool) of the plan: linear head fitted on fit, val accuracy. */
export async function studySweeps(ctx: StudyContext, plan: StudyPlan, st: StoredStudy, onRow?: (r: SweepRow) => void): Promise<{ points: SweepPoint[]; best: SweepPoint; bestTest: Evaluation }> {
  const map = (b: number) => mapPaperBlock(b, ctx.ourBlocks);
  const want: { sweep: string; paperBlock: number; t: number; pool: number }[] = [
    ...plan.tSweep.timesteps.map((t) => ({ sweep: `t sweep (paper block ${plan.tSweep.paperBlock})`, paperBlock: plan.tSweep.paperBlock, t, pool: 1 })),
    ...plan.blockSweep.timesteps.flatMap((t) => plan.blockSweep.paperBlocks.map((b) => ({ sweep: `block sweep (t ${t})`, paperBlock: b, t, pool: 1 }))),
    ...plan.poolSweep.settings.flatMap((s) => plan.poolSweep.pools.map((p) => ({ sweep: `pool sweep (paper block ${s.paperBlock}, t ${s.t})`, paperBlock: s.paperBlock, t: s.t, pool: p }))),
  ];
  // one head per distinct (block, t, pool); the sweeps share them
  const key = (b: number, t: number, p: number) => `${b}|${t}|${p}`;
  const distinct = new Map<string, { block: number; t: number; pool: number }>();
  for (const w of want) distinct.set(key(map(w.paperBlock), w.t, w.pool), { block: map(w.paperBlock), t: w.t, pool: w.pool });
  const settings = [...distinct.values()];
  const linear = ctx.linear ?? linearRecipe(ctx.seed);
  const { rows, best, bestIndex } = await sweepHeads(
    settings.map((s) => ({
      label: `block ${s.block}, t ${s.t}, pool ${s.pool}`,
      spec: { kind: "linear", pool: s.pool },
      source: featureSetSource(findSet(st.train, s.block, s.t, s.pool).set, ctx.numClasses),
      tags: { block: s.block, t: s.t, pool: s.pool },
    })),
    st.split, linear, onRow,
  );
  const byKey = new Map(rows.map((r) => [key(r.block as number, r.t as number, r.pool as number), r]));
  const points = want.map((w) => ({ ...byKey.get(key(map(w.paperBlock), w.t, w.pool))!, sweep: w.sweep, paperBlock: w.paperBlock } as SweepPoint));
  const b = settings[bestIndex];
  const bestTest = await best.score(featureSetSource(findSet(st.test, b.block, b.t, b.pool).set, ctx.numClasses));
  best.dispose();
  return { points, best: { ...rows[bestIndex], sweep: "best on val", paperBlock: null } as SweepPoint, bestTest };
}

export interface MainEntry {
  label: string;
  block: number;
  t: number;
  params: number;
  valAcc: number;
  test: Evaluation;
}

/** The main table's heads at the paper's setting mapped to our model (fixed before any test score): pool 1, pool 2, attention. */
export async function studyMain(ctx: StudyContext, plan: StudyPlan, st: StoredStudy): Promise<{ entries: MainEntry[]; pool2VsPool1: PairedComparison; attentionVsPool2: PairedComparison }> {
  const block = mapPaperBlock(plan.main.paperBlock, ctx.ourBlocks);
  const t = plan.main.t;
  const linear = ctx.linear ?? linearRecipe(ctx.seed);
  const heads: { label: string; spec: HeadSpec; train: TrainHeadOptions; pool: number }[] = [
    { label: "GD (L, pool 1x1)", spec: { kind: "linear", pool: 1 }, train: linear, pool: 1 },
    { label: "GD (L, pool 2x2)", spec: { kind: "linear", pool: 2 }, train: linear, pool: 2 },
    { label: "GD (Attention)", spec: ctx.attention.spec, train: ctx.attention.train, pool: Math.max(...plan.poolSweep.pools) },
  ];
  const entries: MainEntry[] = [];
  for (const h of heads) {
    // the attention head reads the largest stored map (ADM-256: 8x8 = avgpool 2 of the 16x16 map, the paper's 64 tokens)
    const trainSet = h.label.includes("Attention") ? st.train.filter((s) => s.block === block && s.t === t).sort((a, b) => b.side - a.side)[0] : findSet(st.train, block, t, h.pool);
    const testSet = st.test.find((s) => s.set.key.module === trainSet.set.key.module && s.t === t && s.side === trainSet.side)!;
    const fitted = await fitHead(h.label, h.spec, featureSetSource(trainSet.set, ctx.numClasses), st.split, h.train);
    try {
      const test = await fitted.score(featureSetSource(testSet.set, ctx.numClasses));
      entries.push({ label: h.label, block, t, params: fitted.params, valAcc: fitted.valAcc, test });
    } finally {
      fitted.dispose();
    }
  }
  const labels = st.test[0].set.manifest.labels!;
  return {
    entries,
    pool2VsPool1: mcnemarExact(entries[1].test.predictions, entries[0].test.predictions, labels),
    attentionVsPool2: mcnemarExact(entries[2].test.predictions, entries[1].test.predictions, labels),
  };
}
