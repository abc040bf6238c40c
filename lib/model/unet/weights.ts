/**
 * The U-Net's weights in tfjs layout, converted once from PyTorch layout at load time:
 *
 *   Conv2d  OIHW [out, in, kh, kw]  ->  HWIO [kh, kw, in, out]   (tf.conv2d filter)
 *   Conv1d  [out, in, 1]            ->  [in, out]                 (matMul on tokens [B*T, in])
 *   Linear  [out, in]               ->  [in, out]
 *   biases, GroupNorm, label_emb    unchanged
 *
 * Residency. A weight is either *resident* (a tf.Tensor kept for the model's lifetime) or *streamed*
 * (kept as a host Float32Array; a tensor is made when a block runs and freed when the block's tf.tidy ends).
 * Streaming exists for the wasm backend: XNNPACK keeps packed copies of every conv weight it has run
 * (for the tensor's lifetime) which take about twice the weight's size (measured with tfjs-backend-wasm
 * 4.22: packing 720 MiB of 3x3 filters took 1470 MiB of heap), so a resident matrix costs ~3x its size
 * in the 4 GiB wasm heap; the 256x256 ADM (2.2 GB of float32 weights) cannot keep them all. Policy "auto" keeps resident the
 * weights used at the most output positions (high-resolution layers, where repacking per pass would be
 * costly relative to their arithmetic) up to a budget, and streams the rest (low-resolution, weight-heavy
 * layers). On other backends "auto" keeps everything resident.
 */
import * as tf from "@tensorflow/tfjs";
import type { StateDict } from "../checkpoint/state-dict";
import { Rng } from "../../rng";
import { UNetConfig } from "./config";
import { WeightSource } from "./layers";
import { ParamSpec, parameterSpecs } from "./parameters";

export type Residency = "auto" | "resident" | "streamed";

export interface WeightOptions {
  /** Default "auto" (see the module comment). */
  residency?: Residency;
  /**
   * For "auto" on wasm: heap bytes resident weights may take, counting each matrix 1 + WASM_PACKED_COPIES
   * times. Default 2.25 GiB, which leaves ~1.75 GiB for the activations of a batch-1 256x256 pass
   * (~0.8 GiB at the 256x256 output blocks) and the transient copies of streamed weights.
   */
  residentBudgetBytes?: number;
}

export const DEFAULT_RESIDENT_BUDGET = 2.25 * 2 ** 30;
/** XNNPACK's packed copies of a resident conv/matmul weight, in multiples of its size (measured). */
export const WASM_PACKED_COPIES = 2;

interface HostTensor { data: Float32Array; shape: number[] }

/** Convert one PyTorch-layout tensor to tfjs layout (pure JS, no tfjs memory used). */
export function toTfLayout(spec: ParamSpec, data: Float32Array): HostTensor {
  const numel = spec.shape.reduce((a, b) => a * b, 1);
  if (data.length !== numel) throw new Error(`${spec.name}: ${data.length} values for shape [${spec.shape.join(", ")}] (${numel} expected)`);
  switch (spec.kind) {
    case "conv2d": {
      const [o, i, kh, kw] = spec.shape;
      const out = new Float32Array(numel);
      for (let oo = 0; oo < o; oo++) {
        for (let ii = 0; ii < i; ii++) {
          const src = (oo * i + ii) * kh * kw;
          for (let y = 0; y < kh; y++) {
            for (let x = 0; x < kw; x++) out[((y * kw + x) * i + ii) * o + oo] = data[src + y * kw + x];
          }
        }
      }
      return { data: out, shape: [kh, kw, i, o] };
    }
    case "conv1d":
    case "linear": {
      const [o, i] = spec.shape;
      const out = new Float32Array(numel);
      for (let oo = 0; oo < o; oo++) for (let ii = 0; ii < i; ii++) out[ii * o + oo] = data[oo * i + ii];
      return { data: out, shape: [i, o] };
    }
    default:
      return { data, shape: [...spec.shape] };
  }
}

const isMatrix = (s: ParamSpec) => s.kind === "conv2d" || s.kind === "conv1d" || s.kind === "linear";

/** Names of the parameters to stream under the given policy on the given backend. */
export function planStreaming(specs: ParamSpec[], backend: string, opts: WeightOptions = {}): Set<string> {
  const residency = opts.residency ?? "auto";
  if (residency === "resident") return new Set();
  if (residency === "streamed") return new Set(specs.filter(isMatrix).map((s) => s.name));
  if (backend !== "wasm") return new Set();
  const budget = opts.residentBudgetBytes ?? DEFAULT_RESIDENT_BUDGET;
  const cost = (s: ParamSpec) => 4 * s.shape.reduce((a, b) => a * b, 1) * (isMatrix(s) ? 1 + WASM_PACKED_COPIES : 1);
  let used = specs.filter((s) => !isMatrix(s)).reduce((a, s) => a + cost(s), 0);
  const streamed = new Set<string>();
  // Most-used first; ties keep state_dict order (Array.prototype.sort is stable).
  const matrices = specs.filter(isMatrix).sort((a, b) => b.uses - a.uses);
  for (const s of matrices) {
    if (used + cost(s) <= budget) used += cost(s);
    else streamed.add(s.name);
  }
  return streamed;
}

export class UNetWeights implements WeightSource {
  private disposed = false;

  private constructor(
    private readonly resident: Map<string, tf.Tensor>,
    private readonly host: Map<string, HostTensor>,
  ) {}

  /** Bytes held as tf tensors / as host arrays. */
  get residentBytes(): number {
    let n = 0;
    for (const t of this.resident.values()) n += 4 * t.size;
    return n;
  }
  get streamedBytes(): number {
    let n = 0;
    for (const t of this.host.values()) n += 4 * t.data.length;
    return n;
  }
  get streamedNames(): string[] {
    return [...this.host.keys()];
  }

  get(name: string): tf.Tensor {
    if (this.disposed) throw new Error(`weight ${name} requested after the model was disposed`);
    const t = this.resident.get(name);
    if (t) return t;
    const h = this.host.get(name);
    if (h) return tf.tensor(h.data, h.shape, "float32");
    throw new Error(`no weight named ${name}`);
  }

  /**
   * Every weight as a trainable tf.Variable, keyed by state-dict name in `order` (tfjs layout: conv HWIO,
   * linear [in, out]). Resident tensors are swapped for variables holding the same values (idempotent);
   * streamed weights cannot be trained: build such a model with `{ residency: "resident" }`.
   */
  toVariables(order: readonly string[]): Map<string, tf.Variable> {
    if (this.host.size > 0) {
      throw new Error(`${this.host.size} weights are streamed (e.g. ${[...this.host.keys()][0]}); build the model with { residency: "resident" } to train it`);
    }
    const out = new Map<string, tf.Variable>();
    for (const name of order) {
      const t = this.resident.get(name);
      if (!t) throw new Error(`no weight named ${name}`);
      if (t instanceof tf.Variable) {
        out.set(name, t);
        continue;
      }
      const v = tf.variable(t, true);
      this.resident.set(name, v);
      t.dispose();
      out.set(name, v);
    }
    return out;
  }

  dispose(): void {
    this.disposed = true;
    for (const t of this.resident.values()) t.dispose();
    this.resident.clear();
    this.host.clear();
  }

  /**
   * Build from PyTorch-layout values, one tensor at a time (`read` is awaited per parameter, so a
   * checkpoint is streamed from disk rather than held whole).
   */
  static async build(config: UNetConfig, read: (spec: ParamSpec) => Promise<Float32Array> | Float32Array, opts: WeightOptions = {}): Promise<UNetWeights> {
    const specs = parameterSpecs(config);
    const streamed = planStreaming(specs, tf.getBackend(), opts);
    const resident = new Map<string, tf.Tensor>();
    const host = new Map<string, HostTensor>();
    try {
      for (const spec of specs) {
        const t = toTfLayout(spec, await read(spec));
        if (streamed.has(spec.name)) host.set(spec.name, t);
        else resident.set(spec.name, tf.tensor(t.data, t.shape, "float32"));
      }
    } catch (e) {
      for (const t of resident.values()) t.dispose();
      throw e;
    }
    return new UNetWeights(resident, host);
  }

  /** From a validated state dict (see ../checkpoint). */
  static fromStateDict(config: UNetConfig, sd: StateDict, opts: WeightOptions = {}): Promise<UNetWeights> {
    return UNetWeights.build(config, async (spec) => {
      const entry = sd.get(spec.name);
      if (!entry) throw new Error(`checkpoint lacks ${spec.name}`);
      return entry.readFloat32();
    }, opts);
  }

  /**
   * Random weights with no zero layer, with the reference fixtures' scales but uniformly distributed
   * (Gaussian draws for 552M parameters take minutes in JS): GroupNorm weight 1 + 0.1 U, GroupNorm bias
   * 0.1 U, matrices U / sqrt(fan_in), other biases and label_emb 0.05 U, where U is uniform with mean 0 and
   * variance 1. Deterministic per (seed, parameter index), independent of the backend.
   */
  static random(config: UNetConfig, seed: number, opts: WeightOptions = {}): UNetWeights {
    const specs = parameterSpecs(config);
    const streamed = planStreaming(specs, tf.getBackend(), opts);
    const resident = new Map<string, tf.Tensor>();
    const host = new Map<string, HostTensor>();
    specs.forEach((spec, i) => {
      const t = toTfLayout(spec, randomParam(spec, seed, i));
      if (streamed.has(spec.name)) host.set(spec.name, t);
      else resident.set(spec.name, tf.tensor(t.data, t.shape, "float32"));
    });
    return new UNetWeights(resident, host);
  }
}

export function randomParam(spec: ParamSpec, seed: number, index: number): Float32Array {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const rng = new Rng(seed, index);
  const isNorm = /(\.norm|in_layers\.0|out_layers\.0|^out\.0)\.(weight|bias)$/.test(spec.name);
  const out = new Float32Array(n);
  if (isNorm && spec.name.endsWith(".weight")) return rng.fillUniform(out, 1, 0.1);
  if (isNorm) return rng.fillUniform(out, 0, 0.1);
  if (isMatrix(spec)) return rng.fillUniform(out, 0, 1 / Math.sqrt(spec.shape.slice(1).reduce((a, b) => a * b, 1)));
  return rng.fillUniform(out, 0, 0.05);
}
