/**
 * Where a worker gets its model from: a checkpoint file or a config + seed (random weights).
 * A source is plain data (structured-cloneable), so it can be handed to worker threads, each of
 * which builds its own copy of the model in its own tfjs instance (see feature-worker.ts `loadModel`;
 * this module does not load the model code, so the main thread stays light).
 */
import * as fs from "fs";
import { createHash } from "crypto";
import { createUNetConfig, UNetConfig, UNetFlags, UNetKwargs } from "./unet/config";
import type { WeightOptions } from "./unet/weights";
import { getPreset } from "./unet/presets";
import { NoiseSchedule } from "./diffusion/schedule";
import { contentFingerprintSync } from "./checkpoint/fingerprint";

/** A resolved config, a preset name ("adm-256-uncond"), script_util flags or UNetModel kwargs. */
export type ConfigLike = UNetConfig | string | Partial<UNetFlags> | Partial<UNetKwargs>;

/**
 * The model's noise schedule: `t` always means the model's own timestep. From a trained model's manifest,
 * a preset, or given; without one, guided-diffusion's script_util defaults (linear, 1000 steps).
 */
export interface DiffusionSpec {
  noiseSchedule: string;
  steps: number;
  /** timestep_respacing ("" = none). */
  respacing?: string;
}

/**
 * A model as the feature code sees it: one value with its architecture config, its weights (a checkpoint,
 * or a seed for random weights) and its noise schedule (`diffusion`).
 */
export type ModelSource =
  | { config: ConfigLike; checkpoint: string; weights?: WeightOptions; diffusion?: DiffusionSpec }
  | { config: ConfigLike; seed: number; weights?: WeightOptions; diffusion?: DiffusionSpec };

/** Where a source's schedule comes from, and the schedule itself. */
export function sourceDiffusion(src: ModelSource): { spec: DiffusionSpec; from: string } {
  if (src.diffusion) return { spec: src.diffusion, from: "the model source" };
  if (typeof src.config === "string") {
    const p = getPreset(src.config);
    return { spec: { noiseSchedule: p.diffusion.noiseSchedule, steps: p.diffusion.steps }, from: `preset ${src.config}` };
  }
  return { spec: { noiseSchedule: "linear", steps: 1000 }, from: "guided-diffusion's script_util defaults" };
}

/** The noise schedule of a source (see sourceDiffusion). */
export function modelSchedule(src: ModelSource): NoiseSchedule {
  const { spec } = sourceDiffusion(src);
  return NoiseSchedule.named(spec.noiseSchedule, spec.steps, spec.respacing ?? "");
}

/** The UNetConfig of a source (no weights are read). */
export function sourceConfig(src: ModelSource): UNetConfig {
  const c = src.config;
  if (typeof c === "object" && c !== null && "modelChannels" in c && "channelMult" in c) return c as UNetConfig;
  return createUNetConfig(c as string | Partial<UNetFlags> | Partial<UNetKwargs>);
}

/**
 * Identity of a checkpoint for cache keys: SHA-256 of the whole file (see checkpoint/fingerprint), so a
 * file changed anywhere, even in the middle of a safetensors payload, never reuses stale features.
 */
export function checkpointId(file: string): string {
  return `ckpt:${contentFingerprintSync(file).slice("sha256:".length, "sha256:".length + 24)}`;
}

/** Identity of a source's weights for cache keys. */
export function modelIdOf(src: ModelSource): string {
  if ("checkpoint" in src && src.checkpoint !== undefined) return checkpointId(src.checkpoint);
  const config = sourceConfig(src);
  const hash = createHash("sha256").update(JSON.stringify(config)).digest("hex").slice(0, 16);
  return `random:${(src as { seed: number }).seed}:${hash}`;
}
