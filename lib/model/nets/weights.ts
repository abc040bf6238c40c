/**
 * The weights of a torchvision network, converted once at load time from PyTorch layout, for tfjs or ONNX:
 *
 *   Conv2d  OIHW [out, in, kh, kw]  ->  HWIO [kh, kw, in, out]   (tf.conv2d filter; ONNX keeps OIHW)
 *   Linear  [out, in] (also nn.MultiheadAttention's in_proj_weight)  ->  [in, out]
 *   everything else (biases, norms, class token, position embedding) unchanged
 *
 * BatchNorm's running statistics become one per-channel scale and shift (computed in float64, rounded once):
 * `<bn>.scale = weight / sqrt(running_var + eps)`, `<bn>.shift = bias - running_mean * scale`.
 * `num_batches_tracked` buffers are read by no forward pass and are ignored whether present or not.
 */
import * as tf from "@tensorflow/tfjs";
import type { StateDict } from "../checkpoint/state-dict";
import { validateStateDict } from "../checkpoint/validate";

export type ParamKind = "conv2d" | "linear" | "batchnorm" | "plain";

/** One tensor a network expects, with its PyTorch name and shape. */
export interface NetParam {
  name: string;
  shape: number[];
  kind: ParamKind;
}

/** BatchNorm parameters of `prefix` ("layer1.0.bn1"): weight, bias, running_mean, running_var. */
export function batchNormParams(prefix: string, channels: number): NetParam[] {
  return ["weight", "bias", "running_mean", "running_var"].map((p) => ({ name: `${prefix}.${p}`, shape: [channels], kind: "batchnorm" as const }));
}

/** The `num_batches_tracked` counters of BatchNorm layers (never used in evaluation). */
export function isBatchCounter(key: string): boolean {
  return key === "num_batches_tracked" || key.endsWith(".num_batches_tracked");
}

/** `found` without its BatchNorm counters. */
export function withoutBatchCounters(found: StateDict): StateDict {
  return new Map([...found].filter(([k]) => !isBatchCounter(k)));
}

function toTfLayout(p: NetParam, data: Float32Array): { data: Float32Array; shape: number[] } {
  if (p.kind === "conv2d") {
    const [o, i, kh, kw] = p.shape;
    const out = new Float32Array(data.length);
    for (let oo = 0; oo < o; oo++) {
      for (let ii = 0; ii < i; ii++) {
        const src = (oo * i + ii) * kh * kw;
        for (let y = 0; y < kh; y++) for (let x = 0; x < kw; x++) out[((y * kw + x) * i + ii) * o + oo] = data[src + y * kw + x];
      }
    }
    return { data: out, shape: [kh, kw, i, o] };
  }
  if (p.kind === "linear") {
    const [o, i] = p.shape;
    const out = new Float32Array(data.length);
    for (let oo = 0; oo < o; oo++) for (let ii = 0; ii < i; ii++) out[ii * o + oo] = data[oo * i + ii];
    return { data: out, shape: [i, o] };
  }
  return { data, shape: [...p.shape] };
}

/** A converted tensor in plain memory. */
export interface HostParam {
  data: Float32Array;
  shape: number[];
}

/**
 * Check `found` against `expected` (one error listing every missing, unexpected and mis-shaped key, naming
 * `file`), then read and convert every tensor: linear weights to [in, out], conv weights to tfjs's HWIO
 * (`conv: "HWIO"`) or left in PyTorch's OIHW (`conv: "OIHW"`, ONNX's layout), BatchNorm folded into
 * `<bn>.scale` and `<bn>.shift`. `bnEps` is the BatchNorm epsilon (torchvision: 1e-5).
 */
export async function readNetParams(expected: NetParam[], found: StateDict, file: string, opts: { conv: "HWIO" | "OIHW"; bnEps?: number }): Promise<Map<string, HostParam>> {
  const bnEps = opts.bnEps ?? 1e-5;
  const sd = withoutBatchCounters(found);
  validateStateDict(new Map(expected.map((p) => [p.name, p.shape])), sd, file);
  const out = new Map<string, HostParam>();
  const bn = new Map<string, Map<string, Float32Array>>();
  for (const p of expected) {
    const data = await sd.get(p.name)!.readFloat32();
    if (p.kind === "batchnorm") {
      const dot = p.name.lastIndexOf(".");
      const prefix = p.name.slice(0, dot);
      if (!bn.has(prefix)) bn.set(prefix, new Map());
      bn.get(prefix)!.set(p.name.slice(dot + 1), data);
      continue;
    }
    out.set(p.name, p.kind === "conv2d" && opts.conv === "OIHW" ? { data, shape: [...p.shape] } : toTfLayout(p, data));
  }
  for (const [prefix, m] of bn) {
    const w = m.get("weight")!;
    const b = m.get("bias")!;
    const mean = m.get("running_mean")!;
    const variance = m.get("running_var")!;
    const scale = new Float32Array(w.length);
    const shift = new Float32Array(w.length);
    for (let c = 0; c < w.length; c++) {
      const s = w[c] / Math.sqrt(variance[c] + bnEps);
      scale[c] = s;
      shift[c] = b[c] - mean[c] * s;
    }
    out.set(`${prefix}.scale`, { data: scale, shape: [w.length] });
    out.set(`${prefix}.shift`, { data: shift, shape: [w.length] });
  }
  return out;
}

/** Weight lookup by PyTorch name, in tfjs layout. */
export class NetWeights {
  private disposed = false;

  private constructor(private readonly tensors: Map<string, tf.Tensor>) {}

  /** readNetParams in tfjs layout, as tfjs tensors. */
  static async load(expected: NetParam[], found: StateDict, file: string, bnEps = 1e-5): Promise<NetWeights> {
    const host = await readNetParams(expected, found, file, { conv: "HWIO", bnEps });
    const tensors = new Map<string, tf.Tensor>();
    try {
      for (const [name, t] of host) tensors.set(name, tf.tensor(t.data, t.shape, "float32"));
    } catch (e) {
      for (const t of tensors.values()) t.dispose();
      throw e;
    }
    return new NetWeights(tensors);
  }

  get(name: string): tf.Tensor {
    if (this.disposed) throw new Error(`weight ${name} requested after the network was disposed`);
    const t = this.tensors.get(name);
    if (!t) throw new Error(`no weight named ${name}`);
    return t;
  }

  /** Bytes held as tfjs tensors. */
  get bytes(): number {
    let n = 0;
    for (const t of this.tensors.values()) n += 4 * t.size;
    return n;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const t of this.tensors.values()) t.dispose();
    this.tensors.clear();
  }
}

/** NHWC -> NCHW (a new tensor). */
export function nhwcToNchw(x: tf.Tensor4D): tf.Tensor4D {
  return tf.transpose(x, [0, 3, 1, 2]);
}

/** Check that `x` is an NCHW float32 batch with `channels` channels; `what` names the network. */
export function checkInput(x: tf.Tensor, channels: number, what: string): void {
  if (x.rank !== 4) throw new Error(`${what}: input must be NCHW (rank 4), got shape [${x.shape.join(", ")}]`);
  if (x.shape[1] !== channels) throw new Error(`${what}: input has ${x.shape[1]} channels (shape [${x.shape.join(", ")}]); expected ${channels} (NCHW)`);
  if (x.dtype !== "float32") throw new Error(`${what}: input must be float32, got ${x.dtype}`);
}
