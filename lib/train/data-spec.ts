/**
 * Training data described by a small serialisable spec, so that worker threads can load the same data.
 */
import { loadFashionMnist } from "../data/fashion-mnist";
import { syntheticBlobs } from "./synthetic-data";

/** Training images: `batch(idx)` returns NHWC float32 in [-1, 1] for positions `idx` (0..n-1). */
export interface TrainData {
  n: number;
  /** [height, width, channels]. */
  shape: [number, number, number];
  batch(idx: ArrayLike<number>): Float32Array;
  /** Recorded in model.json. */
  description?: string;
  /** How to load the same data elsewhere (required for parallel training). */
  spec?: DataSpec;
}

export type DataSpec =
  | { kind: "fashion-mnist"; channels?: 1 | 3; limit?: number }
  | { kind: "synthetic"; n?: number; size?: number; channels?: 1 | 3 };

export function makeTrainData(spec: DataSpec): TrainData {
  if (spec.kind === "synthetic") return { ...syntheticBlobs(spec.n ?? 10, spec.size ?? 8, spec.channels ?? 1), spec };
  if (spec.kind === "fashion-mnist") {
    const set = loadFashionMnist({ split: "train", channels: spec.channels ?? 1, limit: spec.limit });
    return {
      n: set.ids.length,
      shape: [set.size, set.size, set.channels],
      batch: (idx) => set.batch(idx),
      description: `Fashion-MNIST train split (${set.ids.length} images, ${set.channels} channel(s), padded to 32)`,
      spec,
    };
  }
  throw new Error(`unknown data kind ${JSON.stringify((spec as { kind: unknown }).kind)}`);
}
