/**
 * The U-Net configuration, derived exactly as guided-diffusion derives it.
 *
 * Two vocabularies exist upstream and both are accepted by {@link createUNetConfig}:
 *
 * - the command-line *flags* of `script_util.model_and_diffusion_defaults()` (`num_channels`,
 *   `attention_resolutions` in pixels as a string such as "32,16,8", `channel_mult` "" or "1,1,2,2,4,4",
 *   `learn_sigma`, `class_cond`, ...), which `script_util.create_model` turns into
 * - the keyword arguments of `unet.UNetModel` (`model_channels`, `attention_resolutions` as downsampling
 *   rates, `out_channels`, `num_classes`, ...), as stored in a reference manifest's `unet_kwargs`.
 *
 * The result, {@link UNetConfig}, mirrors the `UNetModel` arguments (camelCase) with every derived value
 * resolved, so the rest of the code never re-derives anything.
 */

import { getPreset } from "./presets";

/** `script_util` flags that shape the network (plus `in_channels`, which `create_model` fixes at 3). */
export interface UNetFlags {
  image_size: number;
  num_channels: number;
  num_res_blocks: number;
  /** "" (derive from image_size), "1,1,2,2,4,4", or the multipliers as numbers. */
  channel_mult: string | number[];
  /** Resolutions in pixels where attention is used: "32,16,8" or [32, 16, 8]. */
  attention_resolutions: string | number[];
  num_heads: number;
  /** -1: use num_heads; otherwise heads = channels / num_head_channels (overrides num_heads). */
  num_head_channels: number;
  /** -1: same as num_heads (decoder attention). */
  num_heads_upsample: number;
  use_scale_shift_norm: boolean;
  resblock_updown: boolean;
  learn_sigma: boolean;
  class_cond: boolean;
  use_new_attention_order: boolean;
  dropout: number;
  /** Not a script_util flag (create_model hard-codes 3); set 1 for grey-level models. */
  in_channels: number;
}

/** Keyword arguments of `UNetModel.__init__` (the manifest's `unet_kwargs`). */
export interface UNetKwargs {
  image_size: number;
  in_channels: number;
  model_channels: number;
  out_channels: number;
  num_res_blocks: number;
  /** Downsampling rates (ds = image_size / resolution), not pixels. */
  attention_resolutions: number[];
  dropout: number;
  channel_mult: number[];
  conv_resample: boolean;
  dims: number;
  num_classes: number | null;
  use_checkpoint: boolean;
  use_fp16: boolean;
  num_heads: number;
  num_head_channels: number;
  num_heads_upsample: number;
  use_scale_shift_norm: boolean;
  resblock_updown: boolean;
  use_new_attention_order: boolean;
  /** Not UNetModel arguments; written by the fixture generator to document GroupNorm32. */
  group_norm_groups: number;
  group_norm_eps: number;
}

/** A fully resolved configuration: what `UNetModel` is constructed with. */
export interface UNetConfig {
  imageSize: number;
  inChannels: number;
  modelChannels: number;
  outChannels: number;
  numResBlocks: number;
  /** Downsampling rates at which attention is used (e.g. [8, 16, 32] for 32,16,8 px at 256). */
  attentionDs: number[];
  dropout: number;
  channelMult: number[];
  /** Upsample/Downsample use a conv (true in every published model; only matters without resblock_updown). */
  convResample: boolean;
  /** null: unconditional; otherwise the size of `label_emb`. */
  numClasses: number | null;
  numHeads: number;
  numHeadChannels: number;
  /** Already resolved (never -1). */
  numHeadsUpsample: number;
  useScaleShiftNorm: boolean;
  resblockUpdown: boolean;
  useNewAttentionOrder: boolean;
  /** GroupNorm32: 32 groups, eps 1e-5, computed in float32. */
  groupNormGroups: number;
  groupNormEps: number;
  /** Whether the output carries the learned variance channels (out = [eps, v]). */
  learnSigma: boolean;
}

/** `script_util.model_and_diffusion_defaults()` (model part), plus in_channels = 3. */
export const DEFAULT_FLAGS: Readonly<UNetFlags> = Object.freeze({
  image_size: 64,
  num_channels: 128,
  num_res_blocks: 2,
  channel_mult: "",
  attention_resolutions: "16,8",
  num_heads: 4,
  num_head_channels: -1,
  num_heads_upsample: -1,
  use_scale_shift_norm: true,
  resblock_updown: false,
  learn_sigma: false,
  class_cond: false,
  use_new_attention_order: false,
  dropout: 0.0,
  in_channels: 3,
});

/** ImageNet class count used by `create_model` when class_cond. */
export const NUM_CLASSES = 1000;

/** Flags that exist upstream but do not change the network's arithmetic or parameters here. */
const IGNORED_FLAGS = new Set([
  "use_checkpoint", "use_fp16",
  // diffusion flags (script_util.diffusion_defaults); see lib/model/diffusion
  "diffusion_steps", "noise_schedule", "timestep_respacing", "use_kl", "predict_xstart",
  "rescale_timesteps", "rescale_learned_sigmas", "sigma_small",
]);
const IGNORED_KWARGS = new Set(["use_checkpoint", "use_fp16"]);

const FLAG_KEYS = new Set(Object.keys(DEFAULT_FLAGS));
const KWARG_KEYS = new Set<string>([
  "image_size", "in_channels", "model_channels", "out_channels", "num_res_blocks", "attention_resolutions",
  "dropout", "channel_mult", "conv_resample", "dims", "num_classes", "use_checkpoint", "use_fp16", "num_heads",
  "num_head_channels", "num_heads_upsample", "use_scale_shift_norm", "resblock_updown", "use_new_attention_order",
  "group_norm_groups", "group_norm_eps",
]);
/** Keys only UNetModel kwargs have (used to tell the two vocabularies apart). */
const KWARG_ONLY = ["model_channels", "out_channels", "num_classes", "conv_resample", "dims", "group_norm_groups", "group_norm_eps"];

/** `script_util.create_model`'s channel_mult when the flag is "". */
export function defaultChannelMult(imageSize: number): number[] {
  switch (imageSize) {
    case 512: return [0.5, 1, 1, 2, 2, 4, 4];
    case 256: return [1, 1, 2, 2, 4, 4];
    case 128: return [1, 1, 2, 3, 4];
    case 64: return [1, 2, 3, 4];
    default:
      throw new Error(`unsupported image size ${imageSize} with channel_mult "": script_util only knows 64, 128, 256, 512; give channel_mult explicitly`);
  }
}

function parseNumberList(key: string, v: string | number[]): number[] {
  if (Array.isArray(v)) return v.map((x) => checkNumber(key, x));
  const s = String(v).trim();
  if (s === "") return [];
  return s.split(",").map((p) => checkNumber(key, Number(p.trim()), p));
}

function checkNumber(key: string, x: unknown, raw?: string): number {
  if (typeof x !== "number" || !Number.isFinite(x)) throw new Error(`${key}: ${JSON.stringify(raw ?? x)} is not a number`);
  return x;
}

function checkInt(key: string, x: unknown, min: number): number {
  if (typeof x !== "number" || !Number.isInteger(x) || x < min) throw new Error(`${key} must be an integer >= ${min}, got ${JSON.stringify(x)}`);
  return x;
}

function asBool(key: string, x: unknown): boolean {
  if (typeof x === "boolean") return x;
  if (x === "True" || x === "true" || x === 1) return true;
  if (x === "False" || x === "false" || x === 0) return false;
  throw new Error(`${key} must be a boolean, got ${JSON.stringify(x)}`);
}

/** Python's int() on a non-negative float: truncation. */
const pyInt = (x: number) => Math.trunc(x);

/**
 * The single factory. Accepts
 * - a preset name (`"adm-256-uncond"`, see ./presets),
 * - `script_util` flags (any subset; the rest take `model_and_diffusion_defaults()` values; diffusion flags
 *   and `use_fp16`/`use_checkpoint` are accepted and ignored), or
 * - `UNetModel` keyword arguments (as in a manifest's `unet_kwargs`: recognised by `model_channels`).
 * Unknown keys are an error (a typo must not silently fall back to a default).
 */
export function createUNetConfig(input: Partial<UNetFlags> | Partial<UNetKwargs> | string): UNetConfig {
  if (typeof input === "string") {
    return createUNetConfig(getPreset(input).flags);
  }
  const keys = Object.keys(input);
  const isKwargs = KWARG_ONLY.some((k) => keys.includes(k));
  if (isKwargs) return fromKwargs(input as Partial<UNetKwargs>);
  return fromFlags(input as Partial<UNetFlags>);
}

function fromFlags(input: Partial<UNetFlags>): UNetConfig {
  const unknown = Object.keys(input).filter((k) => !FLAG_KEYS.has(k) && !IGNORED_FLAGS.has(k));
  if (unknown.length) {
    throw new Error(`unknown U-Net flag(s) ${unknown.join(", ")}; known flags: ${[...FLAG_KEYS].join(", ")}`);
  }
  const f: UNetFlags = { ...DEFAULT_FLAGS, ...(stripUndefined(input) as Partial<UNetFlags>) };
  const imageSize = checkInt("image_size", f.image_size, 1);
  let channelMult = parseNumberList("channel_mult", f.channel_mult);
  if (channelMult.length === 0) channelMult = defaultChannelMult(imageSize);
  const resolutions = parseNumberList("attention_resolutions", f.attention_resolutions);
  const attentionDs = resolutions.map((r) => {
    checkInt("attention_resolutions entry", r, 1);
    return Math.floor(imageSize / r); // image_size // int(res)
  });
  const numHeads = checkInt("num_heads", f.num_heads, 1);
  const learnSigma = asBool("learn_sigma", f.learn_sigma);
  return finish({
    imageSize,
    inChannels: checkInt("in_channels", f.in_channels, 1),
    modelChannels: checkInt("num_channels", f.num_channels, 1),
    outChannels: learnSigma ? 2 * checkInt("in_channels", f.in_channels, 1) : checkInt("in_channels", f.in_channels, 1),
    numResBlocks: checkInt("num_res_blocks", f.num_res_blocks, 1),
    attentionDs,
    dropout: checkNumber("dropout", f.dropout),
    channelMult,
    convResample: true,
    numClasses: asBool("class_cond", f.class_cond) ? NUM_CLASSES : null,
    numHeads,
    numHeadChannels: checkInt("num_head_channels", f.num_head_channels, -1),
    numHeadsUpsample: f.num_heads_upsample === -1 ? numHeads : checkInt("num_heads_upsample", f.num_heads_upsample, 1),
    useScaleShiftNorm: asBool("use_scale_shift_norm", f.use_scale_shift_norm),
    resblockUpdown: asBool("resblock_updown", f.resblock_updown),
    useNewAttentionOrder: asBool("use_new_attention_order", f.use_new_attention_order),
    groupNormGroups: 32,
    groupNormEps: 1e-5,
    learnSigma,
  });
}

function fromKwargs(input: Partial<UNetKwargs>): UNetConfig {
  const unknown = Object.keys(input).filter((k) => !KWARG_KEYS.has(k) && !IGNORED_KWARGS.has(k));
  if (unknown.length) {
    throw new Error(`unknown UNetModel argument(s) ${unknown.join(", ")}; known: ${[...KWARG_KEYS].join(", ")}`);
  }
  const required = ["image_size", "in_channels", "model_channels", "out_channels", "num_res_blocks", "attention_resolutions"] as const;
  const missing = required.filter((k) => input[k] === undefined);
  if (missing.length) throw new Error(`UNetModel arguments lack required ${missing.join(", ")}`);
  if (input.dims !== undefined && input.dims !== 2) throw new Error(`dims=${input.dims}: only 2-D U-Nets are supported`);
  const numHeads = checkInt("num_heads", input.num_heads ?? 1, 1);
  const inChannels = checkInt("in_channels", input.in_channels, 1);
  const outChannels = checkInt("out_channels", input.out_channels, 1);
  const nhu = input.num_heads_upsample ?? -1;
  return finish({
    imageSize: checkInt("image_size", input.image_size, 1),
    inChannels,
    modelChannels: checkInt("model_channels", input.model_channels, 1),
    outChannels,
    numResBlocks: checkInt("num_res_blocks", input.num_res_blocks, 1),
    attentionDs: parseNumberList("attention_resolutions", input.attention_resolutions as number[]).map((d) => checkInt("attention_resolutions entry", d, 1)),
    dropout: checkNumber("dropout", input.dropout ?? 0),
    channelMult: parseNumberList("channel_mult", input.channel_mult ?? [1, 2, 4, 8]),
    convResample: asBool("conv_resample", input.conv_resample ?? true),
    numClasses: input.num_classes == null ? null : checkInt("num_classes", input.num_classes, 1),
    numHeads,
    numHeadChannels: checkInt("num_head_channels", input.num_head_channels ?? -1, -1),
    numHeadsUpsample: nhu === -1 ? numHeads : checkInt("num_heads_upsample", nhu, 1),
    useScaleShiftNorm: asBool("use_scale_shift_norm", input.use_scale_shift_norm ?? false),
    resblockUpdown: asBool("resblock_updown", input.resblock_updown ?? false),
    useNewAttentionOrder: asBool("use_new_attention_order", input.use_new_attention_order ?? false),
    groupNormGroups: checkInt("group_norm_groups", input.group_norm_groups ?? 32, 1),
    groupNormEps: checkNumber("group_norm_eps", input.group_norm_eps ?? 1e-5),
    learnSigma: outChannels === 2 * inChannels,
  });
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Structural checks shared by both vocabularies; returns a frozen config. */
function finish(c: UNetConfig): UNetConfig {
  if (c.channelMult.length === 0) throw new Error("channel_mult is empty");
  for (const m of c.channelMult) {
    if (!(m > 0) || pyInt(m * c.modelChannels) < 1) throw new Error(`channel_mult entry ${m} gives no channels with model_channels ${c.modelChannels}`);
  }
  if (c.numHeadChannels === 0 || c.numHeadChannels < -1) throw new Error(`num_head_channels must be -1 or positive, got ${c.numHeadChannels}`);
  // Every GroupNorm and attention layer must be constructible, as in PyTorch (which asserts at build time).
  for (const ch of allChannelCounts(c)) {
    if (ch % c.groupNormGroups !== 0) {
      throw new Error(`GroupNorm(${c.groupNormGroups}) cannot normalise ${ch} channels (model_channels ${c.modelChannels}, channel_mult ${c.channelMult.join(",")})`);
    }
  }
  return Object.freeze({ ...c, channelMult: Object.freeze([...c.channelMult]) as number[], attentionDs: Object.freeze([...c.attentionDs]) as number[] });
}

/** Channel counts of every level (used for GroupNorm divisibility checks). */
function allChannelCounts(c: UNetConfig): number[] {
  const out = new Set<number>();
  for (const m of c.channelMult) out.add(pyInt(m * c.modelChannels));
  return [...out];
}

/** Channels of a level: `int(mult * model_channels)`. */
export function levelChannels(c: UNetConfig, mult: number): number {
  return pyInt(mult * c.modelChannels);
}

/** Number of attention heads for a layer of `channels` channels (AttentionBlock.__init__). */
export function attentionHeads(c: UNetConfig, channels: number, decoder: boolean): number {
  if (c.numHeadChannels === -1) return decoder ? c.numHeadsUpsample : c.numHeads;
  if (channels % c.numHeadChannels !== 0) {
    throw new Error(`q,k,v channels ${channels} is not divisible by num_head_channels ${c.numHeadChannels}`);
  }
  return channels / c.numHeadChannels;
}

/** The flags a config corresponds to (inverse of createUNetConfig for flag inputs), for display and manifests. */
export function configToKwargs(c: UNetConfig): UNetKwargs {
  return {
    image_size: c.imageSize,
    in_channels: c.inChannels,
    model_channels: c.modelChannels,
    out_channels: c.outChannels,
    num_res_blocks: c.numResBlocks,
    attention_resolutions: [...c.attentionDs],
    dropout: c.dropout,
    channel_mult: [...c.channelMult],
    conv_resample: c.convResample,
    dims: 2,
    num_classes: c.numClasses,
    use_checkpoint: false,
    use_fp16: false,
    num_heads: c.numHeads,
    num_head_channels: c.numHeadChannels,
    num_heads_upsample: c.numHeadsUpsample,
    use_scale_shift_norm: c.useScaleShiftNorm,
    resblock_updown: c.resblockUpdown,
    use_new_attention_order: c.useNewAttentionOrder,
    group_norm_groups: c.groupNormGroups,
    group_norm_eps: c.groupNormEps,
  };
}

/** Structural equality of two configs; returns the differing fields. */
export function configDifferences(a: UNetConfig, b: UNetConfig): string[] {
  const out: string[] = [];
  for (const k of Object.keys(a) as (keyof UNetConfig)[]) {
    if (k === "learnSigma") continue; // derived from out_channels on the kwargs side
    if (JSON.stringify(a[k]) !== JSON.stringify(b[k])) out.push(`${k}: ${JSON.stringify(a[k])} vs ${JSON.stringify(b[k])}`);
  }
  return out;
}

/**
 * Config of a reference folder's manifest: `unet_kwargs` when present (exactly what reached UNetModel),
 * cross-checked against `flags` (script_util) when both exist; throws when they disagree.
 */
export function configFromManifest(manifest: { flags?: Record<string, unknown>; unet_kwargs?: Record<string, unknown> }): UNetConfig {
  const fromK = manifest.unet_kwargs ? createUNetConfig(manifest.unet_kwargs as Partial<UNetKwargs>) : null;
  const fromF = manifest.flags ? createUNetConfig(manifest.flags as Partial<UNetFlags>) : null;
  if (!fromK && !fromF) throw new Error("manifest has neither unet_kwargs nor flags");
  if (fromK && fromF) {
    const diff = configDifferences(fromK, fromF);
    if (diff.length) throw new Error(`manifest flags and unet_kwargs describe different networks: ${diff.join("; ")}`);
  }
  return (fromK ?? fromF)!;
}
