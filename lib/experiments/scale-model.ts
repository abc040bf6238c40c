/**
 * Which U-Net a notebook runs at this scale, in one place: the embedded Fashion-MNIST model at smoke and demo
 * (offline), an official guided-diffusion checkpoint at full (`$DIFFPROBE_MODELS/<file>`, fetched by
 * `npm run download-checkpoints`). The model travels as one value with its schedule (`source`), its blocks
 * and a name for the text, plus the checkpoint file for provenance (results files name its SHA-256).
 */
import * as path from "path";
import { EmbeddedModel, embeddedModel, embeddedModelDir } from "../model/embedded";
import type { ModelSource } from "../model/model-source";
import { sourceConfig, sourceDiffusion } from "../model/model-source";
import { Block, modelBlocks } from "../model/unet/blocks";
import type { UNetConfig } from "../model/unet/config";
import { projectRoot } from "../paths";
import type { Scale } from "../scale";

export interface ScaleModel {
  source: ModelSource;
  config: UNetConfig;
  blocks: Block[];
  name: string;
  /** The weights file (null for random weights). */
  checkpoint: string | null;
  embedded: boolean;
}

/** The official checkpoint a full-scale notebook uses (preset name and file under $DIFFPROBE_MODELS). */
export interface FullModel {
  preset: string;
  file: string;
  title: string;
}

export const ADM_256_UNCOND: FullModel = { preset: "adm-256-uncond", file: "256x256_diffusion_uncond.pt", title: "ADM-256 unconditional (ImageNet)" };

/** Folder of the official checkpoints: $DIFFPROBE_MODELS, else models/ in the project. */
export function modelsDir(): string {
  return process.env.DIFFPROBE_MODELS ?? path.join(projectRoot(), "models");
}

/** The model of this scale: embedded at smoke and demo, `full` (default ADM-256 unconditional) at full. */
export function modelForScale(scale: Scale, full: FullModel = ADM_256_UNCOND): ScaleModel {
  if (scale !== "full") return embeddedScaleModel();
  const checkpoint = path.join(modelsDir(), full.file);
  const source: ModelSource = { config: full.preset, checkpoint };
  const config = sourceConfig(source);
  const blocks = modelBlocks(config);
  return { source, config, blocks, name: `${full.title}, ${blocks.length} blocks`, checkpoint, embedded: false };
}

/** A trained model folder (default: the embedded Fashion-MNIST model) as a ScaleModel. */
export function embeddedScaleModel(em: EmbeddedModel = embeddedModel()): ScaleModel {
  const blocks = modelBlocks(em.config);
  const what = em.dir === embeddedModelDir() ? "embedded Fashion-MNIST U-Net" : `trained model ${path.basename(em.dir)}`;
  const name = `${what} (${em.manifest.step} steps, ${blocks.length} blocks)`;
  return { source: em.source, config: em.config, blocks, name, checkpoint: em.checkpoint, embedded: true };
}

/** The same architecture with seeded random weights (the random-init baseline), as a ScaleModel. */
export function randomWeights(model: ScaleModel, seed: number): ScaleModel {
  const source: ModelSource = { config: model.config, seed, diffusion: sourceDiffusion(model.source).spec };
  return { source, config: model.config, blocks: model.blocks, name: `${model.name}, random weights (seed ${seed})`, checkpoint: null, embedded: model.embedded };
}
