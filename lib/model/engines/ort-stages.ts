/**
 * Networks described as stages (lib/model/nets/ops: the torchvision ResNet and ViT, the GAN discriminator) on
 * ONNX Runtime: the graph is lowered from the same stages that tfjs runs (lib/model/nets/lower-onnx), its
 * weights written as external data, the model kept in the U-Net's cache (./onnx-cache: complete marker,
 * sizes and SHA-256 checked before every load) under a key naming the network, its configuration, its
 * weights' fingerprint and the outputs.
 */
import type { HostParam } from "../nets/weights";
import type { Stage } from "../nets/ops";
import { buildStagesOnnx } from "../nets/lower-onnx";
import { selectLayers } from "../nets/select";
import type { HostTensor } from "./engine";
import { cachedModel, CachedModel, defaultOnnxCacheRoot, graphBuilder } from "./onnx-cache";
import { openSession, OrtSession, OrtSessionSettings } from "./ort-runtime";
import type * as Ort from "onnxruntime-node";

export interface StagesModelSpec {
  /** The network's kind ("torchvision-resnet", "dcgan-discriminator"): part of the cache key. */
  network: string;
  /** Its configuration (part of the cache key). */
  config: unknown;
  /** The weights' identity (content fingerprint or seed): part of the cache key. */
  weightsId: string;
  stages: Stage[];
  /** Reads the weights (conv OIHW, linear [in, out], BatchNorm folded): called only when the model is built. */
  params: () => Promise<Map<string, HostParam>>;
  /** Input channels (the input is x [N, C, H, W], H and W free). */
  inChannels: number;
  /** Stage outputs to return (default: every stage); the graph ends at the last. */
  layers?: string[];
  /** Names the network in errors ("ResNet"). */
  what: string;
  cacheRoot?: string;
}

/** Build (or find in the cache) the ONNX model of a stage network; `outputs` in network order. */
export async function buildStagesModel(spec: StagesModelSpec): Promise<CachedModel & { outputs: string[] }> {
  const all = spec.stages.map((s) => s.name);
  const { wanted } = selectLayers(all, spec.layers, spec.what);
  const outputs = all.filter((n) => wanted.has(n));
  const key = { network: spec.network, config: spec.config, weights: spec.weightsId, outputs };
  const cached = await cachedModel(
    key,
    graphBuilder(`${spec.what} built by diffprobe from its stages (lib/model/nets/lower-onnx.ts)`, async (g) => {
      const params = await spec.params();
      const x = g.input("x", ["N", spec.inChannels, "H", "W"]);
      buildStagesOnnx(g, spec.stages, params, x, outputs, spec.what);
      return { network: spec.network, weights: spec.weightsId, outputs: outputs.join(",") };
    }),
    spec.cacheRoot ?? defaultOnnxCacheRoot(),
  );
  return { ...cached, outputs };
}

/** A stage network on ONNX Runtime: NCHW float32 in, the requested stage outputs out. */
export class OrtStagesEngine {
  readonly name = "ort" as const;

  private constructor(
    readonly outputs: string[],
    readonly description: string,
    readonly provider: string,
    readonly loadSeconds: number,
    readonly model: CachedModel,
    private readonly s: OrtSession,
    private readonly inChannels: number,
  ) {}

  static async create(spec: StagesModelSpec, settings: OrtSessionSettings = {}): Promise<OrtStagesEngine> {
    const t0 = Date.now();
    const model = await buildStagesModel(spec);
    const s = await openSession(model.modelPath, settings);
    return new OrtStagesEngine(model.outputs, s.description, s.provider, (Date.now() - t0) / 1000, model, s, spec.inChannels);
  }

  /** One pass on `x` of shape [n, C, h, w]. */
  async run(x: Float32Array, shape: readonly number[]): Promise<Map<string, HostTensor>> {
    if (shape.length !== 4 || shape[1] !== this.inChannels) throw new Error(`input shape [${shape.join(", ")}]: expected NCHW with ${this.inChannels} channels`);
    const n = shape.reduce((a, b) => a * b, 1);
    if (x.length !== n) throw new Error(`input has ${x.length} values; shape [${shape.join(", ")}] needs ${n}`);
    const feeds: Record<string, Ort.Tensor> = { x: new this.s.ort.Tensor("float32", x, [...shape]) };
    const res = await this.s.session.run(feeds);
    const out = new Map<string, HostTensor>();
    for (const name of this.outputs) out.set(name, { data: res[name].data as Float32Array, shape: res[name].dims.map(Number) });
    return out;
  }

  async dispose(): Promise<void> {
    await this.s.session.release();
  }
}
