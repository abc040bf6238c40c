/**
 * The measurements of `npm run bench`. Each part runs in its own child process (see run.ts), so its
 * peak RSS is its own and its memory is returned to the system before the next part starts.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../lib/model/backend";
import { createUNetConfig, UNetConfig, UNetFlags } from "../lib/model/unet/config";
import { UNet } from "../lib/model/unet/model";
import { parameterCount } from "../lib/model/unet/parameters";
import { blockTable } from "../lib/model/unet/blocks";
import { extractFeatures, FeatureOptions } from "../lib/features/extract";
import { FeaturePool } from "../lib/features/workers/feature-pool";
import { fitHead, probeTraining } from "../lib/experiments/protocol/select";
import { memorySource } from "../lib/heads/source";
import { writeRandomCheckpoint } from "./checkpoint";
import { ort256, ortLoad, torchReference } from "./ort";
import { extract256, extract256Inputs } from "./extract";

/** One figure of the report. */
export interface Row {
  part: string;
  model: string;
  backend: string;
  batch: number | "";
  measure: string;
  /** Seconds, images/s, bytes... (see unit). */
  value: number;
  unit: "s" | "s/img" | "img/s" | "B" | "GFLOP/s";
  note?: string;
  /** GFLOP per image of an s/img row: run.ts adds its GFLOP/s and the percentage of the measured peak. */
  gflop?: number;
  /** A machine-limit row: one figure of the measured peak, the best of them, or the nominal peak. */
  peak?: "figure" | "best" | "nominal";
  /** The ONNX Runtime execution provider the row ran on. */
  provider?: string;
}

export interface PartOptions {
  backend: string;
  reps: number;
  quick: boolean;
  workers: number;
  block: number;
  t: number;
  batch: number;
  /** Images of part extract256. */
  images: number;
  /** Folder for the temporary checkpoint (part "load"). */
  tmp: string;
}

/** The reference configurations of /work/shared/fixtures/guided-diffusion/README.md. */
export const REFERENCE_CONFIGS: Record<string, Partial<UNetFlags>> = {
  tiny: {
    image_size: 32, num_channels: 32, num_res_blocks: 1, channel_mult: "1,2,2", attention_resolutions: "16,8",
    num_head_channels: 16, learn_sigma: true, resblock_updown: true, use_scale_shift_norm: true,
  },
  small: {
    image_size: 64, num_channels: 32, num_res_blocks: 2, channel_mult: "1,1,2,2", attention_resolutions: "32,16,8",
    num_head_channels: 32, learn_sigma: true, resblock_updown: true, use_scale_shift_norm: true,
  },
};

const log = (s: string) => process.stderr.write(`  ${s}\n`);
const now = () => performance.now() / 1000;
const maxRssBytes = () => process.resourceUsage().maxRSS * 1024;
/** CPU seconds of this process, all threads (workers included). */
const cpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/** Images in [-1, 1] (smooth pattern); the values do not affect timing. */
function images(n: number, size: number): { data: Float32Array; shape: [number, number, number, number] } {
  const data = new Float32Array(n * size * size * 3);
  for (let i = 0; i < data.length; i++) data[i] = 0.8 * Math.sin(0.013 * i);
  return { data, shape: [n, size, size, 3] };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Seconds of `reps` runs of `fn` after one warm-up run (whose time is returned too). */
async function timed(reps: number, fn: () => Promise<void>): Promise<{ warm: number; times: number[] }> {
  let t0 = now();
  await fn();
  const warm = now() - t0;
  const times: number[] = [];
  for (let r = 0; r < reps; r++) {
    t0 = now();
    await fn();
    times.push(now() - t0);
  }
  return { warm, times };
}

function featureOptions(block: number, t: number): FeatureOptions {
  return { blocks: [block], timesteps: [t], pool: { kind: "adaptive", size: 2 }, noise: { policy: "seeded", seed: 0 } };
}

/** The 256x256 ADM, one instance in this thread: init, features to block `block`, full pass. */
export async function adm256Single(o: PartOptions): Promise<Row[]> {
  const choice = await selectBackend(o.backend);
  const backend = choice.name;
  const config = createUNetConfig("adm-256-uncond");
  const model = "adm-256-uncond (random)";
  const rows: Row[] = [];
  log(`adm-256-uncond: ${(parameterCount(config) / 1e6).toFixed(1)}M parameters, building random weights on ${backend} ...`);
  let t0 = now();
  const unet = UNet.random(config, 0);
  rows.push({ part: "adm256", model, backend, batch: "", measure: "build random weights", value: now() - t0, unit: "s" });
  const x = images(1, 256);
  const opts = featureOptions(o.block, o.t);
  const blockName = blockTable(config)[o.block - 1].name;
  log(`features of block ${o.block} (${blockName}) at t=${o.t}, batch 1: warm-up + ${o.reps} timed ...`);
  let cpu = 0;
  let first = true;
  const f = await timed(o.reps, async () => {
    const c0 = cpuSeconds();
    await extractFeatures(unet, x, opts);
    if (!first) cpu += cpuSeconds() - c0;
    first = false;
  });
  rows.push({ part: "adm256", model, backend, batch: 1, measure: `first pass to block ${o.block} (warm-up)`, value: f.warm, unit: "s/img" });
  rows.push({ part: "adm256", model, backend, batch: 1, measure: `features block ${o.block}, t=${o.t} (median of ${o.reps})`, value: median(f.times), unit: "s/img", note: `min ${Math.min(...f.times).toFixed(2)} s; CPU ${(cpu / o.reps).toFixed(1)} s/img` });
  rows.push({ part: "adm256", model, backend, batch: 1, measure: `features block ${o.block}, t=${o.t}`, value: 1 / median(f.times), unit: "img/s" });
  if (!o.quick) {
    log("full forward pass, batch 1 ...");
    const xt = tf.tensor4d(x.data, x.shape);
    t0 = now();
    const r = unet.forward(xt, [o.t]);
    await r.out!.data();
    rows.push({ part: "adm256", model, backend, batch: 1, measure: "full forward pass (after warm-up)", value: now() - t0, unit: "s/img" });
    tf.dispose([xt, r.out!, r.emb]);
  }
  const wb = unet.weightBytes;
  rows.push({ part: "adm256", model, backend, batch: "", measure: "peak RSS (one instance)", value: maxRssBytes(), unit: "B", note: `weights: ${(wb.resident / 2 ** 30).toFixed(2)} GiB in tf, ${(wb.streamed / 2 ** 30).toFixed(2)} GiB streamed` });
  unet.dispose();
  return rows;
}

/** The 256x256 ADM on a worker pool: images/s with `workers` workers. */
export async function adm256Pool(o: PartOptions): Promise<Row[]> {
  const model = "adm-256-uncond (random)";
  const rows: Row[] = [];
  log(`starting ${o.workers} workers (each builds the 256 model: this takes a while) ...`);
  let t0 = now();
  const pool = await FeaturePool.start({ model: { config: "adm-256-uncond", seed: 0 }, workers: o.workers, backend: o.backend, progress: false });
  const backend = pool.infos[0]?.backend ?? o.backend;
  try {
    rows.push({ part: "adm256-pool", model, backend, batch: "", measure: `start ${o.workers} workers (build weights)`, value: now() - t0, unit: "s" });
    const x = images(1, 256);
    const opts = { ...featureOptions(o.block, o.t), progress: false as const };
    const batch = () => Array.from({ length: o.workers }, () => ({ images: { data: x.data.slice(), shape: x.shape } }));
    log("warm-up: one image per worker ...");
    await pool.extractAll(batch(), opts);
    const n = o.workers * o.reps;
    log(`timed: ${n} images of batch 1 ...`);
    const all = Array.from({ length: o.reps }, batch).flat();
    const c0 = cpuSeconds();
    t0 = now();
    const r = await pool.extractAll(all, opts);
    const dt = now() - t0;
    const cpu = (cpuSeconds() - c0) / n;
    if (r.n !== n) throw new Error(`pool returned ${r.n} rows for ${n} images`);
    rows.push({ part: "adm256-pool", model, backend, batch: 1, measure: `features block ${o.block}, t=${o.t}, ${o.workers} workers`, value: n / dt, unit: "img/s", note: `${n} images in ${dt.toFixed(1)} s; CPU ${cpu.toFixed(1)} s/img (all threads)` });
    rows.push({ part: "adm256-pool", model, backend, batch: 1, measure: `same, per image per worker`, value: (dt * o.workers) / n, unit: "s/img" });
    rows.push({ part: "adm256-pool", model, backend, batch: "", measure: `peak RSS (${o.workers} workers, one process)`, value: maxRssBytes(), unit: "B" });
  } finally {
    await pool.close();
  }
  return rows;
}

/** A reference config (tiny / small) at batch `o.batch`: full pass and features of its middle block. */
export async function referenceConfig(name: "tiny" | "small", o: PartOptions): Promise<Row[]> {
  const choice = await selectBackend(o.backend);
  const backend = choice.name;
  const config: UNetConfig = createUNetConfig(REFERENCE_CONFIGS[name]);
  const unet = UNet.random(config, 0);
  const size = config.imageSize;
  const x = images(o.batch, size);
  const rows: Row[] = [];
  const table = blockTable(config);
  const mid = table.find((b) => b.section === "middle")!;
  const model = `${name} (${(parameterCount(config) / 1e6).toFixed(2)}M, ${size}px)`;
  const reps = Math.max(o.reps, o.quick ? 1 : 5);
  log(`${name}: full forward pass, batch ${o.batch}, warm-up + ${reps} ...`);
  const xt = tf.tensor4d(x.data, x.shape);
  const full = await timed(reps, async () => {
    const r = unet.forward(xt, new Array(o.batch).fill(o.t));
    await r.out!.data();
    tf.dispose([r.out!, r.emb]);
  });
  xt.dispose();
  const tf_ = median(full.times);
  rows.push({ part: name, model, backend, batch: o.batch, measure: "full forward pass", value: tf_ / o.batch, unit: "s/img" });
  rows.push({ part: name, model, backend, batch: o.batch, measure: "full forward pass", value: o.batch / tf_, unit: "img/s" });
  log(`${name}: features of block ${mid.number} (${mid.name}), batch ${o.batch} ...`);
  const feats = await timed(reps, async () => {
    await extractFeatures(unet, x, featureOptions(mid.number, o.t));
  });
  const tm = median(feats.times);
  rows.push({ part: name, model, backend, batch: o.batch, measure: `features block ${mid.number} (${mid.name}), incl. noise + pooling`, value: o.batch / tm, unit: "img/s" });
  unet.dispose();

  // The same features on a worker pool.
  log(`${name}: the same on ${o.workers} workers ...`);
  const pool = await FeaturePool.start({ model: { config, seed: 0 }, workers: o.workers, backend: o.backend, progress: false });
  try {
    const popts = { ...featureOptions(mid.number, o.t), progress: false as const };
    const batches = (k: number) => Array.from({ length: k }, () => ({ images: { data: x.data.slice(), shape: x.shape } }));
    await pool.extractAll(batches(o.workers), popts); // warm-up, one batch per worker
    const k = o.workers * reps;
    const t0 = now();
    await pool.extractAll(batches(k), popts);
    const dt = now() - t0;
    rows.push({ part: name, model, backend, batch: o.batch, measure: `same, ${o.workers} workers`, value: (k * o.batch) / dt, unit: "img/s", note: `${(((k * o.batch) / dt) / (o.batch / tm)).toFixed(2)}x one instance` });
  } finally {
    await pool.close();
  }
  return rows;
}

/** Write a random-weight 256x256 checkpoint (official layout) into `o.tmp`. */
export async function writeCheckpoint(o: PartOptions): Promise<Row[]> {
  const config = createUNetConfig("adm-256-uncond");
  const file = path.join(o.tmp, "256x256_random.pt");
  log(`writing ${file} ...`);
  const t0 = now();
  const r = await writeRandomCheckpoint(config, file, 0);
  const size = fs.statSync(file).size;
  return [
    { part: "load", model: "adm-256-uncond checkpoint", backend: "-", batch: "", measure: `write torch zip (${r.tensors} tensors)`, value: now() - t0, unit: "s" },
    { part: "load", model: "adm-256-uncond checkpoint", backend: "-", batch: "", measure: "file size", value: size, unit: "B" },
  ];
}

/** Load the checkpoint written by writeCheckpoint with UNet.fromCheckpoint: seconds and peak RSS. */
export async function loadCheckpoint(o: PartOptions): Promise<Row[]> {
  const choice = await selectBackend(o.backend);
  const config = createUNetConfig("adm-256-uncond");
  const file = path.join(o.tmp, "256x256_random.pt");
  const base = process.memoryUsage().rss;
  log(`loading ${file} on ${choice.name} ...`);
  const t0 = now();
  const unet = await UNet.fromCheckpoint(config, file);
  const dt = now() - t0;
  const rows: Row[] = [
    { part: "load", model: "adm-256-uncond checkpoint", backend: choice.name, batch: "", measure: "UNet.fromCheckpoint", value: dt, unit: "s" },
    { part: "load", model: "adm-256-uncond checkpoint", backend: choice.name, batch: "", measure: "peak RSS while loading", value: maxRssBytes(), unit: "B", note: `RSS before loading ${(base / 2 ** 30).toFixed(2)} GiB; after ${(process.memoryUsage().rss / 2 ** 30).toFixed(2)} GiB` },
  ];
  unet.dispose();
  return rows;
}

/**
 * The linear probe (the linear head with lib/heads/optim.ts PROBE_RECIPE) at the demo's size: 1,500 rows of 1,024 pooled features,
 * 10 classes, 20 epochs of batch 256 (the 02 notebook fits 79 of these), and at 10x the rows.
 */
export async function linearProbe(o: PartOptions): Promise<Row[]> {
  await selectBackend(o.backend);
  const rows: Row[] = [];
  const dim = 1024;
  for (const n of o.quick ? [1500] : [1500, 15000]) {
    const data = new Float32Array(n * dim);
    for (let i = 0; i < data.length; i++) data[i] = Math.sin(0.37 * i) + 0.1 * Math.cos(0.011 * i);
    const labels = Int32Array.from({ length: n }, (_, i) => i % 10);
    const epochs = 20;
    const { times } = await timed(o.reps, async () => {
      const h = await fitHead({ kind: "linear", pool: 1, init: "zeros" }, memorySource(data, [dim, 1, 1], labels, 10), null, probeTraining(0, { epochs, batchSize: 256 }));
      h.dispose();
    });
    const steps = epochs * Math.ceil(n / 256);
    const s = median(times);
    rows.push({ part: "probe", model: `linear probe ${n}x${dim}, 10 classes`, backend: tf.getBackend(), batch: 256, measure: `fit, ${epochs} epochs (${steps} Adam steps)`, value: s, unit: "s", note: `${((1000 * s) / steps).toFixed(1)} ms/step` });
  }
  return rows;
}

export const PARTS: Record<string, (o: PartOptions) => Promise<Row[]>> = {
  probe: linearProbe,
  adm256: adm256Single,
  "adm256-pool": adm256Pool,
  tiny: (o) => referenceConfig("tiny", o),
  small: (o) => referenceConfig("small", o),
  "load-write": writeCheckpoint,
  "load-read": loadCheckpoint,
  "load-ort": ortLoad,
  ort256,
  extract256,
  "extract256-inputs": extract256Inputs,
  torch: torchReference,
};

/** Describe this machine in one line. */
export function machineLine(): string {
  const cpu = os.cpus()[0]?.model?.replace(/\s+/g, " ").trim() ?? "unknown CPU";
  return `${os.availableParallelism()} cores (${cpu}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.versions.node}, tfjs ${tf.version.tfjs}`;
}
