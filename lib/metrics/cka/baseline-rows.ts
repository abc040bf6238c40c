/**
 * Rows of the project's baseline networks for CKA — the GAN discriminator and the supervised encoder,
 * as lib/train/baselines/extractor's CleanImageModel (discriminatorModel, encoderModel) — streamed over
 * batches of images:
 *
 *   images (NHWC in [-1, 1], as the U-Net reads them) -> model.run(the requested layers, stopping after
 *   the deepest) -> each layer's map adaptive-average pooled to pool x pool, flattened channel-major
 *   [C, pool, pool] (lib/features/pooling, PyTorch's bin edges) -> one row per image and layer
 *
 * These networks take clean images: there is no timestep and no noise (t = 0 in the feature store's
 * terms). Rows are laid out as the U-Net blocks' pooled rows, so the two can share one CKA accumulator.
 * The stream reads `{ ids, images }` batches and yields `{ ids, rows }` (rows keyed by layer name), so a
 * consumer walking it in step with another stream (lib/metrics/cka/zip zipStreams) can check both saw the same
 * images (lib/metrics/cka/network-rows sameImages).
 */
import * as tf from "@tensorflow/tfjs";
import type { CleanImageModel, ProbedLayer } from "../../train/baselines/extractor";
import type { ImageArray } from "../../features/extract";
import { poolGrid, poolNHWC, PoolSpec } from "../../features/pooling";
import { progress as makeProgress } from "../../display/progress";

export interface BaselineRowsOptions {
  /** Layers by name ("d.conv1", "input_blocks.4") or 1-based number. */
  layers: (string | number)[];
  /** Adaptive average pooled size of every map. */
  pool: number;
}

/** A batch of images: ids (for checks and messages) and the NHWC images, or a function making them. */
export interface ImageRowsBatch {
  ids: string[];
  images: ImageArray | (() => Promise<ImageArray> | ImageArray);
}

export interface BaselineRowBatch {
  ids: string[];
  /** Layer name -> n rows of baselineLayerDims' width, row-major. */
  rows: Map<string, Float32Array>;
}

function checkOptions(opts: BaselineRowsOptions): void {
  if (!(Number.isInteger(opts.pool) && opts.pool >= 1)) throw new Error(`baseline rows: pool must be an integer >= 1, got ${JSON.stringify(opts.pool)}`);
  if (!Array.isArray(opts.layers) || opts.layers.length === 0) throw new Error("baseline rows: no layers requested");
}

/** The model's layers named by `layers` (names or numbers), in the order asked, without repeats. */
export function resolveBaselineLayers(model: CleanImageModel, layers: (string | number)[]): ProbedLayer[] {
  const out: ProbedLayer[] = [];
  for (const b of layers) {
    const hit = model.layers.find((l) => l.name === String(b) || String(l.number) === String(b));
    if (!hit) throw new Error(`baseline rows: no layer ${JSON.stringify(b)} (layers: ${model.layers.map((l) => `${l.number}/${l.name}`).join(", ")})`);
    if (!out.includes(hit)) out.push(hit);
  }
  return out;
}

const spec = (pool: number): PoolSpec => ({ kind: "adaptive", size: pool });

/** Width of each requested layer's rows for h x w images (no forward pass), keyed by layer name. */
export function baselineLayerDims(model: CleanImageModel, opts: BaselineRowsOptions, h: number, w: number): Map<string, number> {
  checkOptions(opts);
  return new Map(
    resolveBaselineLayers(model, opts.layers).map((l) => {
      const [mh, mw, c] = l.mapShape(h, w);
      const [r, k] = poolGrid(spec(opts.pool), mh, mw);
      return [l.name, c * r * k] as [string, number];
    }),
  );
}

/** Rows of every requested layer for one NHWC batch. */
export async function baselineBatchRows(model: CleanImageModel, images: ImageArray, opts: BaselineRowsOptions): Promise<Map<string, Float32Array>> {
  checkOptions(opts);
  const shape = images.shape;
  if (shape.length !== 4 || images.data.length !== shape.reduce((a, b) => a * b, 1)) {
    throw new Error(`baseline rows: images must be NHWC with data to match, got shape [${shape.join(", ")}] and ${images.data.length} values`);
  }
  const layers = resolveBaselineLayers(model, opts.layers);
  baselineLayerDims(model, opts, shape[1], shape[2]); // a network that does not take this image size says so here
  const x = tf.tensor4d(images.data, shape as [number, number, number, number]);
  let out: Map<string, tf.Tensor4D> | null = null;
  try {
    out = await model.run(x, layers.map((l) => l.name));
    const rows = new Map<string, Float32Array>();
    for (const l of layers) {
      const t = out.get(l.name);
      if (!t) throw new Error(`baseline rows: the model did not return layer ${l.name}`);
      rows.set(l.name, poolNHWC((await t.data()) as Float32Array, t.shape, spec(opts.pool)).data);
    }
    return rows;
  } finally {
    x.dispose();
    if (out) for (const t of out.values()) t.dispose();
  }
}

/**
 * The rows of `opts.layers` for every batch of images, in input order (read lazily: one batch in memory).
 * `progress` labels a progress display over `total` images.
 */
export async function* baselineRows(
  model: CleanImageModel,
  batches: Iterable<ImageRowsBatch> | AsyncIterable<ImageRowsBatch>,
  opts: BaselineRowsOptions & { progress?: string | false; total?: number },
): AsyncGenerator<BaselineRowBatch, void, undefined> {
  checkOptions(opts);
  resolveBaselineLayers(model, opts.layers); // unknown layer names fail before any image is read
  const bar = opts.progress ? makeProgress({ total: opts.total ?? 0, label: opts.progress, unit: "img" }) : null;
  let done = false;
  try {
    for await (const b of batches) {
      const images = typeof b.images === "function" ? await b.images() : b.images;
      if (images.shape[0] !== b.ids.length) throw new Error(`baseline rows: a batch has ${b.ids.length} ids for ${images.shape[0]} images`);
      if (b.ids.length === 0) continue;
      let rows: Map<string, Float32Array>;
      try {
        rows = await baselineBatchRows(model, images, opts);
      } catch (e) {
        throw new Error(`baseline rows: batch ${b.ids[0]}..${b.ids[b.ids.length - 1]}: ${(e as Error).message}`);
      }
      bar?.tick(b.ids.length);
      yield { ids: b.ids, rows };
    }
    done = true;
  } finally {
    bar?.done(done ? undefined : { stopped: "error or early exit" });
  }
}
