/**
 * Machine-readable results: plain rows written as CSV and JSON (with the run's settings) under
 * build/results/, so that any tool — arquero, pandas, a spreadsheet — reads them.
 */
import * as fs from "fs";
import * as path from "path";
import { buildDir } from "./paths";
import { toCsv } from "./tables";

export interface ResultsFile {
  json: string;
  csv: string;
}

/** Write `rows` to build/results/<name>.csv and <name>.json (with `meta`: scale, settings, versions). */
export function writeResults(name: string, rows: readonly object[], meta: Record<string, unknown> = {}): ResultsFile {
  if (!/^[\w.-]+$/.test(name)) throw new Error(`results name ${JSON.stringify(name)}: use letters, digits, '.', '_' and '-'`);
  const dir = buildDir("results");
  fs.mkdirSync(dir, { recursive: true });
  const json = path.join(dir, `${name}.json`);
  const csv = path.join(dir, `${name}.csv`);
  fs.writeFileSync(json, JSON.stringify({ name, written: new Date().toISOString(), ...meta, rows }, null, 2) + "\n");
  fs.writeFileSync(csv, toCsv(rows));
  return { json, csv };
}
