/**
 * Feature extraction as in the paper: noise each image to timestep t (q_sample), run the U-Net up to
 * the last block asked for, take each requested block's feature map and pool it into a vector.
 *
 * One call handles several blocks x several timesteps for a batch: one forward pass per (t, noise
 * draw) serves every block, and stops after the deepest block needed. Tensors are disposed as soon as
 * their values are read, so tf memory does not grow from call to call.
 *
 * Noise policies:
 * - `seeded` (default, seed 0): eps for an image depends only on (seed, image key, t), never on
 *   which other images share its batch, so features are reproducible and storable (lib/features/store);
 * - `fresh`: a new draw on every call, as the paper's code does (torch.randn_like per batch);
 * - `ensemble`: k seeded draws per image, features are the mean of the k pooled vectors. Draw 0 is
 *   the `seeded` draw, so ensemble k=1 equals seeded with the same seed.
 * Draws come from lib/rng (plain JS): the same numbers on every backend.
 *
 * The image key is the image's id when `ids` are given, else its index (`indexOffset` + position).
 */
import * as tf from "@tensorflow/tfjs";
import { createHash, randomInt } from "crypto";
import { Rng } from "../rng";
import { NoiseSchedule } from "../model/diffusion/schedule";
import { qSampleCoefficients, qSampleInto } from "../model/diffusion/q-sample";
import type { UNetConfig } from "../model/unet/config";
import type { UNetEngine } from "../model/engines/engine";
import { parseBlock } from "../model/unet/blocks";
import { PoolSpec, poolNHWC, poolGrid, poolLabel } from "./pooling";

// ---------------------------------------------------------------------------------------------
// Noise policy

export type NoisePolicy =
  | { policy: "seeded"; seed: number }
  | { policy: "fresh" }
  | { policy: "ensemble"; k: number; seed: number };

/** Check a noise policy; throws naming the bad field. */
export function checkNoise(noise: NoisePolicy): NoisePolicy {
  const seedOk = (s: unknown) => typeof s === "number" && Number.isSafeInteger(s) && s >= 0;
  switch (noise?.policy) {
    case "seeded":
    case "ensemble":
      if (!seedOk(noise.seed)) throw new Error(`noise.seed must be a non-negative integer, got ${JSON.stringify(noise.seed)}`);
      if (noise.policy === "ensemble" && !(Number.isInteger(noise.k) && noise.k >= 1)) {
        throw new Error(`noise.k (ensemble size) must be an integer >= 1, got ${JSON.stringify(noise.k)}`);
      }
      return noise;
    case "fresh":
      return noise;
    default:
      throw new Error(`unknown noise policy ${JSON.stringify((noise as { policy?: unknown })?.policy)} (expected "seeded", "fresh" or "ensemble")`);
  }
}

/** Whether a policy gives deterministic features (which may then be stored). */
export function isCacheable(noise: NoisePolicy): boolean {
  return noise.policy !== "fresh";
}

/** Stable text for labels and cache keys: "seeded:0", "ensemble:4:0", "fresh". */
export function noiseLabel(noise: NoisePolicy): string {
  return noise.policy === "seeded" ? `seeded:${noise.seed}` : noise.policy === "ensemble" ? `ensemble:${noise.k}:${noise.seed}` : "fresh";
}

/** The Rng stream of (image key, t, draw): 48 bits of a SHA-256, so independent of batch layout. */
export function noiseStream(imageKey: string, t: number, draw: number): number {
  return createHash("sha256").update(`${imageKey}\u0000${t}\u0000${draw}`).digest().readUIntBE(0, 6);
}

/** eps of one image (`out.length` values, NHWC order) for (seed, image key, t, draw). */
export function imageNoise(out: Float32Array, seed: number, imageKey: string, t: number, draw = 0): Float32Array {
  return new Rng(seed, noiseStream(imageKey, t, draw)).fillNormal(out);
}

// ---------------------------------------------------------------------------------------------
// Options and results

/** What lib/features/extract.ts needs of a U-Net (lib/model/unet's UNet satisfies it). */
export interface FeatureModel {
  readonly config: UNetConfig;
  forward(
    x: tf.Tensor4D,
    t: number[] | tf.Tensor1D,
    opts?: { y?: number[]; capture?: string[]; stopEarly?: boolean },
  ): { out?: tf.Tensor4D; emb: tf.Tensor2D; blocks: Map<string, tf.Tensor4D> };
}

/** A batch of images in plain memory: NHWC float32 in [-1, 1]. */
export interface ImageArray {
  data: Float32Array;
  shape: [number, number, number, number] | number[];
}

/**
 * alphas_cumprod (float64), or an object carrying it, such as lib/model/diffusion's NoiseSchedule. A
 * respaced schedule's `timestepMap` turns step t into the timestep the model is called with, as
 * guided-diffusion's SpacedDiffusion does.
 */
export type ScheduleLike = Float64Array | number[] | { alphasCumprod: Float64Array | number[]; timestepMap?: number[] };

export interface FeatureOptions {
  /** Paper numbers (24) or module names ("output_blocks.4"). */
  blocks: (number | string)[];
  timesteps: number[];
  /** Default: global average (one value per channel). */
  pool?: PoolSpec;
  /** Default: seeded, seed 0. */
  noise?: NoisePolicy;
  /** Default: guided-diffusion's linear schedule, 1000 steps (the paper's ADM models). */
  schedule?: ScheduleLike;
  /** Image ids (noise streams). Default: indices from `indexOffset`. */
  ids?: (string | number)[];
  indexOffset?: number;
  /** Class labels, for class-conditional models. */
  y?: number[];
}

/** Features of one (block, t): `n` rows of `dim` values (channel-major pooled vectors). */
export interface FeatureMatrix {
  /** Module name ("output_blocks.4"). */
  block: string;
  /** Paper number (24). */
  number: number;
  t: number;
  n: number;
  dim: number;
  data: Float32Array;
  /** Feature map of one image, [H, W, C]. */
  mapShape: [number, number, number];
  /** One row before flattening: [C, rows, cols]. */
  rowShape: [number, number, number];
}

export interface FeatureBatch {
  n: number;
  ids: string[];
  /** One matrix per (block, t), blocks in the order asked, t inner. */
  matrices: FeatureMatrix[];
}

/** The matrix of (block, t) in a batch; block by number or name. Throws listing what is there. */
export function featureMatrix(batch: { matrices: FeatureMatrix[] }, block: number | string, t: number): FeatureMatrix {
  const hit = batch.matrices.find((m) => (typeof block === "number" || /^\d+$/.test(block) ? m.number === Number(block) : m.block === block) && m.t === t);
  if (!hit) {
    throw new Error(`no features for block ${JSON.stringify(block)} at t=${t}; have ${batch.matrices.map((m) => `${m.number}/${m.block}@t=${m.t}`).join(", ")}`);
  }
  return hit;
}

// ---------------------------------------------------------------------------------------------
// Helpers

/** The default schedule: linear, 1000 steps. */
let defaultSchedule: NoiseSchedule | null = null;

/** A schedule as plain data (structured-cloneable): alphas_cumprod and, if respaced, the timestep map. */
export function scheduleData(schedule: ScheduleLike | undefined): { alphasCumprod: Float64Array; timestepMap?: number[] } {
  const s = schedule ?? (defaultSchedule ??= NoiseSchedule.named("linear", 1000));
  const a = s instanceof Float64Array || Array.isArray(s) ? s : s?.alphasCumprod;
  if (!a || typeof a.length !== "number" || a.length === 0) throw new Error("schedule: expected alphas_cumprod (Float64Array) or { alphasCumprod }");
  const map = s instanceof Float64Array || Array.isArray(s) ? undefined : s.timestepMap;
  if (map && map.length !== a.length) throw new Error(`schedule: timestepMap has ${map.length} entries for ${a.length} steps`);
  const identity = !map || map.every((v, i) => v === i);
  return { alphasCumprod: Float64Array.from(a), ...(identity ? {} : { timestepMap: [...map!] }) };
}

/** A checked request: blocks (in the order asked, duplicates dropped), timesteps, pooling, noise, schedule. */
interface Plan {
  blocks: { name: string; number: number }[];
  timesteps: number[];
  pool: PoolSpec;
  noise: NoisePolicy;
  abar: Float64Array;
  /** Model timestep of each schedule step (respaced schedules), else null. */
  timestepMap: number[] | null;
}

function resolve(config: UNetConfig, opts: FeatureOptions): Plan {
  if (!Array.isArray(opts.blocks) || opts.blocks.length === 0) throw new Error("features: `blocks` must list at least one block");
  if (!Array.isArray(opts.timesteps) || opts.timesteps.length === 0) throw new Error("features: `timesteps` must list at least one timestep");
  const sched = scheduleData(opts.schedule);
  const abar = sched.alphasCumprod;
  for (const t of opts.timesteps) {
    if (!(Number.isInteger(t) && t >= 0 && t < abar.length)) throw new Error(`features: timestep ${JSON.stringify(t)} is not an integer in [0, ${abar.length - 1}]`);
  }
  const seen = new Set<string>();
  const blocks: Plan["blocks"] = [];
  for (const b of opts.blocks) {
    const spec = parseBlock(config, b);
    if (!seen.has(spec.name)) blocks.push({ name: spec.name, number: spec.number });
    seen.add(spec.name);
  }
  const pool: PoolSpec = opts.pool ?? { kind: "global" };
  poolGrid(pool, 1, 1); // validates
  return { blocks, timesteps: [...new Set(opts.timesteps)], pool, noise: checkNoise(opts.noise ?? { policy: "seeded", seed: 0 }), abar, timestepMap: sched.timestepMap ?? null };
}

/** Check an NHWC image batch shape against the model: 4 dims, channels, size multiple. */
export function checkImageShape(config: UNetConfig, shape: readonly number[]): [number, number, number, number] {
  if (shape.length !== 4 || !shape.every((d) => Number.isInteger(d) && d > 0)) throw new Error(`images: expected NHWC [N, H, W, C], got shape [${shape.join(", ")}]`);
  const [n, h, w, c] = shape;
  if (c !== config.inChannels) throw new Error(`images: ${c} channels but the model takes ${config.inChannels} (shape [${shape.join(", ")}]; NHWC expected)`);
  const mult = 2 ** (config.channelMult.length - 1);
  if (h % mult !== 0 || w % mult !== 0) throw new Error(`images: ${h}x${w} is not a multiple of ${mult} (the U-Net halves the size ${config.channelMult.length - 1} times)`);
  return [n, h, w, c];
}

/** Plain NHWC data of the images, checked against the model (channels, size multiple, range). */
export function imageData(config: UNetConfig, images: tf.Tensor4D | ImageArray, ids?: string[]): { data: Float32Array; shape: [number, number, number, number] } {
  let data: Float32Array;
  let shape: number[];
  if (images instanceof tf.Tensor) {
    shape = images.shape;
    data = images.dataSync() as Float32Array;
  } else {
    ({ data, shape } = images);
  }
  if (data.length !== shape.reduce((a, b) => a * b, 1)) throw new Error(`images: ${data.length} values do not fill shape [${shape.join(", ")}]`);
  const [n, h, w, c] = checkImageShape(config, shape);
  const per = h * w * c;
  for (let i = 0; i < n; i++) {
    for (let k = i * per; k < (i + 1) * per; k++) {
      const v = data[k];
      if (!(v >= -1.001 && v <= 1.001)) {
        const name = ids ? `image ${i} (id ${JSON.stringify(ids[i])})` : `image ${i}`;
        throw new Error(`${name}: value ${v} at position ${k - i * per} is outside [-1, 1]${v > 1.001 && v <= 255 ? " (pixels must be scaled to [-1, 1])" : ""}`);
      }
    }
  }
  return { data, shape: [n, h, w, c] };
}

function imageKeys(n: number, opts: FeatureOptions): string[] {
  if (opts.ids) {
    if (opts.ids.length !== n) throw new Error(`features: ${opts.ids.length} ids for ${n} images`);
    return opts.ids.map(String);
  }
  const off = opts.indexOffset ?? 0;
  return Array.from({ length: n }, (_, i) => String(off + i));
}

/** Short identity of a schedule for cache keys: 12 hex digits of a SHA-256 of its alphas_cumprod (and map). */
export function scheduleId(schedule: ScheduleLike | undefined): string {
  const d = scheduleData(schedule);
  const h = createHash("sha256").update(new Uint8Array(d.alphasCumprod.buffer));
  if (d.timestepMap) h.update(JSON.stringify(d.timestepMap));
  return `${d.alphasCumprod.length}:${h.digest("hex").slice(0, 12)}`;
}

// ---------------------------------------------------------------------------------------------
// Extraction

/** One block's pooled row for h x w inputs: module, paper number, row length, map and row shapes. */
export interface BlockRowShape {
  block: string;
  number: number;
  dim: number;
  mapShape: [number, number, number];
  rowShape: [number, number, number];
}

/** Row shapes of each block of a request (blocks resolved, in the order asked, duplicates dropped) for h x w inputs. */
export function featureShapes(config: UNetConfig, blocks: (number | string)[], pool: PoolSpec | undefined, h: number, w: number): BlockRowShape[] {
  const seen = new Set<string>();
  const out: BlockRowShape[] = [];
  for (const b of blocks) {
    const spec = parseBlock(config, b);
    if (seen.has(spec.name)) continue;
    seen.add(spec.name);
    const mh = h / spec.outDs; // a block's map is the input size over its downsampling rate
    const mw = w / spec.outDs;
    const [rows, cols] = poolGrid(pool ?? { kind: "global" }, mh, mw);
    out.push({ block: spec.name, number: spec.number, dim: spec.outCh * rows * cols, mapShape: [mh, mw, spec.outCh], rowShape: [spec.outCh, rows, cols] });
  }
  return out;
}

/** Empty result matrices of a request for `n` images of h x w. */
function emptyBatch(config: UNetConfig, plan: Plan, keys: string[], h: number, w: number): FeatureBatch {
  const n = keys.length;
  const matrices: FeatureMatrix[] = [];
  for (const b of featureShapes(config, plan.blocks.map((x) => x.name), plan.pool, h, w)) {
    for (const t of plan.timesteps) {
      matrices.push({ block: b.block, number: b.number, t, n, dim: b.dim, data: new Float32Array(n * b.dim), mapShape: b.mapShape, rowShape: b.rowShape });
    }
  }
  return { n, ids: keys, matrices };
}

/** The empty result of a request (checked) for images of `shape`: one zero matrix per (block, t). */
export function emptyFeatureBatch(config: UNetConfig, opts: FeatureOptions, images: { shape: readonly number[] }): FeatureBatch {
  const plan = resolve(config, opts);
  const [n, h, w] = checkImageShape(config, images.shape);
  return emptyBatch(config, plan, imageKeys(n, opts), h, w);
}

/** Features of `images` for every (block, t) asked; rows in image order. */
export async function extractFeatures(model: FeatureModel | UNetEngine, images: tf.Tensor4D | ImageArray, opts: FeatureOptions): Promise<FeatureBatch> {
  const config = model.config;
  const plan = resolve(config, opts);
  const shape = images instanceof tf.Tensor ? images.shape : images.shape;
  const batch = emptyFeatureBatch(config, opts, { shape });
  const keys = batch.ids;
  const { data } = imageData(config, images, opts.ids ? keys : undefined);
  const [, h, w, c] = shape;
  const per = h * w * c;
  const seed = plan.noise.policy === "fresh" ? randomInt(0, 2 ** 47) : plan.noise.seed;
  const draws = plan.noise.policy === "ensemble" ? plan.noise.k : 1;
  const capture = plan.blocks.map((b) => b.name);

  for (const t of plan.timesteps) {
    const idx = keys.map((_, i) => i);
    const m = idx.length;
    const mats = batch.matrices.filter((x) => x.t === t);
    const xt = new Float32Array(m * per);
    const eps = new Float32Array(per);
    // Pooled rows of the computed images, summed over draws (float64 for ensembles).
    const acc = mats.map((mat) => (draws > 1 ? new Float64Array(m * mat.dim) : new Float32Array(m * mat.dim)));
    for (let d = 0; d < draws; d++) {
      idx.forEach((i, j) => {
        imageNoise(eps, seed, keys[i], t, d);
        const k = qSampleCoefficients(plan.abar[t]);
        qSampleInto(xt.subarray(j * per, (j + 1) * per), data.subarray(i * per, (i + 1) * per), eps, k.signal, k.noise);
      });
      const modelT = plan.timestepMap ? plan.timestepMap[t] : t;
      const pooled = await forwardPooled(model, xt, [m, h, w, c], modelT, capture, plan.pool, opts.y ? idx.map((i) => opts.y![i]) : undefined);
      mats.forEach((mat, k) => {
        const p = pooled.get(mat.block)!;
        if (p.length !== m * mat.dim) {
          throw new Error(`block ${mat.block}: pooled ${p.length / m} values per image, expected ${mat.dim} (map ${mat.mapShape.join("x")} HWC)`);
        }
        if (draws === 1) acc[k].set(p);
        else for (let q = 0; q < p.length; q++) acc[k][q] += p[q];
      });
    }
    mats.forEach((mat, k) => {
      const dim = mat.dim;
      idx.forEach((i, j) => {
        const row = mat.data.subarray(i * dim, (i + 1) * dim);
        for (let q = 0; q < dim; q++) row[q] = acc[k][j * dim + q] / draws;
      });
    });
  }
  return batch;
}

/** One forward pass; returns the pooled rows of each captured block. Disposes every tensor it makes. */
async function forwardPooled(
  model: FeatureModel | UNetEngine,
  xt: Float32Array,
  shape: [number, number, number, number],
  t: number,
  capture: string[],
  pool: PoolSpec,
  y?: number[],
): Promise<Map<string, Float32Array>> {
  if (isEngine(model)) return enginePooled(model, xt, shape, t, capture, pool, y);
  const x = tf.tensor4d(xt, shape);
  let res: ReturnType<FeatureModel["forward"]> | null = null;
  try {
    res = model.forward(x, new Array(shape[0]).fill(t), { capture, stopEarly: true, ...(y ? { y } : {}) });
    const out = new Map<string, Float32Array>();
    for (const name of capture) {
      const fm = res.blocks.get(name);
      if (!fm) throw new Error(`U-Net forward did not return block ${name} (returned: ${[...res.blocks.keys()].join(", ") || "none"})`);
      const values = (await fm.data()) as Float32Array;
      out.set(name, poolNHWC(values, fm.shape, pool).data);
      fm.dispose();
    }
    return out;
  } finally {
    x.dispose();
    if (res) {
      res.out?.dispose();
      res.emb?.dispose();
      for (const v of res.blocks.values()) v.dispose();
    }
  }
}

/** Whether `m` is a lib/model/engines engine (ONNX Runtime or tfjs behind the engine interface). */
export function isEngine(m: FeatureModel | UNetEngine): m is UNetEngine {
  return typeof (m as UNetEngine).run === "function";
}

/** forwardPooled through an engine: NHWC x_t in, NCHW block outputs back, pooled channel-major. */
async function enginePooled(
  engine: UNetEngine,
  xt: Float32Array,
  shape: [number, number, number, number],
  t: number,
  capture: string[],
  pool: PoolSpec,
  y?: number[],
): Promise<Map<string, Float32Array>> {
  const [n, h, w, c] = shape;
  const missing = capture.filter((b) => !engine.outputs.includes(b));
  if (missing.length) throw new Error(`the ${engine.name} engine was built for ${engine.outputs.join(", ")}; it has no ${missing.join(", ")}`);
  const res = await engine.run(nhwcToNchw(xt, n, h, w, c), n, new Array(n).fill(t), y);
  const out = new Map<string, Float32Array>();
  for (const name of capture) {
    const v = res.get(name)!;
    const [bn, bc, bh, bw] = v.shape;
    out.set(name, poolNHWC(nchwToNhwc(v.data, bn, bc, bh, bw), [bn, bh, bw, bc], pool).data);
  }
  return out;
}

export function nhwcToNchw(x: Float32Array, n: number, h: number, w: number, c: number): Float32Array {
  const out = new Float32Array(x.length);
  const hw = h * w;
  for (let b = 0; b < n; b++) {
    const base = b * hw * c;
    for (let p = 0; p < hw; p++) for (let ch = 0; ch < c; ch++) out[base + ch * hw + p] = x[base + p * c + ch];
  }
  return out;
}

export function nchwToNhwc(x: Float32Array, n: number, c: number, h: number, w: number): Float32Array {
  const out = new Float32Array(x.length);
  const hw = h * w;
  for (let b = 0; b < n; b++) {
    const base = b * hw * c;
    for (let ch = 0; ch < c; ch++) for (let p = 0; p < hw; p++) out[base + p * c + ch] = x[base + ch * hw + p];
  }
  return out;
}

/** Concatenate batches' matrices row-wise (same blocks and timesteps in each). */
export function concatBatches(batches: FeatureBatch[]): FeatureBatch {
  if (batches.length === 0) return { n: 0, ids: [], matrices: [] };
  const n = batches.reduce((s, b) => s + b.n, 0);
  const first = batches[0];
  const matrices = first.matrices.map((m0, k) => {
    const data = new Float32Array(n * m0.dim);
    let off = 0;
    for (const b of batches) {
      const m = b.matrices[k];
      if (!m || m.block !== m0.block || m.t !== m0.t || m.dim !== m0.dim) throw new Error(`concatBatches: batches differ at matrix ${k} (${m0.block}@t=${m0.t})`);
      data.set(m.data, off);
      off += m.data.length;
    }
    return { ...m0, n, data };
  });
  return { n, ids: batches.flatMap((b) => b.ids), matrices };
}
