/**
 * The architecture plan: the module tree of `UNetModel.__init__`, as data.
 *
 * One walk over the config (the same loops as guided-diffusion's unet.py) yields every block with its
 * modules, channel counts and resolutions. Parameter names/shapes, FLOP counts, the block table and the
 * tfjs forward pass are all read off this plan, so they cannot disagree with each other.
 */
import { attentionHeads, levelChannels, UNetConfig } from "./config";

/** A plain 2-D convolution (input_blocks.0.0, out.2). */
export interface ConvSpec { kind: "conv"; name: string; inCh: number; outCh: number; kernel: number; stride: number }
/** ResBlock (unet.py). `updown` resamples both paths between in_layers' SiLU and conv. */
export interface ResSpec {
  kind: "res";
  name: string;
  inCh: number;
  outCh: number;
  embCh: number;
  updown: "up" | "down" | null;
  scaleShift: boolean;
  /** identity when inCh == outCh, else a 1x1 conv (use_conv=False is the only variant UNetModel builds). */
  skip: "identity" | "conv1x1";
}
/** AttentionBlock: GroupNorm, qkv Conv1d, QKVAttention(Legacy), proj_out Conv1d, residual. */
export interface AttnSpec { kind: "attn"; name: string; ch: number; heads: number; order: "legacy" | "new" }
/** Downsample (resblock_updown False): 3x3 conv stride 2 (`op`) or 2x2 average pool. */
export interface DownSpec { kind: "down"; name: string; ch: number; outCh: number; useConv: boolean }
/** Upsample (resblock_updown False): nearest x2, then a 3x3 conv (`conv`) when useConv. */
export interface UpSpec { kind: "up"; name: string; ch: number; outCh: number; useConv: boolean }

export type ModuleSpec = ConvSpec | ResSpec | AttnSpec | DownSpec | UpSpec;

export type Section = "input" | "middle" | "output";

export interface BlockSpec {
  /** Module name: "input_blocks.3", "middle_block", "output_blocks.4". */
  name: string;
  section: Section;
  /** Index within its section (input_blocks[i]); 0 for the middle block. */
  index: number;
  /** The paper's 1-based block number (input blocks, then the middle block, then output blocks). */
  number: number;
  modules: ModuleSpec[];
  /** Channels entering the block (for output blocks: after concatenating the skip). */
  inCh: number;
  outCh: number;
  /** Spatial size at the configured image_size, entering and leaving the block. */
  inRes: number;
  outRes: number;
  /** Downsampling rate of the block's output relative to the image. */
  outDs: number;
  /** For output blocks: the input block whose output is concatenated after h. */
  skipFrom?: string;
}

export interface UNetPlan {
  config: UNetConfig;
  /** time_embed_dim = 4 * model_channels. */
  embDim: number;
  /** Channels of input_blocks.0 (int(channel_mult[0] * model_channels)). */
  inputCh: number;
  blocks: BlockSpec[];
  /** Final `out`: GroupNorm(chFinal) - SiLU - conv3x3(chFinal -> out_channels). */
  out: { normCh: number; conv: ConvSpec };
  /** Smallest spatial factor inputs must be divisible by (2^(levels-1)). */
  sizeMultiple: number;
}

const cache = new WeakMap<UNetConfig, UNetPlan>();

/** Build (and memoise per config object) the plan, following UNetModel.__init__ line by line. */
export function buildPlan(config: UNetConfig): UNetPlan {
  const hit = cache.get(config);
  if (hit) return hit;
  const c = config;
  const embDim = c.modelChannels * 4;
  const order = c.useNewAttentionOrder ? "new" : "legacy";
  const blocks: BlockSpec[] = [];
  const res = (ds: number) => c.imageSize / ds;
  const attn = (name: string, ch: number, decoder: boolean): AttnSpec => ({ kind: "attn", name, ch, heads: attentionHeads(c, ch, decoder), order });
  const resb = (name: string, inCh: number, outCh: number, updown: "up" | "down" | null = null): ResSpec => ({
    kind: "res", name, inCh, outCh, embCh: embDim, updown, scaleShift: c.useScaleShiftNorm, skip: inCh === outCh ? "identity" : "conv1x1",
  });

  let ch = levelChannels(c, c.channelMult[0]);
  const inputCh = ch;
  const inputBlockChans: number[] = [ch];
  const inputBlockNames: string[] = ["input_blocks.0"];
  let ds = 1;
  blocks.push({
    name: "input_blocks.0", section: "input", index: 0, number: 0,
    modules: [{ kind: "conv", name: "input_blocks.0.0", inCh: c.inChannels, outCh: ch, kernel: 3, stride: 1 }],
    inCh: c.inChannels, outCh: ch, inRes: res(1), outRes: res(1), outDs: 1,
  });
  for (let level = 0; level < c.channelMult.length; level++) {
    const mult = c.channelMult[level];
    for (let i = 0; i < c.numResBlocks; i++) {
      const idx = blocks.length;
      const name = `input_blocks.${idx}`;
      const inCh = ch;
      const modules: ModuleSpec[] = [resb(`${name}.0`, ch, levelChannels(c, mult))];
      ch = levelChannels(c, mult);
      if (c.attentionDs.includes(ds)) modules.push(attn(`${name}.1`, ch, false));
      blocks.push({ name, section: "input", index: idx, number: 0, modules, inCh, outCh: ch, inRes: res(ds), outRes: res(ds), outDs: ds });
      inputBlockChans.push(ch);
      inputBlockNames.push(name);
    }
    if (level !== c.channelMult.length - 1) {
      const idx = blocks.length;
      const name = `input_blocks.${idx}`;
      const outCh = ch;
      const mod: ModuleSpec = c.resblockUpdown
        ? resb(`${name}.0`, ch, outCh, "down")
        : { kind: "down", name: `${name}.0`, ch, outCh, useConv: c.convResample };
      blocks.push({ name, section: "input", index: idx, number: 0, modules: [mod], inCh: ch, outCh, inRes: res(ds), outRes: res(ds * 2), outDs: ds * 2 });
      ch = outCh;
      inputBlockChans.push(ch);
      inputBlockNames.push(name);
      ds *= 2;
    }
  }

  blocks.push({
    name: "middle_block", section: "middle", index: 0, number: 0,
    modules: [resb("middle_block.0", ch, ch), attn("middle_block.1", ch, false), resb("middle_block.2", ch, ch)],
    inCh: ch, outCh: ch, inRes: res(ds), outRes: res(ds), outDs: ds,
  });

  let outIdx = 0;
  for (let level = c.channelMult.length - 1; level >= 0; level--) {
    const mult = c.channelMult[level];
    for (let i = 0; i < c.numResBlocks + 1; i++) {
      const ich = inputBlockChans.pop()!;
      const skipFrom = inputBlockNames.pop()!;
      const name = `output_blocks.${outIdx}`;
      const inCh = ch + ich;
      const inRes = res(ds);
      const modules: ModuleSpec[] = [resb(`${name}.0`, ch + ich, levelChannels(c, mult))];
      ch = levelChannels(c, mult);
      if (c.attentionDs.includes(ds)) modules.push(attn(`${name}.${modules.length}`, ch, true));
      if (level && i === c.numResBlocks) {
        const outCh = ch;
        const sub = `${name}.${modules.length}`;
        modules.push(c.resblockUpdown ? resb(sub, ch, outCh, "up") : { kind: "up", name: sub, ch, outCh, useConv: c.convResample });
        ds = ds / 2;
      }
      blocks.push({ name, section: "output", index: outIdx, number: 0, modules, inCh, outCh: ch, inRes, outRes: res(ds), outDs: ds, skipFrom });
      outIdx++;
    }
  }
  blocks.forEach((b, i) => (b.number = i + 1));

  const plan: UNetPlan = {
    config: c,
    embDim,
    inputCh,
    blocks,
    out: { normCh: ch, conv: { kind: "conv", name: "out.2", inCh: inputCh, outCh: c.outChannels, kernel: 3, stride: 1 } },
    sizeMultiple: 2 ** (c.channelMult.length - 1),
  };
  cache.set(config, plan);
  return plan;
}

/** Human-readable description of a module, in the style of the fixtures README. */
export function describeModule(m: ModuleSpec): string {
  switch (m.kind) {
    case "conv": return `Conv2d(${m.inCh}->${m.outCh}, k=${m.kernel}, s=${m.stride}, p=${(m.kernel - 1) / 2})`;
    case "res": return `ResBlock(${m.inCh}->${m.outCh}${m.updown ? ", " + m.updown : ""}, skip=${m.skip}, scale_shift_norm=${m.scaleShift ? "True" : "False"})`;
    case "attn": return `AttentionBlock(ch=${m.ch}, heads=${m.heads}, head_ch=${m.ch / m.heads}, qkv_order=${m.order})`;
    case "down": return m.useConv ? `Downsample(conv3x3 s2, ${m.ch}->${m.outCh})` : `Downsample(avgpool2x2, ${m.ch})`;
    case "up": return m.useConv ? `Upsample(nearest x2 + conv3x3, ${m.ch}->${m.outCh})` : `Upsample(nearest x2, ${m.ch})`;
  }
}
