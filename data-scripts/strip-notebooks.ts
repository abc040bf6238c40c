/**
 * Strip what running a notebook leaves in it (outputs, execution counts, run metadata, the kernel's
 * language_info details), so that what is committed is the notebook, not one run of it.
 *
 *   npm run strip-notebooks -- [--check] [file.ipynb ...]
 *
 * Without files: every notebooks/*.ipynb. A notebook is rewritten only when it holds something to strip,
 * in the layout Jupyter itself saves (keys sorted, one-space indent), so a notebook the web UI saved comes
 * back to its committed text. --check changes nothing: it lists what each notebook holds and exits with
 * status 1 when any holds something (test/notebooks-clean.test.ts runs the same check).
 */
import * as fs from "fs";
import * as path from "path";
import { headerComment, parseCommandLine, runCommand } from "./cli";

interface Cell {
  cell_type: string;
  id?: string;
  metadata?: Record<string, unknown>;
  outputs?: unknown[];
  execution_count?: number | null;
  [key: string]: unknown;
}

export interface NotebookJson {
  cells: Cell[];
  [key: string]: unknown;
}

/** Cell metadata a run or the web UI adds (nbclient's timings, the UI's collapsed/scrolled state). */
const RUN_METADATA = ["execution", "collapsed", "scrolled"];
/**
 * What a committed notebook's language_info holds; the kernel fills in the rest on every run (tslab:
 * codemirror_mode, mimetype, version) and the web UI saves it.
 */
const LANGUAGE_INFO_KEPT = ["name", "file_extension"];

function languageInfo(nb: NotebookJson): Record<string, unknown> | null {
  const meta = nb.metadata as { language_info?: Record<string, unknown> } | undefined;
  return meta && meta.language_info && typeof meta.language_info === "object" ? meta.language_info : null;
}

function cellName(c: Cell, i: number): string {
  return `cell ${i + 1}${c.id ? ` (id ${c.id})` : ""}`;
}

/** What a notebook holds that a committed one must not: one line per cell ([] when clean). */
export function notebookDirt(nb: NotebookJson): string[] {
  if (!nb || !Array.isArray(nb.cells)) throw new Error("not a notebook: no cells array");
  const lines: string[] = [];
  nb.cells.forEach((c, i) => {
    const what: string[] = [];
    if (Array.isArray(c.outputs) && c.outputs.length) what.push(`${c.outputs.length} output${c.outputs.length === 1 ? "" : "s"}`);
    if (c.execution_count !== undefined && c.execution_count !== null) what.push(`execution count ${c.execution_count}`);
    const meta = RUN_METADATA.filter((k) => c.metadata && k in c.metadata);
    if (meta.length) what.push(`run metadata ${meta.join(", ")}`);
    if (what.length) lines.push(`${cellName(c, i)}: ${what.join(", ")}`);
  });
  const extra = Object.keys(languageInfo(nb) ?? {}).filter((k) => !LANGUAGE_INFO_KEPT.includes(k));
  if (extra.length) lines.push(`notebook metadata: the kernel's language_info ${extra.join(", ")}`);
  return lines;
}

/**
 * The notebook without outputs, execution counts, run metadata or the kernel's language_info details (a new
 * object; code cells keep empty fields).
 */
export function stripNotebook(nb: NotebookJson): NotebookJson {
  const cells = nb.cells.map((c) => {
    const out: Cell = { ...c };
    if (out.metadata) {
      const meta = { ...out.metadata };
      for (const k of RUN_METADATA) delete meta[k];
      out.metadata = meta;
    }
    if (c.cell_type === "code") {
      out.outputs = [];
      out.execution_count = null;
    }
    return out;
  });
  const info = languageInfo(nb);
  if (!info) return { ...nb, cells };
  const kept = Object.fromEntries(Object.entries(info).filter(([k]) => LANGUAGE_INFO_KEPT.includes(k)));
  return { ...nb, cells, metadata: { ...(nb.metadata as object), language_info: kept } };
}

/** JSON with keys sorted at every level, as Python's json.dumps(sort_keys=True). */
function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === "object") {
    const o: Record<string, unknown> = {};
    for (const k of Object.keys(v as object).sort()) o[k] = sortKeys((v as Record<string, unknown>)[k]);
    return o;
  }
  return v;
}

/** The text Jupyter saves (nbformat: keys sorted, indent 1, non-ASCII kept, trailing newline). */
export function notebookText(nb: NotebookJson): string {
  return JSON.stringify(sortKeys(nb), null, 1) + "\n";
}

export function readNotebook(file: string): NotebookJson {
  let nb: NotebookJson;
  try {
    nb = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw new Error(`${file}: not readable as JSON (${(e as Error).message})`);
  }
  if (!nb || !Array.isArray(nb.cells)) throw new Error(`${file}: not a notebook (no "cells" array)`);
  return nb;
}

/** The committed notebooks: every .ipynb in notebooks/ (sorted). */
export function projectNotebooks(root = path.resolve(__dirname, "..")): string[] {
  const dir = path.join(root, "notebooks");
  return fs.readdirSync(dir).filter((f) => f.endsWith(".ipynb")).sort().map((f) => path.join(dir, f));
}

if (require.main === module) {
  runCommand({ name: "strip-notebooks", usage: () => headerComment(__filename) }, () => {
    const { values, positionals } = parseCommandLine({ options: { check: { type: "boolean" } }, positionals: [0, Infinity] });
    const files = positionals.length ? positionals.map((f) => path.resolve(f)) : projectNotebooks();
    let dirty = 0;
    for (const file of files) {
      const nb = readNotebook(file);
      const dirt = notebookDirt(nb);
      if (!dirt.length) continue;
      dirty++;
      const shown = path.relative(process.cwd(), file) || file;
      if (values.check) {
        console.log(`${shown} holds what a committed notebook must not:\n${dirt.map((l) => `  ${l}`).join("\n")}`);
      } else {
        fs.writeFileSync(file, notebookText(stripNotebook(nb)));
        const cells = dirt.filter((l) => l.startsWith("cell ")).length;
        const meta = cells < dirt.length ? `${cells ? " and" : ""} the kernel's language_info details` : "";
        console.log(`${shown}: stripped${cells ? ` ${cells} cell${cells === 1 ? "" : "s"}` : ""}${meta}`);
      }
    }
    const n = `${files.length} notebook${files.length === 1 ? "" : "s"}`;
    if (values.check) {
      console.log(dirty ? `${dirty} of ${n} hold outputs: npm run strip-notebooks` : `${n} clean`);
      return dirty ? 1 : 0;
    }
    if (!dirty) console.log(`${n} clean, nothing to strip`);
    return 0;
  });
}
