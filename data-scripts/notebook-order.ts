/**
 * The order notebooks run in when several run at once (`npm run notebooks -- --jobs N`): a notebook that
 * reads another's stored features declares it in its metadata, `"diffprobe": {"after": ["<stem>"]}`, and
 * starts only once that one has finished (when both are run). `"diffprobe": {"weight": S}` is its rough
 * cost at demo scale in seconds on the project's machine (default 60): among the notebooks ready to start,
 * the one heading the longest chain of weights (itself plus its longest line of dependents) goes first, so
 * that long chains are not left for last.
 */
import * as fs from "fs";

/** The notebooks (stems) a notebook's metadata says must run before it; [] if none. */
export function notebookAfter(file: string): string[] {
  const meta = JSON.parse(fs.readFileSync(file, "utf8")).metadata?.diffprobe?.after;
  if (meta === undefined) return [];
  if (!Array.isArray(meta) || meta.some((x) => typeof x !== "string")) throw new Error(`${file}: metadata.diffprobe.after must be a list of notebook names, got ${JSON.stringify(meta)}`);
  return meta;
}

/** A notebook's metadata weight (rough seconds at demo; default 60). */
export function notebookWeight(file: string): number {
  const w = JSON.parse(fs.readFileSync(file, "utf8")).metadata?.diffprobe?.weight;
  if (w === undefined) return 60;
  if (!(typeof w === "number" && w >= 0)) throw new Error(`${file}: metadata.diffprobe.weight must be a non-negative number of seconds, got ${JSON.stringify(w)}`);
  return w;
}

/** Each notebook's chain weight: its weight plus the largest chain weight among the notebooks that wait for it. */
export function chainWeights(names: readonly string[], after: ReadonlyMap<string, readonly string[]>, weight: ReadonlyMap<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  const visit = (f: string, seen: Set<string>): number => {
    if (out.has(f)) return out.get(f)!;
    if (seen.has(f)) throw new Error(`notebook order: ${f} waits for itself (metadata.diffprobe.after forms a cycle)`);
    seen.add(f);
    const dependents = names.filter((g) => (after.get(g) ?? []).includes(f));
    const w = (weight.get(f) ?? 60) + Math.max(0, ...dependents.map((g) => visit(g, seen)));
    seen.delete(f);
    out.set(f, w);
    return w;
  };
  for (const f of names) visit(f, new Set());
  return out;
}

/**
 * Index in `waiting` of the notebook to start next: among those whose dependencies (among the run) are all
 * done, the largest chain weight (ties: the first); -1 when none is ready.
 */
export function nextRunnable(waiting: readonly string[], after: ReadonlyMap<string, readonly string[]>, done: ReadonlySet<string>, chain: ReadonlyMap<string, number> = new Map()): number {
  let best = -1;
  waiting.forEach((f, i) => {
    if (!(after.get(f) ?? []).every((d) => done.has(d))) return;
    if (best < 0 || (chain.get(f) ?? 0) > (chain.get(waiting[best]) ?? 0)) best = i;
  });
  return best;
}
