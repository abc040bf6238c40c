/**
 * The embedded default: a small ADM U-Net trained by this project on Fashion-MNIST
 * (data-scripts/train-ddpm.ts), committed under assets/fashion-mnist-ddpm/ so that the pipeline runs
 * offline. $DIFFPROBE_MODEL_DIR points elsewhere (e.g. a run folder of train-ddpm).
 */
import * as fs from "fs";
import * as path from "path";
import { projectRoot } from "../paths";
import { createUNetConfig, UNetConfig } from "./unet/config";
import type { ModelSource } from "./model-source";

export const EMBEDDED_MODEL_ENV = "DIFFPROBE_MODEL_DIR";

export interface TrainedModelManifest {
  step: number;
  weights: string;
  unet_kwargs: Record<string, unknown>;
  diffusion: { diffusion_steps: number; noise_schedule: string };
  [key: string]: unknown;
}

export interface EmbeddedModel {
  dir: string;
  manifest: TrainedModelManifest;
  config: UNetConfig;
  /** For the feature workers: the checkpoint and its config. */
  source: ModelSource;
  checkpoint: string;
}

export function embeddedModelDir(): string {
  return process.env[EMBEDDED_MODEL_ENV] ?? path.join(projectRoot(), "assets", "fashion-mnist-ddpm");
}

/** Read the embedded model's manifest (no weights are loaded). */
export function embeddedModel(dir = embeddedModelDir()): EmbeddedModel {
  const file = path.join(dir, "model.json");
  if (!fs.existsSync(file)) {
    throw new Error(`${file} not found: the embedded model is missing (train one with npx tsx data-scripts/train-ddpm.ts --out ${dir})`);
  }
  const manifest = JSON.parse(fs.readFileSync(file, "utf8")) as TrainedModelManifest;
  const checkpoint = path.join(dir, manifest.weights);
  if (!fs.existsSync(checkpoint)) throw new Error(`${file} names weights ${manifest.weights}, but ${checkpoint} does not exist`);
  const config = createUNetConfig(manifest.unet_kwargs as never);
  const d = manifest.diffusion;
  if (!d || !Number.isInteger(d.diffusion_steps) || typeof d.noise_schedule !== "string") {
    throw new Error(`${file}: "diffusion" must give diffusion_steps and noise_schedule (the model's own schedule)`);
  }
  return { dir, manifest, config, checkpoint, source: { config, checkpoint, diffusion: { noiseSchedule: d.noise_schedule, steps: d.diffusion_steps } } };
}
