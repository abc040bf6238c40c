/**
 * The paper's core measurement in the three stages of the feature store: extract pooled features of
 * several U-Net blocks at several timesteps into the store (parts already stored are skipped), then heads
 * read back from the store (lib/heads/store-source.ts: streamed, never `matrix()`, never recomputed).
 *
 *   extractGrid     stage one and two: the store's train and test sets of every (block, t)
 *   gridCandidates  each (block, t) as a candidate of lib/experiments/protocol/select.ts (chosen on validation, tested once)
 *   pixelCandidate  the raw-pixel baseline as a candidate
 *   probeGrid       fit on train, score on test, for every (block, t): a display of the grid on test,
 *                   never a way to choose one (see select.ts)
 */
import { ImageArray, NoisePolicy } from "../features/extract";
import { PoolSpec, poolLabel } from "../features/pooling";
import { ModelSource } from "../model/model-source";
import { Features, LinearProbeOptions, probePredict, probePredictOn, trainLinearProbe, trainLinearProbeOn } from "../heads/linear";
import { memorySource as memoryFeatures } from "../heads/source";
import { storeSource, withinBudget } from "../heads/store-source";
import { Block, Candidate, DEFAULT_MEMORY_BUDGET } from "./protocol/select";
import { accuracy } from "../metrics/classification";
import { progress } from "../display/progress";
import { engineExtractor, workerExtractor } from "../features/store/extractor";
import { chooseEngine } from "../model/engines/engine";
import { extractToStore } from "../features/store/extract";
import { memorySource } from "../features/store/images";
import type { StoreDtype } from "../features/store/key";
import { FeatureSet, defaultStoreRoot } from "../features/store/store";

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
  /** Blocks as `{number, name}` (blockTable's rows), or by number or module name. */
  blocks: (Block | number | string)[];
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
  /** Training rows are copied into memory for a probe only when they fit (default 1 GiB); else streamed. */
  memoryBudgetBytes?: number;
}

export type { Block };

/** A block value; its string form (CSV cells, labels) is "number (name)". */
export function block(number: number, name: string): Block {
  const b = { number, name };
  Object.defineProperty(b, "toString", { value: () => `${number} (${name})`, enumerable: false });
  return b;
}

/** One result row: plain data, written as CSV/JSON. */
export interface ProbeRow {
  features: string;
  block: Block | null;
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

/** One (block, t) of a grid: its stored train and test sets. */
export interface GridCell {
  features: string;
  block: Block;
  t: number;
  pool: string;
  train: FeatureSet;
  test: FeatureSet;
}

/**
 * Stages one and two: extract into the store only what is missing (train, then test), and return the
 * stored sets of every (block, t), blocks in the order asked, t inner. Nothing is fit here.
 */
export async function extractGrid(spec: ProbeGridSpec, train: LabelledImages, test: LabelledImages): Promise<GridCell[]> {
  const root = spec.store ?? defaultStoreRoot();
  const engine = chooseEngine(spec.engine);
  const extractor = engine.name === "ort"
    ? engineExtractor(spec.model, { engine: "ort", batchSize: spec.batchSize })
    : workerExtractor(spec.model, { workers: spec.workers, batchSize: spec.batchSize });
  const blocks = spec.blocks.map((b) => (typeof b === "object" ? b.number : b));
  const fill = async (set: LabelledImages, split: string) => {
    checkLabelled(set, split);
    const images = memorySource({ dataset: spec.dataset, split, preprocessing: spec.preprocessing, images: set.images, ids: set.ids, labels: set.labels });
    const r = await extractToStore({
      root, extractor, images, blocks, timesteps: spec.timesteps, pool: spec.pool, noise: spec.noise ?? { policy: "seeded", seed: 0 },
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
  return trainSets.map((tr, k) => {
    const te = testSets[k];
    if (te.key.module !== tr.key.module || te.key.t !== tr.key.t) throw new Error(`extractGrid: train and test sets differ at ${k}`);
    return { features: spec.name, block: block(tr.key.block, tr.key.module), t: tr.key.t, pool: poolLabel(spec.pool), train: tr, test: te };
  });
}

/** Each cell as a candidate of the selection protocol: sources read from the store. */
export function gridCandidates(cells: readonly GridCell[], numClasses: number): Candidate[] {
  return cells.map((c) => ({
    setting: { block: c.block, t: c.t, pool: c.pool },
    train: () => storeSource(c.train, { numClasses }),
    test: () => storeSource(c.test, { numClasses }),
  }));
}

/** The raw pixels (flattened [-1, 1] values) as a candidate: the baseline every representation must beat. */
export function pixelCandidate(train: LabelledImages, test: LabelledImages, numClasses: number): Candidate {
  const x = pixelFeatures(train), y = pixelFeatures(test);
  return {
    setting: { block: null, t: null, pool: "none (raw pixels)" },
    train: () => memoryFeatures(x.data, [x.dim], train.labels, numClasses),
    test: () => memoryFeatures(y.data, [y.dim], test.labels, numClasses),
  };
}

/**
 * Extract into the store (only what is missing), then one linear probe per (block, t), fit on the whole
 * training split and scored on the test split, reading the store (streamed when a set exceeds the memory
 * budget). This shows a grid on test; it chooses nothing (lib/experiments/protocol/select.ts does, on validation).
 * Rows keep their test predictions (`row.testPred`).
 */
export async function probeGrid(spec: ProbeGridSpec, train: LabelledImages, test: LabelledImages, numClasses: number): Promise<GridRow[]> {
  const cells = await extractGrid(spec, train, test);
  const rows: GridRow[] = [];
  const bar = progress({ total: cells.length, label: `${spec.name}: linear probes`, unit: "probe" });
  try {
    for (const c of cells) {
      const t0 = Date.now();
      const held = await withinBudget(storeSource(c.train, { numClasses }), spec.memoryBudgetBytes ?? DEFAULT_MEMORY_BUDGET);
      const probe = await trainLinearProbeOn(held.source, { ...spec.probe, showProgress: false });
      const te = storeSource(c.test, { numClasses });
      const testPred = await probePredictOn(probe, te);
      rows.push(withPredictions({
        features: spec.name, block: c.block, t: c.t, pool: c.pool, dim: c.train.dim,
        trainAcc: accuracy(await probePredictOn(probe, held.source), held.source.labels), testAcc: accuracy(testPred, te.labels), probeSeconds: (Date.now() - t0) / 1000,
      }, testPred));
      bar.tick(1);
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
  return { features: "raw pixels", block: null, t: null, pool: "none", dim: x.dim, trainAcc: r.trainAcc, testAcc: r.testAcc, probeSeconds: r.seconds };
}

/** The raw-pixel baseline's test predictions (the probe of `pixelBaseline` with the same options). */
export async function pixelPredictions(train: LabelledImages, test: LabelledImages, numClasses: number, opts: Partial<LinearProbeOptions> = {}): Promise<Int32Array> {
  return (await probeAccuracy(pixelFeatures(train), train.labels, pixelFeatures(test), test.labels, numClasses, opts)).testPred;
}
