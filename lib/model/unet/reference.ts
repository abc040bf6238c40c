/**
 * Compare this implementation with a folder of PyTorch reference tensors (the layout of
 * ../shared/fixtures/guided-diffusion/<config>/, see its README):
 *
 *   manifest.json                         flags / unet_kwargs / diffusion / tensors (name, file, kind, shape)
 *   model.pt                              the weights (or manifest.checkpoint.file)
 *   x_t.npy t.npy [y.npy]                 model input (NCHW), timesteps, class labels (class-conditional)
 *   x0.npy eps.npy alphas_cumprod.npy     noising inputs and schedule
 *   emb.npy input_blocks_XX.npy middle_block.npy output_blocks_XX.npy out.npy   activations (NCHW)
 *
 * Every tensor listed in the manifest or present as a known file is checked:
 * `rel = max|ours - ref| / max|ref|` against a tolerance (float32 tensors: `tol`; the float64 schedule:
 * `scheduleTol`). Missing files and shape differences are failures with a message naming the tensor.
 */
import * as fs from "fs";
import * as path from "path";
import * as tf from "@tensorflow/tfjs";
import { NoiseSchedule, qSampleArray } from "../diffusion/index";
import { npyToFloat32, NpyArray, readNpy } from "../npy";
import { parseBlock } from "./blocks";
import { configFromManifest, UNetConfig } from "./config";
import { createUNetEngine } from "../engines/create";
import type { EngineName } from "../engines/engine";
import { WeightOptions } from "./weights";

/** INFO: an input, read and used but not compared. */
export type LineStatus = "PASS" | "FAIL" | "SKIP" | "INFO";

export interface ReferenceLine {
  name: string;
  file: string;
  status: LineStatus;
  /** Reference shape (as saved). */
  shape?: number[];
  rel?: number;
  maxAbsDiff?: number;
  maxAbsRef?: number;
  tol?: number;
  /** Why it failed or was skipped, or what was compared. */
  note?: string;
}

export interface ReferenceOptions {
  /** Float32 tensors (activations, x_t). Default 1e-5. */
  tol?: number;
  /** The float64 alphas_cumprod. Default 1e-12. */
  scheduleTol?: number;
  /** Called as each line is decided (for streaming output). */
  onLine?: (line: ReferenceLine) => void;
  weights?: WeightOptions;
  /** "auto" (default: $DIFFPROBE_ENGINE, else ONNX Runtime where it loads), "ort" or "tfjs". */
  engine?: string;
  /** Where ONNX Runtime's built models are cached (default .cache/onnx). */
  onnxCacheRoot?: string;
}

export interface ReferenceReport {
  folder: string;
  config: UNetConfig;
  /** What computed it: "tfjs wasm", "onnxruntime-node 1.30.0, cpu, 2 threads". */
  backend: string;
  engine: EngineName;
  /** How the engine was chosen. */
  engineLog: string[];
  lines: ReferenceLine[];
  ok: boolean;
  loadMs: number;
  forwardMs: number;
}

/** max|a - ref|, max|ref| and their ratio (NaN anywhere makes rel NaN, which fails every bound). */
export function relError(a: ArrayLike<number>, ref: ArrayLike<number>): { rel: number; maxAbsDiff: number; maxAbsRef: number } {
  if (a.length !== ref.length) throw new Error(`relError: ${a.length} values vs ${ref.length} reference values`);
  let md = 0;
  let mr = 0;
  let nan = false;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - ref[i]);
    if (Number.isNaN(d)) nan = true;
    else if (d > md) md = d;
    const r = Math.abs(ref[i]);
    if (r > mr) mr = r;
  }
  const rel = nan ? NaN : mr > 0 ? md / mr : md;
  return { rel, maxAbsDiff: nan ? NaN : md, maxAbsRef: mr };
}

interface TensorItem {
  name: string;
  file: string;
  kind?: string;
  shape?: number[];
}

const BLOCK_FILE = /^(input_blocks|output_blocks)_(\d+)\.npy$/;
const INPUT_NAMES = new Set(["x0", "eps", "t", "y", "noise", "x_start"]);

/** Tensors to check: the manifest's list, plus known files in the folder it does not list. */
function tensorItems(folder: string, manifest: Record<string, any>): TensorItem[] {
  const items: TensorItem[] = [];
  const byFile = new Set<string>();
  for (const t of (manifest.tensors ?? []) as TensorItem[]) {
    if (!t.name || !t.file) continue;
    items.push({ name: t.name, file: t.file, kind: t.kind, shape: t.shape });
    byFile.add(t.file);
  }
  const known = ["alphas_cumprod.npy", "x_t.npy", "emb.npy", "middle_block.npy", "out.npy"];
  for (const f of fs.readdirSync(folder).sort(naturalOrder)) {
    if (byFile.has(f)) continue;
    const m = BLOCK_FILE.exec(f);
    if (m) items.push({ name: `${m[1]}.${Number(m[2])}`, file: f });
    else if (known.includes(f)) items.push({ name: f.replace(/\.npy$/, ""), file: f });
  }
  return items;
}

function naturalOrder(a: string, b: string): number {
  return a.localeCompare(b, "en", { numeric: true });
}

export function shapeText(s: readonly number[]): string {
  return s.length ? s.join("x") : "scalar";
}

/**
 * A listed tensor's reference array, or the FAIL line every reference check prints when its file is
 * missing from the folder or does not hold the shape the manifest says (U-Net, torchvision, diffssl).
 */
export function listedReference(it: { name: string; file: string; shape?: number[] }, refs: ReadonlyMap<string, NpyArray>, folder: string): { ref: NpyArray } | { fail: ReferenceLine } {
  const ref = refs.get(it.name);
  if (!ref) return { fail: { name: it.name, file: it.file, status: "FAIL", shape: it.shape, note: `file ${it.file} is missing from ${folder}` } };
  if (it.shape && shapeText(it.shape) !== shapeText(ref.shape)) {
    return { fail: { name: it.name, file: it.file, status: "FAIL", shape: ref.shape, note: `manifest says ${shapeText(it.shape)}, file holds ${shapeText(ref.shape)}` } };
  }
  return { ref };
}

async function readIfExists(file: string): Promise<NpyArray | null> {
  return fs.existsSync(file) ? readNpy(file) : null;
}

function toNumbers(a: NpyArray): number[] {
  return Array.from(a.data as ArrayLike<number | bigint>, (v) => Number(v));
}

/** The diffusion settings recorded in a manifest (diffusion section, else script_util flags). */
export function scheduleFromManifest(manifest: Record<string, any>): NoiseSchedule {
  const d = manifest.diffusion ?? {};
  const f = manifest.flags ?? {};
  const steps = Number(d.steps ?? f.diffusion_steps ?? 1000);
  const name = String(d.noise_schedule ?? f.noise_schedule ?? "linear");
  const respacing = d.timestep_respacing ?? f.timestep_respacing ?? "";
  return NoiseSchedule.named(name, steps, respacing);
}

/**
 * Run the whole comparison for one folder on the active tfjs backend. Throws only for problems that make
 * a comparison impossible (no manifest, no checkpoint, no model input); everything else becomes a line.
 */
export async function checkReferenceFolder(folder: string, opts: ReferenceOptions = {}): Promise<ReferenceReport> {
  const tol = opts.tol ?? 1e-5;
  const scheduleTol = opts.scheduleTol ?? 1e-12;
  const lines: ReferenceLine[] = [];
  const emit = (l: ReferenceLine) => {
    lines.push(l);
    opts.onLine?.(l);
  };
  const manifestFile = path.join(folder, "manifest.json");
  if (!fs.existsSync(manifestFile)) throw new Error(`${folder}: no manifest.json (expected the guided-diffusion reference layout)`);
  const manifest = JSON.parse(fs.readFileSync(manifestFile, "utf8"));
  const config = configFromManifest(manifest);
  const items = tensorItems(folder, manifest);

  // Reference arrays, read once. Missing / unreadable files become FAIL lines.
  const refs = new Map<string, NpyArray>();
  for (const it of items) {
    const file = path.join(folder, it.file);
    if (!fs.existsSync(file)) continue;
    try {
      refs.set(it.name, await readNpy(file));
    } catch (e) {
      emit({ name: it.name, file: it.file, status: "FAIL", note: `unreadable: ${(e as Error).message}` });
    }
  }
  const failed = new Set(lines.map((l) => l.name));
  const compare = (it: TensorItem, ours: ArrayLike<number> | null, oursShape: number[] | null, bound: number, note?: string) => {
    if (failed.has(it.name)) return;
    const listed = listedReference(it, refs, folder);
    if ("fail" in listed) return emit(listed.fail);
    const ref = listed.ref;
    if (!ours || !oursShape) {
      emit({ name: it.name, file: it.file, status: "FAIL", shape: ref.shape, note: note ?? "no value computed" });
      return;
    }
    if (shapeText(oursShape) !== shapeText(ref.shape)) {
      emit({ name: it.name, file: it.file, status: "FAIL", shape: ref.shape, note: `shape differs: ours ${shapeText(oursShape)}, reference ${shapeText(ref.shape)}` });
      return;
    }
    const refValues = ref.data instanceof Float64Array ? ref.data : npyToFloat32(ref);
    const e = relError(ours, refValues);
    emit({ name: it.name, file: it.file, status: e.rel <= bound ? "PASS" : "FAIL", shape: ref.shape, tol: bound, ...e, note });
  };

  // Inputs.
  const xt = refs.get("x_t") ?? (await readIfExists(path.join(folder, "x_t.npy")));
  const tArr = refs.get("t") ?? (await readIfExists(path.join(folder, "t.npy")));
  if (!tArr) throw new Error(`${folder}: t.npy (the timesteps) is missing`);
  const t = toNumbers(tArr);
  const yArr = refs.get("y") ?? (await readIfExists(path.join(folder, "y.npy")));
  const y = yArr ? toNumbers(yArr) : undefined;
  if (config.numClasses !== null && !y) throw new Error(`${folder}: the model is class-conditional but y.npy (labels) is missing`);
  const x0 = refs.get("x0") ?? (await readIfExists(path.join(folder, "x0.npy")));
  const eps = refs.get("eps") ?? (await readIfExists(path.join(folder, "eps.npy")));

  // Schedule and q_sample.
  const schedule = scheduleFromManifest(manifest);
  let computedXt: Float32Array | null = null;
  if (x0 && eps) {
    try {
      computedXt = qSampleArray(schedule, npyToFloat32(x0), t, npyToFloat32(eps));
    } catch (e) {
      computedXt = null;
      emit({ name: "x_t", file: "x_t.npy", status: "FAIL", note: `q_sample failed: ${(e as Error).message}` });
      failed.add("x_t");
    }
  }
  for (const it of items) {
    if (it.name === "alphas_cumprod") compare(it, schedule.alphasCumprod, [schedule.steps], scheduleTol, `${manifest.diffusion?.noise_schedule ?? manifest.flags?.noise_schedule ?? "linear"} schedule, ${schedule.steps} steps, float64`);
    else if (it.name === "x_t") {
      if (computedXt) compare(it, computedXt, x0!.shape, tol, "q_sample(x0, t, eps)");
      else if (!failed.has("x_t")) emit({ name: "x_t", file: it.file, status: "SKIP", note: "x0.npy / eps.npy absent: q_sample not checked (x_t used as model input)" });
    }
  }

  // The model.
  const input = xt ?? (computedXt && x0 ? { dtype: "float32" as const, shape: x0.shape, data: computedXt } : null);
  if (!input) throw new Error(`${folder}: neither x_t.npy nor x0.npy + eps.npy: no model input`);
  if (input.shape.length !== 4 || input.shape[1] !== config.inChannels) {
    throw new Error(`${folder}: model input has shape ${shapeText(input.shape)}; expected NCHW with ${config.inChannels} channels`);
  }
  const ckptName = manifest.checkpoint?.file ?? "model.pt";
  const ckpt = path.join(folder, ckptName);
  if (!fs.existsSync(ckpt)) throw new Error(`${folder}: checkpoint ${ckptName} is missing`);

  const isInput = (it: TensorItem) => (it.kind === "input" && it.name !== "x_t") || INPUT_NAMES.has(it.name);
  for (const it of items) {
    if (!isInput(it) || failed.has(it.name)) continue;
    const r = refs.get(it.name);
    if (!r) emit({ name: it.name, file: it.file, status: "FAIL", shape: it.shape, note: `file ${it.file} is missing from ${folder}` });
    else emit({ name: it.name, file: it.file, status: "INFO", shape: r.shape, note: "input" });
  }
  const modelItems = items.filter((it) => !["alphas_cumprod", "x_t"].includes(it.name) && !isInput(it));
  const capture: string[] = [];
  const blockOf = new Map<string, string>();
  for (const it of modelItems) {
    if (it.name === "emb" || it.name === "out") continue;
    if (!/^(input_blocks\.\d+|output_blocks\.\d+|middle_block)$/.test(it.name)) {
      emit({ name: it.name, file: it.file, status: "SKIP", note: "no counterpart in this implementation" });
      failed.add(it.name);
      continue;
    }
    try {
      const b = parseBlock(config, it.name);
      blockOf.set(it.name, b.name);
      capture.push(b.name);
    } catch (e) {
      emit({ name: it.name, file: it.file, status: "FAIL", note: (e as Error).message });
      failed.add(it.name);
    }
  }

  const t0 = Date.now();
  const outputs = [...new Set(capture)];
  const wanted = modelItems.filter((it) => !failed.has(it.name));
  if (wanted.some((it) => it.name === "emb")) outputs.unshift("emb");
  outputs.push("out"); // the whole pass, as the reference ran it
  const { engine, choice } = await createUNetEngine({ config, checkpoint: ckpt, weights: opts.weights }, { engine: opts.engine, outputs, cacheRoot: opts.onnxCacheRoot });
  const loadMs = Date.now() - t0;
  let forwardMs = 0;
  try {
    const t1 = Date.now();
    const res = await engine.run(npyToFloat32(input), input.shape[0], t, y);
    forwardMs = Date.now() - t1;
    for (const it of wanted) {
      const v = it.name === "emb" || it.name === "out" ? res.get(it.name) : blockOf.has(it.name) ? res.get(blockOf.get(it.name)!) : undefined;
      if (!v) {
        emit({ name: it.name, file: it.file, status: "FAIL", note: "the forward pass produced no such tensor" });
        continue;
      }
      compare(it, v.data, v.shape, tol);
    }
  } finally {
    await engine.dispose();
  }
  const backend = engine.name === "tfjs" ? `tfjs ${tf.getBackend()}` : engine.description;
  return { folder, config, backend, engine: engine.name, engineLog: choice.log, lines, ok: lines.every((l) => l.status !== "FAIL"), loadMs, forwardMs };
}

/** One printable line: status, name, shape, error and note. */
export function formatLine(l: ReferenceLine): string {
  const shape = l.shape ? shapeText(l.shape) : "";
  const err = l.rel !== undefined ? `rel ${l.rel.toExponential(2)} (tol ${l.tol!.toExponential(0)}, max|diff| ${l.maxAbsDiff!.toExponential(2)}, max|ref| ${l.maxAbsRef!.toPrecision(3)})` : "";
  return `${l.status.padEnd(4)}  ${l.name.padEnd(18)} ${shape.padEnd(14)} ${err}${l.note ? (err ? "  " : "") + l.note : ""}`.trimEnd();
}
