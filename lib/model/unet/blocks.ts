/**
 * The paper's block numbering and a per-block table (shape, description, arithmetic).
 *
 * Blocks are numbered from 1 through the U-Net in execution order: `input_blocks[0..]` are
 * 1..N_in, `middle_block` is N_in + 1, then `output_blocks[0..]`. For the 256x256 ADM: 1..18 are the
 * input blocks, 19 the middle block, 20..37 the output blocks (the paper's best ImageNet feature,
 * block 24, is `output_blocks.4`).
 *
 * Arithmetic is counted as multiply-accumulates (MACs) of convolutions, linear layers / Conv1d and the
 * two attention matmuls, for one image at the configured image_size; FLOPs = 2 * MACs. Element-wise
 * work (GroupNorm, SiLU, softmax, additions, resampling) is not counted (well under 1%).
 */
import { UNetConfig } from "./config";
import { BlockSpec, buildPlan, describeModule, ModuleSpec } from "./plan";
import { moduleInputRes } from "./parameters";

export interface BlockInfo {
  /** Paper number, 1-based. */
  number: number;
  /** Module name: "input_blocks.13", "middle_block", "output_blocks.4". */
  name: string;
  section: "input" | "middle" | "output";
  /** Output shape [C, H, W] for one image at image_size. */
  shape: [number, number, number];
  description: string;
  /** MACs of this block alone (one image). */
  macs: number;
  /** 2 * macs. */
  flops: number;
  /** FLOPs of a forward pass that stops after this block (time embedding + all blocks up to it). */
  cumulativeFlops: number;
  /** cumulativeFlops / FLOPs of the full forward pass (including the final `out` layer). */
  fractionOfFull: number;
}

function moduleMacs(m: ModuleSpec, inRes: number): number {
  switch (m.kind) {
    case "conv": {
      const r = inRes / m.stride;
      return r * r * m.kernel * m.kernel * m.inCh * m.outCh;
    }
    case "res": {
      const r = m.updown === "up" ? inRes * 2 : m.updown === "down" ? inRes / 2 : inRes;
      const p = r * r;
      return p * 9 * m.inCh * m.outCh + m.embCh * (m.scaleShift ? 2 : 1) * m.outCh + p * 9 * m.outCh * m.outCh + (m.skip === "conv1x1" ? p * m.inCh * m.outCh : 0);
    }
    case "attn": {
      const t = inRes * inRes;
      return t * m.ch * 3 * m.ch + 2 * t * t * m.ch + t * m.ch * m.ch;
    }
    case "down":
      return m.useConv ? (inRes / 2) ** 2 * 9 * m.ch * m.outCh : 0;
    case "up":
      return m.useConv ? (inRes * 2) ** 2 * 9 * m.ch * m.outCh : 0;
  }
}

/** MACs of one block (one image at image_size). */
export function blockMacs(b: BlockSpec): number {
  let r = b.inRes;
  let n = 0;
  for (const m of b.modules) {
    n += moduleMacs(m, r);
    r = moduleInputRes(m, r);
  }
  return n;
}

/** MACs outside the blocks: time embedding MLP (+ nothing for label_emb) and the final `out` conv. */
function extraMacs(config: UNetConfig): { embed: number; out: number } {
  const plan = buildPlan(config);
  const last = plan.blocks[plan.blocks.length - 1];
  return {
    embed: config.modelChannels * plan.embDim + plan.embDim * plan.embDim,
    out: last.outRes ** 2 * 9 * plan.out.conv.inCh * plan.out.conv.outCh,
  };
}

/** FLOPs of a full forward pass for one image at image_size. */
export function forwardFlops(config: UNetConfig): number {
  const plan = buildPlan(config);
  const extra = extraMacs(config);
  return 2 * (extra.embed + plan.blocks.reduce((s, b) => s + blockMacs(b), 0) + extra.out);
}

/** One row per block, in execution order. */
export function blockTable(config: UNetConfig): BlockInfo[] {
  const plan = buildPlan(config);
  const full = forwardFlops(config);
  let cum = 2 * extraMacs(config).embed;
  return plan.blocks.map((b) => {
    const macs = blockMacs(b);
    cum += 2 * macs;
    return {
      number: b.number,
      name: b.name,
      section: b.section,
      shape: [b.outCh, b.outRes, b.outRes],
      description: b.modules.map(describeModule).join(" + "),
      macs,
      flops: 2 * macs,
      cumulativeFlops: cum,
      fractionOfFull: cum / full,
    };
  });
}

/** Number of blocks (input + middle + output). */
export function blockCount(config: UNetConfig): number {
  return buildPlan(config).blocks.length;
}

/** Module name of paper block `n` (1-based). */
export function blockName(config: UNetConfig, n: number): string {
  return parseBlock(config, n).name;
}

function rangeText(config: UNetConfig): string {
  const blocks = buildPlan(config).blocks;
  const nIn = blocks.filter((b) => b.section === "input").length;
  const nOut = blocks.length - nIn - 1;
  return `valid blocks: 1..${blocks.length} (1..${nIn} = input_blocks.0..${nIn - 1}, ${nIn + 1} = middle_block, ${nIn + 2}..${blocks.length} = output_blocks.0..${nOut - 1})`;
}

/**
 * Resolve a block given as its paper number (24 or "24") or module name ("output_blocks.4",
 * "middle_block"). Throws naming the valid range.
 */
export function parseBlock(config: UNetConfig, spec: number | string): BlockSpec {
  const blocks = buildPlan(config).blocks;
  const s = typeof spec === "number" ? String(spec) : spec.trim();
  if (/^\d+$/.test(s)) {
    const n = Number(s);
    if (n >= 1 && n <= blocks.length) return blocks[n - 1];
    throw new Error(`block ${n} does not exist in this U-Net; ${rangeText(config)}`);
  }
  const name = s.replace(/^model\./, "").replace(/^(input_blocks|output_blocks)\[(\d+)\]$/, "$1.$2");
  const hit = blocks.find((b) => b.name === name);
  if (hit) return hit;
  throw new Error(`unknown block ${JSON.stringify(spec)}; ${rangeText(config)}`);
}

/** A block as one value from the moment it is named: its paper number and its module name. */
export interface Block {
  number: number;
  module: string;
}

/** Resolve a block given by number, module name or as a Block (checked against this U-Net). */
export function blockOf(config: UNetConfig, spec: number | string | Block): Block {
  const b = parseBlock(config, typeof spec === "object" ? spec.number : spec);
  if (typeof spec === "object" && spec.module !== b.name) throw new Error(`block ${spec.number} is ${b.name} in this U-Net, not ${spec.module}`);
  return { number: b.number, module: b.name };
}

/** Every block of the U-Net, in execution order. */
export function modelBlocks(config: UNetConfig): Block[] {
  return buildPlan(config).blocks.map((b) => ({ number: b.number, module: b.name }));
}

/** "5 (output_blocks.1)": how a block reads in tables and sentences. */
export function blockLabel(b: Block | null): string {
  return b ? `${b.number} (${b.module})` : "-";
}
