/**
 * Choosing a setting without looking at the test split, then scoring it once: the one selection every
 * notebook uses (02, 04, 05, 06, 08), for any head of lib/heads (a `HeadSpec`).
 *
 *   1. every candidate (a setting: block, t, pool, ...; a head spec; its training options) is fit on the
 *      training rows minus the validation rows (split.ts) and scored on the validation rows;
 *   2. the winner is the candidate with the highest validation accuracy (ties: the first in grid order);
 *      nothing about the test split is read before this point;
 *   3. the winner alone is refit on the whole training split (fit + validation rows: the choice is made,
 *      so the held-out rows go back to training, as the final model of any search is trained) and scored
 *      ONCE on the test split: top-1/top-5 with 95% Wilson intervals and the test predictions.
 *
 * The grid's test accuracies may still be shown, as the paper shows its grid, by `gridOnTest` after the
 * choice (with `keepGridHeads`): they come from the grid's heads (fit without the validation rows) and are
 * labelled TEST_SHOWN_LABEL. Paired tests (`pairedOnTest`) take only rows chosen by `selectAndTest`;
 * `repeatSeeds` re-scores a chosen setting over other seeds (head initialisation and order, noise draw).
 *
 * Memory: candidates hand out their sources lazily, and a source is copied into memory only when it fits
 * `memoryBudgetBytes` (store-source.ts withinBudget); otherwise the head streams its batches from the
 * store. Without `keepGridHeads`, at most one grid head is alive at a time.
 */
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import type { Block } from "../../model/unet/blocks";
import { blockLabel } from "../../model/unet/blocks";
import { buildHead, HeadSpec } from "../../heads/create";
import { evaluateHead, Evaluation } from "../../heads/evaluate";
import { countParams, Head } from "../../heads/head";
import { PROBE_RECIPE } from "../../heads/optim";
import { FeatureSource, rowSize, subsetSource } from "../../heads/source";
import { withinBudget } from "../../heads/store-source";
import { checkpointEpochs, trainHead, TrainHeadOptions } from "../../heads/train-head";
import { mcnemarExact, PairedComparison } from "../../metrics/classification";
import { progress } from "../../display/progress";
import { FitValRows, ValidationSplit, ValidationSplitRecord } from "./split";

export type { Block };

/** What a candidate is, for the results: where its features come from. */
export interface Setting {
  block: Block | null;
  t: number | null;
  /** Pooled size the head reads ("4x4", "none (raw pixels)", ...). */
  pool: string;
  /** Anything else that tells candidates apart in a table (a learning rate, a sweep name, ...). */
  tags?: Record<string, string | number | null>;
}

/** One candidate of a selection: a setting, the head to fit on it and how, and its rows. */
export interface Candidate {
  setting: Setting;
  head: HeadSpec;
  /** Training options of this candidate over the selection's common ones (a learning rate of a search). */
  training?: Partial<TrainHeadOptions>;
  /**
   * What the training rows are, stable across runs (a stored set's id; the raw pixels' image list), so a
   * fit on them can be checkpointed and resumed (SelectOptions.checkpointDir). Absent: never checkpointed.
   */
  dataId?: string;
  /** All training rows, in the order the split's positions index. Called when the candidate is fit. */
  train(): FeatureSource;
  /**
   * The test rows. Called once, for the chosen candidate only (and by gridOnTest, after the choice); may
   * extract them first (a promise), so that only the chosen setting's test features are ever computed.
   */
  test(): FeatureSource | Promise<FeatureSource>;
}

/** Training options of the project's linear probe (PROBE_RECIPE) with a seed. */
export function probeTraining(seed: number, over: Partial<TrainHeadOptions> = {}): TrainHeadOptions {
  return { epochs: PROBE_RECIPE.epochs, batchSize: PROBE_RECIPE.batchSize, optimizer: PROBE_RECIPE.optimizer, schedule: PROBE_RECIPE.schedule, seed, showProgress: false, ...over };
}

export interface SelectOptions {
  split: ValidationSplit;
  /** Training options common to every candidate (default: the linear probe's recipe, seed 0). */
  training?: TrainHeadOptions;
  /** A source is copied into memory only if its rows take at most this (default 1 GiB); else it streams. */
  memoryBudgetBytes?: number;
  /** Keep every grid head alive so that gridOnTest can show the grid on test (dispose with disposeGrid). */
  keepGridHeads?: boolean;
  showProgress?: boolean;
  /** Called with each validation row as it is scored. */
  onRow?: (row: ValidationRow) => void;
  /**
   * Resumable long runs: each fit of a candidate with a `dataId` writes its head checkpoint (after every
   * epoch) to a file of this folder named by (dataId, rows fit, head, training options); a rerun loads a
   * finished fit instead of repeating it and continues an unfinished one (fitCheckpoint). The file name
   * does not cover the library's code: delete the folder after changing a head or the trainer.
   */
  checkpointDir?: string | null;
}

export const DEFAULT_MEMORY_BUDGET = 1 << 30;

/**
 * The checkpoint file of one fit: `dir`/<hash>.head, the hash over the candidate's `dataId`, which rows
 * are fit (`rows`: "all", or a validation split's hash and side), the head spec and the training options
 * (the seed included). Null when there is no folder or the candidate has no dataId.
 */
export function fitCheckpoint(dir: string | null | undefined, c: Pick<Candidate, "dataId" | "head">, rows: string, training: TrainHeadOptions): string | null {
  if (!dir || !c.dataId) return null;
  fs.mkdirSync(dir, { recursive: true });
  const { onEpoch: _o, showProgress: _p, label: _l, checkpoint: _c, ...options } = training;
  const key = JSON.stringify({ data: c.dataId, rows, head: c.head, training: options });
  return path.join(dir, `${createHash("sha256").update(key).digest("hex").slice(0, 24)}.head`);
}

/** The column name under which a grid's test accuracies are shown (never used to choose). */
export const TEST_SHOWN_LABEL = "test (shown as the paper shows its grid; not used to choose)";

/** A head fitted on some rows, alive until dispose(). */
export interface FittedHead {
  spec: HeadSpec;
  params: number;
  seconds: number;
  inMemory: boolean;
  /** Epochs loaded from a checkpoint an earlier run wrote (0: every epoch trained in this run). */
  resumedEpochs: number;
  /** The fitted head's evaluation of a source with the same row shape (validation or test rows). */
  evaluate(source: FeatureSource): Promise<Evaluation>;
  dispose(): void;
}

/**
 * What a fit can do at the end of an epoch listed in `at`: score the head as it is then, and keep a copy of
 * it (a FittedHead of its own) — so that one run of E epochs serves every epoch count <= E of a grid.
 */
export interface EpochStop {
  epochs: number;
  seconds: number;
  params: number;
  inMemory: boolean;
  evaluate(source: FeatureSource): Promise<Evaluation>;
  keep(): Promise<FittedHead>;
}

/**
 * Fit `spec` on the rows `rows` of `source` (all rows when null): the one way every notebook fits a head.
 * `stops`: at the end of each of these epoch counts (1-based, <= training.epochs), `onStop` is called with
 * the head as it is then. The trainer's batch order and rate depend only on (seed, epoch), so the head after
 * epoch e of a longer run is the head an e-epoch run ends with, value for value.
 */
export async function fitHead(spec: HeadSpec, source: FeatureSource, rows: ArrayLike<number> | null, training: TrainHeadOptions, memoryBudgetBytes = DEFAULT_MEMORY_BUDGET, stops?: { epochs: readonly number[]; onStop: (stop: EpochStop) => Promise<void> }): Promise<FittedHead> {
  const t0 = Date.now();
  const fitRows = rows ? subsetSource(source, rows) : source;
  const built = await buildHead(spec, fitRows, training.seed);
  const head: Head = built.head;
  // the rows the head reads (pooled for linear and MLP heads), copied into memory once when they fit;
  // not copied when a finished checkpoint will give the weights (no epoch left to read them)
  const done = !stops && training.checkpoint ? checkpointEpochs(training.checkpoint) === training.epochs : false;
  const held = done ? { source: built.input(fitRows), inMemory: false } : await withinBudget(built.input(fitRows), memoryBudgetBytes);
  const fitted = (h: Head, seconds: number, dispose: () => void, resumedEpochs = 0): FittedHead => ({
    spec, params: countParams(h), seconds, inMemory: held.inMemory, resumedEpochs,
    evaluate: (s) => evaluateHead(h, built.input(s)),
    dispose,
  });
  const userOnEpoch = training.onEpoch;
  const onEpoch = stops
    ? async (epoch: number, loss: number) => {
        if (userOnEpoch) await userOnEpoch(epoch, loss);
        if (!stops.epochs.includes(epoch + 1)) return;
        const seconds = (Date.now() - t0) / 1000;
        await stops.onStop({
          epochs: epoch + 1, seconds, params: countParams(head), inMemory: held.inMemory,
          evaluate: (s) => evaluateHead(head, built.input(s)),
          keep: async () => {
            const copy = (await buildHead(spec, fitRows, training.seed)).head;
            copy.params.forEach((p, i) => p.variable.assign(head.params[i].variable));
            copy.buffers?.forEach((b, i) => b.variable.assign(head.buffers![i].variable)); // BatchNorm statistics
            return fitted(copy, seconds, () => copy.dispose());
          },
        });
      }
    : userOnEpoch;
  let resumed = 0;
  try {
    resumed = (await trainHead(head, held.source, { showProgress: false, ...training, ...(onEpoch ? { onEpoch } : {}) })).resumedFrom;
  } catch (e) {
    head.dispose();
    throw e;
  }
  return fitted(head, (Date.now() - t0) / 1000, () => head.dispose(), resumed);
}

/**
 * Candidates that differ only in their epoch count: equal setting (tags other than `epochs`), head and
 * training options other than `epochs` (storedCandidates then reads the same rows for them). Each group is
 * fit once, to its largest count, and scored at every count of the group (fitHead's stops).
 */
export function epochGroups(candidates: readonly Candidate[], base: TrainHeadOptions): number[][] {
  const key = (c: Candidate) => {
    const { epochs: _e, ...tags } = (c.setting.tags ?? {}) as Record<string, unknown>;
    const { epochs: _t, onEpoch: _o, ...training } = { ...base, ...(c.training ?? {}) };
    return JSON.stringify({ setting: { ...c.setting, tags }, head: c.head, training });
  };
  const groups = new Map<string, number[]>();
  candidates.forEach((c, i) => {
    const k = key(c);
    groups.set(k, [...(groups.get(k) ?? []), i]);
  });
  return [...groups.values()];
}

/** One candidate scored on validation (plain data). */
export interface ValidationRow {
  features: string;
  block: Block | null;
  t: number | null;
  pool: string;
  head: string;
  training: string;
  params: number;
  dim: number;
  fitRows: number;
  valRows: number;
  fitAcc: number;
  valAcc: number;
  valLow: number;
  valHigh: number;
  chosen: boolean;
  inMemory: boolean;
  seconds: number;
  /** Epochs of this fit loaded from a checkpoint of an earlier run (checkpointDir); 0 when all ran now. */
  resumedEpochs: number;
  [tag: string]: unknown;
}

/** The chosen setting of one feature source, refit on the whole training split and scored once on test. */
export interface ChosenRow {
  features: string;
  block: Block | null;
  t: number | null;
  pool: string;
  head: string;
  training: string;
  params: number;
  dim: number;
  /** How it was chosen, and on what. */
  chosenBy: string;
  valAcc: number;
  trainRows: number;
  testRows: number;
  testAcc: number;
  testLow: number;
  testHigh: number;
  testTop5: number;
  split: ValidationSplitRecord;
  [tag: string]: unknown;
}

export interface Selection {
  features: string;
  grid: ValidationRow[];
  /** The chosen row; `test` (its evaluation, with predictions) is not enumerable: CSV/JSON keep the plain columns. */
  chosen: ChosenRow & { readonly test: Evaluation };
  /** Index of the chosen candidate in the grid, and the candidate (its setting and head spec). */
  index: number;
  candidate: Candidate;
  /** Each grid head's validation predictions (in the order of split.val), for paired tests on validation. */
  valPredictions: Int32Array[];
}

const gridHeads = new WeakMap<ValidationRow, FittedHead>();
const chosenRows = new WeakSet<object>();

export function headLabel(spec: HeadSpec): string {
  const { kind, ...rest } = spec as HeadSpec & Record<string, unknown>;
  const parts = Object.entries(rest).filter(([, v]) => v !== undefined).map(([k, v]) => `${k} ${Array.isArray(v) ? v.join("x") : v}`);
  return parts.length ? `${kind} (${parts.join(", ")})` : kind;
}

export function trainingLabel(t: TrainHeadOptions): string {
  const o = t.optimizer;
  const sched = t.schedule && t.schedule.stepEpochs !== null ? `, step ${t.schedule.stepEpochs} x ${t.schedule.gamma}` : "";
  return `${o.kind} lr ${o.lr}${o.weightDecay ? ` wd ${o.weightDecay}` : ""}${"momentum" in o && o.momentum ? ` momentum ${o.momentum}` : ""}${sched}, ${t.epochs} epochs, batch ${t.batchSize}, seed ${t.seed}`;
}

/** Index of the highest validation accuracy (ties: the first). Reads validation accuracies only. */
export function chooseOnValidation(rows: readonly { valAcc: number }[]): number {
  if (rows.length === 0) throw new Error("chooseOnValidation: no candidates");
  let best = 0;
  for (let i = 1; i < rows.length; i++) if (rows[i].valAcc > rows[best].valAcc) best = i;
  return best;
}

function checkTrain(features: string, c: Candidate, train: FeatureSource, split: FitValRows & { record?: ValidationSplitRecord }): void {
  const rows = split.fit.length + split.val.length;
  if (train.rows !== rows) {
    throw new Error(`selectAndTest: ${features} at ${describe(c.setting)}: ${train.rows} training rows but the validation split was made for ${rows}`);
  }
}

export function describe(s: Setting): string {
  const tags = s.tags ? Object.entries(s.tags).map(([k, v]) => `, ${k} ${v}`).join("") : "";
  return (s.block ? `block ${blockLabel(s.block)}, t = ${s.t}, pool ${s.pool}` : `${s.pool}`) + tags;
}

function trainingOf(opts: SelectOptions, c: Candidate): TrainHeadOptions {
  return { ...(opts.training ?? probeTraining(0)), ...(c.training ?? {}) };
}

/** Steps 1-3 of the module comment for the candidates of one feature source. */
export async function selectAndTest(features: string, candidates: readonly Candidate[], opts: SelectOptions): Promise<Selection> {
  if (candidates.length === 0) throw new Error(`selectAndTest: ${features}: no candidates`);
  const { split } = opts;
  const budget = opts.memoryBudgetBytes ?? DEFAULT_MEMORY_BUDGET;
  const grid: ValidationRow[] = [];
  const valPredictions: Int32Array[] = [];
  const bar = opts.showProgress === false ? null : progress({ total: candidates.length + 1, label: `${features}: heads on validation`, unit: "head" });
  try {
    const rows: ValidationRow[] = new Array(candidates.length);
    const preds: Int32Array[] = new Array(candidates.length);
    const score = async (i: number, at: { seconds: number; resumedEpochs?: number; evaluate(s: FeatureSource): Promise<Evaluation> }, params: number, inMemory: boolean, train: FeatureSource, training: TrainHeadOptions) => {
      const c = candidates[i];
      const val = await at.evaluate(subsetSource(train, split.val));
      const fitAcc = (await at.evaluate(subsetSource(train, split.fit))).top1;
      const row: ValidationRow = {
        features, block: c.setting.block, t: c.setting.t, pool: c.setting.pool, ...(c.setting.tags ?? {}),
        head: headLabel(c.head), training: trainingLabel(training), params, dim: rowSize(train.shape),
        fitRows: split.fit.length, valRows: split.val.length, fitAcc, valAcc: val.top1, valLow: val.top1Interval.low, valHigh: val.top1Interval.high,
        chosen: false, inMemory, seconds: at.seconds, resumedEpochs: at.resumedEpochs ?? 0,
      };
      rows[i] = row;
      preds[i] = val.predictions;
      opts.onRow?.(row);
      bar?.tick(1, { bestVal: Math.max(...rows.filter(Boolean).map((x) => x.valAcc)).toFixed(3) });
      return row;
    };
    for (const group of epochGroups(candidates, opts.training ?? probeTraining(0))) {
      const last = group.reduce((a, b) => (trainingOf(opts, candidates[b]).epochs > trainingOf(opts, candidates[a]).epochs ? b : a), group[0]);
      const c = candidates[last];
      const train = c.train();
      checkTrain(features, c, train, split);
      const training = trainingOf(opts, c);
      const others = group.filter((i) => i !== last);
      const stops = others.length
        ? {
            epochs: others.map((i) => trainingOf(opts, candidates[i]).epochs),
            onStop: async (stop: EpochStop) => {
              for (const i of others.filter((k) => trainingOf(opts, candidates[k]).epochs === stop.epochs)) {
                const row = await score(i, stop, stop.params, stop.inMemory, train, trainingOf(opts, candidates[i]));
                if (opts.keepGridHeads) gridHeads.set(row, await stop.keep());
              }
            },
          }
        : undefined;
      // a group scored at several epoch counts is not checkpointed (a resumed run would miss its earlier stops)
      const ckpt = stops ? null : fitCheckpoint(opts.checkpointDir, c, `fit of ${split.record.hash}`, training);
      const fitted = await fitHead(c.head, train, split.fit, ckpt ? { ...training, checkpoint: ckpt } : training, budget, stops);
      try {
        const row = await score(last, fitted, fitted.params, fitted.inMemory, train, training);
        if (opts.keepGridHeads) gridHeads.set(row, fitted);
      } finally {
        if (!opts.keepGridHeads) fitted.dispose();
      }
    }
    grid.push(...rows);
    valPredictions.push(...preds);
    // The choice: validation accuracies only. The test split has not been read.
    const index = chooseOnValidation(grid);
    grid[index].chosen = true;
    const c = candidates[index];
    const train = c.train();
    const training = trainingOf(opts, c);
    const finalCkpt = fitCheckpoint(opts.checkpointDir, c, "all", training);
    const final = await fitHead(c.head, train, null, finalCkpt ? { ...training, checkpoint: finalCkpt } : training, budget);
    let test: Evaluation;
    try {
      test = await final.evaluate(await c.test());
    } finally {
      final.dispose();
    }
    bar?.tick(1);
    const g = grid[index];
    const chosen: ChosenRow = {
      features, block: c.setting.block, t: c.setting.t, pool: c.setting.pool, ...(c.setting.tags ?? {}), head: g.head, training: g.training, params: g.params, dim: g.dim,
      chosenBy: `highest validation accuracy of ${candidates.length} candidate${candidates.length > 1 ? "s" : ""} (${split.val.length} validation images, ${split.record.rule}, seed ${split.record.seed}); refit on all ${train.rows} training images; test scored once`,
      valAcc: g.valAcc, trainRows: train.rows, testRows: test.n, testAcc: test.top1, testLow: test.top1Interval.low, testHigh: test.top1Interval.high, testTop5: test.top5,
      split: split.record, resumedEpochs: final.resumedEpochs,
    };
    Object.defineProperty(chosen, "test", { value: test, enumerable: false });
    chosenRows.add(chosen);
    return { features, grid, chosen: chosen as Selection["chosen"], index, candidate: c, valPredictions };
  } finally {
    bar?.done();
  }
}

/**
 * A setting fixed before the test split was read (a recipe compared with another, on a block and t chosen
 * on validation earlier): no choice to make, so its head is fit on all training rows and scored once on
 * test. `split` is the validation split the setting's earlier choice was made on (paired tests compare
 * rows of one split only); `why` says how the setting was fixed. valAcc is NaN (not scored on validation).
 * The row enters pairedOnTest like a chosen one.
 */
export async function testFixed(features: string, c: Candidate, opts: { split: ValidationSplitRecord; why: string; training?: TrainHeadOptions; memoryBudgetBytes?: number; checkpointDir?: string | null }): Promise<Selection["chosen"]> {
  const training = { ...(opts.training ?? probeTraining(0)), ...(c.training ?? {}) };
  const train = c.train();
  const ckpt = fitCheckpoint(opts.checkpointDir, c, "all", training);
  const fitted = await fitHead(c.head, train, null, ckpt ? { ...training, checkpoint: ckpt } : training, opts.memoryBudgetBytes ?? DEFAULT_MEMORY_BUDGET);
  let test: Evaluation;
  try {
    test = await fitted.evaluate(await c.test());
  } finally {
    fitted.dispose();
  }
  const row: ChosenRow = {
    features, block: c.setting.block, t: c.setting.t, pool: c.setting.pool, ...(c.setting.tags ?? {}), head: headLabel(c.head), training: trainingLabel(training),
    params: fitted.params, dim: rowSize(train.shape), chosenBy: `${opts.why}; fit on all ${train.rows} training images; test scored once`,
    valAcc: NaN, trainRows: train.rows, testRows: test.n, testAcc: test.top1, testLow: test.top1Interval.low, testHigh: test.top1Interval.high, testTop5: test.top5,
    split: opts.split, seconds: fitted.seconds,
  };
  Object.defineProperty(row, "test", { value: test, enumerable: false });
  chosenRows.add(row);
  return row as Selection["chosen"];
}

/** A candidate's validation accuracy after some number of epochs (validationCurve). */
export interface CurveRow {
  features: string;
  block: Block | null;
  t: number | null;
  pool: string;
  epochs: number;
  steps: number;
  valAcc: number;
  valLow: number;
  valHigh: number;
}

/**
 * Did the head reach its plateau? One fit of `c` on the split's fit rows to the largest of `epochs`, scored
 * on the validation rows after each count (fitHead's stops: the head after e epochs is the e-epoch head).
 * Reads validation rows only; for a setting already chosen, it shows what more or fewer epochs would give.
 */
export async function validationCurve(features: string, c: Candidate, opts: { split: FitValRows; epochs: readonly number[]; training?: TrainHeadOptions; memoryBudgetBytes?: number }): Promise<CurveRow[]> {
  const epochs = [...new Set(opts.epochs)].sort((a, b) => a - b);
  if (!epochs.length || !epochs.every((e) => Number.isInteger(e) && e > 0)) throw new Error(`validationCurve: ${features}: epochs ${JSON.stringify(opts.epochs)} must be positive integers`);
  const training = { ...(opts.training ?? probeTraining(0)), ...(c.training ?? {}), epochs: epochs[epochs.length - 1] };
  const train = c.train();
  checkTrain(features, c, train, opts.split);
  const val = subsetSource(train, opts.split.val);
  const rows: CurveRow[] = [];
  const onStop = async (stop: EpochStop) => {
    const e = await stop.evaluate(val);
    rows.push({
      features, block: c.setting.block, t: c.setting.t, pool: c.setting.pool, epochs: stop.epochs,
      steps: stop.epochs * Math.ceil(opts.split.fit.length / training.batchSize),
      valAcc: e.top1, valLow: e.top1Interval.low, valHigh: e.top1Interval.high,
    });
  };
  const fitted = await fitHead(c.head, train, opts.split.fit, training, opts.memoryBudgetBytes ?? DEFAULT_MEMORY_BUDGET, { epochs, onStop });
  fitted.dispose();
  return rows;
}

/**
 * The grid's test accuracies, for display as the paper shows its grid (after the choice; never used to
 * choose): each candidate's validation-stage head scored on its test rows. Needs `keepGridHeads`.
 */
export async function gridOnTest(selection: Selection, candidates: readonly Candidate[]): Promise<(ValidationRow & { [TEST_SHOWN_LABEL]: number })[]> {
  if (candidates.length !== selection.grid.length) throw new Error(`gridOnTest: ${candidates.length} candidates for a grid of ${selection.grid.length}`);
  const out = [];
  for (let i = 0; i < candidates.length; i++) {
    const row = selection.grid[i];
    const head = gridHeads.get(row);
    if (!head) throw new Error("gridOnTest: the grid's heads were not kept (selectAndTest with keepGridHeads: true), or were disposed");
    out.push({ ...row, [TEST_SHOWN_LABEL]: (await head.evaluate(await candidates[i].test())).top1 });
  }
  return out;
}

/** Release the grid heads kept by `keepGridHeads`. */
export function disposeGrid(selection: Selection): void {
  for (const row of selection.grid) {
    gridHeads.get(row)?.dispose();
    gridHeads.delete(row);
  }
}

export interface PairedRow extends PairedComparison {
  a: string;
  b: string;
  testRows: number;
}

/** Exact McNemar test on the test split between two settings each chosen on validation by selectAndTest. */
export function pairedOnTest(a: Selection["chosen"], b: Selection["chosen"], testLabels: ArrayLike<number>): PairedRow {
  for (const x of [a, b]) {
    if (!chosenRows.has(x)) throw new Error(`pairedOnTest: ${x.features} is not a setting chosen on validation by selectAndTest (or fixed in advance, testFixed); paired tests compare only pre-chosen settings`);
  }
  if (a.split.hash !== b.split.hash) throw new Error(`pairedOnTest: ${a.features} and ${b.features} were chosen on different validation splits (${a.split.hash} vs ${b.split.hash})`);
  if (a.test.predictions.length !== testLabels.length || b.test.predictions.length !== testLabels.length) {
    throw new Error(`pairedOnTest: ${a.test.predictions.length} and ${b.test.predictions.length} test predictions for ${testLabels.length} test labels`);
  }
  return { a: a.features, b: b.features, testRows: testLabels.length, ...mcnemarExact(a.test.predictions, b.test.predictions, testLabels) };
}

/** A chosen setting re-scored with one seed. */
export interface SeedRow {
  features: string;
  seed: number;
  testAcc: number;
  testLow: number;
  testHigh: number;
}

export interface SeedSummary {
  features: string;
  seeds: number[];
  rows: SeedRow[];
  mean: number;
  /** Sample standard deviation over the seeds (0 for one seed). */
  sd: number;
  min: number;
  max: number;
}

/**
 * A setting fixed before the test split was read, re-scored once per seed: `candidate(seed)` gives the
 * setting's rows under that seed (e.g. features extracted with that noise draw), and the head is refit on
 * all training rows with that seed (initialisation and batch order) and scored on test.
 */
export async function repeatSeeds(features: string, seeds: readonly number[], candidate: (seed: number) => Candidate | Promise<Candidate>, opts: { training?: TrainHeadOptions; memoryBudgetBytes?: number; checkpointDir?: string | null }): Promise<SeedSummary> {
  if (seeds.length === 0) throw new Error(`repeatSeeds: ${features}: no seeds`);
  const rows: SeedRow[] = [];
  for (const seed of seeds) {
    const c = await candidate(seed);
    const training = { ...(opts.training ?? probeTraining(seed)), ...(c.training ?? {}), seed };
    const ckpt = fitCheckpoint(opts.checkpointDir, c, "all", training);
    const fitted = await fitHead(c.head, c.train(), null, ckpt ? { ...training, checkpoint: ckpt } : training, opts.memoryBudgetBytes);
    try {
      const test = await fitted.evaluate(await c.test());
      rows.push({ features, seed, testAcc: test.top1, testLow: test.top1Interval.low, testHigh: test.top1Interval.high });
    } finally {
      fitted.dispose();
    }
  }
  const accs = rows.map((r) => r.testAcc);
  const mean = accs.reduce((a, b) => a + b, 0) / accs.length;
  const sd = accs.length > 1 ? Math.sqrt(accs.reduce((a, x) => a + (x - mean) ** 2, 0) / (accs.length - 1)) : 0;
  return { features, seeds: [...seeds], rows, mean, sd, min: Math.min(...accs), max: Math.max(...accs) };
}
