/**
 * The U-Net on ONNX Runtime: the graph is built in TypeScript from the architecture plan (./unet-graph),
 * its weights streamed from the checkpoint into an external-data file, the result cached on disk by the
 * checkpoint's content fingerprint and the outputs (./onnx-cache), and run by onnxruntime-node.
 */
import { loadStateDict, validateStateDict } from "../checkpoint/index";
import { contentFingerprint } from "../checkpoint/fingerprint";
import type { UNetConfig } from "../unet/config";
import { timestepEmbedding } from "../unet/layers";
import { expectedParameterShapes, parameterSpecs } from "../unet/parameters";
import { randomParam } from "../unet/weights";
import type { ModelSource } from "../model-source";
import { sourceConfig } from "../model-source";
import { HostTensor, UNetEngine } from "./engine";
import { cachedModel, CachedModel, defaultOnnxCacheRoot, graphBuilder } from "./onnx-cache";
import { buildUNetGraph, ParamReader, resolveOutputs } from "./unet-graph";
import { loadOrt, openSession, OrtSessionSettings } from "./ort-runtime";
import type * as Ort from "onnxruntime-node";

export interface OrtEngineOptions extends OrtSessionSettings {
  /** Paper numbers or module names; "emb", "out". */
  outputs: (number | string)[];
  /** Spatial input size (default: the config's image size). */
  inputSize?: number;
  /** Where built models are kept (default .cache/onnx or $DIFFPROBE_ONNX_CACHE). */
  cacheRoot?: string;
  /**
   * Name -> shape of every tensor the checkpoint holds, when it is not a whole U-Net (the supervised encoder:
   * time_embed, input and middle blocks, and its own head). Default: the U-Net's parameters.
   */
  expected?: Map<string, number[]>;
}

/** The parameter reader and cache identity of a model source. */
async function weightsOf(src: ModelSource, config: UNetConfig, expected?: Map<string, number[]>): Promise<{ id: string; read: ParamReader; close: () => void }> {
  if ("checkpoint" in src && src.checkpoint !== undefined) {
    const file = src.checkpoint;
    const id = await contentFingerprint(file);
    let sd: Awaited<ReturnType<typeof loadStateDict>> | null = null;
    const read: ParamReader = async (name) => {
      if (!sd) {
        sd = await loadStateDict(file);
        validateStateDict(expected ?? expectedParameterShapes(config), sd, file);
      }
      return sd.get(name)!.readFloat32();
    };
    return { id, read, close: () => undefined };
  }
  const seed = (src as { seed: number }).seed;
  const specs = parameterSpecs(config);
  const index = new Map(specs.map((s, i) => [s.name, i]));
  return { id: `random-seed:${seed}`, read: async (name) => randomParam(specs[index.get(name)!], seed, index.get(name)!), close: () => undefined };
}

/** Build (or find in the cache) the ONNX model of `src` with these outputs. */
export async function buildOnnxModel(src: ModelSource, opts: OrtEngineOptions): Promise<CachedModel & { outputs: string[] }> {
  const config = sourceConfig(src);
  const { names } = resolveOutputs(config, opts.outputs);
  const w = await weightsOf(src, config, opts.expected);
  const inputSize = opts.inputSize ?? config.imageSize;
  const key = { weights: w.id, config, outputs: names, inputSize };
  const cached = await cachedModel(
    key,
    graphBuilder("guided-diffusion UNetModel built by diffprobe (lib/model/engines/unet-graph.ts)", async (g) => {
      await buildUNetGraph(g, { config, outputs: names, inputSize }, w.read);
      return { weights: w.id, outputs: names.join(",") };
    }),
    opts.cacheRoot ?? defaultOnnxCacheRoot(),
  );
  w.close();
  return { ...cached, outputs: names };
}

export class OrtUNetEngine implements UNetEngine {
  readonly name = "ort" as const;

  private constructor(
    readonly config: UNetConfig,
    readonly outputs: string[],
    readonly description: string,
    readonly loadSeconds: number,
    readonly model: CachedModel,
    private readonly session: Ort.InferenceSession,
    private readonly ort: typeof Ort,
    private readonly inputSize: number,
  ) {}

  static async create(src: ModelSource, opts: OrtEngineOptions): Promise<OrtUNetEngine> {
    const { ort, reason } = loadOrt();
    if (!ort) throw new Error(reason);
    const t0 = Date.now();
    const config = sourceConfig(src);
    const model = await buildOnnxModel(src, opts);
    const s = await openSession(model.modelPath, opts);
    return new OrtUNetEngine(config, model.outputs, s.description, (Date.now() - t0) / 1000, model, s.session, ort, opts.inputSize ?? config.imageSize);
  }

  async run(x: Float32Array, n: number, t: number[], y?: number[]): Promise<Map<string, HostTensor>> {
    const c = this.config;
    const s = this.inputSize;
    const per = c.inChannels * s * s;
    if (x.length !== n * per) throw new Error(`x has ${x.length} values; expected ${n} x ${c.inChannels} x ${s} x ${s} (NCHW) = ${n * per}`);
    if (t.length !== n) throw new Error(`${t.length} timesteps for a batch of ${n}`);
    const feeds: Record<string, Ort.Tensor> = {
      x: new this.ort.Tensor("float32", x, [n, c.inChannels, s, s]),
      temb: new this.ort.Tensor("float32", timestepEmbedding(t, c.modelChannels), [n, c.modelChannels]),
    };
    if (c.numClasses !== null) {
      if (!y || y.length !== n) throw new Error(`this model is class-conditional (${c.numClasses} classes): pass y, one label per image`);
      for (const v of y) if (!Number.isInteger(v) || v < 0 || v >= c.numClasses) throw new Error(`label ${v} is outside 0..${c.numClasses - 1}`);
      feeds.y = new this.ort.Tensor("int64", BigInt64Array.from(y.map((v) => BigInt(v))), [n]);
    } else if (y !== undefined) {
      throw new Error("labels y were given to an unconditional model (class_cond False)");
    }
    const res = await this.session.run(feeds);
    const out = new Map<string, HostTensor>();
    for (const name of this.outputs) {
      const v = res[name];
      out.set(name, { data: v.data as Float32Array, shape: v.dims.map(Number) });
    }
    return out;
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}
