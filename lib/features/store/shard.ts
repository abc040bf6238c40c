/**
 * Sharding: `--shard i/N` gives process i (0-based) of N the parts p with p mod N = i, for every set of
 * an extraction. The assignment depends only on the part index, so N processes on one machine or N tasks
 * of a Slurm job array fill disjoint parts of one store and together all of it; any of them can be rerun.
 */
import type { FeatureSet } from "./store";

export interface Shard {
  index: number;
  count: number;
}

/** Parse "i/N" (0 <= i < N); throws naming the text. */
export function parseShard(text: string): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  if (!m) throw new Error(`shard ${JSON.stringify(text)}: expected i/N, e.g. 0/4 (shard i of N, counted from 0)`);
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (count < 1 || index >= count) throw new Error(`shard ${JSON.stringify(text)}: need 0 <= i < N`);
  return { index, count };
}

/** The shard that owns part p. */
export function shardOf(part: number, count: number): number {
  return part % count;
}

/** Parts 0..parts-1 owned by a shard (all of them without a shard), in order. */
export function shardParts(parts: number, shard?: Shard | null): number[] {
  const all = Array.from({ length: parts }, (_, p) => p);
  return shard ? all.filter((p) => shardOf(p, shard.count) === shard.index) : all;
}

export interface SetStatus {
  dir: string;
  /** "b9 t100" style label. */
  label: string;
  parts: number;
  missing: number[];
  /** Missing parts per shard (index -> parts), when a shard count is given. */
  missingByShard: number[][] | null;
}

/** What is missing in each set (length check only unless `verify`), and per shard when `shards` is given. */
export function storeStatus(sets: readonly FeatureSet[], opts: { shards?: number; verify?: boolean } = {}): SetStatus[] {
  return sets.map((s) => {
    const missing = s.missing({ verify: opts.verify ?? false });
    const n = opts.shards;
    return {
      dir: s.dir,
      label: `block ${s.key.block} (${s.key.module}) t=${s.key.t}`,
      parts: s.parts,
      missing,
      missingByShard: n ? Array.from({ length: n }, (_, i) => missing.filter((p) => shardOf(p, n) === i)) : null,
    };
  });
}

/** Compact text of a list of part numbers: "0-3, 7, 9-12". */
export function partRanges(parts: readonly number[]): string {
  const out: string[] = [];
  for (let i = 0; i < parts.length; ) {
    let j = i;
    while (j + 1 < parts.length && parts[j + 1] === parts[j] + 1) j++;
    out.push(i === j ? `${parts[i]}` : `${parts[i]}-${parts[j]}`);
    i = j + 1;
  }
  return out.join(", ");
}

/** Lines for a terminal: one per set, and per shard what it still has to do. */
export function formatStatus(status: readonly SetStatus[]): string[] {
  const lines: string[] = [];
  for (const s of status) {
    const done = s.parts - s.missing.length;
    lines.push(`${s.label}: ${done}/${s.parts} parts${s.missing.length ? `, missing ${partRanges(s.missing)}` : ", complete"}  (${s.dir})`);
    s.missingByShard?.forEach((m, i) => {
      if (m.length) lines.push(`  shard ${i}/${s.missingByShard!.length}: ${m.length} missing (${partRanges(m)})`);
    });
  }
  return lines;
}
