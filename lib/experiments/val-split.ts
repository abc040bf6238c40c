/**
 * A validation split carved from training rows: stratified (each class gives round(fraction * its count)
 * rows, at least one when it has two or more) and seeded, so the same labels and seed always give the same
 * split. Settings (block, t, pool, head size, learning rate) are chosen on `val`; `test` is touched once.
 */
import { makeRng } from "../rng";

export interface ValSplit {
  /** Row indices the heads are fitted on (ascending). */
  fit: Int32Array;
  /** Row indices the settings are chosen on (ascending). */
  val: Int32Array;
}

export function stratifiedSplit(labels: ArrayLike<number>, valFraction: number, seed: number): ValSplit {
  if (!(valFraction > 0 && valFraction < 1)) throw new Error(`stratifiedSplit: valFraction ${valFraction} must be in (0, 1)`);
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i];
    if (!Number.isInteger(y)) throw new Error(`stratifiedSplit: label ${y} at row ${i} is not an integer`);
    const list = byClass.get(y) ?? [];
    list.push(i);
    byClass.set(y, list);
  }
  const val: number[] = [];
  for (const y of [...byClass.keys()].sort((a, b) => a - b)) {
    const rows = byClass.get(y)!;
    const k = rows.length < 2 ? 0 : Math.min(rows.length - 1, Math.max(1, Math.round(valFraction * rows.length)));
    // one generator per (seed, class): adding a class does not change the others' draws
    val.push(...makeRng(seed * 7919 + y).shuffle(rows.slice()).slice(0, k));
  }
  const isVal = new Uint8Array(labels.length);
  for (const i of val) isVal[i] = 1;
  const fit: number[] = [];
  for (let i = 0; i < labels.length; i++) if (!isVal[i]) fit.push(i);
  return { fit: Int32Array.from(fit), val: Int32Array.from(val.sort((a, b) => a - b)) };
}
