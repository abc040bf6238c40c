/**
 * Machine-readable results: plain rows written as CSV and JSON (with the run's settings) under
 * build/results/, so that any tool — arquero, pandas, a spreadsheet — reads them. The scale is part
 * of the file name (<name>.<scale>.json), so a smoke run never overwrites the demo's results.
 */
import * as fs from "fs";
import * as path from "path";
import { buildDir } from "./paths";
import { currentScale, parseScale, Scale } from "./scale";
import { toCsv } from "./display/tables";
import { checkProvenance, relativePaths } from "./provenance";

export interface ResultsFile {
  json: string;
  csv: string;
}

/** The question a notebook answers and its answer in one sentence (key numbers and intervals). */
export interface ResultsSummary {
  question: string;
  answer: string;
}

/** What a results JSON file holds (besides anything else the notebook put in `meta`). */
export interface ResultsJson {
  name: string;
  scale: Scale;
  written: string;
  summary?: ResultsSummary;
  rows: object[];
  [key: string]: unknown;
}

const NAME = /^[\w-]+$/;

/** The two files of results `name` at `scale`: build/results/<name>.<scale>.{json,csv} (or in `dir`). */
export function resultsFiles(name: string, scale: Scale = currentScale(), dir: string = buildDir("results")): ResultsFile {
  if (!NAME.test(name)) throw new Error(`results name ${JSON.stringify(name)}: use letters, digits, '_' and '-'`);
  return { json: path.join(dir, `${name}.${scale}.json`), csv: path.join(dir, `${name}.${scale}.csv`) };
}

function checkSummary(name: string, s: unknown): ResultsSummary {
  const o = s as Partial<ResultsSummary> | null;
  for (const key of ["question", "answer"] as const) {
    if (!o || typeof o[key] !== "string" || o[key]!.trim() === "") {
      throw new Error(`results ${name}: summary.${key} must be a non-empty string, got ${JSON.stringify(o ? o[key] : o)}`);
    }
  }
  return { question: o!.question!.trim(), answer: o!.answer!.trim() };
}

/** Replace `file` by `text` through a temporary file beside it (a crash never leaves half a file). */
function writeTextAtomically(file: string, text: string): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}-${Date.now().toString(36)}`);
  try {
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

/**
 * Write `rows` to build/results/<name>.<scale>.csv and .json. `meta` goes into the JSON (settings,
 * versions, ...); `meta.provenance` (lib/provenance.ts: commit, checkpoint SHA-256s, engine, seeds,
 * options, command) is required; `meta.scale` names the scale (default: the current one,
 * $DIFFPROBE_SCALE), and an optional `meta.summary` ({question, answer}) is what the report page (npm run
 * report) shows. Absolute paths of this machine are made relative (lib/provenance.ts relativePaths).
 */
export function writeResults(name: string, rows: readonly object[], meta: Record<string, unknown> & { provenance: unknown }): ResultsFile {
  const scale = meta.scale === undefined ? currentScale() : parseScale(String(meta.scale));
  const files = resultsFiles(name, scale);
  const summary = meta.summary === undefined ? undefined : checkSummary(name, meta.summary);
  checkProvenance(`results ${name}`, meta.provenance);
  const body: ResultsJson = relativePaths({ name, written: new Date().toISOString(), ...meta, scale, ...(summary ? { summary } : {}), rows: [...rows] });
  rows = body.rows;
  fs.mkdirSync(path.dirname(files.json), { recursive: true });
  writeTextAtomically(files.csv, toCsv(rows));
  writeTextAtomically(files.json, JSON.stringify(body, null, 2) + "\n");
  return files;
}

/** Read results `name` at `scale`; null when the file does not exist; an error naming the file when it is malformed. */
export function readResults(name: string, scale: Scale = currentScale(), dir: string = buildDir("results")): ResultsJson | null {
  const { json } = resultsFiles(name, scale, dir);
  if (!fs.existsSync(json)) return null;
  let data: ResultsJson;
  try {
    data = JSON.parse(fs.readFileSync(json, "utf8"));
  } catch (e) {
    throw new Error(`${json}: not valid JSON (${(e as Error).message})`);
  }
  if (!data || typeof data !== "object" || !Array.isArray(data.rows)) throw new Error(`${json}: no "rows" array`);
  if (data.summary !== undefined) data.summary = checkSummary(json, data.summary);
  return data;
}
