/**
 * From stage one (extract: stored sets) to stage two (select: candidates): each stored (block, t) as a
 * candidate of lib/experiments/protocol/select.ts with the head to fit on it, and the raw pixels of an
 * image source as the baseline candidate. Rows are read from the store through the one adapter
 * (lib/heads/store-source.ts storeSource): streamed, never `matrix()`, never recomputed.
 */
import type { ImageSource } from "../features/store/images";
import { imageListId } from "../features/store/key";
import type { HeadSpec } from "../heads/create";
import { concatSource, memorySource } from "../heads/source";
import type { DifFormerConfig } from "../heads/params";
import { storeSource } from "../heads/store-source";
import type { TrainHeadOptions } from "../heads/train-head";
import type { NoisePolicy } from "../features/extract";
import type { FeatureExtractor } from "../features/store/extractor";
import type { Block } from "../model/unet/blocks";
import { findSet, runPlan, StoredSet } from "./extraction-plan";
import type { Candidate } from "./protocol/select";

/** The linear probe's head (PROBE_RECIPE): standardised features pooled to `pool`, from zero weights. */
export function linearHead(pool: number): HeadSpec {
  return { kind: "linear", pool, init: "zeros" };
}

export interface StoredCandidateOptions {
  numClasses: number;
  /** Which (block, t) of the training sets (default: every one, in stored order). */
  where?: (s: StoredSet) => boolean;
  /** Pooled size the head reads (default: the stored side). */
  pool?: number;
  /** The head (default: linear at `pool`). */
  head?: (pool: number, s: StoredSet) => HeadSpec;
  training?: Partial<TrainHeadOptions>;
  tags?: Record<string, string | number | null>;
}

/**
 * Each selected stored (block, t) as a candidate; its test rows are the test set of the same key and side,
 * from `test` (already stored) or extracted on demand by `test(trainSet)` (only the chosen one's, then).
 */
export function storedCandidates(train: readonly StoredSet[], test: readonly StoredSet[] | ((s: StoredSet) => Promise<StoredSet>), opts: StoredCandidateOptions): Candidate[] {
  const chosen = train.filter(opts.where ?? (() => true));
  if (chosen.length === 0) throw new Error("storedCandidates: no stored training set matches");
  const seen = new Set<string>();
  const out: Candidate[] = [];
  for (const s of chosen) {
    const pool = opts.pool ?? s.side;
    const key = `${s.block.number}|${s.t}|${pool}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const tr = findSet([...train], s.block, s.t, pool);
    out.push({
      setting: { block: s.block, t: s.t, pool: `${pool}x${pool}`, ...(opts.tags ? { tags: opts.tags } : {}) },
      head: opts.head ? opts.head(pool, tr) : linearHead(pool),
      ...(opts.training ? { training: opts.training } : {}),
      dataId: `store:${tr.set.manifest.id}`,
      train: () => storeSource(tr.set, { numClasses: opts.numClasses }),
      test: async () => {
        const te = typeof test === "function" ? await test(tr) : test.find((x) => x.block.number === tr.block.number && x.t === tr.t && x.side === tr.side);
        if (!te) throw new Error(`no stored test features for block ${tr.block.number}, t ${tr.t} at side ${tr.side}: extract the test images with the same job`);
        return storeSource(te.set, { numClasses: opts.numClasses });
      },
    });
  }
  return out;
}

/** All pixels of an image source as [C, H, W] rows (from NHWC). */
async function pixelRows(src: ImageSource): Promise<Float32Array> {
  const n = src.ids.length;
  const [h, w, c] = src.imageShape;
  const nhwc = (await src.load(0, n)).data;
  if (c === 1) return Float32Array.from(nhwc);
  const out = new Float32Array(n * c * h * w);
  for (let i = 0; i < n; i++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let k = 0; k < c; k++) out[((i * c + k) * h + y) * w + x] = nhwc[((i * h + y) * w + x) * c + k];
  return out;
}

/** The raw pixels ([-1, 1] values, [C, H, W]) as a candidate: the baseline every representation must beat. */
export async function pixelCandidate(train: ImageSource, test: ImageSource, numClasses: number, training?: Partial<TrainHeadOptions>): Promise<Candidate> {
  for (const s of [train, test]) if (!s.labels) throw new Error(`${s.dataset}/${s.split}: no labels for the raw-pixel baseline`);
  const [h, w, c] = train.imageShape;
  const x = await pixelRows(train), y = await pixelRows(test);
  return {
    setting: { block: null, t: null, pool: `none (raw pixels, ${h}x${w}x${c})` },
    head: linearHead(h === w ? h : Math.min(h, w)),
    ...(training ? { training } : {}),
    dataId: `pixels:${train.dataset}/${train.split}:${train.preprocessing}:${imageListId(train.ids)}`,
    train: () => memorySource(x, [c, h, w], train.labels!, numClasses),
    test: () => memorySource(y, [c, h, w], test.labels!, numClasses),
  };
}

/** Where a fixed setting's features come from: the store, the model, the images. */
export interface ExtractionContext {
  root: string;
  extractor: FeatureExtractor;
  train: ImageSource;
  test: ImageSource;
  numClasses: number;
}

/**
 * One fixed setting (block, t, stored side, head pool) as a candidate whose train and test features are
 * extracted (or read from the store) with `noise`: a seed of `repeatSeeds` draws other noise this way.
 */
export async function extractedCandidate(ctx: ExtractionContext, s: { block: Block; t: number; side: number; pool: number }, noise: NoisePolicy): Promise<Candidate> {
  const jobs = [{ blocks: [s.block], timesteps: [s.t], pool: s.side }];
  const train = await runPlan({ root: ctx.root, extractor: ctx.extractor, images: ctx.train, jobs, noise, label: `${ctx.train.dataset}: train` });
  const test = await runPlan({ root: ctx.root, extractor: ctx.extractor, images: ctx.test, jobs, noise, label: `${ctx.test.dataset}: test` });
  return storedCandidates(train, test, { numClasses: ctx.numClasses, pool: s.pool })[0];
}

/**
 * DifFormer over stored sets (lib/heads/difformer.ts): the maps of `blocks` at `timesteps`, each at side
 * `side`, as one row per image (timestep-major, then block order, as difformerRowLayout reads it).
 * `transformer` is the head without its maps: dim, heads, mlpRatio, blocks (transformer depth), prePool.
 */
export function fusedCandidate(
  train: readonly StoredSet[],
  test: readonly StoredSet[],
  opts: { blocks: readonly Block[]; timesteps: readonly number[]; side: number; numClasses: number; transformer: Omit<DifFormerConfig, "maps" | "timesteps">; training?: Partial<TrainHeadOptions>; tags?: Record<string, string | number | null> },
): Candidate {
  const pick = (sets: readonly StoredSet[], what: string) =>
    opts.timesteps.flatMap((t) => opts.blocks.map((b) => {
      const s = sets.find((x) => x.block.number === b.number && x.t === t && x.side === opts.side);
      if (!s) throw new Error(`fusedCandidate: no stored ${what} features for block ${b.number}, t ${t} at side ${opts.side}: add them to the plan`);
      return s;
    }));
  const tr = pick(train, "training");
  const maps = opts.blocks.map((_, k) => tr[k].set.manifest.rowShape!);
  const source = (sets: StoredSet[]) => concatSource(sets.map((s) => storeSource(s.set, { numClasses: opts.numClasses })));
  const label = `${opts.blocks.map((b) => b.number).join("+")} x t ${opts.timesteps.join("+")}`;
  return {
    setting: { block: null, t: null, pool: `${opts.side}x${opts.side} maps`, tags: { fused: label, ...(opts.tags ?? {}) } },
    head: { kind: "difformer", ...opts.transformer, maps, timesteps: opts.timesteps.length },
    ...(opts.training ? { training: opts.training } : {}),
    train: () => source(tr),
    test: () => source(pick(test, "test")),
  };
}
