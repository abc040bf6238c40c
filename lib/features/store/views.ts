/**
 * Views of an image source for training: view v of image `id` is the image under a seeded augmentation
 * (guided-diffusion's `random_crop_arr` 0.8-1.0 and a horizontal flip, lib/data/augment.ts), or the image
 * itself, under its own id `id#v<v>` (with the augmentation: `id#a<seed>.v<v>`). The id is what the store
 * keys a set's image list by and what the extractor seeds each image's noise with, so a view is stored once
 * (K views cached: lib/experiments/views.ts) and each view gets its own noise draw; view 0 and view 1 of
 * the same image differ in noise even without augmentation.
 *
 * Where the augmentation starts from: a source that can decode its original pictures (`original`, as the
 * file sources of images.ts) is augmented from them, as the official code augments the full-size image
 * (resize the short side to [size, ceil(size / 0.8)], crop `size`); any other source (Fashion-MNIST, MNIST,
 * images in memory) from its model input mapped back to uint8 (exact for sources that came from uint8
 * pixels: `(x + 1) * 127.5`, rounded), one-channel images replicated to three and back.
 *
 * Draws: per (seed, view, image id), from an Rng seeded by a SHA-256 of the three, so that a view does not
 * depend on the batch or shard it is loaded in, and a resumed run sees the same views.
 */
import { createHash } from "crypto";
import { randomCropArr, RandomCropOptions } from "../../data/augment";
import type { RgbImage } from "../../data/image";
import { toModelBatch } from "../../data/preprocess";
import { makeRng } from "../../rng";
import type { ImageArray } from "../extract";
import type { ImageSource } from "./images";

export interface ViewSpec {
  /** Index of the view (an epoch, or an epoch modulo K). */
  view: number;
  /** Apply the official augmentation (seeded with `seed`); false: the image itself, re-noised only. */
  augment: boolean;
  seed: number;
  crop?: RandomCropOptions;
}

function checkView(v: ViewSpec): void {
  if (!(Number.isSafeInteger(v.view) && v.view >= 0)) throw new Error(`view: index ${v.view} must be a non-negative integer`);
  if (!(Number.isSafeInteger(v.seed) && v.seed >= 0)) throw new Error(`view: seed ${v.seed} must be a non-negative integer`);
}

/** The id of image `id` in view `v` (store keys and noise streams). */
export function viewId(id: string, v: ViewSpec): string {
  return v.augment ? `${id}#a${v.seed}.v${v.view}` : `${id}#v${v.view}`;
}

/** The augmentation's generator of one image in one view. */
export function viewRng(seed: number, view: number, id: string) {
  const h = createHash("sha256").update(`augment\u0000${seed}\u0000${view}\u0000${id}`).digest();
  return makeRng(h.readUIntBE(0, 6));
}

/** Model input (HWC in [-1, 1], 1 or 3 channels) back to uint8 RGB. */
export function modelInputToRgb(data: Float32Array, h: number, w: number, c: number): RgbImage {
  if (c !== 1 && c !== 3) throw new Error(`view: images with ${c} channels cannot be augmented (1 or 3)`);
  const out = new Uint8Array(h * w * 3);
  for (let p = 0; p < h * w; p++) {
    for (let k = 0; k < 3; k++) {
      const x = data[p * c + (c === 1 ? 0 : k)];
      out[p * 3 + k] = Math.max(0, Math.min(255, Math.round((x + 1) * 127.5)));
    }
  }
  return { width: w, height: h, channels: 3, data: out };
}

/** Augment image `i` of `src` for view `v` (its draws from viewRng); the result as uint8 RGB, size x size. */
async function augmentOne(src: ImageSource, i: number, v: ViewSpec): Promise<RgbImage> {
  const [h, w, c] = src.imageShape;
  if (h !== w) throw new Error(`${src.dataset}/${src.split}: views need square model inputs, got ${h}x${w}`);
  const picture = src.original ? await src.original(i) : modelInputToRgb((await src.load(i, i + 1)).data, h, w, c);
  return randomCropArr(picture, h, viewRng(v.seed, v.view, src.ids[i]), v.crop).image;
}

/** View `v` of `src`: the same images and labels in the same order, under view ids. */
export function viewSource(src: ImageSource, v: ViewSpec): ImageSource {
  checkView(v);
  const [h, w, c] = src.imageShape;
  const crop = v.crop ?? {};
  const how = v.augment
    ? `+random_crop_arr(${crop.minCropFrac ?? 0.8},${crop.maxCropFrac ?? 1.0})${crop.randomFlip === false ? "" : "+flip"}`
    : "";
  return {
    dataset: src.dataset,
    split: src.split,
    preprocessing: `${src.preprocessing}${how}`,
    ids: src.ids.map((id) => viewId(id, v)),
    labels: src.labels,
    imageShape: src.imageShape,
    async load(start: number, end: number): Promise<ImageArray> {
      if (!v.augment) return src.load(start, end);
      const imgs: RgbImage[] = [];
      for (let i = start; i < end; i++) imgs.push(await augmentOne(src, i, v));
      const rgb = toModelBatch(imgs);
      if (c === 3) return rgb;
      const data = new Float32Array((end - start) * h * w);
      for (let p = 0; p < data.length; p++) data[p] = rgb.data[p * 3];
      return { data, shape: [end - start, h, w, 1] };
    },
  };
}
