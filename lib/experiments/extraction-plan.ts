/**
 * Stage one of the pipeline (extract -> select -> evaluate), the one driver every notebook uses: the
 * extraction a notebook needs as a few store jobs (blocks x timesteps at one pooling each: one model pass
 * per image and job serves all its sets) over an image source, with a noise policy; what it will cost
 * before it runs (images x measured seconds per image, disk for the store: the one cost estimator); and the
 * lookup of a (block, t, pool) among the stored sets: a set stored at pooled size s serves any pool p that
 * divides s (adaptive pooling of equal bins re-pools exactly).
 */
import { extractToStore, jobKeys } from "../features/store/extract";
import type { FeatureExtractor } from "../features/store/extractor";
import type { ImageSource } from "../features/store/images";
import type { StoreDtype } from "../features/store/key";
import type { FeatureSet } from "../features/store/store";
import type { PoolSpec } from "../features/pooling";
import type { NoisePolicy } from "../features/extract";
import type { Block } from "../model/unet/blocks";

/** One store job: these blocks at these timesteps, pooled to `pool` x `pool` ("none": the whole map). */
export interface PlanJob {
  blocks: (number | Block)[];
  timesteps: number[];
  pool: number | "none";
}

export const PLAN_NOISE: NoisePolicy = { policy: "seeded", seed: 0 };

export function poolSpecOf(pool: number | "none"): PoolSpec {
  return pool === "none" ? { kind: "none" } : { kind: "adaptive", size: pool };
}

/** A stored set with what it holds. */
export interface StoredSet {
  block: Block;
  t: number;
  /** Side of the stored map (pooled size, or the map's own side for "none"). */
  side: number;
  set: FeatureSet;
}

/** Values per image of every set of the plan, from the model's layout (no model run). */
export function planDims(extractor: FeatureExtractor, images: ImageSource, jobs: PlanJob[]): { job: number; block: number; t: number; dim: number }[] {
  return jobs.flatMap((j, k) =>
    jobKeys({ extractor, images, blocks: blockNumbers(j), timesteps: j.timesteps, pool: poolSpecOf(j.pool), noise: PLAN_NOISE }).map((x) => ({ job: k, block: x.key.block, t: x.key.t, dim: x.dim })),
  );
}

export interface CostLine {
  what: string;
  images: number;
  secondsPerImage: number;
  hours: number;
  diskGiB: number;
}

/**
 * Seconds per image of each job on this machine's engine, measured on the first `n` images (after a
 * warm-up run on the first image, so engine build and warm-up are not counted).
 */
export async function measureJobs(extractor: FeatureExtractor, images: ImageSource, jobs: PlanJob[], n: number): Promise<number[]> {
  const k = Math.min(n, images.ids.length);
  if (k < 1) throw new Error(`measureJobs: ${images.dataset}/${images.split} has no images to measure on`);
  const batch = await images.load(0, k);
  const ids = images.ids.slice(0, k);
  const first = await images.load(0, 1);
  const out: number[] = [];
  for (const j of jobs) {
    const req = { blocks: blockNumbers(j), timesteps: j.timesteps, pool: poolSpecOf(j.pool), noise: PLAN_NOISE, schedule: extractor.schedule };
    await extractor.extract(first, ids.slice(0, 1), req);
    const t0 = process.hrtime.bigint();
    await extractor.extract(batch, ids, req);
    out.push(Number(process.hrtime.bigint() - t0) / 1e9 / k);
  }
  return out;
}

/** Cost lines of a plan over image sources (one line per job and source). */
export function planCost(extractor: FeatureExtractor, sources: ImageSource[], jobs: PlanJob[], secondsPerImage: number[], dtype: StoreDtype): CostLine[] {
  const bytes = dtype === "float16" ? 2 : 4;
  const lines: CostLine[] = [];
  for (const src of sources) {
    const dims = planDims(extractor, src, jobs);
    jobs.forEach((j, k) => {
      const n = src.ids.length;
      const perImage = dims.filter((d) => d.job === k).reduce((s, d) => s + d.dim, 0);
      lines.push({
        what: `${src.dataset}/${src.split}: blocks ${blockNumbers(j).join(",")} x t ${j.timesteps.join(",")} @ ${j.pool === "none" ? "whole map" : `${j.pool}x${j.pool}`}`,
        images: n, secondsPerImage: secondsPerImage[k], hours: (n * secondsPerImage[k]) / 3600, diskGiB: (n * perImage * bytes) / 2 ** 30,
      });
    });
  }
  return lines;
}

function blockNumbers(j: PlanJob): number[] {
  return j.blocks.map((b) => (typeof b === "number" ? b : b.number));
}

export interface RunPlanOptions {
  root: string;
  extractor: FeatureExtractor;
  images: ImageSource;
  jobs: PlanJob[];
  /** Noise policy (default PLAN_NOISE, seeded 0); a seed per repeat gives another noise draw. */
  noise?: NoisePolicy;
  dtype?: StoreDtype;
  partRows?: number;
  label?: string;
  /** Class-conditional models: the images' labels go to the model (lib/features/store/extract.ts). */
  conditionOnLabels?: boolean;
}

/** Run every job over `images` into the store (parts already stored are skipped); the sets with what they hold. */
export async function runPlan(opts: RunPlanOptions): Promise<StoredSet[]> {
  const out: StoredSet[] = [];
  for (const [k, j] of opts.jobs.entries()) {
    const r = await extractToStore({
      root: opts.root, extractor: opts.extractor, images: opts.images, blocks: blockNumbers(j), timesteps: j.timesteps, pool: poolSpecOf(j.pool), noise: opts.noise ?? PLAN_NOISE,
      dtype: opts.dtype, partRows: opts.partRows, conditionOnLabels: opts.conditionOnLabels, progress: `${opts.label ?? opts.images.dataset}/${opts.images.split}: job ${k + 1}/${opts.jobs.length}`,
    });
    for (const set of r.sets) {
      const shape = set.manifest.rowShape;
      if (!shape || shape.length !== 3) throw new Error(`feature set ${set.dir}: row shape ${JSON.stringify(shape)} is not [C, H, W]`);
      out.push({ block: { number: set.key.block, module: set.key.module }, t: set.key.t as number, side: shape[1], set });
    }
  }
  return out;
}

/** The stored set for (block, t) that serves pool p exactly: the smallest stored side that p divides. */
export function findSet(sets: StoredSet[], block: number | Block, t: number, pool: number): StoredSet {
  const n = typeof block === "number" ? block : block.number;
  const ok = sets.filter((s) => s.block.number === n && s.t === t && s.side % pool === 0).sort((a, b) => a.side - b.side);
  if (!ok.length) {
    const have = sets.filter((s) => s.block.number === n && s.t === t).map((s) => s.side);
    throw new Error(`no stored features for block ${n}, t ${t} at a size that ${pool}x${pool} pooling divides (stored sides: ${have.length ? have.join(", ") : "none"}); add a job to the plan`);
  }
  return ok[0];
}
