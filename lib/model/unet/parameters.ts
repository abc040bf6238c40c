/**
 * Parameter names and shapes of a guided-diffusion UNetModel state dict, in PyTorch layout
 * (Linear [out, in]; Conv2d OIHW; Conv1d [out, in, 1]), in `state_dict()` order.
 *
 * `kind` says how the loader converts each tensor to the tfjs layout (see ./weights):
 * conv2d OIHW -> HWIO, conv1d [O, I, 1] and linear [O, I] -> [I, O] matrices, the rest unchanged.
 */
import { UNetConfig } from "./config";
import { buildPlan, ModuleSpec } from "./plan";

export type ParamKind = "conv2d" | "conv1d" | "linear" | "embedding" | "vector";

export interface ParamSpec {
  name: string;
  /** PyTorch shape. */
  shape: number[];
  kind: ParamKind;
  /**
   * How many output positions use this weight in one forward pass of one image at image_size
   * (conv: H_out*W_out; attention Conv1d: tokens; linear: 1). Used to decide which weights to keep
   * resident on backends that keep a packed copy per weight (see ./weights).
   */
  uses: number;
}

function conv2d(out: ParamSpec[], name: string, inCh: number, outCh: number, k: number, uses: number) {
  out.push({ name: `${name}.weight`, shape: [outCh, inCh, k, k], kind: "conv2d", uses });
  out.push({ name: `${name}.bias`, shape: [outCh], kind: "vector", uses });
}
function norm(out: ParamSpec[], name: string, ch: number, uses: number) {
  out.push({ name: `${name}.weight`, shape: [ch], kind: "vector", uses });
  out.push({ name: `${name}.bias`, shape: [ch], kind: "vector", uses });
}
function linear(out: ParamSpec[], name: string, inCh: number, outCh: number) {
  out.push({ name: `${name}.weight`, shape: [outCh, inCh], kind: "linear", uses: 1 });
  out.push({ name: `${name}.bias`, shape: [outCh], kind: "vector", uses: 1 });
}
function conv1d(out: ParamSpec[], name: string, inCh: number, outCh: number, uses: number) {
  out.push({ name: `${name}.weight`, shape: [outCh, inCh, 1], kind: "conv1d", uses });
  out.push({ name: `${name}.bias`, shape: [outCh], kind: "vector", uses });
}

/** Parameters of one module, given the spatial size entering it. */
function moduleParams(out: ParamSpec[], m: ModuleSpec, inRes: number): void {
  switch (m.kind) {
    case "conv": {
      const r = inRes / m.stride;
      conv2d(out, m.name, m.inCh, m.outCh, m.kernel, r * r);
      return;
    }
    case "res": {
      const r = m.updown === "up" ? inRes * 2 : m.updown === "down" ? inRes / 2 : inRes;
      norm(out, `${m.name}.in_layers.0`, m.inCh, inRes * inRes);
      conv2d(out, `${m.name}.in_layers.2`, m.inCh, m.outCh, 3, r * r);
      linear(out, `${m.name}.emb_layers.1`, m.embCh, m.scaleShift ? 2 * m.outCh : m.outCh);
      norm(out, `${m.name}.out_layers.0`, m.outCh, r * r);
      conv2d(out, `${m.name}.out_layers.3`, m.outCh, m.outCh, 3, r * r);
      if (m.skip === "conv1x1") conv2d(out, `${m.name}.skip_connection`, m.inCh, m.outCh, 1, r * r);
      return;
    }
    case "attn": {
      const t = inRes * inRes;
      norm(out, `${m.name}.norm`, m.ch, t);
      conv1d(out, `${m.name}.qkv`, m.ch, 3 * m.ch, t);
      conv1d(out, `${m.name}.proj_out`, m.ch, m.ch, t);
      return;
    }
    case "down":
      if (m.useConv) conv2d(out, `${m.name}.op`, m.ch, m.outCh, 3, (inRes / 2) ** 2);
      return;
    case "up":
      if (m.useConv) conv2d(out, `${m.name}.conv`, m.ch, m.outCh, 3, (inRes * 2) ** 2);
      return;
  }
}

/** Spatial size entering each module of a block, in order. */
export function moduleInputRes(m: ModuleSpec, res: number): number {
  if (m.kind === "res" && m.updown) return res * (m.updown === "up" ? 2 : 0.5);
  if (m.kind === "down") return res / 2;
  if (m.kind === "up") return res * 2;
  return res;
}

/** Every parameter of the model, in state_dict order. */
export function parameterSpecs(config: UNetConfig): ParamSpec[] {
  const plan = buildPlan(config);
  const out: ParamSpec[] = [];
  linear(out, "time_embed.0", config.modelChannels, plan.embDim);
  linear(out, "time_embed.2", plan.embDim, plan.embDim);
  if (config.numClasses !== null) out.push({ name: "label_emb.weight", shape: [config.numClasses, plan.embDim], kind: "embedding", uses: 1 });
  for (const b of plan.blocks) {
    let r = b.inRes;
    for (const m of b.modules) {
      moduleParams(out, m, r);
      r = moduleInputRes(m, r);
    }
  }
  const last = plan.blocks[plan.blocks.length - 1];
  norm(out, "out.0", plan.out.normCh, last.outRes ** 2);
  conv2d(out, "out.2", plan.out.conv.inCh, plan.out.conv.outCh, 3, last.outRes ** 2);
  return out;
}

/** name -> PyTorch shape, in state_dict order; pass to checkpoint's validateStateDict. */
export function expectedParameterShapes(config: UNetConfig): Map<string, number[]> {
  return new Map(parameterSpecs(config).map((p) => [p.name, p.shape]));
}

/** Total number of scalar parameters. */
export function parameterCount(config: UNetConfig): number {
  let n = 0;
  for (const p of parameterSpecs(config)) n += p.shape.reduce((a, b) => a * b, 1);
  return n;
}
