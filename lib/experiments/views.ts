/**
 * How a head sees its training images over the epochs, from cheapest to the official recipe:
 *
 *   cached   one view: the centre image, one seeded noise draw, extracted once (every notebook's default)
 *   views    K views of each image (the official augmentation and/or a new noise draw per view), each
 *            extracted once into the store and cycled: epoch e reads view e mod K (disk for compute)
 *   online   a new view every epoch (epoch e reads view e): the official loop (diffssl finetune.py, which
 *            re-augments and re-noises every image every epoch), reproducible and resumable because view e
 *            of an image is seeded by (seed, e, image id) (lib/features/store/views.ts)
 *
 * A training source here is a FeatureSource whose own rows are the centre images (what validation rows and
 * standardisation statistics read) and whose `forEpoch(e)` gives epoch e's view (lib/heads/source.ts); the
 * one trainer (trainHead) asks for them epoch by epoch, so any head trains under any of the three, and
 * `withViews` puts any stored candidate (a notebook's grid) under views.
 * Features of a view go through the store like any other set (runPlan: extracted to the blocks asked, on
 * the extractor's engine, resumable, with progress), so a second head trained on the same views, or a run
 * resumed after Ctrl-C, reads them instead of recomputing them. `keepViews: false` (online only) deletes
 * an epoch's view once the next one is read, for datasets whose views would not fit on disk.
 *
 * Test rows are always the centre image (no augmentation) under the test noise policy: seeded by default
 * (one fixed draw; the official code draws fresh noise at evaluation), or an ensemble of draws.
 *
 * `noisedImageSource` gives the noised images x_t themselves as rows (for heads that run the U-Net
 * themselves, such as DifFeed), under the same views and the same noise as the extractor draws.
 */
import * as fs from "fs";
import type { NoisePolicy } from "../features/extract";
import type { StoreDtype } from "../features/store/key";
import { imageNoise } from "../features/extract";
import type { ImageSource } from "../features/store/images";
import { viewSource } from "../features/store/views";
import type { RandomCropOptions } from "../data/augment";
import type { HeadSpec } from "../heads/create";
import { FeatureSource } from "../heads/source";
import { storeSource } from "../heads/store-source";
import type { TrainHeadOptions } from "../heads/train-head";
import type { NoiseSchedule } from "../model/diffusion/schedule";
import { qSampleInto } from "../model/diffusion/q-sample";
import type { Block } from "../model/unet/blocks";
import type { ExtractionContext } from "./candidates";
import { poolSpecOf, runPlan } from "./extraction-plan";
import type { Candidate } from "./protocol/select";

export type TrainingViews =
  | { kind: "cached" }
  | { kind: "views"; k: number; augment: boolean }
  | { kind: "online"; augment: boolean; keepViews?: boolean };

/** The official loop's views: a fresh augmentation and noise every epoch. */
export const OFFICIAL_VIEWS: TrainingViews = { kind: "online", augment: true };

export function checkViews(v: TrainingViews): TrainingViews {
  switch (v?.kind) {
    case "cached":
      return v;
    case "views":
      if (!(Number.isInteger(v.k) && v.k >= 1)) throw new Error(`views: k (views per image) must be an integer >= 1, got ${JSON.stringify(v.k)}`);
      return v;
    case "online":
      return v;
    default:
      throw new Error(`views: kind must be "cached", "views" or "online", got ${JSON.stringify((v as { kind?: unknown })?.kind)}`);
  }
}

/** Which view epoch e reads (null: the cached centre image). */
export function viewOfEpoch(v: TrainingViews, epoch: number): number | null {
  return v.kind === "cached" ? null : v.kind === "views" ? epoch % v.k : epoch;
}

/** "cached", "4 views (augmented)", "online (augmented)": for tables and results rows. */
export function viewsLabel(v: TrainingViews): string {
  const aug = (a: boolean) => (a ? "augmented + noise" : "noise only");
  return v.kind === "cached" ? "cached (centre image, one noise draw)" : v.kind === "views" ? `${v.k} views (${aug(v.augment)})` : `online (${aug(v.augment)} every epoch)`;
}

export interface ViewOptions {
  views: TrainingViews;
  /** Seed of the augmentation draws and of the noise (the extractor's seeded policy). */
  seed: number;
  crop?: RandomCropOptions;
}

/** The training images of epoch e (the source itself for cached, else its view). */
export function imagesOfEpoch(images: ImageSource, o: ViewOptions, epoch: number): ImageSource {
  const view = viewOfEpoch(o.views, epoch);
  if (view === null) return images;
  return viewSource(images, { view, augment: o.views.kind !== "cached" && o.views.augment, seed: o.seed, crop: o.crop });
}

/**
 * A source of `rows` rows of `shape`: its own rows are `base()` (the centre images: what validation rows,
 * standardisation statistics and anything but the trainer read), epoch e's are `make(e)`, both made when
 * first asked for (building a candidate extracts nothing). `after(e)` runs once epoch e's rows are made.
 */
function epochSource(head: { rows: number; shape: readonly number[]; labels: ArrayLike<number>; numClasses: number }, base: () => Promise<FeatureSource>, make: (e: number) => Promise<FeatureSource>, after?: (e: number) => void): FeatureSource {
  let own: Promise<FeatureSource> | null = null;
  return {
    ...head,
    readRows: async (indices) => (await (own ??= base())).readRows(indices),
    forEpoch: async (e: number) => {
      const s = await make(e);
      after?.(e);
      return s;
    },
  };
}

export interface ViewStoreOptions {
  /** Store precision of the views (default float32; a notebook whose sets are float16 passes it). */
  dtype?: StoreDtype;
}

/**
 * `base` (stored centre-image features of one block at one t, side `at.side`) with `o`'s views as its epochs:
 * epoch e's view extracted (or found) in the store when the trainer reaches it; cached views: `base` itself.
 */
export function withViewEpochs(base: () => FeatureSource | Promise<FeatureSource>, ctx: ExtractionContext, at: { block: Block; t: number; side: number }, o: ViewOptions & ViewStoreOptions): FeatureSource {
  checkViews(o.views);
  if (!ctx.train.labels) throw new Error(`${ctx.train.dataset}/${ctx.train.split}: no labels for training rows`);
  const jobs = [{ blocks: [at.block], timesteps: [at.t], pool: at.side }];
  const noise: NoisePolicy = { policy: "seeded", seed: o.seed };
  const [h, w] = ctx.train.imageShape;
  const [layout] = ctx.extractor.layout({ blocks: [at.block.number], timesteps: [at.t], pool: poolSpecOf(at.side), noise }, h, w);
  const dirs = new Map<number, string>();
  const own = async () => base();
  const make = async (e: number): Promise<FeatureSource> => {
    const view = viewOfEpoch(o.views, e);
    if (view === null) return own();
    const images = imagesOfEpoch(ctx.train, o, e);
    const [set] = await runPlan({ root: ctx.root, extractor: ctx.extractor, images, jobs, noise, dtype: o.dtype, label: `${ctx.train.dataset}, view ${view}` });
    dirs.set(e, set.set.dir);
    return storeSource(set.set, { numClasses: ctx.numClasses });
  };
  const discard = o.views.kind === "online" && o.views.keepViews === false;
  const head = { rows: ctx.train.ids.length, shape: layout.rowShape, labels: ctx.train.labels, numClasses: ctx.numClasses };
  return epochSource(head, own, make, (e) => {
    if (!discard) return;
    for (const [k, dir] of dirs) {
      if (k < e) {
        fs.rmSync(dir, { recursive: true, force: true });
        dirs.delete(k);
      }
    }
  });
}

/**
 * Stored features of one block at one t (side `side`) of the training images: the centre images with one
 * seeded noise draw as the source's own rows, `o`'s views as its epochs.
 */
export function viewFeatures(ctx: ExtractionContext, at: { block: Block; t: number; side: number }, o: ViewOptions & ViewStoreOptions): FeatureSource {
  const jobs = [{ blocks: [at.block], timesteps: [at.t], pool: at.side }];
  const noise: NoisePolicy = { policy: "seeded", seed: o.seed };
  const centre = async () => {
    const [set] = await runPlan({ root: ctx.root, extractor: ctx.extractor, images: ctx.train, jobs, noise, dtype: o.dtype, label: ctx.train.dataset });
    return storeSource(set.set, { numClasses: ctx.numClasses });
  };
  return withViewEpochs(centre, ctx, at, o);
}

/**
 * A candidate of stored sets (storedCandidates) trained under views `o` instead: its own rows stay its
 * stored centre rows (validation, statistics, test), its training epochs read `o`'s views of the same block,
 * t and side (noise seeded `o.seed`, as the stored sets' PLAN_NOISE is seed 0). Cached views: unchanged.
 */
export function withViews(c: Candidate, ctx: ExtractionContext, o: ViewOptions & ViewStoreOptions): Candidate {
  if (o.views.kind === "cached") return c;
  const { block, t } = c.setting;
  if (!block || t === null) throw new Error(`withViews: ${JSON.stringify(c.setting)} is not a (block, t) setting`);
  return {
    ...c,
    setting: { ...c.setting, tags: { ...(c.setting.tags ?? {}), views: viewsLabel(o.views) } },
    train: () => {
      const base = c.train();
      return withViewEpochs(() => base, ctx, { block, t, side: base.shape[1] }, o);
    },
  };
}

/** A fixed (block, t, side) and head trained under views `o`, tested on the centre images under `testNoise`. */
export function viewCandidate(
  ctx: ExtractionContext,
  at: { block: Block; t: number; side: number },
  head: HeadSpec,
  o: ViewOptions & { testNoise?: NoisePolicy; training?: Partial<TrainHeadOptions>; tags?: Record<string, string | number | null> },
): Candidate {
  const pool = "pool" in head && typeof head.pool === "number" ? head.pool : at.side;
  const train = viewFeatures(ctx, at, o);
  return {
    setting: { block: at.block, t: at.t, pool: `${pool}x${pool}`, tags: { views: viewsLabel(o.views), ...(o.tags ?? {}) } },
    head,
    ...(o.training ? { training: o.training } : {}),
    train: () => train,
    async test() {
      const jobs = [{ blocks: [at.block], timesteps: [at.t], pool: at.side }];
      const noise = o.testNoise ?? { policy: "seeded", seed: o.seed };
      const [set] = await runPlan({ root: ctx.root, extractor: ctx.extractor, images: ctx.test, jobs, noise, label: ctx.test.dataset });
      return storeSource(set.set, { numClasses: ctx.numClasses });
    },
  };
}

/**
 * The noised images x_t (one t) of `images` as rows [C, H, W] (channel-major), under views `o`: image i's
 * noise is the extractor's seeded draw for its (view) id and t (imageNoise), so these are exactly the
 * inputs the extractor's U-Net sees. Images are loaded when their rows are read.
 */
export function noisedImageSource(images: ImageSource, schedule: NoiseSchedule, t: number, o: ViewOptions, numClasses: number): FeatureSource {
  checkViews(o.views);
  if (!images.labels) throw new Error(`${images.dataset}/${images.split}: no labels for training rows`);
  const [h, w, c] = images.imageShape;
  const { signal, noise } = schedule.coefficients([t]);
  const per = h * w * c;
  const labels = images.labels;
  const rowsOf = (src: ImageSource): FeatureSource => {
    return {
      rows: src.ids.length,
      shape: [c, h, w],
      labels,
      numClasses,
      async readRows(indices) {
        const out = new Float32Array(indices.length * per);
        const eps = new Float32Array(per), xt = new Float32Array(per);
        for (let r = 0; r < indices.length; r++) {
          const i = indices[r];
          if (!(Number.isInteger(i) && i >= 0 && i < src.ids.length)) throw new Error(`noisedImageSource: row ${i} is outside 0..${src.ids.length - 1}`);
          const x0 = (await src.load(i, i + 1)).data;
          imageNoise(eps, o.seed, src.ids[i], t);
          qSampleInto(xt, x0, eps, signal[0], noise[0]);
          for (let p = 0; p < h * w; p++) for (let k = 0; k < c; k++) out[r * per + k * h * w + p] = xt[p * c + k];
        }
        return out;
      },
    };
  };
  const centre = rowsOf(images);
  if (o.views.kind === "cached") return centre;
  const head = { rows: images.ids.length, shape: [c, h, w], labels, numClasses };
  return epochSource(head, async () => centre, async (e) => rowsOf(imagesOfEpoch(images, o, e)));
}
