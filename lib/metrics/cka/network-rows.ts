/**
 * Rows of a torchvision network's layers for CKA, streamed over batches of image files:
 *
 *   files -> torchvision's evaluation transform (Resize 256, CenterCrop 224, Normalize; lib/data/torchvision-transform)
 *         -> the network on its engine (lib/model/nets/net-engine createNetEngine: ONNX Runtime or tfjs, chosen
 *            as for the U-Net) -> one row per image and layer
 *
 * The layer names, kinds and widths come from the network's configuration (NetConfig: no weights needed);
 * the rows from the engine's layer outputs in plain memory, whichever engine ran them.
 *
 * What a row is, per kind of layer output:
 * - a feature map NCHW (ResNet's conv1 ... layer4, ViT's conv_proj): adaptive average pooling to
 *   `pool` x `pool` (PyTorch's bin edges), flattened channel-major [C, pool, pool] — as the diffusion
 *   blocks are pooled (lib/features/pooling poolChannelMajorRows);
 * - ViT tokens [N, 1 + g*g, D] (encoder.dropout, encoder layers, encoder.ln): `tokens: "patches"` (default)
 *   drops the class token and lays the patch tokens back on their g x g grid (patch y*g + x, as conv_proj
 *   flattened them), then pools that [D, g, g] map like any other; with `pool` 1 this is the mean of the patch
 *   tokens. Why not the class token: at the embedding it is the same vector for every image (class_token +
 *   position 0), so its CKA is undefined there, and in early layers it has gathered little from the image;
 *   the patch grid is defined at every layer and is treated exactly as a ResNet map. `tokens: "cls"` takes the
 *   class token instead ([D]);
 * - a vector [N, C] (avgpool, fc, heads): as is.
 *
 * The stream reads `{ ids, files }` batches and yields `{ ids, rows }`, so a consumer that walks it in step
 * with another stream (lib/metrics/cka/zip zipStreams) can check both saw the same images (sameImages).
 */
import { torchvisionBatch, TorchvisionTransformOptions } from "../../data/torchvision-transform";
import type { HostTensor } from "../../model/engines/engine";
import type { NetConfig } from "../../model/nets/load";
import type { NetEngine } from "../../model/nets/net-engine";
import { resnetLayers } from "../../model/nets/resnet";
import { vitLayers } from "../../model/nets/vit";
import { poolChannelMajorRows } from "../../features/pooling";
import { progress as makeProgress } from "../../display/progress";

export type TokenRows = "patches" | "cls";

export interface NetworkRowsOptions {
  /** Layer names (from netLayerNames(config)); the engine must return each (createNetEngine's `layers`). */
  layers: string[];
  /** Adaptive average pooled size of maps and of the ViT patch grid. */
  pool: number;
  /** ViT token layers: "patches" (default: the patch-token grid, pooled) or "cls" (the class token). */
  tokens?: TokenRows;
  /** Resize / CenterCrop sizes of the transform (default 256 / 224). */
  transform?: TorchvisionTransformOptions;
}

/** A batch of images as the networks read them: ids (for checks and messages) and the files or encoded bytes. */
export interface FileBatch {
  ids: string[];
  files: (string | Buffer)[];
}

export interface NetworkRowBatch {
  ids: string[];
  /** Layer name -> n rows of networkLayerDims' width, row-major. */
  rows: Map<string, Float32Array>;
}

/**
 * The layers the paper's figure has per network, as this project picks them (the paper gives the counts,
 * 19 for ResNet-50 and 14 for ViT-B, not the names): ResNet — conv1 (the first convolution on the image),
 * maxpool (the stem's output), every Bottleneck block's output, avgpool; ViT — conv_proj (the patch
 * embedding), every encoder layer, encoder.ln. ResNet-50: 1 + 1 + 16 + 1 = 19; ViT-B/16: 1 + 12 + 1 = 14.
 */
export function ckaNetworkLayers(net: NetConfig): string[] {
  return ckaLayerChoice(net.family, netLayerNames(net));
}

/** Every layer output of a configuration, in forward order (the names createNetEngine's `layers` takes). */
export function netLayerNames(net: NetConfig): string[] {
  return net.family === "resnet" ? resnetLayers(net.config) : vitLayers(net.config);
}

/** ckaNetworkLayers from a family and its full layer list (resnetLayers(cfg) / vitLayers(cfg): no weights needed). */
export function ckaLayerChoice(family: "resnet" | "vit", all: readonly string[]): string[] {
  if (family === "resnet") return ["conv1", "maxpool", ...all.filter((n) => /^layer\d+\.\d+$/.test(n)), "avgpool"];
  return ["conv_proj", ...all.filter((n) => /^encoder\.layers\.encoder_layer_\d+$/.test(n)), "encoder.ln"];
}

/** Short axis labels: "layer3.5" stays, "encoder.layers.encoder_layer_7" becomes "block7", "encoder.ln" "ln". */
export function shortLayerLabel(name: string): string {
  const m = /^encoder\.layers\.encoder_layer_(\d+)$/.exec(name);
  if (m) return `block${m[1]}`;
  return name === "encoder.ln" ? "ln" : name;
}

type Kind = { kind: "map" | "tokens" | "vector"; width: number };

/** What a layer outputs: a map (its channels), tokens (hidden width) or a vector (its length). */
function layerKind(net: NetConfig, layer: string): Kind {
  const all = netLayerNames(net);
  if (!all.includes(layer)) throw new Error(`network layer "${layer}" does not exist; the layers are ${all.join(", ")}`);
  if (net.family === "resnet") {
    const c = net.config;
    if (["conv1", "bn1", "relu", "maxpool"].includes(layer)) return { kind: "map", width: c.stemWidth };
    const m = /^layer(\d+)(\.\d+)?$/.exec(layer);
    if (m) return { kind: "map", width: c.outChannels[Number(m[1]) - 1] };
    if (layer === "avgpool") return { kind: "vector", width: c.outChannels[c.outChannels.length - 1] };
    return { kind: "vector", width: c.numClasses! };
  }
  const c = net.config;
  if (layer === "conv_proj") return { kind: "map", width: c.hiddenDim };
  if (layer === "heads") return { kind: "vector", width: c.numClasses! };
  return { kind: "tokens", width: c.hiddenDim };
}

function checkOptions(opts: NetworkRowsOptions): void {
  if (!(Number.isInteger(opts.pool) && opts.pool >= 1)) throw new Error(`network rows: pool must be an integer >= 1, got ${JSON.stringify(opts.pool)}`);
  if (opts.tokens !== undefined && opts.tokens !== "patches" && opts.tokens !== "cls") throw new Error(`network rows: tokens must be "patches" or "cls", got ${JSON.stringify(opts.tokens)}`);
  if (!Array.isArray(opts.layers) || opts.layers.length === 0) throw new Error("network rows: no layers requested");
}

/** Width of each requested layer's rows (no forward pass), for the CKA accumulator's layer list. */
export function networkLayerDims(net: NetConfig, opts: NetworkRowsOptions): Map<string, number> {
  checkOptions(opts);
  const p2 = opts.pool * opts.pool;
  return new Map(
    opts.layers.map((l) => {
      const k = layerKind(net, l);
      const dim = k.kind === "map" ? k.width * p2 : k.kind === "tokens" ? (opts.tokens === "cls" ? k.width : k.width * p2) : k.width;
      return [l, dim] as [string, number];
    }),
  );
}

/** ViT tokens [n, 1 + g*g, d] -> the patch tokens as channel-major maps [n][d][g][g] (class token dropped). */
export function patchTokenMaps(tokens: Float32Array, n: number, seq: number, d: number): { data: Float32Array; grid: number } {
  const g = Math.round(Math.sqrt(seq - 1));
  if (g * g !== seq - 1) throw new Error(`ViT tokens: ${seq} tokens are not a class token + a square grid of patches`);
  const out = new Float32Array(n * d * g * g);
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < g * g; p++) {
      const src = (i * seq + 1 + p) * d;
      const dst = i * d * g * g + p;
      for (let c = 0; c < d; c++) out[dst + c * g * g] = tokens[src + c];
    }
  }
  return { data: out, grid: g };
}

/** One layer output (an engine's, in plain memory) as rows. */
function hostTensorRows(t: HostTensor, layer: string, opts: Pick<NetworkRowsOptions, "pool" | "tokens">): Float32Array {
  const { data, shape } = t;
  const [n] = shape;
  if (shape.length === 4) return poolChannelMajorRows(data, n, shape.slice(1), opts.pool);
  if (shape.length === 3) {
    const [, seq, d] = shape;
    if (opts.tokens === "cls") {
      const out = new Float32Array(n * d);
      for (let i = 0; i < n; i++) out.set(data.subarray(i * seq * d, i * seq * d + d), i * d);
      return out;
    }
    const { data: maps, grid } = patchTokenMaps(data, n, seq, d);
    return poolChannelMajorRows(maps, n, [d, grid, grid], opts.pool);
  }
  if (shape.length === 2) return Float32Array.from(data);
  throw new Error(`network layer ${layer}: output of rank ${shape.length} (shape [${shape.join(", ")}]) is not a map, tokens or a vector`);
}

/** The requested layers exist in the engine's network and are among its outputs (else an error naming them). */
function checkEngineLayers(engine: NetEngine, opts: NetworkRowsOptions): void {
  networkLayerDims(engine.net, opts); // unknown layer names
  const missing = opts.layers.filter((l) => !engine.outputs.includes(l));
  if (missing.length) {
    throw new Error(`network rows: layer${missing.length > 1 ? "s" : ""} ${missing.map((l) => JSON.stringify(l)).join(", ")} not among the engine's outputs (${engine.outputs.join(", ")}); create it with createNetEngine(file, { layers }) naming them`);
  }
}

/** Rows of every requested layer for one NCHW batch (already transformed), on the network's engine. */
export async function networkBatchRows(engine: NetEngine, x: { data: Float32Array; shape: [number, number, number, number] }, opts: NetworkRowsOptions): Promise<Map<string, Float32Array>> {
  checkOptions(opts);
  checkEngineLayers(engine, opts);
  const outs = await engine.run(x.data, x.shape);
  const rows = new Map<string, Float32Array>();
  for (const l of opts.layers) rows.set(l, hostTensorRows(outs.get(l)!, l, opts));
  return rows;
}

/** The same images, in the same order, on both sides of a zipped pair of streams; else an error naming the first difference. */
export function sameImages(a: readonly string[], b: readonly string[], what: string): void {
  if (a.length === b.length && a.every((x, i) => x === b[i])) return;
  const i = a.findIndex((x, k) => x !== b[k]);
  const at = i < 0 ? Math.min(a.length, b.length) : i;
  throw new Error(`${what}: the streams are out of step: ${a.length} vs ${b.length} images, first difference at position ${at} (${JSON.stringify(a[at])} vs ${JSON.stringify(b[at])})`);
}

/**
 * The rows of `opts.layers` for every batch of files, in input order (read lazily: one batch in memory).
 * `progress` labels a progress display over `total` images.
 */
export async function* networkRows(
  engine: NetEngine,
  batches: Iterable<FileBatch> | AsyncIterable<FileBatch>,
  opts: NetworkRowsOptions & { progress?: string | false; total?: number },
): AsyncGenerator<NetworkRowBatch, void, undefined> {
  checkOptions(opts);
  checkEngineLayers(engine, opts); // unknown layer names fail before any image is read
  const bar = opts.progress ? makeProgress({ total: opts.total ?? 0, label: opts.progress, unit: "img" }) : null;
  let done = false;
  try {
    for await (const b of batches) {
      if (b.ids.length !== b.files.length) throw new Error(`network rows: a batch has ${b.ids.length} ids for ${b.files.length} files`);
      if (b.files.length === 0) continue;
      let x: Awaited<ReturnType<typeof torchvisionBatch>>;
      try {
        x = await torchvisionBatch(b.files, opts.transform);
      } catch (e) {
        throw new Error(`network rows: batch ${b.ids[0]}..${b.ids[b.ids.length - 1]}: ${(e as Error).message}`);
      }
      const rows = await networkBatchRows(engine, x, opts);
      bar?.tick(b.ids.length);
      yield { ids: b.ids, rows };
    }
    done = true;
  } finally {
    bar?.done(done ? undefined : { stopped: "error or early exit" });
  }
}
