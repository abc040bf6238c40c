/**
 * Named configurations of the published guided-diffusion checkpoints (openai/guided-diffusion README,
 * "Download pre-trained models"). Each preset keeps the README's MODEL_FLAGS line verbatim (`source`),
 * and `flags` is that line parsed (diffusion flags kept separately). Flags absent from the line take
 * `script_util.model_and_diffusion_defaults()` values (e.g. num_heads 4, num_heads_upsample -1,
 * use_new_attention_order False, dropout 0).
 *
 * Where `num_head_channels` is given it overrides `num_heads` (heads = channels / 64).
 */
import type { UNetFlags } from "./config";

export interface Preset {
  name: string;
  /** Checkpoint file name as published. */
  checkpoint: string;
  description: string;
  /** MODEL_FLAGS as printed in the guided-diffusion README. */
  source: string;
  flags: Partial<UNetFlags>;
  diffusion: { steps: number; noiseSchedule: "linear" | "cosine" };
}

/** Parse a `--flag value` command line into a flag record (values: numbers, True/False, strings). */
export function parseFlagLine(line: string): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  const parts = line.trim().split(/\s+/);
  for (let i = 0; i < parts.length; i += 2) {
    const k = parts[i];
    if (!k.startsWith("--") || i + 1 >= parts.length) throw new Error(`bad flag line near ${JSON.stringify(k)}`);
    const raw = parts[i + 1];
    const key = k.slice(2);
    out[key] = raw === "True" ? true : raw === "False" ? false : key === "attention_resolutions" || key === "channel_mult" ? raw : Number.isNaN(Number(raw)) ? raw : Number(raw);
  }
  return out;
}

const DIFFUSION_KEYS = ["diffusion_steps", "noise_schedule", "use_fp16", "timestep_respacing"];

function preset(name: string, checkpoint: string, description: string, source: string): Preset {
  const all = parseFlagLine(source);
  const flags: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(all)) if (!DIFFUSION_KEYS.includes(k)) flags[k] = v;
  return Object.freeze({
    name,
    checkpoint,
    description,
    source,
    flags: Object.freeze(flags) as Partial<UNetFlags>,
    diffusion: { steps: Number(all.diffusion_steps ?? 1000), noiseSchedule: (all.noise_schedule ?? "linear") as "linear" | "cosine" },
  });
}

const COMMON_256 = "--attention_resolutions 32,16,8 --diffusion_steps 1000 --image_size 256 --learn_sigma True --noise_schedule linear --num_channels 256 --num_head_channels 64 --num_res_blocks 2 --resblock_updown True --use_fp16 True --use_scale_shift_norm True";
const LSUN = "--attention_resolutions 32,16,8 --class_cond False --diffusion_steps 1000 --dropout 0.1 --image_size 256 --learn_sigma True --noise_schedule linear --num_channels 256 --num_head_channels 64 --num_res_blocks 2 --resblock_updown True --use_fp16 True --use_scale_shift_norm True";

export const PRESETS: Readonly<Record<string, Preset>> = Object.freeze({
  "adm-256-uncond": preset("adm-256-uncond", "256x256_diffusion_uncond.pt",
    "ImageNet 256x256 unconditional ADM (the model the paper probes): 552,814,086 parameters",
    `--class_cond False ${COMMON_256}`),
  "adm-256-cond": preset("adm-256-cond", "256x256_diffusion.pt", "ImageNet 256x256 class-conditional ADM",
    `--class_cond True ${COMMON_256}`),
  "adm-64-cond": preset("adm-64-cond", "64x64_diffusion.pt", "ImageNet 64x64 class-conditional ADM (cosine schedule, new attention order)",
    "--attention_resolutions 32,16,8 --class_cond True --diffusion_steps 1000 --dropout 0.1 --image_size 64 --learn_sigma True --noise_schedule cosine --num_channels 192 --num_head_channels 64 --num_res_blocks 3 --resblock_updown True --use_new_attention_order True --use_fp16 True --use_scale_shift_norm True"),
  "adm-128-cond": preset("adm-128-cond", "128x128_diffusion.pt", "ImageNet 128x128 class-conditional ADM (4 heads)",
    "--attention_resolutions 32,16,8 --class_cond True --diffusion_steps 1000 --image_size 128 --learn_sigma True --noise_schedule linear --num_channels 256 --num_heads 4 --num_res_blocks 2 --resblock_updown True --use_fp16 True --use_scale_shift_norm True"),
  "adm-512-cond": preset("adm-512-cond", "512x512_diffusion.pt", "ImageNet 512x512 class-conditional ADM (channel_mult 0.5,1,1,2,2,4,4)",
    "--attention_resolutions 32,16,8 --class_cond True --diffusion_steps 1000 --image_size 512 --learn_sigma True --noise_schedule linear --num_channels 256 --num_head_channels 64 --num_res_blocks 2 --resblock_updown True --use_fp16 False --use_scale_shift_norm True"),
  "lsun-bedroom": preset("lsun-bedroom", "lsun_bedroom.pt", "LSUN bedroom 256x256 unconditional ADM (dropout 0.1)", LSUN),
  "lsun-cat": preset("lsun-cat", "lsun_cat.pt", "LSUN cat 256x256 unconditional ADM (dropout 0.1)", LSUN),
  "lsun-horse": preset("lsun-horse", "lsun_horse.pt", "LSUN horse 256x256 unconditional ADM (dropout 0.1)", LSUN),
});

export function getPreset(name: string): Preset {
  const p = PRESETS[name];
  if (!p) throw new Error(`unknown U-Net preset ${JSON.stringify(name)}; presets: ${Object.keys(PRESETS).join(", ")}`);
  return p;
}
