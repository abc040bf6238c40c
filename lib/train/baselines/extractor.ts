/**
 * The baselines' doors into the feature store (lib/features/store/extractor's FeatureExtractor), so that the GAN
 * discriminator and the supervised encoder are probed with the same store, heads and protocol as the
 * U-Net. Both networks see clean images: the only timestep they accept is t = 0, which here means "the
 * image as it is" (no noise is added; the noise policy is recorded in the key but unused). Rows are the
 * probed layer's map pooled channel-major (lib/features/pooling), as for the U-Net. The model id is the weights
 * file's content fingerprint (sha256 of the file). Both run on the engine chosen as for the U-Net (ONNX
 * Runtime where it loads, else tfjs; lib/model/engines/engine chooseEngine).
 */
import * as tf from "@tensorflow/tfjs";
import { contentFingerprint } from "../../model/checkpoint/fingerprint";
import type { FeatureBatch, FeatureMatrix } from "../../features/extract";
import { PoolSpec, poolGrid, poolLabel, poolNHWC } from "../../features/pooling";
import { tfjsRecord } from "../../features/store/extractor";
import type { FeatureExtractor, FeatureRequest, RowLayout } from "../../features/store/extractor";
import { loadStateDict } from "../../model/checkpoint/index";
import { chooseEngine, EngineChoice, HostTensor } from "../../model/engines/engine";
import { OrtStagesEngine } from "../../model/engines/ort-stages";
import { OrtUNetEngine } from "../../model/engines/ort-unet";
import type { OrtSessionSettings } from "../../model/engines/ort-runtime";
import { readNetParams } from "../../model/nets/weights";
import { DcganConfig, DEFAULT_DCGAN, discriminate, DISCRIMINATOR_LAYERS, discriminatorLayerShape, discriminatorSpecs, discriminatorStages } from "./dcgan";
import { encoderBlocks, encoderClassifierSpecs } from "./encoder-classifier";
import { Dcgan } from "./gan-trainer";
import { EncoderClassifier } from "./supervised-trainer";

/** A probed layer: module name, 1-based number, output map [H, W, C] for h x w inputs. */
export interface ProbedLayer { name: string; number: number; mapShape(h: number, w: number): [number, number, number] }

export interface CleanImageModel {
  layers: ProbedLayer[];
  /** Outputs of the captured layers (NHWC; the caller disposes them); a promise on ONNX Runtime. */
  run(x: tf.Tensor4D, capture: string[]): Map<string, tf.Tensor4D> | Promise<Map<string, tf.Tensor4D>>;
}

function resolveLayers(model: CleanImageModel, blocks: (number | string)[]): ProbedLayer[] {
  return blocks.map((b) => {
    const hit = model.layers.find((l) => l.name === String(b) || String(l.number) === String(b));
    if (!hit) throw new Error(`no probed layer ${JSON.stringify(b)} (layers: ${model.layers.map((l) => `${l.number}/${l.name}`).join(", ")})`);
    return hit;
  });
}

/**
 * A FeatureExtractor over a network that takes clean images (see the module comment). `alsoPool`: pools
 * to compute as well on every forward pass and keep in memory, so that a later request for the same
 * images with one of them (the store extracts one pool per job) costs no second forward pass.
 */
export function cleanImageExtractor(model: CleanImageModel, modelId: string, opts: { batchSize?: number; alsoPool?: PoolSpec[] } = {}): FeatureExtractor {
  const batchSize = opts.batchSize ?? 64;
  const kept = new Map<string, Float32Array>();
  const keyOf = (pool: PoolSpec, layer: string, ids: string[]) => `${poolLabel(pool)}|${layer}|${ids.length}|${ids.join(",")}`;
  const layout = (req: FeatureRequest, h: number, w: number): RowLayout[] => resolveLayers(model, req.blocks).map((l) => {
    const [mh, mw, c] = l.mapShape(h, w);
    const [r, k] = poolGrid(req.pool, mh, mw);
    return { block: l.name, number: l.number, dim: c * r * k, rowShape: [c, r, k] };
  });
  return {
    modelId,
    layout,
    engine: () => tfjsRecord(undefined, "this thread"),
    async extract(images, ids, req) {
      const bad = req.timesteps.filter((t) => t !== 0);
      if (bad.length) throw new Error(`this network has no timestep: ask t = 0 (clean images), got t = ${bad.join(", ")}`);
      const [n, h, w, c] = images.shape;
      const layers = resolveLayers(model, req.blocks);
      const rows = layout(req, h, w);
      const names = [...new Set(layers.map((l) => l.name))];
      const data = new Map<string, Float32Array>();
      const todo: string[] = [];
      for (const nm of names) {
        const hit = kept.get(keyOf(req.pool, nm, ids));
        if (hit) {
          data.set(nm, hit);
          kept.delete(keyOf(req.pool, nm, ids));
        } else todo.push(nm);
      }
      const extraPools = (opts.alsoPool ?? []).filter((p) => poolLabel(p) !== poolLabel(req.pool));
      const dimOf = (pool: PoolSpec, nm: string) => {
        const [mh, mw, ch] = layers.find((l) => l.name === nm)!.mapShape(h, w);
        const [r, k] = poolGrid(pool, mh, mw);
        return ch * r * k;
      };
      if (todo.length) {
        for (const nm of todo) data.set(nm, new Float32Array(n * dimOf(req.pool, nm)));
        const extra = new Map(extraPools.flatMap((p) => todo.map((nm) => [keyOf(p, nm, ids), { pool: p, nm, out: new Float32Array(n * dimOf(p, nm)) }] as const)));
        const per = h * w * c;
        for (let s = 0; s < n; s += batchSize) {
          const e = Math.min(n, s + batchSize);
          const x = tf.tensor4d(images.data.subarray(s * per, e * per), [e - s, h, w, c]);
          let out: Map<string, tf.Tensor4D>;
          try {
            out = await model.run(x, todo);
          } finally {
            x.dispose();
          }
          try {
            for (const nm of todo) {
              const fm = out.get(nm)!;
              const values = (await fm.data()) as Float32Array;
              poolNHWC(values, fm.shape, req.pool, data.get(nm)!, s * dimOf(req.pool, nm));
              for (const x2 of extra.values()) if (x2.nm === nm) poolNHWC(values, fm.shape, x2.pool, x2.out, s * dimOf(x2.pool, nm));
            }
          } finally {
            for (const t of out.values()) t.dispose();
          }
        }
        for (const [k, v] of extra) kept.set(k, v.out);
      }
      const matrices: FeatureMatrix[] = [];
      for (const r of rows) {
        const l = layers.find((q) => q.name === r.block)!;
        for (const t of req.timesteps) {
          matrices.push({ block: r.block, number: r.number, t, n, dim: r.dim, data: data.get(r.block)!, mapShape: l.mapShape(h, w), rowShape: r.rowShape as [number, number, number] });
        }
      }
      const batch: FeatureBatch = { n, ids: ids.map(String), matrices };
      return batch;
    },
    close: async () => kept.clear(),
  };
}

/** The discriminator's probed layers d.conv0..2 (numbers 1..3). */
export function discriminatorLayers(c: DcganConfig): ProbedLayer[] {
  return DISCRIMINATOR_LAYERS.map((name, i) => ({
    name, number: i + 1,
    mapShape: (h: number, w: number) => {
      if (h !== c.imageSize || w !== c.imageSize) throw new Error(`the discriminator takes ${c.imageSize}x${c.imageSize} images, got ${h}x${w}`);
      return discriminatorLayerShape(c, name);
    },
  }));
}

/** The discriminator's layers d.conv0..2 (numbers 1..3) as a clean-image model (tfjs). */
export function discriminatorModel(gan: Dcgan): CleanImageModel {
  const c: DcganConfig = gan.config;
  return {
    layers: discriminatorLayers(c),
    run: (x, capture) => discriminate(c, { get: (k) => gan.d.get(k)! }, x, { capture, stopEarly: true }).layers,
  };
}

/** The encoder's probed blocks (U-Net names and paper numbers: input blocks, then the middle block). */
export function encoderLayers(unet: EncoderClassifier["unet"]): ProbedLayer[] {
  return encoderBlocks(unet).map((b) => ({
    name: b.name, number: b.number,
    mapShape: (h: number, w: number) => {
      if (h !== unet.imageSize || w !== unet.imageSize) throw new Error(`the encoder takes ${unet.imageSize}x${unet.imageSize} images, got ${h}x${w}`);
      return [b.outRes, b.outRes, b.outCh] as [number, number, number];
    },
  }));
}

/** The encoder blocks as a clean-image model (tfjs). */
export function encoderModel(net: EncoderClassifier): CleanImageModel {
  return { layers: encoderLayers(net.unet), run: (x, capture) => net.forward(x, { capture, stopEarly: true }).blocks };
}

/** A probed-layer network on ONNX Runtime, one graph per set of captured layers (built on first use, cached on disk). */
interface HostNet {
  run(x: Float32Array, shapeNCHW: number[]): Promise<Map<string, HostTensor>>;
  dispose(): Promise<void>;
}

/** A clean-image model whose passes run on ONNX Runtime: NHWC tfjs tensors in and out, as the tfjs models. */
function ortCleanImageModel(layers: ProbedLayer[], make: (capture: string[]) => Promise<HostNet>): LoadedModel {
  const nets = new Map<string, Promise<HostNet>>();
  const model: CleanImageModel = {
    layers,
    async run(x, capture) {
      const key = [...capture].sort().join(",");
      if (!nets.has(key)) nets.set(key, make([...capture]));
      let net: HostNet;
      try {
        net = await nets.get(key)!;
      } catch (e) {
        nets.delete(key); // a failed build is not kept: the next call tries again
        throw e;
      }
      const [n, h, w, c] = x.shape;
      const nchw = tf.transpose(x, [0, 3, 1, 2]);
      const data = (await nchw.data()) as Float32Array;
      nchw.dispose();
      const res = await net.run(data, [n, c, h, w]);
      return new Map(capture.map((name) => {
        const t = res.get(name);
        if (!t) throw new Error(`the ONNX model returned no ${name}`);
        return [name, tf.tidy(() => tf.transpose(tf.tensor4d(t.data, t.shape as [number, number, number, number]), [0, 2, 3, 1]))];
      }));
    },
  };
  const close = async () => {
    const built = await Promise.allSettled(nets.values());
    nets.clear();
    for (const b of built) if (b.status === "fulfilled") await b.value.dispose();
  };
  return { model, close };
}

export interface BaselineEngineOptions extends OrtSessionSettings {
  /** "auto" (default: $DIFFPROBE_ENGINE, else ONNX Runtime where it loads), "ort" or "tfjs". */
  engine?: string;
  /** Where built ONNX models are kept (default .cache/onnx or $DIFFPROBE_ONNX_CACHE). */
  cacheRoot?: string;
}

/** A clean-image model, what to call when done with it, and how its engine was chosen. */
export interface LoadedModel {
  model: CleanImageModel;
  close(): Promise<void>;
  choice?: EngineChoice;
}

/**
 * The discriminator of a GAN weights file on the engine chosen as for the U-Net: ONNX Runtime (the graph
 * lowered from discriminatorStages, cached by the file's fingerprint) or tfjs.
 */
export async function loadDiscriminatorModel(file: string, config: DcganConfig = DEFAULT_DCGAN, opts: BaselineEngineOptions = {}): Promise<LoadedModel> {
  const choice = chooseEngine(opts.engine === "auto" ? undefined : opts.engine);
  if (choice.name === "tfjs") {
    const gan = await Dcgan.load(file, config);
    return { model: discriminatorModel(gan), close: async () => gan.dispose(), choice };
  }
  const weightsId = await contentFingerprint(file);
  const specs = discriminatorSpecs(config).map((p) => ({ name: p.name, shape: p.shape, kind: p.kind === "vector" ? ("plain" as const) : (p.kind as "conv2d" | "linear") }));
  const loaded = ortCleanImageModel(discriminatorLayers(config), async (capture) => {
    const eng = await OrtStagesEngine.create(
      {
        network: "dcgan-discriminator",
        config,
        weightsId,
        stages: discriminatorStages(),
        params: async () => {
          const sd = await loadStateDict(file);
          return readNetParams(specs, new Map([...sd].filter(([k]) => k.startsWith("d."))), file, { conv: "OIHW" });
        },
        inChannels: config.channels,
        layers: capture,
        what: "DCGAN discriminator",
        cacheRoot: opts.cacheRoot,
      },
      opts,
    );
    return { run: (x, shape) => eng.run(x, shape), dispose: () => eng.dispose() };
  });
  return { ...loaded, choice };
}

/**
 * The supervised encoder of a file (supervised.safetensors) on the engine chosen as for the U-Net: ONNX
 * Runtime (the U-Net graph builder, lib/model/engines/unet-graph, to the deepest captured block, at t = 0)
 * or tfjs.
 */
export async function loadEncoderModel(file: string, unet: EncoderClassifier["unet"], classes = 10, opts: BaselineEngineOptions = {}): Promise<LoadedModel> {
  const choice = chooseEngine(opts.engine === "auto" ? undefined : opts.engine);
  if (choice.name === "tfjs") {
    const net = await EncoderClassifier.load(file, unet, classes);
    return { model: encoderModel(net), close: async () => net.dispose(), choice };
  }
  const expected = new Map(encoderClassifierSpecs(unet, classes).map((p) => [p.name, p.shape]));
  const loaded = ortCleanImageModel(encoderLayers(unet), async (capture) => {
    const eng = await OrtUNetEngine.create({ config: unet, checkpoint: file }, { ...opts, outputs: capture, expected });
    return { run: (x, shape) => eng.run(x, shape[0], new Array(shape[0]).fill(0)), dispose: () => eng.dispose() };
  });
  return { ...loaded, choice };
}

/** Extractor of a GAN weights file (gan.safetensors); model id = the file's sha256. Close releases the model. */
export async function ganExtractor(file: string, config?: DcganConfig, opts: { batchSize?: number; alsoPool?: PoolSpec[] } & BaselineEngineOptions = {}): Promise<FeatureExtractor> {
  const m = await loadDiscriminatorModel(file, config, opts);
  const ex = cleanImageExtractor(m.model, await contentFingerprint(file), opts);
  return { ...ex, close: async () => m.close() };
}

/** Extractor of a supervised encoder file (supervised.safetensors + its model.json's U-Net config). */
export async function supervisedExtractor(
  file: string,
  unet: EncoderClassifier["unet"],
  classes = 10,
  opts: { batchSize?: number; alsoPool?: PoolSpec[] } & BaselineEngineOptions = {},
): Promise<FeatureExtractor> {
  const m = await loadEncoderModel(file, unet, classes, opts);
  const ex = cleanImageExtractor(m.model, await contentFingerprint(file), opts);
  return { ...ex, close: async () => m.close() };
}
