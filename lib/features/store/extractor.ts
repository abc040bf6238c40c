/**
 * The one door between the store and a model: a FeatureExtractor turns a batch of images into pooled rows
 * for each (block, t). Extraction (extract.ts) calls nothing else of the model, so another engine (ONNX
 * Runtime) plugs in by implementing this interface. Two implementations on the tfjs U-Net here: worker
 * threads (FeaturePool, one model per core) and the current thread (a model already loaded).
 */
import { FeatureBatch, FeatureModel, ImageArray, NoisePolicy, ScheduleLike, concatBatches, extractFeatures, featureShapes } from "../extract";
import type { PoolSpec } from "../pooling";
import { FeaturePool } from "../workers/feature-pool";
import { ModelSource, modelIdOf, modelSchedule, sourceConfig } from "../../model/model-source";
import { parseBlock } from "../../model/unet/blocks";
import { createUNetEngine } from "../../model/engines/create";
import type { UNetEngine } from "../../model/engines/engine";
import type { UNetConfig } from "../../model/unet/config";
import { peakActivationBytes } from "../../model/unet/activations";
import { chooseEngine } from "../../model/engines/engine";
import type { EngineRecord } from "../../provenance";
import { packageVersion } from "../../environment";
import * as tf from "@tensorflow/tfjs";

/** What to extract: blocks x timesteps, pooling, noise, schedule. */
export interface FeatureRequest {
  blocks: (number | string)[];
  timesteps: number[];
  pool: PoolSpec;
  noise: NoisePolicy;
  schedule?: ScheduleLike;
  /** Class labels of the images of this call, for class-conditional models (the store passes them). */
  y?: number[];
}

/** A pooled row of one block: module name, paper number, values per row and the row's [C, rows, cols]. */
export interface RowLayout {
  block: string;
  number: number;
  dim: number;
  rowShape: number[];
}

export interface FeatureExtractor {
  /** Content identity of the weights (feature-set keys). */
  readonly modelId: string;
  /** The model's own noise schedule, when the extractor knows its model source (requests default to it). */
  readonly schedule?: ScheduleLike;
  /** The blocks of a request, resolved, and their row lengths for h x w inputs (no model run). */
  layout(req: FeatureRequest, h: number, w: number): RowLayout[];
  /** Rows of every (block, t) of `req` for the images (NHWC in [-1, 1]); `ids` seed the noise. */
  extract(images: ImageArray, ids: string[], req: FeatureRequest): Promise<FeatureBatch>;
  /**
   * Images the extractor takes per model call for `req` (the store hands it parts in pieces of this size
   * and loads the next piece while the current one runs); absent: any number (a whole part at once).
   */
  rowsPerCall?(req: FeatureRequest): number;
  /** Build or load what `req` needs (an engine graph) before the first call, so that its time is not the first call's. */
  prepare?(req: FeatureRequest): Promise<void>;
  /** The engine that ran (or will run) the model: name, version, backend (provenance of results files). */
  engine(): EngineRecord;
  /** Release workers or sessions. */
  close(): Promise<void>;
}

/** ONNX Runtime's record (detail: the provider and threads of the session, once one is built). */
export function ortRecord(detail?: string): EngineRecord {
  return { name: "onnxruntime-node", version: packageVersion("onnxruntime-node"), ...(detail ? { detail } : {}) };
}

/** TensorFlow.js's record with its backend. */
export function tfjsRecord(backend: string | null = tf.getBackend(), detail?: string): EngineRecord {
  return { name: "tfjs", version: tf.version.tfjs, backend: backend ?? "none", ...(detail ? { detail } : {}) };
}

/** Activation memory a default batch may take (estimated by lib/model/unet/activations). */
export const BATCH_ACTIVATION_BUDGET = 2 * 2 ** 30;
/** The largest default batch (small models). */
export const MAX_DEFAULT_BATCH = 32;

/**
 * The default batch size for a request: the largest power of two (at most 32) whose estimated peak
 * activations for a pass to the deepest block asked (peakActivationBytes, float32, per image) fit in
 * 2 GiB; at least 1. The 256x256 ADM to block 24: 192 MiB per image, so 8; its full pass: 512 MiB, so 4; the
 * Fashion-MNIST model: 32.
 */
export function defaultBatchSize(config: UNetConfig, blocks: (number | string)[]): number {
  const per = peakActivationBytes(config, blocks);
  let b = 1;
  while (b * 2 <= MAX_DEFAULT_BATCH && b * 2 * per <= BATCH_ACTIVATION_BUDGET) b *= 2;
  return b;
}

export interface ExtractorOptions {
  /** "auto" (default: $DIFFPROBE_ENGINE, else ONNX Runtime where it loads), "ort" or "tfjs". */
  engine?: string;
  /** Images per model call (default: defaultBatchSize, from the model's activation memory). */
  batchSize?: number;
  /** tfjs: worker threads (default one per core) and their backend (default wasm). */
  workers?: number;
  backend?: string;
  /** Told how the engine was chosen (the chooser's log lines) and what it is. */
  onChoice?: (log: string[], description: string) => void;
}

/**
 * The one place a U-Net feature engine is chosen for extraction: ONNX Runtime where it loads (one session
 * per set of blocks, this thread), else tfjs on worker threads.
 */
export function createExtractor(model: ModelSource, opts: ExtractorOptions = {}): FeatureExtractor {
  const choice = chooseEngine(opts.engine === "auto" ? undefined : opts.engine);
  if (choice.name === "ort") return engineExtractor(model, { ...opts, engine: "ort" });
  opts.onChoice?.(choice.log, `tfjs on ${opts.workers ?? "one per core"} worker thread(s), ${opts.backend ?? "wasm"}`);
  return workerExtractor(model, opts);
}

function unetLayout(config: UNetConfig, req: FeatureRequest, h: number, w: number): RowLayout[] {
  return featureShapes(config, req.blocks, req.pool, h, w).map((b) => ({ block: b.block, number: b.number, dim: b.dim, rowShape: b.rowShape }));
}

/** The tfjs U-Net of a model source on worker threads; workers start at the first batch (none if all is stored). */
export function workerExtractor(model: ModelSource, opts: { workers?: number; batchSize?: number; backend?: string } = {}): FeatureExtractor {
  const config = sourceConfig(model);
  const pool = FeaturePool.onDemand({ model, workers: opts.workers, backend: opts.backend });
  const batchOf = (req: FeatureRequest) => opts.batchSize ?? defaultBatchSize(config, req.blocks);
  return {
    schedule: modelSchedule(model),
    get modelId() {
      return pool.modelId;
    },
    layout: (req, h, w) => unetLayout(config, req, h, w),
    async extract(images, ids, req) {
      const [n, h, w, c] = images.shape;
      const per = h * w * c;
      const batchSize = batchOf(req);
      const batches = [];
      for (let s = 0; s < n; s += batchSize) {
        const e = Math.min(n, s + batchSize);
        batches.push({ images: { data: images.data.subarray(s * per, e * per), shape: [e - s, h, w, c] }, ids: ids.slice(s, e), ...(req.y ? { y: req.y.slice(s, e) } : {}) });
      }
      const { y: _labels, ...rest } = req;
      return pool.extractAll(batches, { ...rest, progress: false });
    },
    engine: () => tfjsRecord(opts.backend ?? "wasm", `${opts.workers ?? "one per core"} worker thread(s)`),
    close: () => pool.close(),
  };
}

/** A U-Net already loaded in this thread (tests, notebooks holding a model). */
export function modelExtractor(model: FeatureModel, modelId: string, opts: { batchSize?: number } = {}): FeatureExtractor {
  const batchOf = (req: FeatureRequest) => opts.batchSize ?? defaultBatchSize(model.config, req.blocks);
  return {
    modelId,
    layout: (req, h, w) => unetLayout(model.config, req, h, w),
    rowsPerCall: batchOf,
    async extract(images, ids, req) {
      const batchSize = batchOf(req);
      const [n, h, w, c] = images.shape;
      const per = h * w * c;
      const parts: FeatureBatch[] = [];
      for (let s = 0; s < n; s += batchSize) {
        const e = Math.min(n, s + batchSize);
        parts.push(await extractFeatures(model, { data: images.data.subarray(s * per, e * per), shape: [e - s, h, w, c] }, { ...req, ids: ids.slice(s, e), y: req.y?.slice(s, e) }));
      }
      return concatBatches(parts);
    },
    engine: () => tfjsRecord(undefined, "this thread"),
    close: async () => undefined,
  };
}

/**
 * The U-Net of a model source on a lib/model/engines engine (ONNX Runtime where it loads, else tfjs in this
 * thread; `engine` or $DIFFPROBE_ENGINE forces one). An ONNX model ends after the last block asked for, so
 * one engine is built per set of blocks (and cached on disk: a second run starts at once).
 */
export function engineExtractor(model: ModelSource, opts: { engine?: string; /** default: defaultBatchSize */ batchSize?: number; onChoice?: (log: string[], description: string) => void } = {}): FeatureExtractor {
  const config = sourceConfig(model);
  const batchOf = (req: FeatureRequest) => opts.batchSize ?? defaultBatchSize(config, req.blocks);
  const blocksOf = (req: FeatureRequest) => [...new Set(req.blocks.map((b) => parseBlock(config, b).name))];
  const engines = new Map<string, Promise<UNetEngine>>();
  let ran: { name: string; description: string } | null = null;
  const engineFor = (blocks: string[]): Promise<UNetEngine> => {
    const key = blocks.join(",");
    let e = engines.get(key);
    if (!e) {
      e = createUNetEngine(model, { engine: opts.engine, outputs: blocks }).then(({ engine, choice }) => {
        opts.onChoice?.(choice.log, engine.description);
        ran = { name: choice.name, description: engine.description };
        return engine;
      });
      engines.set(key, e);
    }
    return e;
  };
  return {
    schedule: modelSchedule(model),
    get modelId() {
      return modelIdOf(model);
    },
    layout: (req, h, w) => unetLayout(config, req, h, w),
    rowsPerCall: batchOf,
    async prepare(req) {
      await engineFor(blocksOf(req));
    },
    async extract(images, ids, req) {
      const engine = await engineFor(blocksOf(req));
      const batchSize = batchOf(req);
      const [n, h, w, c] = images.shape;
      const per = h * w * c;
      const parts: FeatureBatch[] = [];
      for (let s = 0; s < n; s += batchSize) {
        const e = Math.min(n, s + batchSize);
        parts.push(await extractFeatures(engine, { data: images.data.subarray(s * per, e * per), shape: [e - s, h, w, c] }, { ...req, ids: ids.slice(s, e), y: req.y?.slice(s, e) }));
      }
      return concatBatches(parts);
    },
    engine() {
      if (ran?.name === "tfjs") return tfjsRecord(undefined, ran.description);
      if (ran) return ortRecord(ran.description);
      const planned = chooseEngine(opts.engine === "auto" ? undefined : opts.engine).name;
      return planned === "ort" ? ortRecord("no session built: every feature was in the store") : tfjsRecord(undefined, "this thread");
    },
    async close() {
      for (const e of engines.values()) await (await e).dispose();
      engines.clear();
    },
  };
}
