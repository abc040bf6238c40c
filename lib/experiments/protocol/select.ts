/**
 * Choosing a setting without looking at the test split, then scoring it once.
 *
 *   1. every candidate setting (block, t, pool, probe options, ...) of one feature source is fit on the
 *      training rows minus the validation rows (split.ts) and scored on the validation rows;
 *   2. the winner is the candidate with the highest validation accuracy (ties: the first in grid order);
 *      nothing about the test split is read before this point;
 *   3. the winner alone is refit on the whole training split (fit + validation rows: the choice is made,
 *      so the held-out rows go back to training, as the final model of any search is trained) and scored
 *      ONCE on the test split: accuracy with its 95% Wilson interval and the test predictions.
 *
 * The grid's test accuracies may still be shown, as the paper shows its grid, by `gridOnTest` after the
 * choice: they come from the grid's probes (fit without the validation rows) and are labelled
 * TEST_SHOWN_LABEL. Paired tests (`pairedOnTest`) take only rows chosen by `selectAndTest`.
 *
 * Memory: candidates hand out their sources lazily, and a source is copied into memory only when it fits
 * `memoryBudgetBytes` (store-source.ts withinBudget); otherwise the probe streams its batches from the
 * store. At most one candidate's rows are held at a time.
 */
import { LinearProbe, LinearProbeOptions, probePredictOn, trainLinearProbeOn } from "../../heads/linear";
import { FeatureSource, rowSize, subsetSource } from "../../heads/source";
import { withinBudget } from "../../heads/store-source";
import { accuracy, mcnemarExact, PairedComparison, wilsonInterval } from "../../metrics/classification";
import { progress } from "../../display/progress";
import { ValidationSplit, ValidationSplitRecord } from "./split";

/** A U-Net block as one value, from the moment a notebook names it. */
export interface Block {
  number: number;
  name: string;
}

/** What a candidate is: where its features come from and how its probe is trained. */
export interface Setting {
  block: Block | null;
  t: number | null;
  pool: string;
  /** Probe options of this candidate over the selection's common ones (e.g. a learning rate of a search). */
  probe?: Partial<LinearProbeOptions>;
}

export interface Candidate {
  setting: Setting;
  /** All training rows, in the order the split's positions index. Called when the candidate is fit. */
  train(): FeatureSource;
  /** The test rows. Called once, for the chosen candidate only (and by gridOnTest, after the choice). */
  test(): FeatureSource;
}

export interface SelectOptions {
  split: ValidationSplit;
  /** Probe options common to every candidate. */
  probe?: Partial<LinearProbeOptions>;
  /** A source is copied into memory only if its rows take at most this (default 1 GiB); else it streams. */
  memoryBudgetBytes?: number;
  showProgress?: boolean;
}

export const DEFAULT_MEMORY_BUDGET = 1 << 30;

/** The column name under which a grid's test accuracies are shown (never used to choose). */
export const TEST_SHOWN_LABEL = "test (shown as the paper shows its grid; not used to choose)";

/** One candidate scored on validation (plain data; its probe is kept, not enumerable, for gridOnTest). */
export interface ValidationRow {
  features: string;
  block: Block | null;
  t: number | null;
  pool: string;
  probe: string;
  dim: number;
  fitRows: number;
  valRows: number;
  fitAcc: number;
  valAcc: number;
  chosen: boolean;
  inMemory: boolean;
  probeSeconds: number;
}

/** The chosen setting of one feature source, refit on the whole training split and scored once on test. */
export interface ChosenRow {
  features: string;
  block: Block | null;
  t: number | null;
  pool: string;
  probe: string;
  dim: number;
  /** How it was chosen, and on what. */
  chosenBy: string;
  valAcc: number;
  trainRows: number;
  testRows: number;
  testAcc: number;
  testLow: number;
  testHigh: number;
  split: ValidationSplitRecord;
}

export interface Selection {
  features: string;
  grid: ValidationRow[];
  chosen: ChosenRow & { readonly testPred: Int32Array };
  /** Index of the chosen candidate in the grid. */
  index: number;
}

const gridProbes = new WeakMap<ValidationRow, LinearProbe>();
const chosenRows = new WeakSet<object>();

function probeLabel(common: Partial<LinearProbeOptions>, own: Partial<LinearProbeOptions> | undefined): string {
  const o = { ...common, ...(own ?? {}) };
  delete o.showProgress;
  return Object.keys(o).length ? JSON.stringify(o) : "defaults";
}

/** Index of the highest validation accuracy (ties: the first). Reads validation accuracies only. */
export function chooseOnValidation(rows: readonly { valAcc: number }[]): number {
  if (rows.length === 0) throw new Error("chooseOnValidation: no candidates");
  let best = 0;
  for (let i = 1; i < rows.length; i++) if (rows[i].valAcc > rows[best].valAcc) best = i;
  return best;
}

async function fitAndScore(train: FeatureSource, evalOn: FeatureSource, probe: Partial<LinearProbeOptions>, budget: number): Promise<{ probe: LinearProbe; trainPred: Int32Array; pred: Int32Array; inMemory: boolean }> {
  const held = await withinBudget(train, budget);
  const p = await trainLinearProbeOn(held.source, { ...probe, showProgress: false });
  const trainPred = await probePredictOn(p, held.source);
  return { probe: p, trainPred, pred: await probePredictOn(p, evalOn), inMemory: held.inMemory };
}

function checkTrain(features: string, c: Candidate, train: FeatureSource, split: ValidationSplit): void {
  if (train.rows !== split.record.rows) {
    throw new Error(`selectAndTest: ${features} at ${describe(c.setting)}: ${train.rows} training rows but the validation split was made for ${split.record.rows}`);
  }
}

export function describe(s: Setting): string {
  return s.block ? `block ${s.block.number} (${s.block.name}), t = ${s.t}, pool ${s.pool}` : `${s.pool}`;
}

/** Steps 1-3 of the module comment for the candidates of one feature source. */
export async function selectAndTest(features: string, candidates: readonly Candidate[], opts: SelectOptions): Promise<Selection> {
  if (candidates.length === 0) throw new Error(`selectAndTest: ${features}: no candidates`);
  const { split } = opts;
  const common = opts.probe ?? {};
  const budget = opts.memoryBudgetBytes ?? DEFAULT_MEMORY_BUDGET;
  const grid: ValidationRow[] = [];
  const bar = opts.showProgress === false ? null : progress({ total: candidates.length + 1, label: `${features}: probes on validation`, unit: "probe" });
  try {
    for (const c of candidates) {
      const t0 = Date.now();
      const train = c.train();
      checkTrain(features, c, train, split);
      const fit = subsetSource(train, split.fit);
      const val = subsetSource(train, split.val);
      const r = await fitAndScore(fit, val, { ...common, ...(c.setting.probe ?? {}) }, budget);
      const row: ValidationRow = {
        features, block: c.setting.block, t: c.setting.t, pool: c.setting.pool, probe: probeLabel(common, c.setting.probe), dim: rowSize(train.shape),
        fitRows: fit.rows, valRows: val.rows, fitAcc: accuracy(r.trainPred, fit.labels), valAcc: accuracy(r.pred, val.labels),
        chosen: false, inMemory: r.inMemory, probeSeconds: (Date.now() - t0) / 1000,
      };
      gridProbes.set(row, r.probe);
      grid.push(row);
      bar?.tick(1, { bestVal: Math.max(...grid.map((x) => x.valAcc)) });
    }
    // The choice: validation accuracies only. The test split has not been read.
    const index = chooseOnValidation(grid);
    grid[index].chosen = true;
    const c = candidates[index];
    const train = c.train();
    checkTrain(features, c, train, split);
    const test = c.test();
    const r = await fitAndScore(train, test, { ...common, ...(c.setting.probe ?? {}) }, budget);
    bar?.tick(1);
    const testAcc = accuracy(r.pred, test.labels);
    const ci = wilsonInterval(testAcc, test.rows);
    const chosen: ChosenRow = {
      features, block: c.setting.block, t: c.setting.t, pool: c.setting.pool, probe: grid[index].probe, dim: grid[index].dim,
      chosenBy: `highest validation accuracy of ${candidates.length} candidate${candidates.length > 1 ? "s" : ""} (${split.record.valRows} validation images, ${split.record.rule}, seed ${split.record.seed}); refit on all ${train.rows} training images; test scored once`,
      valAcc: grid[index].valAcc, trainRows: train.rows, testRows: test.rows, testAcc, testLow: ci.low, testHigh: ci.high, split: split.record,
    };
    Object.defineProperty(chosen, "testPred", { value: r.pred, enumerable: false });
    chosenRows.add(chosen);
    return { features, grid, chosen: chosen as Selection["chosen"], index };
  } finally {
    bar?.done();
  }
}

/**
 * The grid's test accuracies, for display as the paper shows its grid (after the choice; never used to
 * choose): each candidate's validation-stage probe scored on its test rows.
 */
export async function gridOnTest(selection: Selection, candidates: readonly Candidate[]): Promise<(ValidationRow & { [TEST_SHOWN_LABEL]: number })[]> {
  if (candidates.length !== selection.grid.length) throw new Error(`gridOnTest: ${candidates.length} candidates for a grid of ${selection.grid.length}`);
  const out = [];
  for (let i = 0; i < candidates.length; i++) {
    const row = selection.grid[i];
    const probe = gridProbes.get(row);
    if (!probe) throw new Error("gridOnTest: the grid rows do not come from selectAndTest");
    const test = candidates[i].test();
    out.push({ ...row, [TEST_SHOWN_LABEL]: accuracy(await probePredictOn(probe, test), test.labels) });
  }
  return out;
}

export interface PairedRow extends PairedComparison {
  a: string;
  b: string;
  testRows: number;
}

/** Exact McNemar test on the test split between two settings each chosen on validation by selectAndTest. */
export function pairedOnTest(a: Selection["chosen"], b: Selection["chosen"], testLabels: ArrayLike<number>): PairedRow {
  for (const x of [a, b]) {
    if (!chosenRows.has(x)) throw new Error(`pairedOnTest: ${x.features} is not a setting chosen on validation by selectAndTest; paired tests compare only pre-chosen settings`);
  }
  if (a.split.hash !== b.split.hash) throw new Error(`pairedOnTest: ${a.features} and ${b.features} were chosen on different validation splits (${a.split.hash} vs ${b.split.hash})`);
  if (a.testPred.length !== testLabels.length || b.testPred.length !== testLabels.length) {
    throw new Error(`pairedOnTest: ${a.testPred.length} and ${b.testPred.length} test predictions for ${testLabels.length} test labels`);
  }
  return { a: a.features, b: b.features, testRows: testLabels.length, ...mcnemarExact(a.testPred, b.testPred, testLabels) };
}
