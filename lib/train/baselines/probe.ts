/**
 * Notebook 08's question for any FeatureExtractor (U-Net engines, the GAN discriminator, the supervised
 * encoder), on the one pipeline: the training images' features of every (block, t) go to the store at the
 * largest pooled size of the grid (one model pass serves every pool that divides it), each (block, t, pool)
 * is a linear-probe candidate chosen on validation (lib/experiments/protocol/select.ts), and only the chosen
 * setting's test features are extracted, then scored once.
 */
import type { NoisePolicy } from "../../features/extract";
import type { FeatureExtractor } from "../../features/store/extractor";
import type { ImageSource } from "../../features/store/images";
import { storedCandidates } from "../../experiments/candidates";
import { runPlan, StoredSet } from "../../experiments/extraction-plan";
import { selectAndTest, Selection } from "../../experiments/protocol/select";
import type { ValidationSplit } from "../../experiments/protocol/split";
import type { TrainHeadOptions } from "../../heads/train-head";
import type { Block } from "../../model/unet/blocks";

/** The settings searched: blocks (numbers or module names) x timesteps x pooled sizes (1 = global mean). */
export interface ProbeGrid {
  blocks: (number | Block)[];
  timesteps: number[];
  pools: number[];
}

export interface ProbeData {
  train: ImageSource;
  test: ImageSource;
  split: ValidationSplit;
  numClasses: number;
}

export interface ProbeOptions {
  /** Feature-store root. */
  root: string;
  training: TrainHeadOptions;
  noise?: NoisePolicy;
  showProgress?: boolean;
}

/** Choose among `grid` on validation, then score the chosen setting once on test (its test features only). */
export async function chooseSetting(name: string, extractor: FeatureExtractor, data: ProbeData, grid: ProbeGrid, opts: ProbeOptions): Promise<Selection> {
  if (!grid.blocks.length || !grid.timesteps.length || !grid.pools.length) throw new Error(`${name}: the grid has no blocks, timesteps or pools`);
  const side = grid.pools.reduce((a, b) => (a * b) / gcd(a, b));
  const jobs = [{ blocks: grid.blocks, timesteps: grid.timesteps, pool: side }];
  const train = await runPlan({ root: opts.root, extractor, images: data.train, jobs, noise: opts.noise, label: `${name}: train` });
  const testOf = async (s: StoredSet): Promise<StoredSet> => {
    const sets = await runPlan({ root: opts.root, extractor, images: data.test, jobs: [{ blocks: [s.block.number], timesteps: [s.t], pool: s.side }], noise: opts.noise, label: `${name}: test` });
    return sets[0];
  };
  const candidates = grid.pools.flatMap((pool) => storedCandidates(train, testOf, { numClasses: data.numClasses, pool }));
  return selectAndTest(name, candidates, { split: data.split, training: opts.training, showProgress: opts.showProgress });
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}
