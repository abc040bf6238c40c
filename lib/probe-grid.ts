/**
 * The paper's core measurement as one call: extract pooled features of several U-Net blocks at
 * several timesteps (in worker threads, cached), fit a linear probe on the training split for each
 * (block, t), and report train and test accuracy. Also the raw-pixel baseline.
 */
import { FeatureMatrix, ImageArray, NoisePolicy, featureMatrix } from "./features";
import { FeatureCache } from "./feature-cache";
import { PoolSpec, poolLabel } from "./pooling";
import { ImageBatch, extractFeaturesParallel } from "./workers/feature-pool";
import { ModelSource, sourceConfig } from "./workers/model-source";
import { parseBlock } from "./unet/blocks";
import { Features, LinearProbeOptions, probePredict, trainLinearProbe } from "./heads/linear";
import { accuracy } from "./metrics";
import { progress } from "./progress";

/** Images with labels and stable ids (noise streams and cache keys follow the ids). */
export interface LabelledImages {
  images: ImageArray;
  labels: Int32Array;
  ids: string[];
}

export interface ProbeGridSpec {
  /** Name of the feature source in the results ("trained", "random init", ...). */
  name: string;
  model: ModelSource;
  blocks: (number | string)[];
  timesteps: number[];
  pool: PoolSpec;
  noise?: NoisePolicy;
  batchSize: number;
  workers?: number;
  cache?: FeatureCache;
  /** Extra text in cache keys (dataset, split, preprocessing). */
  cacheTag?: string;
  probe?: Partial<LinearProbeOptions>;
}

/** One result row: plain data, written as CSV/JSON. */
export interface ProbeRow {
  features: string;
  block: number;
  module: string;
  t: number | null;
  pool: string;
  dim: number;
  trainAcc: number;
  testAcc: number;
  probeSeconds: number;
}

/** Cut a labelled image set into batches for the feature workers. */
export function* imageBatches(set: LabelledImages, batchSize: number): Generator<ImageBatch> {
  const [n, h, w, c] = set.images.shape;
  const per = h * w * c;
  if (set.images.data.length !== n * per) throw new Error(`images hold ${set.images.data.length} values, shape says ${set.images.shape.join("x")}`);
  if (set.labels.length !== n || set.ids.length !== n) throw new Error(`${n} images but ${set.labels.length} labels and ${set.ids.length} ids`);
  for (let s = 0; s < n; s += batchSize) {
    const e = Math.min(n, s + batchSize);
    yield { images: { data: set.images.data.subarray(s * per, e * per), shape: [e - s, h, w, c] }, ids: set.ids.slice(s, e) };
  }
}

function asFeatures(m: FeatureMatrix): Features {
  return { data: m.data, rows: m.n, dim: m.dim };
}

/** Fit a probe on `train`, score it on both splits; also the test predictions (for paired comparisons). */
export async function probeAccuracy(
  train: Features,
  trainLabels: Int32Array,
  test: Features,
  testLabels: Int32Array,
  numClasses: number,
  opts: Partial<LinearProbeOptions> = {},
): Promise<{ trainAcc: number; testAcc: number; seconds: number; testPred: Int32Array }> {
  const t0 = Date.now();
  const probe = await trainLinearProbe(train, trainLabels, numClasses, { showProgress: false, ...opts });
  const testPred = probePredict(probe, test);
  return {
    trainAcc: accuracy(probePredict(probe, train), trainLabels),
    testAcc: accuracy(testPred, testLabels),
    seconds: (Date.now() - t0) / 1000,
    testPred,
  };
}

/** Pooled features of the given blocks and timesteps for both splits (worker threads, the spec's cache). */
async function gridFeatures(spec: ProbeGridSpec, blocks: number[], timesteps: number[], train: LabelledImages, test: LabelledImages) {
  const feats = (set: LabelledImages, split: string) =>
    extractFeaturesParallel(spec.model, imageBatches(set, spec.batchSize), {
      blocks,
      timesteps,
      pool: spec.pool,
      noise: spec.noise,
      cache: spec.cache,
      workers: spec.workers,
      total: set.labels.length,
      progress: `${spec.name}: ${split} features`,
      cacheTag: `${spec.cacheTag ?? ""}|${split}`,
    });
  return { train: await feats(train, "train"), test: await feats(test, "test") };
}

/** Features of every (block, t) for both splits, then one linear probe per (block, t). */
export async function probeGrid(spec: ProbeGridSpec, train: LabelledImages, test: LabelledImages, numClasses: number): Promise<ProbeRow[]> {
  const config = sourceConfig(spec.model);
  const blocks = spec.blocks.map((b) => parseBlock(config, b));
  const f = await gridFeatures(spec, blocks.map((b) => b.number), spec.timesteps, train, test);
  const rows: ProbeRow[] = [];
  const bar = progress({ total: blocks.length * spec.timesteps.length, label: `${spec.name}: linear probes`, unit: "probe" });
  try {
    for (const b of blocks) {
      for (const t of spec.timesteps) {
        const a = featureMatrix(f.train, b.number, t);
        const r = await probeAccuracy(asFeatures(a), train.labels, asFeatures(featureMatrix(f.test, b.number, t)), test.labels, numClasses, spec.probe);
        rows.push({
          features: spec.name, block: b.number, module: b.name, t, pool: poolLabel(spec.pool), dim: a.dim,
          trainAcc: r.trainAcc, testAcc: r.testAcc, probeSeconds: r.seconds,
        });
        bar.tick(1, { best: Math.max(...rows.map((x) => x.testAcc)) });
      }
    }
  } finally {
    bar.done();
  }
  return rows;
}

/**
 * The test-split predictions behind one row of `probeGrid(spec, ...)`: its features (from the cache
 * when the grid ran with one) and its probe, fit again with the same seeded options. Throws if the
 * refit probe does not reproduce the row's test accuracy (a different spec, data or cache).
 */
export async function gridRowPredictions(spec: ProbeGridSpec, row: ProbeRow, train: LabelledImages, test: LabelledImages, numClasses: number): Promise<Int32Array> {
  if (row.t === null) throw new Error(`gridRowPredictions: row "${row.features}" has no timestep (raw pixels? use pixelPredictions)`);
  const f = await gridFeatures(spec, [row.block], [row.t], train, test);
  const r = await probeAccuracy(
    asFeatures(featureMatrix(f.train, row.block, row.t)), train.labels, asFeatures(featureMatrix(f.test, row.block, row.t)), test.labels, numClasses, spec.probe,
  );
  if (r.testAcc !== row.testAcc) {
    throw new Error(`gridRowPredictions: block ${row.block} at t=${row.t} of "${spec.name}" gives test accuracy ${r.testAcc} now, ${row.testAcc} in the row (was the grid run with another spec or data?)`);
  }
  return r.testPred;
}

function pixelFeatures(set: LabelledImages): Features {
  return { data: set.images.data, rows: set.labels.length, dim: set.images.shape.slice(1).reduce((a, b) => a * b, 1) };
}

/** Raw pixels (flattened [-1, 1] values) as features: the baseline every representation must beat. */
export async function pixelBaseline(train: LabelledImages, test: LabelledImages, numClasses: number, opts: Partial<LinearProbeOptions> = {}): Promise<ProbeRow> {
  const x = pixelFeatures(train);
  const r = await probeAccuracy(x, train.labels, pixelFeatures(test), test.labels, numClasses, opts);
  return { features: "raw pixels", block: 0, module: "pixels", t: null, pool: "none", dim: x.dim, trainAcc: r.trainAcc, testAcc: r.testAcc, probeSeconds: r.seconds };
}

/** The raw-pixel baseline's test predictions (the probe of `pixelBaseline` with the same options). */
export async function pixelPredictions(train: LabelledImages, test: LabelledImages, numClasses: number, opts: Partial<LinearProbeOptions> = {}): Promise<Int32Array> {
  return (await probeAccuracy(pixelFeatures(train), train.labels, pixelFeatures(test), test.labels, numClasses, opts)).testPred;
}

/** The row with the best test accuracy. */
export function bestRow(rows: ProbeRow[]): ProbeRow {
  if (rows.length === 0) throw new Error("bestRow: no rows");
  return rows.reduce((a, b) => (b.testAcc > a.testAcc ? b : a));
}
