/**
 * A U-Net's weights as named tf.Variables (guided-diffusion state-dict names, tfjs layout), and the
 * conversion back to PyTorch layout for export.
 */
import * as tf from "@tensorflow/tfjs";
import type { UNet } from "../model/unet/index";
import { parameterSpecs, ParamSpec } from "../model/unet/parameters";
import type { UNetConfig } from "../model/unet/config";
import { Rng } from "../rng";

/** Named trainable weights, in state_dict order. */
export type Params = Map<string, tf.Variable>;

/**
 * The model's weights as tf.Variables (the model then computes with them, so gradients and updates
 * reach it). Idempotent. Order: state_dict order.
 */
export function trainableParams(model: UNet): Params {
  return model.namedVariables();
}

/** Inverse of lib/model/unet's toTfLayout: tfjs-layout values of `spec` back to PyTorch layout. */
export function toTorchLayout(spec: ParamSpec, data: Float32Array): Float32Array {
  const numel = spec.shape.reduce((a, b) => a * b, 1);
  if (data.length !== numel) throw new Error(`${spec.name}: ${data.length} values for shape [${spec.shape.join(", ")}]`);
  switch (spec.kind) {
    case "conv2d": {
      const [o, i, kh, kw] = spec.shape; // tfjs: [kh, kw, i, o]
      const out = new Float32Array(numel);
      for (let oo = 0; oo < o; oo++) {
        for (let ii = 0; ii < i; ii++) {
          for (let y = 0; y < kh; y++) {
            for (let x = 0; x < kw; x++) out[((oo * i + ii) * kh + y) * kw + x] = data[((y * kw + x) * i + ii) * o + oo];
          }
        }
      }
      return out;
    }
    case "conv1d":
    case "linear": {
      const [o, i] = spec.shape; // tfjs: [i, o]
      const out = new Float32Array(numel);
      for (let oo = 0; oo < o; oo++) for (let ii = 0; ii < i; ii++) out[oo * i + ii] = data[ii * o + oo];
      return out;
    }
    default:
      return data.slice();
  }
}

/**
 * Tensors named and shaped as guided-diffusion's `model.state_dict()` (PyTorch layout), from
 * tfjs-layout tensors keyed by the same names (e.g. EMA weights); ready for saveSafetensors.
 */
export function torchStateDict(config: UNetConfig, tensors: Map<string, tf.Tensor>): { name: string; shape: number[]; data: () => Float32Array }[] {
  return parameterSpecs(config).map((spec) => {
    const t = tensors.get(spec.name);
    if (!t) throw new Error(`torchStateDict: no tensor for ${spec.name}`);
    return { name: spec.name, shape: spec.shape, data: () => toTorchLayout(spec, t.dataSync() as Float32Array) };
  });
}

/**
 * guided-diffusion's initialisation of a fresh UNetModel, in PyTorch layout and state_dict order:
 * PyTorch's defaults (Conv/Linear weight and bias U(±1/√fan_in), i.e. kaiming_uniform(a=√5);
 * GroupNorm weight 1, bias 0; Embedding N(0, 1)) and `zero_module` on each ResBlock's last conv
 * (`out_layers.3`), each attention `proj_out` and the final conv `out.2`. Seeded, backend-independent.
 */
export function guidedDiffusionInit(config: UNetConfig, seed: number): { name: string; shape: number[]; data: Float32Array }[] {
  const specs = parameterSpecs(config);
  const shapes = new Map(specs.map((p) => [p.name, p.shape]));
  return specs.map((spec, index) => {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const zeroed = /(\.out_layers\.3|\.proj_out|^out\.2)\.(weight|bias)$/.test(spec.name);
    const isNorm = /(\.norm|\.in_layers\.0|\.out_layers\.0|^out\.0)\.(weight|bias)$/.test(spec.name);
    if (zeroed) return { name: spec.name, shape: spec.shape, data };
    if (isNorm) return { name: spec.name, shape: spec.shape, data: spec.name.endsWith(".weight") ? data.fill(1) : data };
    const rng = new Rng(seed, 2 ** 45 + index);
    if (spec.kind === "embedding") return { name: spec.name, shape: spec.shape, data: rng.fillNormal(data) };
    // Bias: fan_in of the layer it belongs to, taken from the matching weight's shape.
    const weightShape = spec.kind === "vector" ? shapes.get(spec.name.replace(/\.bias$/, ".weight")) : spec.shape;
    if (!weightShape) throw new Error(`guidedDiffusionInit: no weight for ${spec.name}`);
    const fanIn = weightShape.slice(1).reduce((a, b) => a * b, 1);
    const bound = 1 / Math.sqrt(fanIn);
    for (let i = 0; i < n; i++) data[i] = (2 * rng.uniform() - 1) * bound;
    return { name: spec.name, shape: spec.shape, data };
  });
}
