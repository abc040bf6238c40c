/**
 * A torchvision network (Bottleneck ResNet or VisionTransformer) on the engine the U-Net uses
 * (lib/model/engines/engine chooseEngine: ONNX Runtime where its binding loads, else tfjs, or forced by
 * argument / $DIFFPROBE_ENGINE). Both engines take NCHW float32 images and return the requested layer
 * outputs (NCHW maps, [N, T, D] tokens, [N, k] vectors) in plain memory.
 */
import * as tf from "@tensorflow/tfjs";
import { contentFingerprint } from "../checkpoint/fingerprint";
import { loadStateDict } from "../checkpoint/index";
import type { StateDict } from "../checkpoint/state-dict";
import { chooseEngine, EngineChoice, EngineName, HostTensor } from "../engines/engine";
import { OrtStagesEngine } from "../engines/ort-stages";
import type { OrtSessionSettings } from "../engines/ort-runtime";
import { detectFamily, NetConfig, netFromStateDict, presetConfig, TorchvisionNet } from "./load";
import type { Stage } from "./ops";
import { selectLayers } from "./select";
import { resnetConfigFromStateDict, resnetParams, resnetStages } from "./resnet";
import { checkVitConfig, checkVitInputSize, normalizeVitKeys, vitConfigFromStateDict, vitParams, vitStages } from "./vit";
import { NetParam, readNetParams } from "./weights";

export interface NetEngine {
  readonly name: EngineName;
  /** What runs ("onnxruntime-node 1.30.0, cpu, 2 threads", "tfjs 4.22.0, wasm"). */
  readonly description: string;
  readonly net: NetConfig;
  /** Layer outputs returned, in network order. */
  readonly outputs: string[];
  /** Seconds to make it ready (weights read, graph built or found in the cache, session opened). */
  readonly loadSeconds: number;
  run(x: Float32Array, shape: readonly number[]): Promise<Map<string, HostTensor>>;
  dispose(): Promise<void>;
}

/** The stages, parameters and layer names of a configuration. */
export function netDescription(net: NetConfig): { stages: Stage[]; params: NetParam[]; what: string; inChannels: number } {
  if (net.family === "resnet") return { stages: resnetStages(net.config), params: resnetParams(net.config), what: "ResNet", inChannels: net.config.inChannels };
  checkVitConfig(net.config);
  return { stages: vitStages(net.config), params: vitParams(net.config), what: "VisionTransformer", inChannels: net.config.inChannels };
}

export interface NetEngineOptions extends OrtSessionSettings {
  /** "auto" (default: $DIFFPROBE_ENGINE, else automatic), "ort" or "tfjs". */
  engine?: string;
  /** The configuration (default: derived from the state dict, or `preset`). */
  config?: NetConfig;
  preset?: string;
  /** Layer outputs to return (default every layer); the pass stops after the last. */
  layers?: string[];
  /** Where built ONNX models are kept (default .cache/onnx or $DIFFPROBE_ONNX_CACHE). */
  cacheRoot?: string;
  /** The state dict, when already read (else read from the file). */
  stateDict?: StateDict;
}

class TfjsNetEngine implements NetEngine {
  readonly name = "tfjs" as const;
  constructor(readonly net: NetConfig, readonly outputs: string[], readonly description: string, readonly loadSeconds: number, private readonly model: TorchvisionNet) {}

  async run(x: Float32Array, shape: readonly number[]): Promise<Map<string, HostTensor>> {
    const xt = tf.tensor4d(x, shape as [number, number, number, number]);
    let res = new Map<string, tf.Tensor>();
    try {
      res = this.model.forward(xt, { layers: this.outputs });
      const out = new Map<string, HostTensor>();
      for (const name of this.outputs) {
        const t = res.get(name)!;
        out.set(name, { data: (await t.data()) as Float32Array, shape: t.shape.slice() });
      }
      return out;
    } finally {
      xt.dispose();
      for (const t of res.values()) t.dispose();
    }
  }

  async dispose(): Promise<void> {
    this.model.dispose();
  }
}

class OrtNetEngine implements NetEngine {
  readonly name = "ort" as const;
  constructor(readonly net: NetConfig, private readonly eng: OrtStagesEngine) {}
  get description() {
    return this.eng.description;
  }
  get outputs() {
    return this.eng.outputs;
  }
  get loadSeconds() {
    return this.eng.loadSeconds;
  }
  /** Where the built model lies (cache folder). */
  get modelDir() {
    return this.eng.model.dir;
  }

  async run(x: Float32Array, shape: readonly number[]): Promise<Map<string, HostTensor>> {
    // The channel count first (the engine's error), then a ViT's fixed size.
    if (this.net.family === "vit" && shape[1] === this.net.config.inChannels) checkVitInputSize(this.net.config, shape);
    return this.eng.run(x, shape);
  }

  dispose(): Promise<void> {
    return this.eng.dispose();
  }
}

/**
 * The network in `file` (torch zip / legacy / safetensors, torchvision names) on the chosen engine. The
 * ONNX model is cached by the file's content fingerprint, configuration and layers.
 */
export async function createNetEngine(file: string, opts: NetEngineOptions = {}): Promise<{ engine: NetEngine; choice: EngineChoice }> {
  const choice = chooseEngine(opts.engine === "auto" ? undefined : opts.engine);
  const t0 = Date.now();
  const raw = opts.stateDict ?? (await loadStateDict(file));
  const family = opts.config?.family ?? (opts.preset ? presetConfig(opts.preset).family : detectFamily(raw, file));
  const sd = family === "vit" ? normalizeVitKeys(raw) : raw;
  const net: NetConfig =
    opts.config ?? (opts.preset ? presetConfig(opts.preset) : family === "resnet" ? { family, config: resnetConfigFromStateDict(sd, file) } : { family, config: vitConfigFromStateDict(sd, { file }) });
  const d = netDescription(net);
  const all = d.stages.map((s) => s.name);
  const { wanted } = selectLayers(all, opts.layers, d.what);
  const layers = all.filter((n) => wanted.has(n));
  if (choice.name === "tfjs") {
    const model = await netFromStateDict(sd, { config: net, file });
    const outputs = layers;
    return { engine: new TfjsNetEngine(net, outputs, `tfjs ${tf.version.tfjs}, ${tf.getBackend()}`, (Date.now() - t0) / 1000, model), choice };
  }
  const eng = await OrtStagesEngine.create(
    {
      network: `torchvision-${net.family}`,
      config: net.config,
      weightsId: await contentFingerprint(file),
      stages: d.stages,
      params: () => readNetParams(d.params, sd, file, { conv: "OIHW" }),
      inChannels: d.inChannels,
      layers,
      what: d.what,
      cacheRoot: opts.cacheRoot,
    },
    opts,
  );
  return { engine: new OrtNetEngine(net, eng), choice };
}
