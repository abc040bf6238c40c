/**
 * Notebook 04's experiment in stages that work the same on every scale (the embedded model on Fashion-MNIST,
 * ADM-256 on ImageNet, a tiny checkpoint on a synthetic ImageNet tree): the paper's three sweeps of its
 * block/time figure (t at one block; blocks at two t; pooled sizes at two settings) and its main table
 * (linear pool 1 and 2 and an attention head at the paper's block and t mapped to our model).
 *
 * Every choice goes through the one selection (protocol/select.ts selectAndTest) over stored sets as
 * candidates (candidates.ts): fit on the fit rows, score on validation, refit the winner on all training
 * rows, score it once on test. Concretely:
 *   - the linear heads' learning rate: one selection over the rate grid at the main setting for pool 1 and
 *     one for pool 2 (these are the main table's linear rows); the sweeps use pool 1's rate;
 *   - the sweeps: one selection over every distinct (block, t, pool) of the figure; its winner (the best
 *     setting on validation) is the one sweep point scored on test;
 *   - the attention head: one selection over its epoch grid (trained to a validation plateau).
 * `edgeNote` (grid-edge.ts) says when a grid's edge wins.
 */
import type { ImageSource } from "../features/store/images";
import type { FeatureExtractor } from "../features/store/extractor";
import type { StoreDtype } from "../features/store/key";
import type { HeadSpec } from "../heads/create";
import type { TrainHeadOptions } from "../heads/train-head";
import { PAPER_LINEAR_RECIPE } from "../heads/optim";
import { withViews } from "./views";
import type { ViewOptions } from "./views";
import type { Block } from "../model/unet/blocks";
import { linearHead, storedCandidates } from "./candidates";
import { findSet, PlanJob, runPlan, StoredSet } from "./extraction-plan";
import { Candidate, pairedOnTest, PairedRow, selectAndTest, Selection, ValidationRow } from "./protocol/select";
import { validationSplit, ValidationSplit } from "./protocol/split";
import { mapPaperBlock } from "./block-depth";
import { edgeNote } from "./grid-edge";

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
 * rows only; the best-on-validation setting gets its test features when it is chosen (`testSets`).
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
  /** How the linear heads see their training images (default cached; views.ts withViews). */
  views?: ViewOptions;
}

/** The authors' linear recipe (SGD, step 7 x 0.1, 28 epochs), batch 128, at learning rate `lr` (default theirs). */
export function linearRecipe(seed: number, lr: number = PAPER_LINEAR_RECIPE.optimizer.lr, batchSize = 128): TrainHeadOptions {
  if (!(lr > 0)) throw new Error(`linearRecipe: learning rate ${lr} must be positive`);
  return { epochs: PAPER_LINEAR_RECIPE.epochs, batchSize, optimizer: { ...PAPER_LINEAR_RECIPE.optimizer, lr }, schedule: PAPER_LINEAR_RECIPE.schedule, seed, showProgress: false };
}

export interface StoredStudy {
  train: StoredSet[];
  test: StoredSet[];
  split: ValidationSplit;
}

/** Fill the store (training images: `jobs`; test images: `testJobs`; resumable) and carve the validation rows. */
export async function studyExtract(ctx: StudyContext, jobs: PlanJob[], testJobs: PlanJob[]): Promise<StoredStudy> {
  if (!ctx.train.labels) throw new Error(`${ctx.train.dataset}/${ctx.train.split}: no labels`);
  const train = await runPlan({ root: ctx.storeRoot, extractor: ctx.extractor, images: ctx.train, jobs, dtype: ctx.dtype });
  const test = await runPlan({ root: ctx.storeRoot, extractor: ctx.extractor, images: ctx.test, jobs: testJobs, dtype: ctx.dtype });
  return { train, test, split: validationSplit(ctx.train.labels, { seed: ctx.seed, fraction: ctx.valFraction, ids: ctx.train.ids }) };
}

/**
 * The test features of a stored training set (same block, t and side): from the store, else extracted now,
 * so that only the settings a selection scores on test ever get test features.
 */
export function testSets(ctx: Pick<StudyContext, "extractor" | "test" | "storeRoot" | "dtype">, st: Pick<StoredStudy, "test">): (s: StoredSet) => Promise<StoredSet> {
  return async (s) => {
    const have = st.test.find((x) => x.block.number === s.block.number && x.t === s.t && x.side === s.side);
    if (have) return have;
    const sets = await runPlan({ root: ctx.storeRoot, extractor: ctx.extractor, images: ctx.test, jobs: [{ blocks: [s.block], timesteps: [s.t], pool: s.side }], dtype: ctx.dtype, label: `${ctx.test.dataset} (test features of the chosen setting)` });
    st.test.push(...sets);
    return findSet(sets, s.block, s.t, s.side);
  };
}

/** Linear heads (the one linear head, authors' recipe) at (block, t): one candidate per pool and learning rate. */
export function linearCandidates(ctx: StudyContext, st: StoredStudy, block: number, t: number, pools: number[], lrs: number[]): Candidate[] {
  if (!lrs.length || lrs.some((x) => !(x > 0))) throw new Error(`linearCandidates: learning rates ${JSON.stringify(lrs)} must be positive (at least one)`);
  const views = ctx.views;
  const viewCtx = { root: ctx.storeRoot, extractor: ctx.extractor, train: ctx.train, test: ctx.test, numClasses: ctx.numClasses };
  return pools.flatMap((pool) =>
    lrs.flatMap((lr) =>
      storedCandidates(st.train, testSets(ctx, st), {
        numClasses: ctx.numClasses, pool, where: (s) => s.block.number === block && s.t === t,
        training: { optimizer: linearRecipe(ctx.seed, lr).optimizer }, tags: { lr },
      }).map((c) => (views ? withViews(c, viewCtx, { ...views, dtype: ctx.dtype }) : c)),
    ),
  );
}

export interface LrChoice {
  /** The rate the sweeps use: pool 1's choice. */
  lr: number;
  /** One selection per pool (1 and 2) over the rate grid: the main table's linear rows. */
  byPool: { pool: number; selection: Selection }[];
  /** A sentence when a pool's chosen rate is at an edge of the grid (null otherwise). */
  edges: string[];
}

/**
 * The linear heads' learning rate, chosen on validation at the main setting (the paper's block and t mapped
 * to our model): for pool 1 and for pool 2, one selectAndTest over the rates of `lrs` (authors' recipe
 * otherwise); each winner is refit on all training rows and scored once on test (the main table's linear
 * rows). The sweeps then use pool 1's rate (they are pool-1 figures; the pool sweep uses it too).
 */
export async function chooseLinearLr(ctx: StudyContext, plan: StudyPlan, st: StoredStudy, lrs: number[], showProgress = false): Promise<LrChoice> {
  const block = mapPaperBlock(plan.main.paperBlock, ctx.ourBlocks);
  const byPool: LrChoice["byPool"] = [];
  const edges: string[] = [];
  for (const pool of [1, 2]) {
    const cands = linearCandidates(ctx, st, block, plan.main.t, [pool], lrs);
    const selection = await selectAndTest(`GD (L, pool ${pool}x${pool})`, cands, { split: st.split, training: linearRecipe(ctx.seed), showProgress });
    byPool.push({ pool, selection });
    const note = edgeNote(selection, "lr", `linear pool ${pool}: learning rate`);
    if (note) edges.push(note);
  }
  return { lr: byPool[0].selection.chosen.lr as number, byPool, edges };
}

export interface SweepPoint {
  sweep: string;
  paperBlock: number;
  block: Block;
  t: number;
  pool: number;
  params: number;
  valAcc: number;
  valLow: number;
  valHigh: number;
  seconds: number;
}

export interface StudySweeps {
  points: SweepPoint[];
  /** The selection over every distinct (block, t, pool): its chosen row is the best setting on validation, scored on test. */
  selection: Selection;
  /** Validation predictions of the head at (block, t, pool) (our block numbers), in the order of split.val. */
  valPredictions(block: number, t: number, pool: number): Int32Array;
}

/** The sweep points of a plan (paper block numbers), in the figure's order. */
export function sweepPoints(plan: StudyPlan): { sweep: string; paperBlock: number; t: number; pool: number }[] {
  return [
    ...plan.tSweep.timesteps.map((t) => ({ sweep: `t sweep (paper block ${plan.tSweep.paperBlock})`, paperBlock: plan.tSweep.paperBlock, t, pool: 1 })),
    ...plan.blockSweep.timesteps.flatMap((t) => plan.blockSweep.paperBlocks.map((b) => ({ sweep: `block sweep (t ${t})`, paperBlock: b, t, pool: 1 }))),
    ...plan.poolSweep.settings.flatMap((s) => plan.poolSweep.pools.map((p) => ({ sweep: `pool sweep (paper block ${s.paperBlock}, t ${s.t})`, paperBlock: s.paperBlock, t: s.t, pool: p }))),
  ];
}

/**
 * One linear head (authors' recipe at rate `lr`) per distinct (block, t, pool) of the figure, all in one
 * selection: each scored on validation; the best on validation is refit and scored once on test (its test
 * features extracted now if the store lacks them).
 */
export async function studySweeps(ctx: StudyContext, plan: StudyPlan, st: StoredStudy, lr: number, opts: { showProgress?: boolean; onRow?: (r: ValidationRow) => void } = {}): Promise<StudySweeps> {
  const map = (b: number) => mapPaperBlock(b, ctx.ourBlocks);
  const want = sweepPoints(plan);
  const key = (b: number, t: number, p: number) => `${b}|${t}|${p}`;
  const distinct = new Map<string, { block: number; t: number; pool: number }>();
  for (const w of want) distinct.set(key(map(w.paperBlock), w.t, w.pool), { block: map(w.paperBlock), t: w.t, pool: w.pool });
  const settings = [...distinct.values()];
  const cands = settings.flatMap((s) => linearCandidates(ctx, st, s.block, s.t, [s.pool], [lr]));
  const selection = await selectAndTest("sweeps", cands, { split: st.split, training: linearRecipe(ctx.seed), ...opts });
  const index = new Map(settings.map((s, i) => [key(s.block, s.t, s.pool), i]));
  const points = want.map((w) => {
    const i = index.get(key(map(w.paperBlock), w.t, w.pool))!;
    const r = selection.grid[i];
    return { sweep: w.sweep, paperBlock: w.paperBlock, block: r.block!, t: w.t, pool: w.pool, params: r.params, valAcc: r.valAcc, valLow: r.valLow, valHigh: r.valHigh, seconds: r.seconds };
  });
  return {
    points, selection,
    valPredictions: (block, t, pool) => {
      const i = index.get(key(block, t, pool));
      if (i === undefined) throw new Error(`no sweep head at block ${block}, t ${t}, pool ${pool}`);
      return selection.valPredictions[i];
    },
  };
}

/** The labels of the validation rows (in the order of split.val: the order of every head's val predictions). */
export function valLabels(ctx: StudyContext, st: StoredStudy): Int32Array {
  const labels = ctx.train.labels;
  if (!labels) throw new Error(`${ctx.train.dataset}/${ctx.train.split}: no labels`);
  return Int32Array.from(st.split.val, (i) => labels[i]);
}

export interface AttentionOptions {
  /** The head (its width, heads, blocks, token pooling). */
  spec: HeadSpec;
  /** Training options; `epochs` is replaced by each value of `epochGrid`. */
  training: TrainHeadOptions;
  /** Epoch counts to choose from on validation (the plateau search). */
  epochGrid: number[];
}

/**
 * The attention head at the main setting, on the largest stored map of (block, t): one selection over
 * `epochGrid` (train to a validation plateau); the chosen count is refit and scored once on test.
 */
export async function attentionSelection(ctx: StudyContext, plan: StudyPlan, st: StoredStudy, opts: AttentionOptions, showProgress = false): Promise<{ selection: Selection; edge: string | null }> {
  if (!opts.epochGrid.length || opts.epochGrid.some((e) => !(Number.isInteger(e) && e > 0))) throw new Error(`attentionSelection: epoch grid ${JSON.stringify(opts.epochGrid)} must be positive integers`);
  const block = mapPaperBlock(plan.main.paperBlock, ctx.ourBlocks);
  const t = plan.main.t;
  const sides = st.train.filter((s) => s.block.number === block && s.t === t).map((s) => s.side);
  if (!sides.length) throw new Error(`attentionSelection: no stored training set for block ${block}, t ${t}`);
  const side = Math.max(...sides);
  const cands = opts.epochGrid.flatMap((epochs) =>
    storedCandidates(st.train, testSets(ctx, st), {
      numClasses: ctx.numClasses, pool: side, where: (s) => s.block.number === block && s.t === t && s.side === side,
      head: () => opts.spec, training: { epochs }, tags: { epochs },
    }),
  );
  const selection = await selectAndTest("GD (Attention)", cands, { split: st.split, training: opts.training, showProgress });
  return { selection, edge: edgeNote(selection, "epochs", "attention head: epochs") };
}

export interface MainTable {
  pool1: Selection;
  pool2: Selection;
  attention: Selection;
  pool2VsPool1: PairedRow;
  attentionVsPool2: PairedRow;
}

/** The main table from its three selections, with exact McNemar tests between these pre-chosen settings. */
export function mainTable(lr: LrChoice, attention: Selection, testLabels: ArrayLike<number>): MainTable {
  const [pool1, pool2] = [1, 2].map((p) => {
    const s = lr.byPool.find((x) => x.pool === p);
    if (!s) throw new Error(`mainTable: no linear selection at pool ${p}`);
    return s.selection;
  });
  return {
    pool1, pool2, attention,
    pool2VsPool1: pairedOnTest(pool2.chosen, pool1.chosen, testLabels),
    attentionVsPool2: pairedOnTest(attention.chosen, pool2.chosen, testLabels),
  };
}
