/**
 * Comparing our preprocessing with reference outputs of guided-diffusion's PIL pipeline, for any folder in
 * the layout of the shared fixtures:
 *   <folder>/manifest.json   { "items": [ { "image": "images/x.jpg", "target": 256, "expected": "expected/x_256.npy" }, ... ] }
 *   <folder>/images/...      inputs
 *   <folder>/expected/...    uint8 (H, W, 3) .npy arrays produced by PIL
 * Shared by test/preprocess.test.ts and data-scripts/check-preprocess.ts.
 */
import * as fs from "fs";
import * as path from "path";
import { parseNpy } from "../model/npy";
import { decodeRgb, RgbImage } from "./image";
import { centerCropArr } from "./preprocess";

export interface Tolerance {
  /** Largest allowed mean absolute difference, in uint8 levels. */
  mean: number;
  /** Largest allowed single absolute difference, in uint8 levels. */
  max: number;
}

/**
 * Default tolerance. Our decode + resample reproduce PIL 9.4's integer arithmetic: on the 22 shared reference
 * pairs and the 9 committed edge cases the difference is exactly 0. The slack only absorbs JPEG IDCT rounding
 * differences between libjpeg builds (±1 on a few pixels, at most ±2 after the bicubic's overshoot), while any
 * resampling bug stays caught: sharp's own cubic resize gives mean 0.17..12.7 on the same pairs, and truncating
 * instead of rounding the accumulator gives mean >= 0.5 (1.7 on average).
 */
export const DEFAULT_TOLERANCE: Tolerance = { mean: 0.05, max: 2 };

export interface ReferenceItem {
  image: string;
  target: number;
  expected: string;
  mode?: string;
  size?: number[];
  note?: string;
}

export interface ReferenceManifest {
  algorithm?: string;
  sizes?: number[];
  items: ReferenceItem[];
}

export interface ItemResult {
  image: string;
  target: number;
  /** Mean and max absolute difference in uint8 levels (NaN when the comparison failed). */
  mean: number;
  max: number;
  pass: boolean;
  /** Why the item failed without a comparison (missing or malformed expected array, shape mismatch). */
  error?: string;
}

export interface ReferenceReport {
  results: ItemResult[];
  /** Images that could not be decoded (corrupt, truncated, unsupported): not compared. */
  skipped: { file: string; error: string }[];
  /** All compared items within tolerance and nothing failed. Skipped images do not count as failures here. */
  pass: boolean;
}

/** A uint8 reference array (lib/model/npy), with an error naming the file when it holds another dtype. */
export function readNpyUint8(file: string): { shape: number[]; data: Uint8Array } {
  const a = parseNpy(fs.readFileSync(file), file);
  if (a.dtype !== "uint8") throw new Error(`${file}: expected a uint8 array, found ${a.dtype}`);
  return { shape: a.shape, data: a.data as Uint8Array };
}

/** Mean and max absolute difference of two equally long uint8 arrays. */
export function diffStats(a: Uint8Array, b: Uint8Array): { mean: number; max: number } {
  if (a.length !== b.length) throw new Error(`diffStats: lengths differ (${a.length} vs ${b.length})`);
  let sum = 0;
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] > b[i] ? a[i] - b[i] : b[i] - a[i];
    sum += d;
    if (d > max) max = d;
  }
  return { mean: a.length ? sum / a.length : 0, max };
}

/** Read `<folder>/manifest.json`, with errors naming the file. */
export function readReferenceManifest(folder: string): ReferenceManifest {
  const file = path.join(folder, "manifest.json");
  if (!fs.existsSync(file)) throw new Error(`${file} not found: a reference folder holds manifest.json, images/ and expected/`);
  let m: ReferenceManifest;
  try {
    m = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw new Error(`${file}: invalid JSON: ${(e as Error).message}`);
  }
  if (!Array.isArray(m.items)) throw new Error(`${file}: no "items" array`);
  m.items.forEach((it, i) => {
    if (typeof it.image !== "string" || typeof it.expected !== "string" || !(Number.isInteger(it.target) && it.target > 0)) {
      throw new Error(`${file}: items[${i}] needs "image" (string), "target" (positive integer) and "expected" (string)`);
    }
  });
  return m;
}

/**
 * Preprocess every manifest item and compare it with its expected array. Each image is decoded once for all
 * its targets. Undecodable images are skipped (warned, listed); they never stop the run.
 */
export async function compareReferenceFolder(
  folder: string,
  opts: { tolerance?: Tolerance; onResult?: (r: ItemResult) => void; warn?: (msg: string) => void } = {},
): Promise<ReferenceReport> {
  const tol = opts.tolerance ?? DEFAULT_TOLERANCE;
  const warn = opts.warn ?? ((m: string) => console.warn(m));
  const manifest = readReferenceManifest(folder);
  const report: ReferenceReport = { results: [], skipped: [], pass: true };
  const decoded = new Map<string, RgbImage | Error>();
  for (const it of manifest.items) {
    const imgFile = path.join(folder, it.image);
    if (!decoded.has(imgFile)) {
      try {
        decoded.set(imgFile, await decodeRgb(imgFile));
      } catch (e) {
        decoded.set(imgFile, e as Error);
        warn(`warning: ${(e as Error).message} (skipped)`);
        report.skipped.push({ file: imgFile, error: (e as Error).message });
      }
    }
    const img = decoded.get(imgFile) as RgbImage | Error;
    if (img instanceof Error) continue;
    let r: ItemResult;
    try {
      const exp = readNpyUint8(path.join(folder, it.expected));
      const want = [it.target, it.target, 3];
      if (exp.shape.join(",") !== want.join(",")) throw new Error(`${it.expected}: shape (${exp.shape.join(", ")}), expected (${want.join(", ")})`);
      const out = centerCropArr(img, it.target);
      const { mean, max } = diffStats(out.data, exp.data);
      r = { image: it.image, target: it.target, mean, max, pass: mean <= tol.mean && max <= tol.max };
    } catch (e) {
      r = { image: it.image, target: it.target, mean: NaN, max: NaN, pass: false, error: (e as Error).message };
    }
    if (!r.pass) report.pass = false;
    report.results.push(r);
    opts.onResult?.(r);
  }
  return report;
}

/** One line per result: "PASS images/x.jpg @256 mean 0.0000 max 0". */
export function formatResult(r: ItemResult): string {
  const what = `${r.image} @${r.target}`;
  if (r.error) return `FAIL ${what}: ${r.error}`;
  return `${r.pass ? "PASS" : "FAIL"} ${what} mean ${r.mean.toFixed(4)} max ${r.max}`;
}
