/**
 * Heads on stored features: a store FeatureSet as a heads FeatureSource, one head fitted on the `fit` rows
 * and scored on the `val` rows of a carved split, and a sweep that keeps only the best-on-val head alive so
 * that it (and only it) can be scored once on test.
 */
import { FeatureSource, subsetSource } from "../heads/source";
import { buildHead, HeadSpec } from "../heads/create";
import { trainHead, TrainHeadOptions } from "../heads/train-head";
import { evaluateHead, Evaluation } from "../heads/evaluate";
import { countParams } from "../heads/head";
import type { FeatureSet } from "../features/store/store";
import type { FitValRows } from "./protocol/split";

/** A stored set as a FeatureSource (rows shaped as stored: [C, p, p] for a pooled map). */
export function featureSetSource(set: FeatureSet, numClasses: number): FeatureSource {
  const shape = set.manifest.rowShape;
  if (!shape) throw new Error(`feature set ${set.dir}: no row shape recorded; heads need [C, H, W] rows`);
  const labels = set.manifest.labels;
  if (!labels) throw new Error(`feature set ${set.dir}: no labels stored`);
  return { rows: set.rows, shape, labels, numClasses, readRows: async (idx) => set.readRows(idx) };
}

export interface FittedHead {
  label: string;
  spec: HeadSpec;
  params: number;
  valAcc: number;
  val: Evaluation;
  seconds: number;
  /** Score this head on another source with the same rows (the test split): call once. */
  score(source: FeatureSource): Promise<Evaluation>;
  dispose(): void;
}

/** Fit `spec` on source[fit], evaluate on source[val]; the head stays alive until dispose(). */
export async function fitHead(label: string, spec: HeadSpec, source: FeatureSource, split: FitValRows, train: TrainHeadOptions): Promise<FittedHead> {
  const t0 = Date.now();
  const fitSrc = subsetSource(source, split.fit);
  const built = await buildHead(spec, fitSrc, train.seed);
  try {
    await trainHead(built.head, built.input(fitSrc), { showProgress: false, ...train, label: `${label}: ${train.label ?? "head"}` });
    const val = await evaluateHead(built.head, built.input(subsetSource(source, split.val)));
    return {
      label, spec, params: countParams(built.head), valAcc: val.top1, val, seconds: (Date.now() - t0) / 1000,
      score: (s) => evaluateHead(built.head, built.input(s)),
      dispose: () => built.head.dispose(),
    };
  } catch (e) {
    built.head.dispose();
    throw e;
  }
}

export interface Candidate {
  label: string;
  spec: HeadSpec;
  source: FeatureSource;
  /** Training options of this candidate (e.g. its learning rate); default the sweep's. */
  train?: TrainHeadOptions;
  /** Anything to carry into the result row (block, t, pool, ...). */
  tags?: Record<string, string | number | null>;
}

export interface SweepRow {
  label: string;
  params: number;
  valAcc: number;
  valLow: number;
  valHigh: number;
  seconds: number;
  [tag: string]: string | number | null;
}

/**
 * Fit every candidate; rows of val accuracy and each head's val predictions (for paired tests between
 * settings fixed in advance); the best on val is kept alive (`best`), the others disposed.
 */
export async function sweepHeads(cands: Candidate[], split: FitValRows, train: TrainHeadOptions, onRow?: (row: SweepRow) => void): Promise<{ rows: SweepRow[]; valPredictions: Int32Array[]; best: FittedHead; bestIndex: number }> {
  if (cands.length === 0) throw new Error("sweepHeads: no candidates");
  const rows: SweepRow[] = [];
  const valPredictions: Int32Array[] = [];
  let best: FittedHead | null = null;
  let bestIndex = -1;
  for (const [i, c] of cands.entries()) {
    const h = await fitHead(c.label, c.spec, c.source, split, c.train ?? train);
    const row: SweepRow = { label: c.label, ...(c.tags ?? {}), params: h.params, valAcc: h.valAcc, valLow: h.val.top1Interval.low, valHigh: h.val.top1Interval.high, seconds: h.seconds };
    rows.push(row);
    valPredictions.push(h.val.predictions);
    onRow?.(row);
    if (!best || h.valAcc > best.valAcc) {
      best?.dispose();
      best = h;
      bestIndex = i;
    } else h.dispose();
  }
  return { rows, valPredictions, best: best!, bestIndex };
}
