/**
 * Feature extraction on several worker threads: batches of images stream through N workers, each with
 * its own tfjs (wasm) instance and its own copy of the model; results come back in input order.
 *
 *   const pool = await FeaturePool.start({ model: { config: "adm-256-uncond", checkpoint: file } });
 *   for await (const batch of pool.extract(batches, { blocks: [24], timesteps: [90], schedule })) ...
 *   await pool.close();
 *
 * or, for one run, `extractFeaturesParallel(source, batches, options)` (starts and closes a pool).
 *
 * Memory: at most `window` batches (default two per worker) are taken from the source and not yet
 * handed back, so images are read no faster than the workers use them. Progress (rate, ETA) is shown
 * in the terminal, the notebook or the log. A failing batch (a bad image in batch 7) rejects with an
 * error naming the batch and the image, after every earlier batch has been yielded. Features that must
 * survive the process go to the feature store (lib/features/store), which is filled part by part.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as tf from "@tensorflow/tfjs";
import { Job, WorkerPool, defaultWorkerCount } from "./pool";
import { ModelSource, sourceConfig, modelIdOf } from "../../model/model-source";
import type { FeatureTask, FeatureWorkerInit, FeatureWorkerInfo } from "./feature-worker";
import { FeatureBatch, FeatureOptions, ImageArray, emptyFeatureBatch, concatBatches, checkImageShape, scheduleData } from "../extract";
import { parameterCount } from "../../model/unet/parameters";
import type { UNetConfig } from "../../model/unet/config";
import { progress, Progress } from "../../display/progress";

/** One batch of the input stream. */
export interface ImageBatch {
  /** NHWC float32 in [-1, 1]: a tensor (read, not disposed) or plain data. */
  images: tf.Tensor4D | ImageArray;
  /** Image ids (noise streams, cache keys, error messages). Default: running index over the stream. */
  ids?: (string | number)[];
  /** Class labels for class-conditional models. */
  y?: number[];
}

export interface FeaturePoolOptions {
  model: ModelSource;
  /** Number of workers. Default: one per core, fewer if memory would not hold that many models. */
  workers?: number;
  /** tfjs backend of each worker (default "wasm"). */
  backend?: string;
  /** Show a progress line while the workers load the model (default true). */
  progress?: boolean;
}

export interface PoolExtractOptions extends Omit<FeatureOptions, "ids" | "y" | "indexOffset"> {
  /** Number of images, for the progress display's ETA (counted from the input when it is an array). */
  total?: number;
  /** false: no display; a string: its label (default "features"). */
  progress?: boolean | string;
  /** Batches in flight or waiting to be consumed (default: two per worker). */
  window?: number;
}

/** Bytes a worker needs for a model: host weights + their tfjs/XNNPACK copies + activations (rough). */
export function estimateWorkerBytes(config: UNetConfig): number {
  return 4 * parameterCount(config) * 2 + 512 * 2 ** 20;
}

/** Workers to start by default: one per core, no more than 80% of memory holds. */
export function defaultFeatureWorkers(config: UNetConfig): number {
  const byMemory = Math.floor((0.8 * os.totalmem()) / estimateWorkerBytes(config));
  return Math.max(1, Math.min(defaultWorkerCount(), byMemory));
}

/**
 * The worker entry beside this file: the compiled .js when running compiled, else the .ts source
 * (also under tslab, which compiles this module in memory and names it .js although no .js exists).
 */
function workerEntry(): string {
  const candidates = [path.extname(__filename), ".ts", ".js"].map((ext) => path.join(__dirname, `feature-worker${ext}`));
  const hit = candidates.find((f) => fs.existsSync(f));
  if (!hit) throw new Error(`feature worker entry not found beside ${__filename} (looked for ${candidates.join(", ")})`);
  return hit;
}

function toImageArray(images: tf.Tensor4D | ImageArray): ImageArray {
  if (images instanceof tf.Tensor) return { data: images.dataSync() as Float32Array, shape: images.shape };
  return images;
}

export class FeaturePool {
  private modelIdCache: string | null = null;
  private pool: WorkerPool<FeatureTask, FeatureBatch> | null = null;
  private starting: Promise<WorkerPool<FeatureTask, FeatureBatch>> | null = null;
  readonly config: UNetConfig;
  readonly source: ModelSource;

  private constructor(private readonly opts: FeaturePoolOptions) {
    this.source = opts.model;
    this.config = sourceConfig(opts.model);
  }

  /** Start the workers; resolves when every worker has loaded the model. */
  static async start(opts: FeaturePoolOptions): Promise<FeaturePool> {
    const pool = new FeaturePool(opts);
    await pool.ensureStarted();
    return pool;
  }

  /**
   * A pool whose workers start only when the first batch reaches them: a caller that turns out to have
   * nothing to compute (a complete feature store) loads no model at all. Start-up errors surface from `extract`.
   */
  static onDemand(opts: FeaturePoolOptions): FeaturePool {
    return new FeaturePool(opts);
  }

  /** Whether the workers have been started (or are starting). */
  get started(): boolean {
    return this.starting !== null;
  }

  private ensureStarted(): Promise<WorkerPool<FeatureTask, FeatureBatch>> {
    if (this.starting) return this.starting;
    const opts = this.opts;
    const size = opts.workers ?? defaultFeatureWorkers(this.config);
    const bar = opts.progress === false ? null : progress({ total: size, label: "loading model in workers", unit: "worker" });
    this.starting = WorkerPool.start<FeatureTask, FeatureBatch>({
      entry: workerEntry(),
      size,
      name: "feature worker",
      init: { model: opts.model, backend: opts.backend ?? "wasm" } satisfies FeatureWorkerInit,
      onReady: () => bar?.tick(1),
    }).then(
      (pool) => {
        bar?.done();
        this.pool = pool;
        return pool;
      },
      (e) => {
        bar?.done({ error: "failed" });
        throw e;
      },
    );
    return this.starting;
  }

  /** Number of live workers. */
  get workers(): number {
    return this.pool ? this.pool.size : 0;
  }

  /** What each worker reported after loading (backend, load seconds, RSS). */
  get infos(): FeatureWorkerInfo[] {
    return this.pool ? (this.pool.infos as FeatureWorkerInfo[]) : [];
  }

  /** Identity of the weights for feature-store keys (computed once). */
  get modelId(): string {
    return (this.modelIdCache ??= modelIdOf(this.source));
  }

  /**
   * Features of every batch, in input order (see the module comment). The input is read lazily; a
   * failing batch rejects with an error naming it, after every earlier batch has been yielded.
   */
  async *extract(batches: Iterable<ImageBatch> | AsyncIterable<ImageBatch>, opts: PoolExtractOptions): AsyncGenerator<FeatureBatch, void, undefined> {
    const config = this.config;
    const base: FeatureOptions = { ...opts };
    const taskOptions: FeatureTask["options"] = {
      blocks: opts.blocks,
      timesteps: opts.timesteps,
      pool: opts.pool,
      noise: opts.noise,
      schedule: scheduleData(opts.schedule), // plain data: structured-cloneable
    };
    const total = opts.total ?? (Array.isArray(batches) ? (batches as ImageBatch[]).reduce((s, b) => s + toShape(b.images)[0], 0) : 0);
    const bar: Progress | null = opts.progress === false ? null : progress({ total, label: typeof opts.progress === "string" ? opts.progress : "features", unit: "img" });

    /** Batches taken from the input, in order, waiting for their worker result. */
    const fifo: FeatureBatch[] = [];

    async function* jobs(): AsyncGenerator<Job<FeatureTask>, void, undefined> {
      let offset = 0;
      let number = 0;
      for await (const input of batches) {
        const img = toImageArray(input.images);
        const [n, h, w, c] = checkImageShape(config, img.shape);
        const ids = input.ids ? input.ids.map(String) : Array.from({ length: n }, (_, i) => String(offset + i));
        if (ids.length !== n) throw new Error(`batch ${number}: ${ids.length} ids for ${n} images`);
        const label = `batch ${number} (images ${offset}-${offset + n - 1}${input.ids ? `, ids ${ids[0]}..${ids[n - 1]}` : ""})`;
        number++;
        offset += n;
        const batch = emptyFeatureBatch(config, { ...base, ids, y: input.y }, img);
        const data = Float32Array.from(img.data.subarray(0, n * h * w * c));
        fifo.push(batch);
        yield {
          task: {
            data,
            shape: [n, h, w, c] as [number, number, number, number],
            ids,
            y: input.y,
            options: taskOptions,
          },
          transfer: [data.buffer as ArrayBuffer],
          label,
        };
      }
    }

    const onResult = (r: FeatureBatch) => {
      bar?.tick(r.n);
    };

    let failed = true;
    try {
      // Start the workers (if not yet) when the first batch arrives.
      const pending = jobs();
      const first = await pending.next();
      if (first.done) {
        failed = false;
        return;
      }
      const head = first.value as Job<FeatureTask>; // (tslab compiles without strictNullChecks: no narrowing)
      const pool = await this.ensureStarted();
      async function* all() {
        yield head;
        yield* pending;
      }
      for await (const result of pool.map(all(), { window: opts.window, onResult })) {
        const batch = fifo.shift()!;
        mergeRows(batch, result);
        yield batch;
      }
      failed = false;
    } finally {
      bar?.done(failed ? { stopped: "error or early exit" } : undefined);
    }
  }

  /** All features of the input, concatenated (rows in input order). */
  async extractAll(batches: Iterable<ImageBatch> | AsyncIterable<ImageBatch>, opts: PoolExtractOptions): Promise<FeatureBatch> {
    const out: FeatureBatch[] = [];
    for await (const b of this.extract(batches, opts)) out.push(b);
    return concatBatches(out);
  }

  /** Terminate the workers. */
  async close(): Promise<void> {
    if (!this.starting) return;
    const pool = await this.starting.catch(() => null);
    await pool?.close();
  }
}

function toShape(images: tf.Tensor4D | ImageArray): number[] {
  return images instanceof tf.Tensor ? images.shape : images.shape;
}

/** Copy a worker's rows into the batch made for its input (checking that every (block, t) came back). */
function mergeRows(into: FeatureBatch, from: FeatureBatch): void {
  for (const m of into.matrices) {
    const src = from.matrices.find((x) => x.block === m.block && x.t === m.t);
    if (!src || src.dim !== m.dim || src.n !== m.n) throw new Error(`worker result lacks ${m.block}@t=${m.t} (dim ${m.dim}, ${m.n} rows)`);
    m.data.set(src.data);
  }
}

/**
 * Extract the features of every batch on a pool of its own, closed at the end (also on error). The
 * workers start only if the input holds a batch.
 * `opts.workers` / `opts.backend` configure the pool.
 */
export async function extractFeaturesParallel(
  model: ModelSource,
  batches: Iterable<ImageBatch> | AsyncIterable<ImageBatch>,
  opts: PoolExtractOptions & { workers?: number; backend?: string },
): Promise<FeatureBatch> {
  const pool = FeaturePool.onDemand({ model, workers: opts.workers, backend: opts.backend, progress: opts.progress !== false });
  try {
    return await pool.extractAll(batches, opts);
  } finally {
    await pool.close();
  }
}
