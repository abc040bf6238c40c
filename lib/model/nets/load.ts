/**
 * Build a torchvision network (Bottleneck ResNet or VisionTransformer) from a checkpoint file or a state
 * dict: the family from the keys, the configuration from a preset name, explicit config, fixture manifest
 * or the state dict's shapes.
 */
import { loadStateDict } from "../checkpoint/index";
import type { StateDict } from "../checkpoint/state-dict";
import { ResNet, ResNetConfig, RESNET_PRESETS, resnetConfigFromKwargs } from "./resnet";
import { VisionTransformer, ViTConfig, VIT_PRESETS, vitConfigFromKwargs } from "./vit";

export type TorchvisionNet = ResNet | VisionTransformer;
export type NetFamily = "resnet" | "vit";
export type NetConfig = { family: "resnet"; config: ResNetConfig } | { family: "vit"; config: ViTConfig };

export const NET_PRESETS: string[] = [...Object.keys(RESNET_PRESETS), ...Object.keys(VIT_PRESETS)];

/** A preset's configuration, by torchvision's builder name ("resnet50", "vit_b_16"). */
export function presetConfig(name: string): NetConfig {
  if (RESNET_PRESETS[name]) return { family: "resnet", config: { ...RESNET_PRESETS[name] } };
  if (VIT_PRESETS[name]) return { family: "vit", config: { ...VIT_PRESETS[name] } };
  throw new Error(`unknown network preset "${name}"; known: ${NET_PRESETS.join(", ")}`);
}

/** Which family a state dict belongs to, from its keys. */
export function detectFamily(sd: StateDict, file = "state dict"): NetFamily {
  if (sd.has("conv_proj.weight")) return "vit";
  if (sd.has("conv1.weight") && sd.has("layer1.0.conv1.weight")) return "resnet";
  const some = [...sd.keys()].slice(0, 5).join(", ");
  throw new Error(`${file}: neither a torchvision ResNet (conv1.weight, layer1.0.conv1.weight) nor a VisionTransformer (conv_proj.weight) state dict; first keys: ${some || "<none>"}`);
}

/** The configuration recorded in a torchvision fixture manifest (constructor + kwargs [+ layers], else config_name preset). */
export function configFromManifest(manifest: Record<string, any>): NetConfig {
  const ctor = Object.prototype.hasOwnProperty.call(manifest, "constructor") ? String(manifest.constructor) : "";
  const kwargs = (manifest.kwargs ?? {}) as Record<string, unknown>;
  if (/ResNet\(\s*Bottleneck/.test(ctor)) {
    if (!Array.isArray(manifest.layers)) throw new Error(`manifest: constructor ${ctor} but no "layers" list`);
    return { family: "resnet", config: resnetConfigFromKwargs(manifest.layers, kwargs) };
  }
  if (/VisionTransformer\(/.test(ctor)) return { family: "vit", config: vitConfigFromKwargs(kwargs) };
  if (typeof manifest.config_name === "string" && NET_PRESETS.includes(manifest.config_name)) {
    const p = presetConfig(manifest.config_name);
    if (kwargs.num_classes !== undefined) p.config.numClasses = kwargs.num_classes === null ? null : Number(kwargs.num_classes);
    return p;
  }
  throw new Error(`manifest: cannot tell the network from constructor ${JSON.stringify(ctor)} / config_name ${JSON.stringify(manifest.config_name)}`);
}

export interface NetOptions {
  /** A preset name ("resnet50", "vit_b_16") or an explicit configuration; default: derived from the state dict. */
  preset?: string;
  config?: NetConfig;
  /** ViT heads when deriving the configuration (default hidden / 64). */
  numHeads?: number;
  /** Names the source in error messages. */
  file?: string;
}

/** Build the network a state dict holds (keys already in torchvision's names). */
export async function netFromStateDict(sd: StateDict, opts: NetOptions = {}): Promise<TorchvisionNet> {
  const file = opts.file ?? "state dict";
  const cfg = opts.config ?? (opts.preset ? presetConfig(opts.preset) : null);
  const family = cfg?.family ?? detectFamily(sd, file);
  if (family === "resnet") return ResNet.fromStateDict(sd, { config: cfg?.config as ResNetConfig | undefined, file });
  return VisionTransformer.fromStateDict(sd, { config: cfg?.config as ViTConfig | undefined, numHeads: opts.numHeads, file });
}

/** Read `file` (torch zip / legacy / safetensors) and build the network it holds. */
export async function loadNet(file: string, opts: NetOptions = {}): Promise<TorchvisionNet> {
  return netFromStateDict(await loadStateDict(file), { ...opts, file });
}
