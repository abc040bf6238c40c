/**
 * Fill the store: for the images of a source, the feature sets of every (block, t) of a request, part by
 * part. One model call per part serves every block and timestep; a part already stored whole in every
 * set (checksum verified) is skipped, so a rerun, or a killed shard run again, continues where it stopped.
 * Each part is written atomically (store.ts), so stopping at any moment (Ctrl-C, SIGKILL, a node lost)
 * never leaves a part that reads as complete. `shouldStop` is polled between parts: the current part is
 * finished and written, then extraction returns with `stopped: true`.
 */
import { featureMatrix, isCacheable, noiseLabel, scheduleId } from "../extract";
import type { ScheduleLike } from "../extract";
import { poolLabel } from "../pooling";
import { progress } from "../../display/progress";
import type { FeatureExtractor, FeatureRequest } from "./extractor";
import type { ImageSource } from "./images";
import type { FeatureSetKey, StoreDtype } from "./key";
import { imageListId, labelsId } from "./key";
import { Shard, shardParts } from "./shard";
import { DEFAULT_PART_ROWS, FeatureSet } from "./store";

export interface ExtractJob extends FeatureRequest {
  /** Store root folder. */
  root: string;
  extractor: FeatureExtractor;
  images: ImageSource;
  dtype?: StoreDtype;
  partRows?: number;
  /** Fill only this shard's parts. */
  shard?: Shard | null;
  /** false: no progress display; a string: its label. */
  progress?: boolean | string;
  /** Polled between parts; true stops after the current part. */
  shouldStop?: () => boolean;
  /** Class-conditional models: each image's label from the source goes to the model (and into the key). */
  conditionOnLabels?: boolean;
}

export interface ExtractResult {
  /** One set per (block, t), blocks in the order asked, t inner. */
  sets: FeatureSet[];
  /** Parts computed now, and parts found complete (of this shard). */
  computed: number;
  skipped: number;
  stopped: boolean;
}

/**
 * The schedule a job noises with: the model's own (the extractor's), so that t always means the model's
 * timestep. A job that names another schedule than its model's is refused.
 */
export function jobSchedule(job: Pick<ExtractJob, "schedule" | "extractor">): ScheduleLike | undefined {
  const own = job.extractor.schedule;
  if (job.schedule && own && scheduleId(job.schedule) !== scheduleId(own)) {
    throw new Error(`extract: the request's noise schedule (${scheduleId(job.schedule)}) is not the model's own (${scheduleId(own)}); t must mean the model's timestep`);
  }
  return job.schedule ?? own;
}

/** The key of each (block, t) of a job (no model run; resolves the blocks). */
export function jobKeys(job: Omit<ExtractJob, "root">): { key: FeatureSetKey; dim: number; rowShape: number[] }[] {
  if (!isCacheable(job.noise)) throw new Error('extract: "fresh" noise cannot be stored; use seeded or ensemble noise');
  const [h, w] = job.images.imageShape;
  const out = [];
  for (const b of job.extractor.layout(job, h, w)) {
    for (const t of [...new Set(job.timesteps)]) {
      const key: FeatureSetKey = {
        model: job.extractor.modelId,
        schedule: scheduleId(jobSchedule(job)),
        block: b.number,
        module: b.block,
        t,
        pool: poolLabel(job.pool),
        noise: noiseLabel(job.noise),
        preprocessing: job.images.preprocessing,
        dataset: job.images.dataset,
        split: job.images.split,
        images: imageListId(job.images.ids),
        dtype: job.dtype ?? "float32",
        ...(job.conditionOnLabels && job.images.labels ? { conditioning: labelsId(job.images.labels) } : {}),
      };
      out.push({ key, dim: b.dim, rowShape: b.rowShape });
    }
  }
  return out;
}

/** Create (or open) the sets of a job without computing anything. */
export function openJobSets(job: ExtractJob): FeatureSet[] {
  return jobKeys(job).map(({ key, dim, rowShape }) =>
    FeatureSet.create(job.root, key, { dim, rowShape, ids: job.images.ids, labels: job.images.labels, partRows: job.partRows ?? DEFAULT_PART_ROWS }),
  );
}

/** Fill the job's sets (this shard's parts); see the module comment. */
export async function extractToStore(job: ExtractJob): Promise<ExtractResult> {
  if (job.conditionOnLabels && !job.images.labels) throw new Error(`extract: ${job.images.dataset}/${job.images.split} has no labels for a class-conditional model`);
  const sets = openJobSets(job);
  for (const s of sets) s.removeStaleTemporaries();
  const mine = shardParts(sets[0].parts, job.shard);
  const todo = new Map<number, FeatureSet[]>();
  for (const s of sets) for (const p of s.missing({ verify: true, among: mine })) todo.set(p, [...(todo.get(p) ?? []), s]);
  const parts = [...todo.keys()].sort((a, b) => a - b);
  const rowsTodo = parts.reduce((n, p) => n + sets[0].partRange(p)[1] - sets[0].partRange(p)[0], 0);
  const label = typeof job.progress === "string" ? job.progress : `${job.images.dataset}/${job.images.split} features${job.shard ? ` (shard ${job.shard.index}/${job.shard.count})` : ""}`;
  const bar = job.progress === false || parts.length === 0 ? null : progress({ total: rowsTodo, label, unit: "img" });
  const req: FeatureRequest = { blocks: job.blocks, timesteps: job.timesteps, pool: job.pool, noise: job.noise, schedule: jobSchedule(job) };
  let computed = 0;
  let stopped = false;
  try {
    for (const p of parts) {
      if (job.shouldStop?.()) {
        stopped = true;
        break;
      }
      const [s, e] = sets[0].partRange(p);
      const images = await job.images.load(s, e);
      const y = job.conditionOnLabels ? Array.from(job.images.labels!.subarray(s, e)) : undefined;
      const batch = await job.extractor.extract(images, job.images.ids.slice(s, e), y ? { ...req, y } : req);
      for (const set of todo.get(p)!) set.writePart(p, featureMatrix(batch, set.key.module, set.key.t).data);
      computed++;
      bar?.tick(e - s, { part: `${computed}/${parts.length}` });
    }
  } finally {
    bar?.done(stopped ? { stopped: "on request" } : undefined);
  }
  return { sets, computed, skipped: mine.length - parts.length, stopped };
}
