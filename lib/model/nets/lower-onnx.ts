/**
 * The network stages (./ops) as an ONNX graph (lib/model/engines/onnx-graph: external data, 4 KiB-aligned
 * weights): maps NCHW as PyTorch computes them, conv weights OIHW, linear weights [in, out] for MatMul,
 * BatchNorm folded to a per-channel scale and shift (./weights readNetParams with conv "OIHW"). Each weight is
 * written once, when a stage first uses it, so a graph that stops early holds only the weights it needs.
 */
import type { OnnxGraph } from "../engines/onnx-graph";
import type { NetOps, Stage } from "./ops";
import { selectLayers } from "./select";
import type { HostParam } from "./weights";

export function onnxOps(g: OnnxGraph, params: Map<string, HostParam>): NetOps<string> {
  const written = new Map<string, string>();
  /** The weight `name`, written on first use (`dims` overrides its shape, for broadcasting). */
  const W = (name: string, dims?: number[]): string => {
    const hit = written.get(name);
    if (hit) return hit;
    const p = params.get(name);
    if (!p) throw new Error(`the network asks for weight ${name}, which was not read`);
    const id = g.weight(name, dims ?? p.shape, p.data);
    written.set(name, id);
    return id;
  };
  const perChannel = (name: string) => W(name, [params.get(name)?.shape[0] ?? 0, 1, 1]);
  const linear = (x: string, name: string, weight = `${name}.weight`, bias = `${name}.bias`) =>
    g.op("Add", [g.op("MatMul", [x, W(weight)], {}, "linear"), W(bias)], {}, "linear_bias");
  return {
    conv(x, name, s) {
      const k = params.get(`${name}.weight`)?.shape ?? [];
      const inputs = [x, W(`${name}.weight`)];
      if (s.bias) inputs.push(W(`${name}.bias`));
      return g.op("Conv", inputs, { kernel_shape: [k[2], k[3]], strides: [s.stride, s.stride], pads: [s.pad, s.pad, s.pad, s.pad] }, "conv");
    },
    batchNorm: (x, name) => g.op("Add", [g.op("Mul", [x, perChannel(`${name}.scale`)]), perChannel(`${name}.shift`)], {}, "bn"),
    relu: (x) => g.op("Relu", [x]),
    leakyRelu: (x, alpha) => g.op("LeakyRelu", [x], { alpha: { float: alpha } }),
    gelu: (u) => {
      const erf = g.op("Erf", [g.op("Mul", [u, g.constFloat([Math.SQRT1_2], [])])]);
      return g.op("Mul", [g.op("Mul", [u, g.constFloat([0.5], [])]), g.op("Add", [erf, g.constFloat([1], [])])], {}, "gelu");
    },
    tanh: (x) => g.op("Tanh", [x]),
    add: (a, b) => g.op("Add", [a, b]),
    maxPool: (x, k, stride, pad) => g.op("MaxPool", [x], { kernel_shape: [k, k], strides: [stride, stride], pads: [pad, pad, pad, pad] }),
    spatialMean: (x) => g.op("ReduceMean", [x], { axes: [2, 3], keepdims: 0 }, "spatial_mean"),
    flatten: (x) => g.op("Flatten", [x], { axis: 1 }),
    mapToTokens: (x) => g.op("Transpose", [g.op("Reshape", [x, g.constInt64([0, 0, -1])])], { perm: [0, 2, 1] }, "tokens"),
    linear,
    layerNorm: (x, name, eps) => g.op("LayerNormalization", [x, W(`${name}.weight`), W(`${name}.bias`)], { axis: -1, epsilon: { float: eps } }, "ln"),
    prependToken(x, name) {
      const d = params.get(name)?.shape.at(-1) ?? 0;
      const n = g.op("Shape", [x], { start: 0, end: 1 });
      const tok = g.op("Expand", [W(name), g.op("Concat", [n, g.constInt64([1, d])], { axis: 0 })], {}, "token");
      return g.op("Concat", [tok, x], { axis: 1 });
    },
    addParam: (x, name) => g.op("Add", [x, W(name)]),
    selfAttention(qkv, h, hd) {
      // [N, T, 3, H, hd] -> [3, N, H, T, hd]
      const split = g.op("Transpose", [g.op("Reshape", [qkv, g.constInt64([0, 0, 3, h, hd])])], { perm: [2, 0, 3, 1, 4] });
      const [q, k, v] = g.node("Split", [split, g.constInt64([1, 1, 1])], { axis: 0 }, 3, "qkv").map((p) => g.op("Squeeze", [p, g.constInt64([0])]));
      const qs = g.op("Mul", [q, g.constFloat([1 / Math.sqrt(hd)], [])]);
      const attn = g.op("Softmax", [g.op("MatMul", [qs, g.op("Transpose", [k], { perm: [0, 1, 3, 2] })])], { axis: -1 }, "attn_weights");
      const o = g.op("Transpose", [g.op("MatMul", [attn, v])], { perm: [0, 2, 1, 3] }); // [N, T, H, hd]
      return g.op("Reshape", [o, g.constInt64([0, 0, h * hd])], {}, "attn_out");
    },
    firstToken: (x) => g.op("Gather", [x, g.constInt64([0], [])], { axis: 1 }, "first_token"),
  };
}

/**
 * Build `stages` into `g` from the input `x` (NCHW), with a graph output named as each requested stage;
 * the graph ends at the last one. Returns the output names in network order.
 */
export function buildStagesOnnx(g: OnnxGraph, stages: Stage[], params: Map<string, HostParam>, x: string, layers: string[] | undefined, what: string): string[] {
  const all = stages.map((s) => s.name);
  const { wanted, last } = selectLayers(all, layers, what);
  const ops = onnxOps(g, params);
  const names: string[] = [];
  let cur = x;
  for (let i = 0; i <= last; i++) {
    cur = stages[i].apply(ops, cur);
    if (wanted.has(stages[i].name)) {
      g.node("Identity", [cur], {}, [stages[i].name]);
      g.output(stages[i].name, null);
      names.push(stages[i].name);
    }
  }
  return names;
}
