/**
 * guided-diffusion's training augmentation (`random_crop_arr` + random horizontal flip in
 * image_datasets.py), with a seeded generator:
 * 1. short side drawn uniformly from [ceil(size / max_crop_frac), ceil(size / min_crop_frac)] (inclusive;
 *    defaults 0.8 and 1.0 give [size, ceil(1.25 * size)]);
 * 2. BOX halvings while the short side >= 2 * that, then BICUBIC to it (PIL-exact, see resample.ts);
 * 3. a crop at uniformly drawn offsets (`randrange(H - size + 1)`, `randrange(W - size + 1)`);
 * 4. a horizontal flip with probability 1/2.
 */
import { RgbImage } from "./image";
import { crop, resizeShortSide } from "./preprocess";
import type { SeededRandom as Rng } from "../rng";

/** The random draws of one augmentation; `randomCropArrWith` is deterministic given them. */
export interface CropDraw {
  /** Short side after resizing. */
  shortSide: number;
  /** Top-left of the crop in the resized image. */
  cropX: number;
  cropY: number;
  flip: boolean;
}

export interface RandomCropOptions {
  minCropFrac?: number;
  maxCropFrac?: number;
  /** Draw a horizontal flip (default true, as guided-diffusion's `random_flip=True`). */
  randomFlip?: boolean;
}

/** The inclusive range of the short side: [ceil(size / maxCropFrac), ceil(size / minCropFrac)]. */
export function shortSideRange(size: number, minCropFrac = 0.8, maxCropFrac = 1.0): [number, number] {
  return [Math.ceil(size / maxCropFrac), Math.ceil(size / minCropFrac)];
}

/** Mirror an image left-right. */
export function flipHorizontal(img: RgbImage): RgbImage {
  const { width: w, height: h } = img;
  const out = new Uint8Array(img.data.length);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const s = (y * w + x) * 3;
      const d = (y * w + (w - 1 - x)) * 3;
      out[d] = img.data[s];
      out[d + 1] = img.data[s + 1];
      out[d + 2] = img.data[s + 2];
    }
  }
  return { width: w, height: h, channels: 3, data: out };
}

/** `random_crop_arr` (+ flip) with its draws given. Crop offsets must fit the resized image. */
export function randomCropArrWith(img: RgbImage, size: number, draw: CropDraw): RgbImage {
  if (draw.shortSide < size) throw new Error(`randomCropArrWith: short side ${draw.shortSide} < crop size ${size}`);
  const r = resizeShortSide(img, draw.shortSide);
  const c = crop(r, draw.cropX, draw.cropY, size, size);
  return draw.flip ? flipHorizontal(c) : c;
}

/**
 * guided-diffusion's `random_crop_arr` then a random flip, drawing from `rng`. Returns the image and the draws
 * (so that a run can log or replay them).
 */
export function randomCropArr(img: RgbImage, size: number, rng: Rng, opts: RandomCropOptions = {}): { image: RgbImage; draw: CropDraw } {
  const [lo, hi] = shortSideRange(size, opts.minCropFrac ?? 0.8, opts.maxCropFrac ?? 1.0);
  const shortSide = rng.randrange(lo, hi + 1);
  const r = resizeShortSide(img, shortSide);
  const cropY = rng.randrange(r.height - size + 1);
  const cropX = rng.randrange(r.width - size + 1);
  const flip = (opts.randomFlip ?? true) && rng.random() < 0.5;
  const c = crop(r, cropX, cropY, size, size);
  return { image: flip ? flipHorizontal(c) : c, draw: { shortSide, cropX, cropY, flip } };
}
