/**
 * guided-diffusion's UNetModel as an ONNX graph, built from lib/model/unet's architecture plan (the same plan
 * that builds the tfjs model), in NCHW as PyTorch computes it, with weights in PyTorch layout.
 *
 * Inputs:  x [N, C, H, W] float32 (the noised image x_t), temb [N, model_channels] float32 (the sinusoidal
 *          timestep embedding, computed in JS exactly as PyTorch does: lib/model/unet/layers timestepEmbedding),
 *          and y [N] int64 for class-conditional models.
 * Outputs: the requested blocks by module name ("input_blocks.3", "middle_block", "output_blocks.4"),
 *          "emb" (time_embed output) and "out" when asked. The graph ends after the last block asked for,
 *          and only the weights it uses are written.
 *
 * GroupNorm32 is Reshape -> two-level ReduceMean statistics -> normalise -> Reshape -> per-channel affine.
 */
import type { UNetConfig } from "../unet/config";
import { parseBlock } from "../unet/blocks";
import { AttnSpec, buildPlan, ModuleSpec, ResSpec } from "../unet/plan";
import { parameterSpecs } from "../unet/parameters";
import { DataType } from "./onnx-proto";
import { OnnxGraph } from "./onnx-graph";

/** Reads one parameter in PyTorch layout (conv OIHW, linear [out, in], Conv1d [out, in, 1]). */
export type ParamReader = (name: string, shape: number[]) => Promise<Float32Array>;

export interface UNetGraphSpec {
  config: UNetConfig;
  /** Blocks to output: paper numbers or module names; "out" for the final output, "emb" for time_embed's. */
  outputs: (number | string)[];
  /** Spatial input size (default config.imageSize); a multiple of the plan's sizeMultiple. */
  inputSize?: number;
}

/** Normalised output names in network order, and whether the full pass is needed. */
export function resolveOutputs(config: UNetConfig, outputs: (number | string)[]): { names: string[]; last: number; wantOut: boolean; wantEmb: boolean } {
  const plan = buildPlan(config);
  const blocks = new Set<string>();
  let wantOut = false;
  let wantEmb = false;
  for (const o of outputs) {
    if (o === "out") wantOut = true;
    else if (o === "emb") wantEmb = true;
    else blocks.add(parseBlock(config, o).name);
  }
  if (!wantOut && !wantEmb && blocks.size === 0) throw new Error("no outputs asked for: name blocks (numbers or module names), \"emb\" or \"out\"");
  const idx = plan.blocks.map((b, i) => (blocks.has(b.name) ? i : -1)).filter((i) => i >= 0);
  const last = wantOut ? plan.blocks.length - 1 : idx.length ? Math.max(...idx) : -1;
  const names = plan.blocks.filter((b) => blocks.has(b.name)).map((b) => b.name);
  if (wantEmb) names.unshift("emb");
  if (wantOut) names.push("out");
  return { names, last, wantOut, wantEmb };
}

/** Build the graph into `g` (weights streamed through `read`). Returns the output names. */
export async function buildUNetGraph(g: OnnxGraph, spec: UNetGraphSpec, read: ParamReader): Promise<string[]> {
  const c = spec.config;
  const plan = buildPlan(c);
  const size = spec.inputSize ?? c.imageSize;
  if (size % plan.sizeMultiple) throw new Error(`input size ${size} is not a multiple of ${plan.sizeMultiple} (${c.channelMult.length} levels)`);
  const { names, last, wantOut } = resolveOutputs(c, spec.outputs);
  const wanted = new Set(names);
  const shapes = new Map(parameterSpecs(c).map((p) => [p.name, p.shape]));
  const groups = c.groupNormGroups;
  const eps = c.groupNormEps;

  const W = async (name: string): Promise<string> => {
    const shape = shapes.get(name);
    if (!shape) throw new Error(`the plan asks for parameter ${name}, which this config does not have`);
    return g.weight(name, shape, await read(name, shape));
  };
  const silu = (x: string) => g.op("Mul", [x, g.op("Sigmoid", [x])], {}, "silu");
  const conv = async (x: string, name: string, stride = 1): Promise<string> => {
    const shape = shapes.get(`${name}.weight`)!;
    const k = shape[2];
    const p = (k - 1) / 2;
    return g.op("Conv", [x, await W(`${name}.weight`), await W(`${name}.bias`)], { kernel_shape: [k, k], strides: [stride, stride], pads: [p, p, p, p] }, "conv");
  };
  const conv1d = async (x: string, name: string): Promise<string> =>
    g.op("Conv", [x, await W(`${name}.weight`), await W(`${name}.bias`)], { kernel_shape: [1] }, "conv1d");
  const gemm = async (x: string, name: string): Promise<string> => g.op("Gemm", [x, await W(`${name}.weight`), await W(`${name}.bias`)], { transB: 1 }, "linear");
  /**
   * GroupNorm over [N, C, ...spatial] (spatialRank 2 for maps, 1 for tokens). The statistics are two-level
   * means (over the last axis, then over the rest of the group): one ReduceMean or InstanceNormalization over
   * the 524,288 values of a group at 256x256 accumulates float32 error to ~1e-5 of the output.
   */
  const groupNorm = async (x: string, name: string, ch: number, spatialRank: number): Promise<string> => {
    // [N, G, rest, last]: maps [N, C, H, W] -> [N, G, cg*H, W]; tokens [N, C, T] -> [N, G, cg, T].
    const grouped = g.op("Reshape", [x, g.constInt64(spatialRank === 2 ? [0, groups, -1, 0] : [0, groups, ch / groups, -1])], {}, "gn_group");
    const mean2 = (v: string) => g.op("ReduceMean", [g.op("ReduceMean", [v], { axes: [3], keepdims: 1 })], { axes: [2], keepdims: 1 }, "gn_mean");
    const centred = g.op("Sub", [grouped, mean2(grouped)], {}, "gn_centre");
    const variance = mean2(g.op("Mul", [centred, centred], {}, "gn_sq"));
    const rstd = g.op("Reciprocal", [g.op("Sqrt", [g.op("Add", [variance, g.constFloat([eps], [])])])], {}, "gn_rstd");
    const normed = g.op("Mul", [centred, rstd], {}, "gn");
    const back = g.op("Reshape", [normed, g.op("Shape", [x])], {}, "gn_ungroup");
    const affine = [ch, ...new Array(spatialRank).fill(1)];
    const gamma = g.op("Reshape", [await W(`${name}.weight`), g.constInt64(affine)]);
    const beta = g.op("Reshape", [await W(`${name}.bias`), g.constInt64(affine)]);
    return g.op("Add", [g.op("Mul", [back, gamma]), beta], {}, "gn_affine");
  };
  const down = (x: string) => g.op("AveragePool", [x], { kernel_shape: [2, 2], strides: [2, 2] }, "avgpool");
  const up = (x: string) =>
    g.op("Resize", [x, "", g.constFloat([1, 1, 2, 2])], { mode: "nearest", coordinate_transformation_mode: "asymmetric", nearest_mode: "floor" }, "upsample");

  const resBlock = async (x: string, emb: string, m: ResSpec): Promise<string> => {
    const n = m.name;
    const resample = m.updown === "up" ? up : m.updown === "down" ? down : null;
    let h = silu(await groupNorm(x, `${n}.in_layers.0`, m.inCh, 2));
    if (resample) h = resample(h);
    h = await conv(h, `${n}.in_layers.2`);
    const e = g.op("Unsqueeze", [await gemm(silu(emb), `${n}.emb_layers.1`), g.constInt64([2, 3])]); // [N, k*out, 1, 1]
    let pre: string;
    if (m.scaleShift) {
      const [scale, shift] = g.node("Split", [e, g.constInt64([m.outCh, m.outCh])], { axis: 1 }, 2, "scale_shift");
      const normed = await groupNorm(h, `${n}.out_layers.0`, m.outCh, 2);
      pre = silu(g.op("Add", [g.op("Mul", [normed, g.op("Add", [scale, g.constFloat([1], [])])]), shift]));
    } else {
      pre = silu(await groupNorm(g.op("Add", [h, e]), `${n}.out_layers.0`, m.outCh, 2));
    }
    h = await conv(pre, `${n}.out_layers.3`);
    const xr = resample ? resample(x) : x;
    const skip = m.skip === "identity" ? xr : await conv(xr, `${n}.skip_connection`);
    return g.op("Add", [skip, h], {}, "res_out");
  };

  const attention = async (x: string, m: AttnSpec, res: number): Promise<string> => {
    const C = m.ch;
    const heads = m.heads;
    const ch = C / heads;
    const T = res * res;
    const tokens = g.op("Reshape", [x, g.constInt64([0, C, T])], {}, "tokens"); // [N, C, T]
    const qkv = await conv1d(await groupNorm(tokens, `${m.name}.norm`, C, 1), `${m.name}.qkv`); // [N, 3C, T]
    let q: string, k: string, v: string;
    if (m.order === "legacy") {
      const perHead = g.op("Reshape", [qkv, g.constInt64([-1, 3 * ch, T])]); // [N*heads, 3ch, T]
      [q, k, v] = g.node("Split", [perHead, g.constInt64([ch, ch, ch])], { axis: 1 }, 3, "qkv");
    } else {
      const parts = g.node("Split", [qkv, g.constInt64([C, C, C])], { axis: 1 }, 3, "qkv");
      [q, k, v] = parts.map((p) => g.op("Reshape", [p, g.constInt64([-1, ch, T])]));
    }
    const scale = g.constFloat([1 / Math.sqrt(Math.sqrt(ch))], []);
    const qs = g.op("Mul", [q, scale]);
    const ks = g.op("Mul", [k, scale]);
    const w = g.op("Softmax", [g.op("MatMul", [g.op("Transpose", [qs], { perm: [0, 2, 1] }), ks])], { axis: -1 }, "attn_weights"); // [B, T, S]
    const a = g.op("MatMul", [v, g.op("Transpose", [w], { perm: [0, 2, 1] })]); // [B, ch, T]
    const merged = g.op("Reshape", [a, g.constInt64([-1, C, T])]);
    const h = await conv1d(merged, `${m.name}.proj_out`);
    return g.op("Reshape", [g.op("Add", [tokens, h]), g.op("Shape", [x])], {}, "attn_out");
  };

  const runModule = async (m: ModuleSpec, h: string, emb: string, res: number): Promise<string> => {
    switch (m.kind) {
      case "conv": return conv(h, m.name, m.stride);
      case "res": return resBlock(h, emb, m);
      case "attn": return attention(h, m, res);
      case "down": return m.useConv ? conv(h, `${m.name}.op`, 2) : down(h);
      case "up": {
        const u = up(h);
        return m.useConv ? conv(u, `${m.name}.conv`) : u;
      }
    }
  };

  const x = g.input("x", ["N", c.inChannels, size, size]);
  const temb = g.input("temb", ["N", c.modelChannels]);
  const emb = await gemm(silu(await gemm(temb, "time_embed.0")), "time_embed.2");
  if (wanted.has("emb")) {
    g.node("Identity", [emb], {}, ["emb"]);
    g.output("emb", ["N", plan.embDim]);
  }
  let cond = emb;
  if (c.numClasses !== null) {
    const y = g.input("y", ["N"], DataType.INT64);
    cond = g.op("Add", [emb, g.op("Gather", [await W("label_emb.weight"), y], { axis: 0 })], {}, "cond");
  }

  const scale = size / c.imageSize;
  const hs: string[] = [];
  let h = x;
  for (let i = 0; i <= last; i++) {
    const b = plan.blocks[i];
    let cur = b.section === "output" ? g.op("Concat", [h, hs.pop()!], { axis: 1 }, "cat") : h;
    let res = b.inRes * scale;
    for (const m of b.modules) {
      cur = await runModule(m, cur, cond, res);
      if ((m.kind === "res" && m.updown === "down") || m.kind === "down") res /= 2;
      if ((m.kind === "res" && m.updown === "up") || m.kind === "up") res *= 2;
    }
    if (b.section === "input") hs.push(cur);
    h = cur;
    if (wanted.has(b.name)) {
      g.node("Identity", [h], {}, [b.name]);
      g.output(b.name, ["N", b.outCh, b.outRes * scale, b.outRes * scale]);
    }
  }
  if (wantOut) {
    const o = await conv(silu(await groupNorm(h, "out.0", plan.out.normCh, 2)), "out.2");
    g.node("Identity", [o], {}, ["out"]);
    g.output("out", ["N", c.outChannels, size, size]);
  }
  return names;
}
