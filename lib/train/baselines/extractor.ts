/**
 * The baselines' doors into the feature store (lib/features/store/extractor's FeatureExtractor), so that the GAN
 * discriminator and the supervised encoder are probed with the same store, heads and protocol as the
 * U-Net. Both networks see clean images: the only timestep they accept is t = 0, which here means "the
 * image as it is" (no noise is added; the noise policy is recorded in the key but unused). Rows are the
 * probed layer's map pooled channel-major (lib/features/pooling), as for the U-Net. The model id is the weights
 * file's content fingerprint (sha256 of the file).
 */
import * as tf from "@tensorflow/tfjs";
import { contentFingerprint } from "../../model/checkpoint/fingerprint";
import type { FeatureBatch, FeatureMatrix } from "../../features/extract";
import { PoolSpec, poolGrid, poolLabel, poolNHWC } from "../../features/pooling";
import { tfjsRecord } from "../../features/store/extractor";
import type { FeatureExtractor, FeatureRequest, RowLayout } from "../../features/store/extractor";
import { DcganConfig, discriminate, DISCRIMINATOR_LAYERS, discriminatorLayerShape } from "./dcgan";
import { encoderBlocks } from "./encoder-classifier";
import { Dcgan } from "./gan-trainer";
import { EncoderClassifier } from "./supervised-trainer";

/** A probed layer: module name, 1-based number, output map [H, W, C] for h x w inputs. */
export interface ProbedLayer { name: string; number: number; mapShape(h: number, w: number): [number, number, number] }

export interface CleanImageModel {
  layers: ProbedLayer[];
  /** Outputs of the captured layers (NHWC; the extractor disposes them). */
  run(x: tf.Tensor4D, capture: string[]): Map<string, tf.Tensor4D>;
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
          const out = model.run(x, todo);
          x.dispose();
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

/** The discriminator's layers d.conv0..2 (numbers 1..3) as a clean-image model. */
export function discriminatorModel(gan: Dcgan): CleanImageModel {
  const c: DcganConfig = gan.config;
  return {
    layers: DISCRIMINATOR_LAYERS.map((name, i) => ({
      name, number: i + 1,
      mapShape: (h: number, w: number) => {
        if (h !== c.imageSize || w !== c.imageSize) throw new Error(`the discriminator takes ${c.imageSize}x${c.imageSize} images, got ${h}x${w}`);
        return discriminatorLayerShape(c, name);
      },
    })),
    run: (x, capture) => discriminate(c, { get: (k) => gan.d.get(k)! }, x, { capture, stopEarly: true }).layers,
  };
}

/** The encoder blocks (U-Net names and paper numbers: input blocks, then the middle block) as a clean-image model. */
export function encoderModel(net: EncoderClassifier): CleanImageModel {
  return {
    layers: encoderBlocks(net.unet).map((b) => ({
      name: b.name, number: b.number,
      mapShape: (h: number, w: number) => {
        if (h !== net.unet.imageSize || w !== net.unet.imageSize) throw new Error(`the encoder takes ${net.unet.imageSize}x${net.unet.imageSize} images, got ${h}x${w}`);
        return [b.outRes, b.outRes, b.outCh];
      },
    })),
    run: (x, capture) => net.forward(x, { capture, stopEarly: true }).blocks,
  };
}

/** Extractor of a GAN weights file (gan.safetensors); model id = the file's sha256. Close disposes the model. */
export async function ganExtractor(file: string, config?: DcganConfig, opts: { batchSize?: number; alsoPool?: PoolSpec[] } = {}): Promise<FeatureExtractor> {
  const gan = await Dcgan.load(file, config);
  const ex = cleanImageExtractor(discriminatorModel(gan), await contentFingerprint(file), opts);
  return { ...ex, close: async () => gan.dispose() };
}

/** Extractor of a supervised encoder file (supervised.safetensors + its model.json's U-Net config). */
export async function supervisedExtractor(file: string, unet: EncoderClassifier["unet"], classes = 10, opts: { batchSize?: number; alsoPool?: PoolSpec[] } = {}): Promise<FeatureExtractor> {
  const net = await EncoderClassifier.load(file, unet, classes);
  const ex = cleanImageExtractor(encoderModel(net), await contentFingerprint(file), opts);
  return { ...ex, close: async () => net.dispose() };
}
