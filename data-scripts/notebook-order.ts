/**
 * The order notebooks run in when several run at once (`npm run notebooks -- --jobs N`): a notebook that
 * reads another's stored features declares it in its metadata, `"diffprobe": {"after": ["<stem>"]}`, and
 * starts only once that one has finished (when both are run).
 */
import * as fs from "fs";

/** The notebooks (stems) a notebook's metadata says must run before it; [] if none. */
export function notebookAfter(file: string): string[] {
  const meta = JSON.parse(fs.readFileSync(file, "utf8")).metadata?.diffprobe?.after;
  if (meta === undefined) return [];
  if (!Array.isArray(meta) || meta.some((x) => typeof x !== "string")) throw new Error(`${file}: metadata.diffprobe.after must be a list of notebook names, got ${JSON.stringify(meta)}`);
  return meta;
}

/** Index in `waiting` of the first notebook whose dependencies (among the run) are all done, or -1. */
export function nextRunnable(waiting: readonly string[], after: ReadonlyMap<string, readonly string[]>, done: ReadonlySet<string>): number {
  return waiting.findIndex((f) => (after.get(f) ?? []).every((d) => done.has(d)));
}
