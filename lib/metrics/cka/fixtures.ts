/**
 * Reference-value folders in the layout of ../shared/fixtures/cka (made by numpy,
 * ../shared/tools/fixtures/make_cka_fixtures.py), and their comparison with this library:
 *
 *   manifest.json  { "cases": [ { "name", "x": "a.npy", "y": "b.npy", ["n", "dx", "dy"],
 *                                 ["linear_cka"], ["hsic_unbiased_full"], ["minibatch_cka": { "<b>": value, ... }] }, ... ] }
 *   a.npy, b.npy   float32 or float64, 2-D: rows = the same images, columns = features
 *
 * Any number of cases, any widths, any batch sizes; each case needs at least one reference value.
 * An error (a missing file or key, a wrong shape) is a `CkaFixtureError` naming the file and key; a
 * value that differs is a failed line, not an error.
 */
import * as fs from "fs";
import * as path from "path";
import { readNpy } from "../../model/npy";
import { FeatureRows } from "./rows";
import { linearCka, minibatchCka, hsicUnbiasedFull } from "./oneshot";

/** The folder cannot be compared (missing/malformed manifest, file or key). */
export class CkaFixtureError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CkaFixtureError";
  }
}

export interface CkaFixtureCase {
  name: string;
  x: string;
  y: string;
  n?: number;
  dx?: number;
  dy?: number;
  linear_cka?: number | null;
  hsic_unbiased_full?: number | null;
  minibatch_cka?: Record<string, number | null>;
}

export interface CkaCheckLine {
  case: string;
  /** "linear_cka", "hsic_unbiased_full" or "minibatch_cka[32]". */
  quantity: string;
  ours: number;
  reference: number;
  /** |ours - reference| / max(1, |reference|): absolute for CKA values, relative for large HSIC values. */
  error: number;
  pass: boolean;
  /** Why a line failed other than by its error (a non-finite reference or value). */
  note?: string;
}

export interface CkaCheckReport {
  folder: string;
  tolerance: number;
  cases: number;
  lines: CkaCheckLine[];
}

export const DEFAULT_CKA_TOLERANCE = 1e-6;

/** Python's json.dump writes NaN / Infinity for non-finite floats; read them as null. */
function parseManifest(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    try {
      return JSON.parse(text.replace(/(:\s*|\[\s*|,\s*)(-?Infinity|NaN)\b/g, "$1null"));
    } catch (e) {
      throw new CkaFixtureError(`${file}: not valid JSON (${(e as Error).message})`);
    }
  }
}

/** Read and check a folder's manifest.json. */
export function readCkaManifest(folder: string): CkaFixtureCase[] {
  const file = path.join(folder, "manifest.json");
  if (!fs.existsSync(folder) || !fs.statSync(folder).isDirectory()) throw new CkaFixtureError(`${folder}: no such folder`);
  if (!fs.existsSync(file)) throw new CkaFixtureError(`${file}: missing (a CKA fixture folder holds manifest.json and the .npy files it names)`);
  const m = parseManifest(fs.readFileSync(file, "utf8"), file) as { cases?: unknown };
  if (!m || typeof m !== "object" || !Array.isArray(m.cases)) throw new CkaFixtureError(`${file}: missing key "cases" (a list of cases)`);
  if (m.cases.length === 0) throw new CkaFixtureError(`${file}: "cases" is empty`);
  const names = new Set<string>();
  return m.cases.map((c: unknown, k: number) => {
    const where = `${file}: cases[${k}]`;
    if (!c || typeof c !== "object") throw new CkaFixtureError(`${where}: not an object`);
    const cc = c as Record<string, unknown>;
    for (const key of ["name", "x", "y"]) {
      if (typeof cc[key] !== "string" || cc[key] === "") throw new CkaFixtureError(`${where}: missing key "${key}" (a string)`);
    }
    const name = cc.name as string;
    if (names.has(name)) throw new CkaFixtureError(`${where}: case name ${JSON.stringify(name)} appears twice`);
    names.add(name);
    for (const key of ["n", "dx", "dy"]) {
      if (cc[key] !== undefined && !(Number.isInteger(cc[key]) && (cc[key] as number) > 0)) throw new CkaFixtureError(`${where} (${name}): "${key}" must be a positive integer, got ${JSON.stringify(cc[key])}`);
    }
    for (const key of ["linear_cka", "hsic_unbiased_full"]) {
      if (cc[key] !== undefined && cc[key] !== null && typeof cc[key] !== "number") throw new CkaFixtureError(`${where} (${name}): "${key}" must be a number, got ${JSON.stringify(cc[key])}`);
    }
    if (cc.minibatch_cka !== undefined) {
      const mb = cc.minibatch_cka;
      if (!mb || typeof mb !== "object" || Array.isArray(mb)) throw new CkaFixtureError(`${where} (${name}): "minibatch_cka" must map batch sizes to values`);
      for (const [b, v] of Object.entries(mb as Record<string, unknown>)) {
        if (!/^\d+$/.test(b) || Number(b) < 4) throw new CkaFixtureError(`${where} (${name}): minibatch_cka key ${JSON.stringify(b)} is not a batch size (an integer >= 4)`);
        if (v !== null && typeof v !== "number") throw new CkaFixtureError(`${where} (${name}): minibatch_cka["${b}"] must be a number, got ${JSON.stringify(v)}`);
      }
    }
    if (cc.linear_cka === undefined && cc.hsic_unbiased_full === undefined && (cc.minibatch_cka === undefined || Object.keys(cc.minibatch_cka as object).length === 0)) {
      throw new CkaFixtureError(`${where} (${name}): no reference value (expected "linear_cka", "hsic_unbiased_full" or "minibatch_cka")`);
    }
    return cc as unknown as CkaFixtureCase;
  });
}

/** A case's feature matrix from its .npy file (2-D float32/float64), checked against the manifest. */
export async function readCaseMatrix(folder: string, c: CkaFixtureCase, which: "x" | "y"): Promise<FeatureRows> {
  const file = path.join(folder, c[which]);
  if (!fs.existsSync(file)) throw new CkaFixtureError(`${file}: missing (named by case ${JSON.stringify(c.name)}, key "${which}" of manifest.json)`);
  let a;
  try {
    a = await readNpy(file);
  } catch (e) {
    throw new CkaFixtureError((e as Error).message);
  }
  if (a.shape.length !== 2) throw new CkaFixtureError(`${file}: expected a 2-D array (images x features), got shape (${a.shape.join(", ")})`);
  if (!(a.data instanceof Float32Array || a.data instanceof Float64Array)) throw new CkaFixtureError(`${file}: dtype ${a.dtype}; expected float32 or float64`);
  const [n, dim] = a.shape;
  const wantDim = which === "x" ? c.dx : c.dy;
  if (c.n !== undefined && c.n !== n) throw new CkaFixtureError(`${file}: ${n} rows, but case ${JSON.stringify(c.name)} says "n": ${c.n}`);
  if (wantDim !== undefined && wantDim !== dim) throw new CkaFixtureError(`${file}: ${dim} columns, but case ${JSON.stringify(c.name)} says "d${which}": ${wantDim}`);
  return { n, dim, data: a.data };
}

function line(caseName: string, quantity: string, ours: number, reference: number | null | undefined, tol: number): CkaCheckLine {
  const ref = typeof reference === "number" ? reference : NaN;
  if (!Number.isFinite(ref)) return { case: caseName, quantity, ours, reference: ref, error: NaN, pass: false, note: "the reference value is not a finite number" };
  if (!Number.isFinite(ours)) return { case: caseName, quantity, ours, reference: ref, error: NaN, pass: false, note: "our value is not a finite number" };
  const error = Math.abs(ours - ref) / Math.max(1, Math.abs(ref));
  return { case: caseName, quantity, ours, reference: ref, error, pass: error <= tol };
}

/** Compare every case of a folder; `onLine` sees each line as it is computed. Throws CkaFixtureError when it cannot run. */
export async function checkCkaFolder(folder: string, opts: { tolerance?: number; onLine?: (l: CkaCheckLine) => void } = {}): Promise<CkaCheckReport> {
  const tol = opts.tolerance ?? DEFAULT_CKA_TOLERANCE;
  const cases = readCkaManifest(folder);
  const lines: CkaCheckLine[] = [];
  const emit = (l: CkaCheckLine) => {
    lines.push(l);
    opts.onLine?.(l);
  };
  // Every named file first, so that a missing one stops the run before any line is printed.
  for (const c of cases) {
    for (const which of ["x", "y"] as const) {
      const file = path.join(folder, c[which]);
      if (!fs.existsSync(file)) throw new CkaFixtureError(`${file}: missing (named by case ${JSON.stringify(c.name)}, key "${which}" of manifest.json)`);
    }
  }
  for (const c of cases) {
    const x = await readCaseMatrix(folder, c, "x");
    const y = await readCaseMatrix(folder, c, "y");
    if (x.n !== y.n) throw new CkaFixtureError(`${path.join(folder, c.y)}: ${y.n} rows, but ${c.x} has ${x.n}; case ${JSON.stringify(c.name)} needs the same images in both`);
    if (c.linear_cka !== undefined) emit(line(c.name, "linear_cka", linearCka(x, y).cka, c.linear_cka, tol));
    if (c.hsic_unbiased_full !== undefined) {
      if (x.n < 4) throw new CkaFixtureError(`case ${JSON.stringify(c.name)}: hsic_unbiased_full needs at least 4 rows, the files have ${x.n}`);
      emit(line(c.name, "hsic_unbiased_full", hsicUnbiasedFull(x, y), c.hsic_unbiased_full, tol));
    }
    const sizes = Object.keys(c.minibatch_cka ?? {}).sort((a, b) => Number(a) - Number(b));
    for (const b of sizes) emit(line(c.name, `minibatch_cka[${b}]`, minibatchCka(x, y, Number(b)).cka, c.minibatch_cka![b], tol));
  }
  return { folder, tolerance: tol, cases: cases.length, lines };
}

/** One printed line: "PASS related  minibatch_cka[16]  ours 0.75251306924861 ref 0.75251306924861 err 1.1e-16". */
export function formatCheckLine(l: CkaCheckLine, width = 16): string {
  const num = (v: number) => (Number.isFinite(v) ? v.toPrecision(15) : String(v));
  const err = Number.isFinite(l.error) ? l.error.toExponential(1) : "n/a";
  return `${l.pass ? "PASS" : "FAIL"} ${l.case.padEnd(width)} ${l.quantity.padEnd(20)} ours ${num(l.ours).padStart(20)}  ref ${num(l.reference).padStart(20)}  err ${err}${l.note ? `  (${l.note})` : ""}`;
}
