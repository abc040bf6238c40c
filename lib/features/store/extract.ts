/**
 * Fill the store: for the images of a source, the feature sets of every (block, t) of a request, part by
 * part. One model call per part serves every block and timestep; a part already stored whole in every
 * set (checksum verified) is skipped, so a rerun, or a killed shard run again, continues where it stopped.
 * Each part is written atomically (store.ts), so stopping at any moment (Ctrl-C, SIGKILL, a node lost)
 * never leaves a part that reads as complete. `shouldStop` is polled between parts: the current part is
 * finished and written, then extraction returns with `stopped: true`.
 *
 * Images are loaded in pieces of the extractor's rowsPerCall (a whole part when it has none), and the next
 * piece (of this part or the next) is loaded while the current one runs: decoding and cropping overlap
 * the model, and only two pieces of images are in memory at once.
 */
import { concatBatches, featureMatrix, isCacheable, noiseLabel, scheduleId } from "../extract";
import type { FeatureBatch } from "../extract";
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
  /**
   * Seconds spent: preparing the extractor (an engine graph built or loaded), waiting for images that were
   * not ready when the model wanted them (loading not overlapped), in model calls, and writing parts.
   */
  seconds: { prepare: number; waitImages: number; extract: number; write: number };
}

/** One model call's rows: [start, end) of part `part`. */
interface Piece {
  part: number;
  start: number;
  end: number;
}

/** The pieces of `parts` (in order), `rows` images each at most, never across a part's end. */
export function partPieces(parts: number[], range: (p: number) => [number, number], rows: number): Piece[] {
  if (!(Number.isInteger(rows) && rows > 0)) throw new Error(`extract: rows per call must be a positive integer, got ${rows}`);
  const out: Piece[] = [];
  for (const p of parts) {
    const [s, e] = range(p);
    for (let a = s; a < e; a += rows) out.push({ part: p, start: a, end: Math.min(e, a + rows) });
  }
  return out;
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
  const seconds = { prepare: 0, waitImages: 0, extract: 0, write: 0 };
  const clock = () => performance.now() / 1000;
  let computed = 0;
  let stopped = false;
  if (parts.length && job.extractor.prepare) {
    const t0 = clock();
    await job.extractor.prepare(req);
    seconds.prepare = clock() - t0;
  }
  const rows = job.extractor.rowsPerCall?.(req) ?? job.partRows ?? DEFAULT_PART_ROWS;
  const pieces = partPieces(parts, (p) => sets[0].partRange(p), rows);
  const load = (k: number) => {
    const x = job.images.load(pieces[k].start, pieces[k].end);
    x.catch(() => undefined); // awaited below; a prefetch abandoned on stop must not be an unhandled rejection
    return x;
  };
  let next = pieces.length ? load(0) : null;
  let done: FeatureBatch[] = [];
  try {
    for (let k = 0; k < pieces.length; k++) {
      const { part: p, start: s, end: e } = pieces[k];
      const [ps, pe] = sets[0].partRange(p);
      if (s === ps && job.shouldStop?.()) {
        stopped = true;
        break;
      }
      let t0 = clock();
      const images = await next!;
      seconds.waitImages += clock() - t0;
      next = k + 1 < pieces.length ? load(k + 1) : null;
      const y = job.conditionOnLabels ? Array.from(job.images.labels!.subarray(s, e)) : undefined;
      t0 = clock();
      done.push(await job.extractor.extract(images, job.images.ids.slice(s, e), y ? { ...req, y } : req));
      seconds.extract += clock() - t0;
      bar?.tick(e - s, { part: `${computed + (e === pe ? 1 : 0)}/${parts.length}` });
      if (e < pe) continue;
      t0 = clock();
      const batch = done.length === 1 ? done[0] : concatBatches(done);
      done = [];
      for (const set of todo.get(p)!) set.writePart(p, featureMatrix(batch, set.key.module, set.key.t).data);
      seconds.write += clock() - t0;
      computed++;
    }
  } finally {
    bar?.done(stopped ? { stopped: "on request" } : undefined);
  }
  return { sets, computed, skipped: mine.length - parts.length, stopped, seconds };
}
