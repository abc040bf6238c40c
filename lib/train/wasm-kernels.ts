/**
 * Kernels that make training on tfjs-backend-wasm 4.22 possible and fast, registered in tfjs' kernel
 * registry so that every op and every stock gradient (tf.conv2d, tf.fused.conv2d, tf.matMul,
 * tf.fused.matMul) uses them without changes to model code:
 *
 * - `Conv2DBackpropFilter` (missing on wasm: any conv2d gradient fails) and `Conv2DBackpropInput`
 *   (present but a plain loop, 5–25x slower than the forward conv): replaced by forward convolutions
 *   (see ./conv-grad for the algebra), run with wasm's own Conv2D/Transpose/PadV2/Slice/Reverse kernels.
 * - `BatchMatMul` and `_FusedMatMul` with transposeA / transposeB: wasm leaves XNNPACK for a generic
 *   path 6–40x slower (measured: [16384,64]ᵀ·[16384,64] 257 ms vs 13 ms); the wrapper transposes the
 *   operands explicitly and runs the fast path. Every matMul gradient uses transposed operands.
 *
 * Also two gradient fixes, for every backend (tfjs 4.22 bugs):
 * - `ResizeNearestNeighbor` for integer upscaling without alignCorners (ADM's Upsample): a k×k sum
 *   pooling (avgPool · k²); the cpu backend's ResizeNearestNeighborGrad is wrong for batch > 1.
 * - `SquaredDifference` with broadcasting (e.g. (x − mean)² in a GroupNorm): the stock gradient does not
 *   sum over the broadcast axes, so backprop fails with a shape error; here it does.
 *
 * `installTrainingKernels()` is idempotent; `uninstallTrainingKernels()` restores the stock registry.
 */
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import { ConvOps, ConvPad, filterGradWith, inputGradWith } from "./conv-grad";

type Info = tf.TensorInfo;
type KernelConfig = ReturnType<typeof tf.getKernel>;
type KernelArgs = Parameters<KernelConfig["kernelFunc"]>[0];

const BACKEND = "wasm";
const REPLACED = ["Conv2DBackpropFilter", "Conv2DBackpropInput", "BatchMatMul", "_FusedMatMul"] as const;

let stock: Map<string, KernelConfig | undefined> | null = null;
type GradConfig = ReturnType<typeof tf.getGradient>;
let stockGrads: GradConfig[] | null = null;

/** The wasm kernel to call from inside our kernels (the stock one where we replaced it). */
function kernel(name: string): KernelConfig {
  const k = stock?.get(name) ?? tf.getKernel(name, BACKEND);
  if (!k) throw new Error(`wasm kernel ${name} is missing`);
  return k;
}

/** ConvOps on wasm kernel functions; every intermediate is recorded and freed by `release`. */
class KernelOps implements ConvOps<Info> {
  private readonly made: Info[] = [];
  constructor(private readonly backend: KernelArgs["backend"]) {}

  run(name: string, inputs: Record<string, Info>, attrs: Record<string, unknown>): Info {
    const out = kernel(name).kernelFunc({ inputs, backend: this.backend, attrs: attrs as tf.NamedAttrMap }) as Info;
    this.made.push(out);
    return out;
  }
  /** Free every intermediate except `keep`. */
  release(keep?: Info): void {
    const b = this.backend as { disposeData(dataId: unknown): boolean };
    for (const t of this.made) if (t !== keep) b.disposeData(t.dataId);
    this.made.length = 0;
  }
  shape = (t: Info) => t.shape;
  reshape = (t: Info, shape: number[]) => this.run("Reshape", { x: t }, { shape });
  transpose = (t: Info, perm: number[]) => this.run("Transpose", { x: t }, { perm });
  pad = (t: Info, paddings: [number, number][]) => this.run("PadV2", { x: t }, { paddings, constantValue: 0 });
  slice = (t: Info, begin: number[], size: number[]) => this.run("Slice", { x: t }, { begin, size });
  reverse = (t: Info, axes: number[]) => this.run("Reverse", { x: t }, { dims: axes });
  conv2d = (x: Info, w: Info, strides: [number, number], dilations: [number, number]) =>
    this.run("Conv2D", { x, filter: w }, { strides, pad: "valid", dataFormat: "NHWC", dilations, dimRoundingMode: undefined });
  matMul = (a: Info, b: Info) => this.run("BatchMatMul", { a, b }, { transposeA: false, transposeB: false });
  /** Swap the last two axes. */
  t2(t: Info): Info {
    const perm = t.shape.map((_, i) => i);
    const r = t.shape.length;
    [perm[r - 2], perm[r - 1]] = [perm[r - 1], perm[r - 2]];
    return this.transpose(t, perm);
  }
}

/** Run `f` on KernelOps, freeing its intermediates; the result is handed to the engine. */
function withOps(args: KernelArgs, f: (o: KernelOps) => Info): Info {
  const o = new KernelOps(args.backend);
  try {
    const out = f(o);
    o.release(out);
    return out;
  } catch (e) {
    o.release();
    throw e;
  }
}

interface ConvAttrs { strides: number | [number, number]; pad: ConvPad; dataFormat?: string; dimRoundingMode?: string }

function checkConvAttrs(name: string, a: ConvAttrs): void {
  if (a.dataFormat && a.dataFormat !== "NHWC") throw new Error(`${name}: data format ${a.dataFormat} is not supported`);
  if (a.dimRoundingMode && typeof a.pad === "number") throw new Error(`${name}: dimRoundingMode is not supported`);
}

const filterGradKernel = (args: KernelArgs): Info => {
  const a = args.attrs as unknown as ConvAttrs & { filterShape: number[] };
  checkConvAttrs("Conv2DBackpropFilter", a);
  return withOps(args, (o) => filterGradWith(o, args.inputs.x as Info, args.inputs.dy as Info, a.filterShape, a.strides, a.pad));
};

const inputGradKernel = (args: KernelArgs): Info => {
  const a = args.attrs as unknown as ConvAttrs & { inputShape: number[] };
  checkConvAttrs("Conv2DBackpropInput", a);
  return withOps(args, (o) => inputGradWith(o, a.inputShape, args.inputs.dy as Info, args.inputs.filter as Info, a.strides, a.pad));
};

/** A matMul kernel that transposes its operands explicitly, then calls the stock kernel untransposed. */
function untransposed(name: "BatchMatMul" | "_FusedMatMul") {
  return (args: KernelArgs): Info => {
    const attrs = args.attrs as unknown as { transposeA: boolean; transposeB: boolean };
    const base = kernel(name);
    if (!attrs.transposeA && !attrs.transposeB) return base.kernelFunc(args) as Info;
    const o = new KernelOps(args.backend);
    try {
      const inputs = { ...args.inputs } as Record<string, Info>;
      if (attrs.transposeA) inputs.a = o.t2(inputs.a);
      if (attrs.transposeB) inputs.b = o.t2(inputs.b);
      const plain = { ...(args.attrs as object), transposeA: false, transposeB: false } as unknown as tf.NamedAttrMap;
      return base.kernelFunc({ inputs, backend: args.backend, attrs: plain }) as Info;
    } finally {
      o.release();
    }
  };
}

const KERNEL_FUNCS: Record<(typeof REPLACED)[number], (args: KernelArgs) => Info> = {
  Conv2DBackpropFilter: filterGradKernel,
  Conv2DBackpropInput: inputGradKernel,
  BatchMatMul: untransposed("BatchMatMul"),
  _FusedMatMul: untransposed("_FusedMatMul"),
};

/** Install the kernels and the gradient fix (idempotent). */
export function installTrainingKernels(): void {
  if (stock) return;
  stock = new Map();
  for (const name of REPLACED) {
    const old = tf.getKernel(name, BACKEND);
    stock.set(name, old);
    if (old) tf.unregisterKernel(name, BACKEND);
    // Keep the stock setupFunc: the engine calls it when wasm (re)becomes the active backend.
    tf.registerKernel({ kernelName: name, backendName: BACKEND, kernelFunc: KERNEL_FUNCS[name] as KernelConfig["kernelFunc"], setupFunc: old?.setupFunc });
  }
  stockGrads = [tf.getGradient("ResizeNearestNeighbor"), tf.getGradient("SquaredDifference")];
  const fallback = stockGrads[0];
  tf.registerGradient({
    kernelName: "ResizeNearestNeighbor",
    inputsToSave: ["images"],
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) => {
      const images = saved[0] as tf.Tensor4D;
      const g = dy as tf.Tensor4D;
      const { alignCorners } = attrs as unknown as { alignCorners: boolean };
      const kH = g.shape[1] / images.shape[1], kW = g.shape[2] / images.shape[2];
      if (alignCorners || !Number.isInteger(kH) || !Number.isInteger(kW)) return fallback.gradFunc(dy, saved, attrs);
      return { images: () => tf.mul(tf.avgPool(g, [kH, kW], [kH, kW], "valid"), kH * kW) };
    },
  });
  tf.registerGradient({
    kernelName: "SquaredDifference",
    inputsToSave: ["a", "b"],
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
      const [a, b] = saved;
      const g = dy as tf.Tensor;
      return {
        a: () => sumToShape(tf.mul(g, tf.mul(tf.sub(a, b), 2)), a.shape),
        b: () => sumToShape(tf.mul(g, tf.mul(tf.sub(b, a), 2)), b.shape),
      };
    },
  });
}

/** Sum `g` over the axes along which a tensor of `shape` was broadcast to g's shape. */
export function sumToShape(g: tf.Tensor, shape: number[]): tf.Tensor {
  const lead = g.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  return axes.length ? tf.reshape(tf.sum(g, axes), shape) : g;
}

/** Restore tfjs' stock kernels and gradients. */
export function uninstallTrainingKernels(): void {
  if (!stock) return;
  for (const name of REPLACED) {
    tf.unregisterKernel(name, BACKEND);
    const old = stock.get(name);
    if (old) tf.registerKernel(old);
  }
  stock = null;
  for (const g of stockGrads ?? []) tf.registerGradient(g);
  stockGrads = null;
}

/** Whether `installTrainingKernels()` is in effect. */
export function trainingKernelsInstalled(): boolean {
  return stock != null;
}
