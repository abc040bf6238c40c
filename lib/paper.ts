/**
 * The paper's numbers (arXiv 2307.08702), as recovered with their provenance: assets/paper/results.json is a
 * copy of the project's shared record (each section has `source`: R read from a table or page, F read from a
 * vector figure, A measured from a raster figure and so approximate, I inferred). Notebooks show these beside
 * ours and cite `source`; what the paper does not say is absent here and must not be invented.
 */
import * as fs from "fs";
import * as path from "path";
import { projectRoot } from "./paths";

export type Provenance = "R" | "F" | "A" | "I";

/** The whole record (sections as in the file; see assets/paper/README.md). */
export interface PaperResults {
  paper: string;
  provenance: Record<Provenance, string>;
  [section: string]: unknown;
}

let cached: PaperResults | null = null;

export function paperResultsFile(): string {
  return path.join(projectRoot(), "assets", "paper", "results.json");
}

/** The record, read once. */
export function paperResults(): PaperResults {
  if (cached) return cached;
  const file = paperResultsFile();
  if (!fs.existsSync(file)) throw new Error(`${file} is missing: the paper's numbers ship with the project`);
  cached = JSON.parse(fs.readFileSync(file, "utf8")) as PaperResults;
  return cached;
}

/** One section, e.g. "imagenet_main_table", "imagenet_sweeps", "fine_grained"; errors name the sections there are. */
export function paperSection<T = Record<string, unknown>>(name: string): T & { source: string } {
  const r = paperResults();
  const s = r[name];
  if (s === undefined || s === null || typeof s !== "object") {
    throw new Error(`the paper's record has no section ${JSON.stringify(name)} (have: ${Object.keys(r).join(", ")})`);
  }
  return s as T & { source: string };
}

/** "F (read from the paper's vector figure ...)": a section's source with its meaning, for captions. */
export function sourceText(source: string): string {
  const p = paperResults().provenance;
  return source
    .split("/")
    .map((c) => c.trim().charAt(0) as Provenance)
    .map((c) => `${c}: ${p[c] ?? "unknown"}`)
    .join("; ");
}
