/**
 * A validation split carved from the training data: seeded, stratified by class, recorded.
 *
 * Every search (block, t, pool, head size, learning rate) chooses on this split; the test split is
 * scored once, for the setting chosen here. Per class c, the training positions of that class are
 * shuffled with Rng(seed, VAL_STREAM + c) and the first k_c go to validation, where k_c is either a fixed
 * count per class, or round(fraction · n_c) kept between 1 and n_c − 1 (a class of one row cannot be
 * validated: it stays in the fit half, and the record lists it). Positions are indices into the training rows
 * (the order of the store's rows and of the labels given); both halves are returned sorted.
 *
 * This is the project's one validation split (notebooks 02, 04, 05, 06, 08). The supervised baseline's
 * trainer keeps its own held-out set (lib/train/baselines/supervised-trainer.ts), frozen with its committed run.
 *
 * The record (seed, rule, sizes per class, a hash of the validation rows) goes into the results file,
 * so a reader can check that two runs chose on the same images.
 */
import { createHash } from "crypto";
import { Rng, shuffleInPlace } from "../../rng";

/** Rng stream base of the per-class shuffles (apart from every other stream of the project). */
const VAL_STREAM = 0x7a1d0000;

export interface ValidationSplitOptions {
  seed: number;
  /** Fraction of each class that goes to validation (0 < fraction < 1) ... */
  fraction?: number;
  /** ... or this many images of each class. */
  perClass?: number;
  /** Image ids of the training rows: the hash is then of the validation images' ids (stable across row orders). */
  ids?: readonly string[];
}

export interface ValidationSplitRecord {
  seed: number;
  rule: string;
  /** Training rows in all, rows kept to fit, rows held out for validation. */
  rows: number;
  fitRows: number;
  valRows: number;
  /** Per class: [fit, val] counts. */
  perClass: Record<string, [number, number]>;
  /** Classes with a single training row: nothing of them in validation (fraction rule only). */
  unvalidated: number[];
  /** First 16 hex digits of the SHA-256 of the validation rows (their ids, else their positions, in order). */
  hash: string;
  hashOf: "ids" | "positions";
}

/** The two halves, all that fitting and scoring need. */
export type FitValRows = Pick<ValidationSplit, "fit" | "val">;

export interface ValidationSplit {
  /** Training positions the probes are fit on (sorted). */
  fit: Int32Array;
  /** Training positions the choice is made on (sorted). */
  val: Int32Array;
  record: ValidationSplitRecord;
}

/** Carve a stratified validation split out of training rows with these labels. */
export function validationSplit(labels: ArrayLike<number>, opts: ValidationSplitOptions): ValidationSplit {
  const { seed, fraction, perClass } = opts;
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`validationSplit: seed must be a non-negative integer, got ${seed}`);
  if ((fraction === undefined) === (perClass === undefined)) throw new Error("validationSplit: give exactly one of fraction and perClass");
  if (fraction !== undefined && !(fraction > 0 && fraction < 1)) throw new Error(`validationSplit: fraction must be in (0, 1), got ${fraction}`);
  if (perClass !== undefined && !(Number.isInteger(perClass) && perClass > 0)) throw new Error(`validationSplit: perClass must be a positive integer, got ${perClass}`);
  if (opts.ids && opts.ids.length !== labels.length) throw new Error(`validationSplit: ${opts.ids.length} ids for ${labels.length} labels`);
  if (labels.length === 0) throw new Error("validationSplit: no training rows");
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i];
    if (!(Number.isInteger(y) && y >= 0)) throw new Error(`validationSplit: label ${y} at row ${i} is not a class index`);
    const list = byClass.get(y);
    if (list) list.push(i);
    else byClass.set(y, [i]);
  }
  const fit: number[] = [], val: number[] = [];
  const counts: Record<string, [number, number]> = {};
  const unvalidated: number[] = [];
  for (const c of [...byClass.keys()].sort((a, b) => a - b)) {
    const rows = byClass.get(c)!;
    const k = perClass ?? (rows.length < 2 ? 0 : Math.min(rows.length - 1, Math.max(1, Math.round(fraction! * rows.length))));
    if (k >= rows.length) throw new Error(`validationSplit: class ${c} has ${rows.length} training rows; holding out ${k} would leave none to fit on`);
    if (k === 0) unvalidated.push(c);
    shuffleInPlace(rows, new Rng(seed, VAL_STREAM + c));
    val.push(...rows.slice(0, k));
    fit.push(...rows.slice(k));
    counts[String(c)] = [rows.length - k, k];
  }
  const valIdx = Int32Array.from(val).sort();
  const fitIdx = Int32Array.from(fit).sort();
  const hash = createHash("sha256");
  if (opts.ids) hash.update(Array.from(valIdx, (i) => opts.ids![i]).join("\n"));
  else hash.update(new Uint8Array(valIdx.buffer, valIdx.byteOffset, valIdx.byteLength));
  return {
    fit: fitIdx,
    val: valIdx,
    record: {
      seed,
      rule: perClass !== undefined ? `${perClass} per class` : `fraction ${fraction} of each class (at least 1, at most all but 1)`,
      rows: labels.length,
      fitRows: fitIdx.length,
      valRows: valIdx.length,
      perClass: counts,
      unvalidated,
      hash: hash.digest("hex").slice(0, 16),
      hashOf: opts.ids ? "ids" : "positions",
    },
  };
}
