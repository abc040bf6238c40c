/**
 * The paper's CKA findings against other networks as bands to draw over any U-Net's blocks. The paper
 * states them as CKA ranges over its figure's block indices 0..24 (ADM-256, `PAPER_CKA.findings`); a
 * model with another number of blocks (the embedded U-Net's 13, ADM-256's 37 in this project's
 * numbering) is compared at the same **relative depth**: 0 at the first block, 1 at the last.
 */
import { PAPER_CKA } from "./paper";

/** Block indices on the y axis of the paper's CKA figure (0..24). */
export const PAPER_CKA_BLOCKS = 25;

/** Relative depth of the block at `index` (0-based position) among `count` blocks: 0 first, 1 last (0 if only one). */
export function relativeDepth(index: number, count: number): number {
  if (!Number.isInteger(count) || count < 1) throw new Error(`relativeDepth: block count ${count} must be a positive integer`);
  if (!Number.isInteger(index) || index < 0 || index >= count) throw new Error(`relativeDepth: block position ${index} is outside 0..${count - 1}`);
  return count > 1 ? index / (count - 1) : 0;
}

/** Relative depth of block `block` (its number) in the model's ordered block list `blocks`. */
export function blockDepth(block: number, blocks: readonly number[]): number {
  const i = blocks.indexOf(block);
  if (i < 0) throw new Error(`blockDepth: block ${block} is not one of the model's blocks (${blocks.join(", ")})`);
  return relativeDepth(i, blocks.length);
}

/** One finding with a block range and a CKA range; `panels`: which of c (ResNet-50) and d (ViT-B) it speaks of. */
export interface PaperCkaBand {
  /** First and last block index of the paper's figure (0..24). */
  from: number;
  to: number;
  /** What those blocks match, in the paper's words. */
  what: string;
  lo: number;
  hi: number;
  panels: ("c" | "d")[];
  /** The block range at relative depth, widened by 0.4 of a block each side (so a one-block band has width). */
  depthFrom: number;
  depthTo: number;
}

/** The findings that carry "blocks A-B match ... (lo-hi)", placed at relative depth. */
export function paperCkaBands(findings: readonly string[] = PAPER_CKA.findings): PaperCkaBand[] {
  const last = PAPER_CKA_BLOCKS - 1;
  return findings.flatMap((f) => {
    const m = /blocks (\d+)-(\d+) match (.+) \(([\d.]+)-([\d.]+)\)$/.exec(f);
    if (!m) return [];
    const [from, to] = [Number(m[1]), Number(m[2])];
    if (!(from <= to && to <= last)) throw new Error(`paperCkaBands: "${f}" names blocks outside the figure's 0..${last}`);
    const what = m[3];
    const panels = /every network/.test(what) ? (["c", "d"] as const) : (["c", "d"] as const).filter((p) => (p === "c" ? /ResNet/ : /ViT/).test(what));
    return [{ from, to, what, lo: Number(m[4]), hi: Number(m[5]), panels: [...panels], depthFrom: (from - 0.4) / last, depthTo: (to + 0.4) / last }];
  });
}
