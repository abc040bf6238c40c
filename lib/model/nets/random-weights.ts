/**
 * Random weights for a torchvision network configuration, as a state dict in torchvision's names and
 * PyTorch layouts (OIHW convolutions, [out, in] linears), written as a torch.save zip checkpoint so that the
 * real loading path (lib/model/checkpoint -> lib/model/nets/load) reads it: tiny stand-ins for the published networks in
 * smoke runs and tests. Seeded (lib/rng); not torchvision's initialisation, only similar in scale:
 * convolutions and linears N(0, 2 / fan_in) (ResNet) or N(0, 1 / fan_in) (ViT), BatchNorm and LayerNorm
 * scales near 1 with small shifts and running statistics (so the BatchNorm folding is exercised), the class
 * token and position embedding N(0, 0.02^2).
 */
import { writeTorchZip } from "../checkpoint/index";
import { makeRng, SeededRandom as Rng } from "../../rng";
import type { NetConfig } from "./load";
import { resnetParams } from "./resnet";
import { vitParams } from "./vit";
import type { NetParam } from "./weights";

function normals(rng: Rng, n: number, std: number, mean = 0): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = 1 - rng.random();
    const v = rng.random();
    const r = Math.sqrt(-2 * Math.log(u));
    out[i] = mean + std * r * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = mean + std * r * Math.sin(2 * Math.PI * v);
  }
  return out;
}

function uniforms(rng: Rng, n: number, lo: number, hi: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * rng.random();
  return out;
}

/** The values of one parameter. */
function paramValues(p: NetParam, family: "resnet" | "vit", rng: Rng): Float32Array {
  const n = p.shape.reduce((a, b) => a * b, 1);
  const field = p.name.slice(p.name.lastIndexOf(".") + 1);
  if (p.kind === "conv2d" || p.kind === "linear") {
    const fanIn = p.shape.slice(1).reduce((a, b) => a * b, 1);
    return normals(rng, n, Math.sqrt((family === "resnet" ? 2 : 1) / fanIn));
  }
  if (p.kind === "batchnorm") {
    if (field === "weight") return uniforms(rng, n, 0.5, 1.5);
    if (field === "running_var") return uniforms(rng, n, 0.5, 1.5);
    return normals(rng, n, 0.1); // bias, running_mean
  }
  if (p.name === "class_token" || p.name === "encoder.pos_embedding") return normals(rng, n, 0.02);
  if (/\.ln(_[12])?\.weight$/.test(p.name)) return normals(rng, n, 0.1, 1);
  return normals(rng, n, 0.02); // biases, LayerNorm shifts
}

/** A random state dict for `cfg` (torchvision names, PyTorch layouts), seeded. */
export function randomNetTensors(cfg: NetConfig, seed: number): Map<string, { shape: number[]; data: Float32Array }> {
  const params = cfg.family === "resnet" ? resnetParams(cfg.config) : vitParams(cfg.config);
  const rng = makeRng(seed);
  return new Map(params.map((p) => [p.name, { shape: [...p.shape], data: paramValues(p, cfg.family, rng) }]));
}

/** Write a random state dict for `cfg` to `file` (torch.save zip format, atomically). */
export async function writeRandomNet(file: string, cfg: NetConfig, seed: number): Promise<void> {
  await writeTorchZip(file, randomNetTensors(cfg, seed));
}

/**
 * Tiny stand-ins for the smoke runs of notebook 07 and its tests: a Bottleneck ResNet [1, 1, 1, 1] at 1/8 of
 * ResNet-50's widths (no classifier, like the self-supervised backbones) and a 2-layer ViT on 32 x 32 images
 * (8 x 8 patches, width 64, 2 heads, 10 classes).
 */
export const TINY_NETS: Record<"resnet" | "vit", NetConfig> = {
  resnet: {
    family: "resnet",
    config: { layers: [1, 1, 1, 1], stemWidth: 8, widths: [8, 16, 32, 64], outChannels: [32, 64, 128, 256], numClasses: null, inChannels: 3 },
  },
  vit: {
    family: "vit",
    config: { imageSize: 32, patchSize: 8, numLayers: 2, numHeads: 2, hiddenDim: 64, mlpDim: 128, numClasses: 10, representationSize: null, inChannels: 3 },
  },
};
