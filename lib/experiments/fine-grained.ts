/**
 * What notebook 06 adds to the one pipeline (lib/pipeline.ts): the six fine-grained datasets (FGVC-Aircraft,
 * Stanford Cars, CUB-200-2011, Stanford Dogs, Flowers-102, NABirds) as image sources, the CUB sweep
 * (block x t x pooled size, linear head) and the paper's four heads (linear, MLP, CNN, attention) on one
 * (block, t). Extraction is runPlan, the cost is measureJobs + planCost, every choice is selectAndTest's
 * (fit on the fit rows, choose on validation, refit on all training rows, test once).
 *
 *   datasetRoot, datasetSources   where a dataset's files are; its train and test images (N per class, seeded)
 *   prepareDataset                a dataset's training features in the store, its validation split, and
 *                                 its test features extracted on demand (only for a chosen setting)
 *   sweepCandidates               stored (block, t) x pooled size, linear head: the CUB sweep's grid
 *   fineGrainedHeads              the four heads on a [C, s, s] map, with their training recipes
 *   linearTraining                the linear probe's recipe at a batch size, epoch count and learning rate
 *   epochCandidates               one candidate at several epoch counts (epochs chosen on validation)
 *   headsOnSetting                each head (and its epochs) chosen on validation, scored once on test
 *   sixDatasetCost                the extraction cost of the full run before it starts
 */
import * as path from "path";
import type { Dataset } from "../data/types";
import { subsetDataset } from "../data/index";
import { FINE_GRAINED, FineGrainedName } from "../data/synthetic-fine-grained";
import type { FeatureExtractor } from "../features/store/extractor";
import { fileSource, ImageSource } from "../features/store/images";
import type { StoreDtype } from "../features/store/key";
import type { HeadSpec } from "../heads/create";
import { OptimizerSpec, PROBE_RECIPE } from "../heads/optim";
import { paperAttentionConfig } from "../heads/params";
import type { TrainHeadOptions } from "../heads/train-head";
import { projectRoot } from "../paths";
import { linearHead, storedCandidates } from "./candidates";
import type { ExtractionContext } from "./candidates";
import { withViews } from "./views";
import type { ViewOptions, ViewStoreOptions } from "./views";
import { CostLine, measureJobs, PlanJob, planCost, runPlan, StoredSet } from "./extraction-plan";
import { Candidate, probeTraining, selectAndTest, Selection } from "./protocol/select";
import { ValidationSplit, validationSplit } from "./protocol/split";

/** The six datasets of the paper's fine-grained table, in its order (the layouts lib/data reads). */
export const SIX_DATASETS: readonly SixDataset[] = FINE_GRAINED;
export type SixDataset = FineGrainedName;

/** Where a dataset's files are: $DIFFPROBE_<NAME> (e.g. DIFFPROBE_CUB), else data/<name> in the project. */
export function datasetRoot(name: SixDataset, env: Record<string, string | undefined> = process.env): string {
  return env[`DIFFPROBE_${name.toUpperCase()}`] ?? path.join(projectRoot(), "data", name);
}

/** The images of a dataset's train and test splits (optionally `perClass` per class, seeded), centre-cropped to `size`. */
export function datasetSources(ds: Dataset, size: number, subset?: { perClass: number | null; seed: number }): { train: ImageSource; test: ImageSource; dataset: Dataset } {
  const d = subset && subset.perClass ? subsetDataset(ds, { perClass: subset.perClass, seed: subset.seed, name: ds.name }) : ds;
  // A subset is its own dataset name in the store keys (its image list is, too), so it never meets the whole split's sets.
  const tag = subset && subset.perClass ? `${ds.name}-${subset.perClass}perclass-seed${subset.seed}` : ds.name;
  return {
    dataset: d,
    train: fileSource(tag, d.trainSplit, d.root, d.splits[d.trainSplit], size),
    test: fileSource(tag, d.testSplit, d.root, d.splits[d.testSplit], size),
  };
}

export interface PrepareOptions {
  /** Name in progress bars and results ("cub", "mnist"). */
  label: string;
  root: string;
  extractor: FeatureExtractor;
  train: ImageSource;
  test: ImageSource;
  numClasses: number;
  /** Store jobs over the training images (the test images get only a chosen setting's set). */
  jobs: PlanJob[];
  dtype?: StoreDtype;
  /** The validation split carved from the training images. */
  split: { seed: number; fraction: number };
  /** How the heads of headsOnSetting see their training images (default cached; views.ts). */
  views?: ViewOptions;
}

/** A dataset ready for selection: its stored training sets, its validation split, and its test sets on demand. */
export interface PreparedDataset {
  label: string;
  numClasses: number;
  train: ImageSource;
  test: ImageSource;
  sets: StoredSet[];
  split: ValidationSplit;
  /** The test set matching a stored training set (same block, t and side), extracted if not yet stored. */
  testSet(s: StoredSet): Promise<StoredSet>;
  /** Where views of the training images go, and how the heads see them (absent: cached). */
  views?: { ctx: ExtractionContext; options: ViewOptions & ViewStoreOptions };
}

/** Fill the store with the training images' jobs (resumable: stored parts are skipped) and carve the validation split. */
export async function prepareDataset(opts: PrepareOptions): Promise<PreparedDataset> {
  for (const s of [opts.train, opts.test]) if (!s.labels) throw new Error(`${s.dataset}/${s.split}: no labels; the heads need labelled images`);
  const sets = await runPlan({ root: opts.root, extractor: opts.extractor, images: opts.train, jobs: opts.jobs, dtype: opts.dtype, label: opts.label });
  const split = validationSplit(opts.train.labels!, { seed: opts.split.seed, fraction: opts.split.fraction, ids: opts.train.ids });
  const testSet = async (s: StoredSet): Promise<StoredSet> => {
    const job: PlanJob = { blocks: [s.block], timesteps: [s.t], pool: s.side };
    const [set] = await runPlan({ root: opts.root, extractor: opts.extractor, images: opts.test, jobs: [job], dtype: opts.dtype, label: opts.label });
    if (!set || set.side !== s.side) throw new Error(`${opts.label}/test: block ${s.block.number}, t ${s.t} stored at side ${set?.side}, not ${s.side}`);
    return set;
  };
  const views = opts.views && opts.views.views.kind !== "cached"
    ? { ctx: { root: opts.root, extractor: opts.extractor, train: opts.train, test: opts.test, numClasses: opts.numClasses }, options: { ...opts.views, dtype: opts.dtype } }
    : undefined;
  return { label: opts.label, numClasses: opts.numClasses, train: opts.train, test: opts.test, sets, split, testSet, ...(views ? { views } : {}) };
}

/** Every stored (block, t) at every pooled size of `pools`, linear head, in (block, t, pool) order: the CUB sweep's grid. */
export function sweepCandidates(data: PreparedDataset, pools: readonly number[], training?: Partial<TrainHeadOptions>): Candidate[] {
  const seen = new Set<string>();
  const out: Candidate[] = [];
  for (const s of data.sets) {
    if (seen.has(`${s.block.number}|${s.t}`)) continue;
    seen.add(`${s.block.number}|${s.t}`);
    for (const p of pools) {
      const at = (x: StoredSet) => x.block.number === s.block.number && x.t === s.t;
      out.push(...storedCandidates(data.sets, (x) => data.testSet(x), { numClasses: data.numClasses, where: at, pool: p, training }));
    }
  }
  return out;
}

/** Attention head settings: average pooling (kernel = stride) on the stored map, MLP ratio, heads. */
export interface AttentionChoice {
  pool: number;
  mlpRatio: number;
  heads: number;
}

/**
 * The paper's attention head on the stored 8x8 map (= its 2x2 average pooling of the 16x16 block map):
 * the map whole, 64 tokens, 8 heads, MLP ratio 4, one block (../shared/paper/results.json imagenet50_heads).
 */
export const PAPER_ATTENTION: AttentionChoice = { pool: 1, mlpRatio: paperAttentionConfig(1).mlpRatio, heads: paperAttentionConfig(1).heads };

/** AdamW as the MLP, CNN and attention heads are trained here (lr 1e-3, weight decay 1e-4). */
export const HEAD_ADAMW: OptimizerSpec = { kind: "adamw", lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-4 };

/** One of the four heads: its name, the pooled size it reads, its spec and how it is trained. */
export interface FineGrainedHead {
  name: "linear" | "MLP" | "CNN" | "attention";
  /** Pooled size of the rows it reads (linear, MLP: the sweep's; CNN, attention: the stored map's side). */
  pool: number;
  head: HeadSpec;
  training: Partial<TrainHeadOptions>;
}

export interface HeadOptions {
  mlpHidden?: number;
  cnnWidth?: number;
  /** A learning rate per head instead of its default (linear: PROBE_RECIPE's 1e-3; others: HEAD_ADAMW's 1e-3). */
  lr?: Partial<Record<FineGrainedHead["name"], number>>;
}

/**
 * The four heads on [C, s, s] maps: linear (the project's one linear probe, PROBE_RECIPE's Adam) and MLP (one
 * hidden layer of `mlpHidden`) at pooled size `pool`; CNN (1x1 conv to 32, one 3x3 stride-2 conv) and
 * attention (one block, width = the map's channels) on the map. MLP, CNN, attention: AdamW lr 1e-3, wd 1e-4.
 */
export function fineGrainedHeads(pool: number, map: readonly number[], attention: AttentionChoice, opts: HeadOptions = {}): FineGrainedHead[] {
  if (map.length !== 3) throw new Error(`fineGrainedHeads: the stored rows must be [C, s, s] maps, got ${JSON.stringify(map)}`);
  const [c, s] = map;
  if (s % pool !== 0) throw new Error(`fineGrainedHeads: pooled size ${pool} does not divide the stored side ${s}`);
  const lr = opts.lr ?? {};
  const adamw = (name: FineGrainedHead["name"]) => ({ optimizer: { ...HEAD_ADAMW, lr: lr[name] ?? HEAD_ADAMW.lr }, schedule: null });
  return [
    { name: "linear", pool, head: linearHead(pool), training: lr.linear ? { optimizer: { ...PROBE_RECIPE.optimizer, lr: lr.linear } } : {} },
    { name: "MLP", pool, head: { kind: "mlp", pool, hidden: [opts.mlpHidden ?? 256] }, training: adamw("MLP") },
    { name: "CNN", pool: s, head: { kind: "cnn", width: opts.cnnWidth ?? 32, depth: 1, prePool: null }, training: adamw("CNN") },
    { name: "attention", pool: s, head: { kind: "attention", dim: c, heads: attention.heads, mlpRatio: attention.mlpRatio, blocks: 1, pool: attention.pool, project: false }, training: adamw("attention") },
  ];
}

/** The linear probe's training (PROBE_RECIPE) with a seed, batch size, epochs and, if given, another learning rate. */
export function linearTraining(seed: number, over: { batchSize: number; epochs: number; lr?: number }): TrainHeadOptions {
  const t = probeTraining(seed, { batchSize: over.batchSize, epochs: over.epochs });
  return over.lr ? { ...t, optimizer: { ...t.optimizer, lr: over.lr } } : t;
}

/** The candidate at each epoch count (tagged `epochs`): selectAndTest then chooses the epochs on validation. */
export function epochCandidates(c: Candidate, epochs: readonly number[]): Candidate[] {
  if (epochs.length === 0) throw new Error(`epochCandidates: no epoch counts for ${c.setting.pool}`);
  for (const e of epochs) if (!(Number.isInteger(e) && e > 0)) throw new Error(`epochCandidates: epoch count ${e} is not a positive integer`);
  return epochs.map((e) => ({ ...c, setting: { ...c.setting, tags: { ...(c.setting.tags ?? {}), epochs: e } }, training: { ...(c.training ?? {}), epochs: e } }));
}

function isGrid(x: unknown): x is readonly number[] {
  return Array.isArray(x);
}

export interface HeadOnSetting {
  name: string;
  selection: Selection;
  /** The chosen epoch count is the grid's largest: more epochs might still help (widen the grid). */
  edge: boolean;
}

/**
 * Each head on the stored (block, t): its epoch count chosen on the validation split (from one grid for
 * all heads, or a grid per head), then refit on all training rows and scored once on test. `training`
 * holds what all heads share (batch size, seed).
 */
export async function headsOnSetting(data: PreparedDataset, block: number, t: number, heads: readonly FineGrainedHead[], epochGrid: readonly number[] | Partial<Record<FineGrainedHead["name"], readonly number[]>>, training: TrainHeadOptions, showProgress = false): Promise<HeadOnSetting[]> {
  const out: HeadOnSetting[] = [];
  for (const h of heads) {
    const epochs = isGrid(epochGrid) ? epochGrid : epochGrid[h.name];
    if (!epochs) throw new Error(`headsOnSetting: no epoch counts for the ${h.name} head (have: ${Object.keys(epochGrid).join(", ")})`);
    const where = (x: StoredSet) => x.block.number === block && x.t === t;
    const [stored] = storedCandidates(data.sets, (x) => data.testSet(x), { numClasses: data.numClasses, where, pool: h.pool, head: () => h.head, training: h.training });
    const c = data.views ? withViews(stored, data.views.ctx, data.views.options) : stored;
    const selection = await selectAndTest(`${data.label}: ${h.name}`, epochCandidates(c, epochs), { split: data.split, training, showProgress });
    out.push({ name: h.name, selection, edge: selection.chosen.epochs === Math.max(...epochs) && epochs.length > 1 });
  }
  return out;
}

/**
 * The extraction cost of the full run, measured on this machine's engine before it starts: the sweep's job
 * over CUB's images, and one (block, t) over each other dataset's (the chosen one; `one` estimates it).
 */
export async function sixDatasetCost(extractor: FeatureExtractor, sources: Record<string, { train: ImageSource; test: ImageSource }>, sweep: PlanJob, one: PlanJob, measureOn: number, dtype: StoreDtype, sweepOn = "cub"): Promise<CostLine[]> {
  const cub = sources[sweepOn];
  if (!cub) throw new Error(`sixDatasetCost: no sources for ${sweepOn} (have: ${Object.keys(sources).join(", ")})`);
  const [sweepSpi, oneSpi] = await measureJobs(extractor, cub.train, [sweep, one], measureOn);
  const lines = planCost(extractor, [cub.train], [sweep], [sweepSpi], dtype).concat(planCost(extractor, [cub.test], [one], [oneSpi], dtype));
  for (const [name, s] of Object.entries(sources)) if (name !== sweepOn) lines.push(...planCost(extractor, [s.train, s.test], [one], [oneSpi], dtype));
  return lines;
}
