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
import type { ImageSource } from "../features/store/images";
import type { FeatureExtractor } from "../features/store/extractor";
import type { StoreDtype } from "../features/store/key";
import type { HeadSpec } from "../heads/create";
import type { TrainHeadOptions } from "../heads/train-head";
import type { Evaluation } from "../heads/evaluate";
import { PAPER_LINEAR_RECIPE } from "../heads/optim";
import { mcnemarExact, PairedComparison } from "../metrics/classification";
import { findSet, PlanJob, runPlan, StoredSet } from "./extraction-plan";
import { featureSetSource, sweepHeads, fitHead, SweepRow } from "./heads-on-store";
import { validationSplit, ValidationSplit } from "./protocol/split";
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

/**
 * The store jobs of the test images: only the main table's setting (the paper's block and t mapped to our
 * model), at the same stored sides as the training jobs that hold it. Sweep points are scored on validation
 * rows only; the best-on-validation setting gets its test features when it is known (`studySweeps`).
 */
export function studyTestJobs(plan: StudyPlan, ourBlocks: number): PlanJob[] {
  const block = mapPaperBlock(plan.main.paperBlock, ourBlocks);
  const t = plan.main.t;
  const sides = [...new Set(studyJobs(plan, ourBlocks).filter((j) => j.blocks.includes(block) && j.timesteps.includes(t)).map((j) => j.pool))];
  if (!sides.length) throw new Error(`studyTestJobs: no training job holds the main setting (block ${block}, t ${t})`);
  return sides.map((pool) => ({ blocks: [block], timesteps: [t], pool }));
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
  split: ValidationSplit;
}

/** Fill the store (training images: `jobs`; test images: `testJobs`; resumable) and carve the validation rows. */
export async function studyExtract(ctx: StudyContext, jobs: PlanJob[], testJobs: PlanJob[]): Promise<StoredStudy> {
  const train = await runPlan({ root: ctx.storeRoot, extractor: ctx.extractor, images: ctx.train, jobs, dtype: ctx.dtype });
  const test = await runPlan({ root: ctx.storeRoot, extractor: ctx.extractor, images: ctx.test, jobs: testJobs, dtype: ctx.dtype });
  if (!ctx.train.labels) throw new Error(`${ctx.train.dataset}/${ctx.train.split}: no labels`);
  return { train, test, split: validationSplit(ctx.train.labels, { seed: ctx.seed, fraction: ctx.valFraction, ids: ctx.train.ids }) };
}

export interface SweepPoint extends SweepRow {
  sweep: string;
  paperBlock: number | null;
  block: number;
  t: number;
  pool: number;
}

/** The test features of (block, t) at stored side `side`: from the store, extracted now if missing. */
export async function ensureTestSet(ctx: StudyContext, st: StoredStudy, block: number, t: number, side: number): Promise<StoredSet> {
  const have = st.test.find((s) => s.block === block && s.t === t && s.side === side);
  if (have) return have;
  const sets = await runPlan({ root: ctx.storeRoot, extractor: ctx.extractor, images: ctx.test, jobs: [{ blocks: [block], timesteps: [t], pool: side }], dtype: ctx.dtype });
  st.test.push(...sets);
  return findSet(sets, block, t, side);
}

export interface StudySweeps {
  points: SweepPoint[];
  best: SweepPoint;
  bestTest: Evaluation;
  /** Validation predictions of the head at (block, t, pool) (our block numbers). */
  valPredictions(block: number, t: number, pool: number): Int32Array;
}

/**
 * One sweep point per (sweep, block, t, pool) of the plan: linear head fitted on fit, val accuracy; the
 * best on val is scored once on test (its test features extracted now if the store lacks them).
 */
export async function studySweeps(ctx: StudyContext, plan: StudyPlan, st: StoredStudy, onRow?: (r: SweepRow) => void): Promise<StudySweeps> {
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
  const { rows, valPredictions, best, bestIndex } = await sweepHeads(
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
  let bestTest: Evaluation;
  try {
    const side = findSet(st.train, b.block, b.t, b.pool).side;
    bestTest = await best.score(featureSetSource((await ensureTestSet(ctx, st, b.block, b.t, side)).set, ctx.numClasses));
  } finally {
    best.dispose();
  }
  const predByKey = new Map(settings.map((s, i) => [key(s.block, s.t, s.pool), valPredictions[i]]));
  return {
    points, best: { ...rows[bestIndex], sweep: "best on val", paperBlock: null } as SweepPoint, bestTest,
    valPredictions: (block, t, pool) => {
      const p = predByKey.get(key(block, t, pool));
      if (!p) throw new Error(`no sweep head at block ${block}, t ${t}, pool ${pool}`);
      return p;
    },
  };
}

/** The labels of the validation rows (in the order of split.val: the order of every head's val predictions). */
export function valLabels(ctx: StudyContext, st: StoredStudy): Int32Array {
  const labels = ctx.train.labels;
  if (!labels) throw new Error(`${ctx.train.dataset}/${ctx.train.split}: no labels`);
  return Int32Array.from(st.split.val, (i) => labels[i]);
}

export interface LrChoice {
  lr: number;
  rows: { lr: number; pool: number; valAcc: number; valLow: number; valHigh: number }[];
}

/**
 * The linear heads' learning rate, chosen on validation: the authors' recipe with each rate of `lrs`, pool 1
 * and pool 2 at the main setting (the paper's block and t mapped to our model), fitted on fit; the rate with
 * the best mean validation accuracy over the two pools wins (ties: the earlier in `lrs`).
 */
export async function chooseLinearLr(ctx: StudyContext, plan: StudyPlan, st: StoredStudy, lrs: number[]): Promise<LrChoice> {
  if (!lrs.length || lrs.some((x) => !(x > 0))) throw new Error(`chooseLinearLr: learning rates ${JSON.stringify(lrs)} must be positive (at least one)`);
  const block = mapPaperBlock(plan.main.paperBlock, ctx.ourBlocks);
  const base = ctx.linear ?? linearRecipe(ctx.seed);
  const rows: LrChoice["rows"] = [];
  let best = { lr: lrs[0], mean: -1 };
  for (const lr of lrs) {
    let sum = 0;
    for (const pool of [1, 2]) {
      const h = await fitHead(`lr ${lr}, pool ${pool}`, { kind: "linear", pool }, featureSetSource(findSet(st.train, block, plan.main.t, pool).set, ctx.numClasses), st.split, withLr(base, lr));
      h.dispose();
      rows.push({ lr, pool, valAcc: h.valAcc, valLow: h.val.top1Interval.low, valHigh: h.val.top1Interval.high });
      sum += h.valAcc;
    }
    if (sum / 2 > best.mean) best = { lr, mean: sum / 2 };
  }
  return { lr: best.lr, rows };
}

/** `ctx.linear` (or the authors' recipe) with another learning rate. */
export function withLr(train: TrainHeadOptions, lr: number): TrainHeadOptions {
  return { ...train, optimizer: { ...train.optimizer, lr } } as TrainHeadOptions;
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
