/**
 * The images of notebook 07 as one ordered stream of batches that every CKA stream (the U-Nets, the
 * networks, the baselines) reads afresh, so all see the same images in the same order: from an image
 * source of lib/features/store/images.ts (ids built there, in one place), with, for the networks, what
 * their own transform reads (image files, or PNG bytes of in-memory images).
 */
import sharp from "sharp";
import type { ImageArray } from "../../features/extract";
import type { ImageSource } from "../../features/store/images";

/** One batch of the stream; the U-Net's batch (NHWC in [-1, 1]) is made only when asked for. */
export interface StreamBatch {
  ids: string[];
  /** What the networks read (paths or encoded images), or null where no network runs. */
  files: (string | Buffer)[] | null;
  images: () => Promise<ImageArray>;
}

/** The networks' input of images [start, end) of the source. */
export type NetworkInputs = (start: number, end: number) => Promise<(string | Buffer)[]>;

/** Batches of `batchSize` images of `source` in order (and the networks' inputs when `files` is given). */
export async function* imageStream(source: ImageSource, opts: { batchSize: number; files?: NetworkInputs | null }): AsyncGenerator<StreamBatch> {
  if (!(Number.isInteger(opts.batchSize) && opts.batchSize > 0)) throw new Error(`imageStream: batch size ${opts.batchSize} must be a positive integer`);
  const n = source.ids.length;
  for (let s = 0; s < n; s += opts.batchSize) {
    const e = Math.min(n, s + opts.batchSize);
    yield { ids: source.ids.slice(s, e), files: opts.files ? await opts.files(s, e) : null, images: () => source.load(s, e) };
  }
}

/** The first `k` images of the stream as one batch (to time a stream before the run). */
export async function firstBatch(source: ImageSource, k: number, files?: NetworkInputs | null): Promise<StreamBatch> {
  const n = Math.min(k, source.ids.length);
  if (n < 1) throw new Error(`${source.dataset}/${source.split}: no images in the stream`);
  return { ids: source.ids.slice(0, n), files: files ? await files(0, n) : null, images: () => source.load(0, n) };
}

/**
 * 8-bit grey PNGs of a one-channel source's images in [-1, 1] (the networks' transform replicates grey to
 * RGB, as PIL's convert("RGB")).
 */
export function greyPngInputs(source: ImageSource): NetworkInputs {
  const [h, w, c] = source.imageShape;
  if (c !== 1) throw new Error(`greyPngInputs: ${source.dataset} has ${c} channels, not 1`);
  return async (s, e) => {
    const x = (await source.load(s, e)).data;
    const per = h * w;
    return Promise.all(Array.from({ length: e - s }, (_, j) => {
      const u8 = Buffer.from(Array.from(x.subarray(j * per, (j + 1) * per), (v) => Math.max(0, Math.min(255, Math.round((v + 1) * 127.5)))));
      return sharp(u8, { raw: { width: w, height: h, channels: 1 } }).png().toBuffer();
    }));
  };
}
