/**
 * One description per head setting, so a notebook or a sweep can name a head in a line:
 *
 *   { kind: "linear", pool: 2 }                          adaptive avg pool to 2x2, standardised, dense
 *   { kind: "linear", pool: 2, init: "zeros" }           the same, starting from zero weights (the probe recipe)
 *   { kind: "mlp", pool: 2, hidden: [2000] }             the same with ReLU hidden layers
 *   { kind: "cnn", width: 256, depth: 2, prePool: null } our CNN head (cnn.ts)
 *   { kind: "attention", dim: 1024, heads: 8, mlpRatio: 4, blocks: 1, pool: 2, project: false }
 *   { kind: "difformer", dim: 1024, heads: 8, mlpRatio: 4, blocks: 2, prePool: 16, maps: [[C, H, W], ...], timesteps: 3 }
 *                                                        several blocks x timesteps per row (difformer.ts)
 *   { kind: "diffeed", unet: frozenUNet(unet, id), t: 100, feedback: [8, 9, 11], block: 10, dim: 64, heads: 4,
 *     mlpRatio: 4, blocks: 2, pool: 1, project: true }      rows are x_t [C, H, W]; feedback layers + the
 *                                                        attention head on the second pass (diffeed.ts)
 *
 * buildHead computes what the head needs from the training source (streamed standardisation statistics
 * for linear/MLP) and returns it with `input`, the view of any source (train or test) the head reads.
 */
import { Head } from "./head";
import { createMlpHead } from "./mlp";
import { createCnnHead } from "./cnn";
import { createAttentionHead } from "./attention";
import { createDifFormerHead, difformerRowLayout } from "./difformer";
import { createDifFeedHead, DifFeedConfig, difFeedParams } from "./diffeed";
import { attentionParams, AttentionHeadConfig, cnnParams, CnnHeadConfig, DifFormerConfig, difformerParams, mlpParams } from "./params";
import { featureStats, FeatureSource, poolSource } from "./source";

export type HeadSpec =
  | { kind: "linear"; pool: number; standardise?: boolean; init?: "default" | "zeros" }
  | { kind: "mlp"; pool: number; hidden: number[]; standardise?: boolean }
  | ({ kind: "cnn" } & CnnHeadConfig)
  | ({ kind: "attention" } & AttentionHeadConfig)
  | ({ kind: "difformer" } & DifFormerConfig)
  | ({ kind: "diffeed" } & DifFeedConfig);

export interface BuiltHead {
  head: Head;
  /** The view of a source this head takes (pooling for linear/MLP; the source itself otherwise). */
  input: (source: FeatureSource) => FeatureSource;
}

function checkMap(shape: readonly number[], spec: HeadSpec): void {
  if (spec.kind === "difformer") {
    const { rowSize } = difformerRowLayout(spec);
    if (shape.length !== 1 || shape[0] !== rowSize) {
      throw new Error(`buildHead difformer: rows must be [${rowSize}] (${spec.timesteps} timestep(s) x maps ${JSON.stringify(spec.maps)}, flattened), got ${JSON.stringify(shape)}`);
    }
    return;
  }
  if (shape.length !== 3) throw new Error(`buildHead ${spec.kind}: rows must be ${spec.kind === "diffeed" ? "noised images x_t" : "block maps"} [C, H, W], got ${JSON.stringify(shape)}`);
}

/** Parameter count of a spec on rows of `shape` ([C, H, W]) with `numClasses` classes. */
export function specParams(spec: HeadSpec, shape: readonly number[], numClasses: number): number {
  checkMap(shape, spec);
  switch (spec.kind) {
    case "linear":
      return mlpParams(shape[0] * spec.pool * spec.pool, [], numClasses);
    case "mlp":
      return mlpParams(shape[0] * spec.pool * spec.pool, spec.hidden, numClasses);
    case "cnn":
      return cnnParams(shape[0], numClasses, spec);
    case "attention":
      return attentionParams(shape, numClasses, spec);
    case "difformer":
      return difformerParams(numClasses, spec);
    case "diffeed":
      return difFeedParams(spec, shape, numClasses);
  }
}

export async function buildHead(spec: HeadSpec, train: FeatureSource, seed: number): Promise<BuiltHead> {
  checkMap(train.shape, spec);
  const numClasses = train.numClasses;
  switch (spec.kind) {
    case "linear":
    case "mlp": {
      const input = (s: FeatureSource) => poolSource(s, spec.pool);
      const pooled = input(train);
      const stats = spec.standardise === false ? null : await featureStats(pooled);
      const hidden = spec.kind === "mlp" ? spec.hidden : [];
      const zeros = spec.kind === "linear" && spec.init === "zeros";
      return { head: createMlpHead({ inShape: pooled.shape, numClasses, hidden, seed, stats, zeros }), input };
    }
    case "cnn":
      return { head: createCnnHead({ ...spec, inShape: train.shape, numClasses, seed }), input: (s) => s };
    case "attention":
      return { head: createAttentionHead({ ...spec, inShape: train.shape, numClasses, seed }), input: (s) => s };
    case "difformer":
      return { head: createDifFormerHead({ ...spec, numClasses, seed }), input: (s) => s };
    case "diffeed":
      return { head: createDifFeedHead({ ...spec, inShape: train.shape, numClasses, seed }), input: (s) => s };
  }
}

/** The pooled size a head reads its block map at (linear, MLP, attention), or null (CNN: the map). */
export function headPool(spec: HeadSpec): number | null {
  return "pool" in spec && typeof spec.pool === "number" ? spec.pool : null;
}
