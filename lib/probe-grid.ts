/**
 * The paper's core measurement as one call, in the three stages of the feature store: extract pooled
 * features of several U-Net blocks at several timesteps into the store (worker threads; parts already
 * stored are skipped), fit a linear probe on the training split of each (block, t) read back from the
 * store, and score it on the test split. Also the raw-pixel baseline.
 */
import { ImageArray, NoisePolicy } from "./features";
import { PoolSpec, poolLabel } from "./pooling";
import { ModelSource } from "./workers/model-source";
import { Features, LinearProbeOptions, probePredict, trainLinearProbe } from "./heads/linear";
import { accuracy } from "./metrics";
import { progress } from "./progress";
import { engineExtractor, workerExtractor } from "./store/extractor";
import { chooseEngine } from "./engines/engine";
import { extractToStore } from "./store/extract";
import { memorySource } from "./store/images";
import type { StoreDtype } from "./store/key";
import { FeatureSet, defaultStoreRoot } from "./store/store";

/** Images with labels and stable ids (noise streams follow the ids; the store keeps them per row). */
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
  /** Feature engine: "auto" (default: $DIFFPROBE_ENGINE, else ONNX Runtime where it loads), "ort" or "tfjs". */
  engine?: string;
  /** tfjs engine: worker threads (default one per core). */
  workers?: number;
  /** Feature-store root folder (default: $DIFFPROBE_STORE or .cache/store). */
  store?: string;
  /** Dataset name and preprocessing, part of the store keys ("fashion-mnist", "fmnist-pad32-c1"). */
  dataset: string;
  preprocessing: string;
  /** Storage type of the features (default float32). */
  dtype?: StoreDtype;
  /** Rows per store part (default 256). */
  partRows?: number;
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

/** A grid row with the test predictions of its probe (`testPred`, not enumerable: CSV/JSON keep the plain columns). */
export type GridRow = ProbeRow & { readonly testPred: Int32Array };

function withPredictions(row: ProbeRow, testPred: Int32Array): GridRow {
  return Object.defineProperty(row, "testPred", { value: testPred, enumerable: false }) as GridRow;
}

function storeFeatures(set: FeatureSet): Features {
  return { data: set.matrix(), rows: set.rows, dim: set.dim };
}

/**
 * Extract into the store (only what is missing), then one linear probe per (block, t) on features read
 * from the store. Rows keep their test predictions (`row.testPred`) for paired comparisons.
 */
export async function probeGrid(spec: ProbeGridSpec, train: LabelledImages, test: LabelledImages, numClasses: number): Promise<GridRow[]> {
  const root = spec.store ?? defaultStoreRoot();
  const engine = chooseEngine(spec.engine);
  const extractor = engine.name === "ort"
    ? engineExtractor(spec.model, { engine: "ort", batchSize: spec.batchSize })
    : workerExtractor(spec.model, { workers: spec.workers, batchSize: spec.batchSize });
  const fill = async (set: LabelledImages, split: string) => {
    checkLabelled(set, split);
    const images = memorySource({ dataset: spec.dataset, split, preprocessing: spec.preprocessing, images: set.images, ids: set.ids, labels: set.labels });
    const r = await extractToStore({
      root, extractor, images, blocks: spec.blocks, timesteps: spec.timesteps, pool: spec.pool, noise: spec.noise ?? { policy: "seeded", seed: 0 },
      dtype: spec.dtype, partRows: spec.partRows, progress: `${spec.name}: ${split} features`,
    });
    return r.sets;
  };
  let trainSets: FeatureSet[], testSets: FeatureSet[];
  try {
    trainSets = await fill(train, "train");
    testSets = await fill(test, "test");
  } finally {
    await extractor.close();
  }
  const rows: GridRow[] = [];
  const bar = progress({ total: trainSets.length, label: `${spec.name}: linear probes`, unit: "probe" });
  try {
    trainSets.forEach((x, k) => {
      if (testSets[k].key.module !== x.key.module || testSets[k].key.t !== x.key.t) throw new Error(`probeGrid: train and test sets differ at ${k}`);
    });
    for (let k = 0; k < trainSets.length; k++) {
      const tr = trainSets[k];
      const te = testSets[k];
      const r = await probeAccuracy(storeFeatures(tr), tr.labels!, storeFeatures(te), te.labels!, numClasses, spec.probe);
      rows.push(withPredictions({
        features: spec.name, block: tr.key.block, module: tr.key.module, t: tr.key.t, pool: poolLabel(spec.pool), dim: tr.dim,
        trainAcc: r.trainAcc, testAcc: r.testAcc, probeSeconds: r.seconds,
      }, r.testPred));
      bar.tick(1, { best: Math.max(...rows.map((x) => x.testAcc)) });
    }
  } finally {
    bar.done();
  }
  return rows;
}

function checkLabelled(set: LabelledImages, split: string): void {
  const n = set.images.shape[0];
  const per = set.images.shape.slice(1).reduce((a, b) => a * b, 1);
  if (set.images.data.length !== n * per) throw new Error(`${split}: images hold ${set.images.data.length} values, shape says ${set.images.shape.join("x")}`);
  if (set.labels.length !== n || set.ids.length !== n) throw new Error(`${split}: ${n} images but ${set.labels.length} labels and ${set.ids.length} ids`);
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
export function bestRow<R extends ProbeRow>(rows: R[]): R {
  if (rows.length === 0) throw new Error("bestRow: no rows");
  return rows.reduce((a, b) => (b.testAcc > a.testAcc ? b : a));
}
