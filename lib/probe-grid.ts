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

/** Fit a probe on `train`, score it on both splits. */
export async function probeAccuracy(
  train: Features,
  trainLabels: Int32Array,
  test: Features,
  testLabels: Int32Array,
  numClasses: number,
  opts: Partial<LinearProbeOptions> = {},
): Promise<{ trainAcc: number; testAcc: number; seconds: number }> {
  const t0 = Date.now();
  const probe = await trainLinearProbe(train, trainLabels, numClasses, { showProgress: false, ...opts });
  return {
    trainAcc: accuracy(probePredict(probe, train), trainLabels),
    testAcc: accuracy(probePredict(probe, test), testLabels),
    seconds: (Date.now() - t0) / 1000,
  };
}

/** Features of every (block, t) for both splits, then one linear probe per (block, t). */
export async function probeGrid(spec: ProbeGridSpec, train: LabelledImages, test: LabelledImages, numClasses: number): Promise<ProbeRow[]> {
  const config = sourceConfig(spec.model);
  const blocks = spec.blocks.map((b) => parseBlock(config, b));
  const numbers = blocks.map((b) => b.number);
  const common = {
    blocks: numbers,
    timesteps: spec.timesteps,
    pool: spec.pool,
    noise: spec.noise,
    cache: spec.cache,
    workers: spec.workers,
  };
  const feats = async (set: LabelledImages, split: string) =>
    extractFeaturesParallel(spec.model, imageBatches(set, spec.batchSize), {
      ...common,
      total: set.labels.length,
      progress: `${spec.name}: ${split} features`,
      cacheTag: `${spec.cacheTag ?? ""}|${split}`,
    });
  const trainF = await feats(train, "train");
  const testF = await feats(test, "test");
  const rows: ProbeRow[] = [];
  for (const b of blocks) {
    for (const t of spec.timesteps) {
      const a = featureMatrix(trainF, b.number, t);
      const r = await probeAccuracy(asFeatures(a), train.labels, asFeatures(featureMatrix(testF, b.number, t)), test.labels, numClasses, spec.probe);
      rows.push({
        features: spec.name, block: b.number, module: b.name, t, pool: poolLabel(spec.pool), dim: a.dim,
        trainAcc: r.trainAcc, testAcc: r.testAcc, probeSeconds: r.seconds,
      });
    }
  }
  return rows;
}

/** Raw pixels (flattened [-1, 1] values) as features: the baseline every representation must beat. */
export async function pixelBaseline(train: LabelledImages, test: LabelledImages, numClasses: number, opts: Partial<LinearProbeOptions> = {}): Promise<ProbeRow> {
  const dim = train.images.shape.slice(1).reduce((a, b) => a * b, 1);
  const r = await probeAccuracy(
    { data: train.images.data, rows: train.labels.length, dim },
    train.labels,
    { data: test.images.data, rows: test.labels.length, dim },
    test.labels,
    numClasses,
    opts,
  );
  return { features: "raw pixels", block: 0, module: "pixels", t: null, pool: "none", dim, trainAcc: r.trainAcc, testAcc: r.testAcc, probeSeconds: r.seconds };
}

/** The row with the best test accuracy. */
export function bestRow(rows: ProbeRow[]): ProbeRow {
  if (rows.length === 0) throw new Error("bestRow: no rows");
  return rows.reduce((a, b) => (b.testAcc > a.testAcc ? b : a));
}
