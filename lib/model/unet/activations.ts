/**
 * Activation memory of a forward pass, estimated from the architecture plan (no model run): what a batch
 * size must fit. While block b runs, the memory held is the skip connections produced before b and still
 * needed by a later output block that the pass reaches, plus b's working set: three maps of its widest shape
 * (input, hidden and output of a ResBlock: GroupNorm/SiLU results are consumed at once) and, in an
 * attention block, the weights of every head (heads x T x T, T = rows x cols). Values are float32. The
 * estimate is per image; ONNX Runtime and tfjs reuse buffers, so a measured peak is below it, not above.
 */
import type { UNetConfig } from "./config";
import { buildPlan } from "./plan";
import { parseBlock } from "./blocks";

/** Working set of one block, in values per image: 3 maps of its widest shape + attention weights. */
function workingValues(b: { inCh: number; outCh: number; inRes: number; outRes: number; modules: { kind: string; heads?: number }[] }): number {
  // An up-sampling ResBlock works at its output size, a down-sampling one at its input size: both are covered.
  const widest = Math.max(b.inCh * b.inRes * b.inRes, b.outCh * b.outRes * b.outRes);
  const attnRes = Math.min(b.inRes, b.outRes);
  const attn = b.modules.reduce((m, x) => (x.kind === "attn" ? Math.max(m, (x.heads ?? 1) * (attnRes * attnRes) ** 2) : m), 0);
  return 3 * widest + attn;
}

/**
 * Estimated peak bytes of activations for ONE image of a pass that stops after the deepest of `blocks`
 * (paper numbers or module names; "out" or none: the full pass), at the config's image size.
 */
export function peakActivationBytes(config: UNetConfig, blocks: (number | string)[] = ["out"]): number {
  const plan = buildPlan(config);
  const full = blocks.length === 0 || blocks.includes("out");
  const last = full ? plan.blocks.length : Math.max(...blocks.map((b) => parseBlock(config, b).number));
  const reached = plan.blocks.slice(0, last);
  // Skips a reached output block consumes: held from their input block until that output block.
  const until = new Map<string, number>();
  for (const b of reached) if (b.skipFrom) until.set(b.skipFrom, b.number);
  const produced = new Map(plan.blocks.map((b) => [b.name, b] as const));
  let peak = 0;
  for (const b of reached) {
    let held = 0;
    for (const [from, consumer] of until) {
      const src = produced.get(from)!;
      if (src.number < b.number && consumer > b.number) held += src.outCh * src.outRes * src.outRes;
    }
    peak = Math.max(peak, held + workingValues(b));
  }
  if (full) {
    const top = plan.blocks[plan.blocks.length - 1];
    peak = Math.max(peak, 3 * top.outCh * top.outRes * top.outRes);
  }
  return 4 * peak;
}
