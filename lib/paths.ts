/** Where things live in the project, found from this file (also through the notebooks/lib symlink). */
import * as fs from "fs";
import * as path from "path";

let root: string | null = null;

/** The repository root: the nearest folder above this module whose package.json is diffprobe's. */
export function projectRoot(): string {
  if (root) return root;
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const pj = path.join(dir, "package.json");
    if (fs.existsSync(pj) && JSON.parse(fs.readFileSync(pj, "utf8")).name === "diffprobe") return (root = dir);
    if (path.dirname(dir) === dir) throw new Error(`cannot find diffprobe's package.json above ${__dirname}`);
  }
}

/** build/ (executed notebooks, results files); $DIFFPROBE_BUILD overrides. */
export function buildDir(...parts: string[]): string {
  return path.join(process.env.DIFFPROBE_BUILD ?? path.join(projectRoot(), "build"), ...parts);
}

/**
 * Head checkpoints of resumable selections (select.ts SelectOptions.checkpointDir), one folder per run:
 * $DIFFPROBE_HEADS, else .cache/heads in the project.
 */
export function headCheckpointRoot(...parts: string[]): string {
  return path.join(process.env.DIFFPROBE_HEADS ?? path.join(projectRoot(), ".cache", "heads"), ...parts);
}
