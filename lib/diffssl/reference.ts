/**
 * Parity with the official diffssl code (folders of the ../shared/fixtures/diffssl layout, manifest
 * "family": "diffssl"; see that README). Every tensor the manifest lists is compared, one line each,
 * `rel = max|ours - ref| / max|ref|` against `tol` (float32; default 1e-5) or `scheduleTol` (the float64
 * alphas_cumprod), as the U-Net and torchvision checks do:
 *
 *   kind "attention-head" / "difformer": model.pt (AttentionFusion state_dict), feat_t<i>_b<b>.npy inputs;
 *     pool/norm/conv/tokens_t<i>_b<b>, tokens_t<i>, cls_in_t<i>, block<k>[_<part>]_t<i>, cls_t<i>,
 *     cls_concat, logits
 *   kind "diffeed": unet.pt, feedback.pt, head.pt, x0, t, noise_t<i> inputs; alphas_cumprod, x_t_t<i>,
 *     feat1_t<i>_b<b> (first pass), fb / fbi / fbtrain_t<i>_b<b> (feedback maps, resized, train-mode
 *     BatchNorm), feat2_t<i>_b<k> (second pass), head_<as above>, logits
 *
 * plus "params:head" / "params:feedback": our parameter counts against the manifest's `num_parameters`.
 * Everything (blocks, timesteps, sizes, batch, U-Net layout) is read from manifest.json. Computed on tfjs
 * (the active backend, or `backend`; ONNX Runtime cannot take the feedback): our attention / DifFormer heads (lib/heads), the U-Net's forward with
 * `addToInputBlocks` and the feedback layers (lib/model/unet/feedback.ts).
 */
import * as fs from "fs";
import * as path from "path";
import * as tf from "@tensorflow/tfjs";
import { loadStateDict } from "../model/checkpoint/index";
import { NoiseSchedule, qSampleArray } from "../model/diffusion/index";
import { npyToFloat32, NpyArray, readNpy } from "../model/npy";
import { selectBackend } from "../model/backend";
import { configFromManifest } from "../model/unet/config";
import { difFeedFirstPass, difFeedSecondPass, FeedbackLayers, feedbackParams } from "../model/unet/feedback";
import { toNCHW } from "../model/unet/layers";
import { UNet } from "../model/unet/model";
import { buildPlan } from "../model/unet/plan";
import { formatLine, listedReference, ReferenceLine, relError, scheduleFromManifest, shapeText } from "../model/unet/reference";
import { countParams, HeadTrace } from "../heads/head";
import { resizeBilinear } from "../model/resize";
import { buildOfficialHead, BuiltOfficialHead, headBlockOrder, loadFeedbackLayers, loadOfficialHead, officialHeadFromManifest, OfficialHead } from "./official";

export interface DiffsslReferenceOptions {
  tol?: number;
  scheduleTol?: number;
  onLine?: (line: ReferenceLine) => void;
}

export interface DiffsslReport {
  folder: string;
  kind: string;
  /** One line describing what was built. */
  description: string;
  backend: string;
  lines: ReferenceLine[];
  ok: boolean;
  loadMs: number;
  forwardMs: number;
}

interface Value {
  data: Float32Array | Float64Array;
  shape: number[];
}


function readManifest(folder: string): Record<string, any> {
  const f = path.join(folder, "manifest.json");
  if (!fs.existsSync(f)) throw new Error(`${folder}: no manifest.json (expected the diffssl reference layout)`);
  try {
    return JSON.parse(fs.readFileSync(f, "utf8"));
  } catch (e) {
    throw new Error(`${f}: not valid JSON (${(e as Error).message})`);
  }
}

/** Whether `folder`'s manifest says "family": "diffssl". */
export function isDiffsslFolder(folder: string): boolean {
  try {
    return readManifest(folder).family === "diffssl";
  } catch {
    return false;
  }
}

/** Copy a traced tensor out of its tidy; 4-D maps (NHWC here) become NCHW as PyTorch saves them. */
function capture(v: tf.Tensor, nhwc: boolean): Value {
  const t = nhwc && v.rank === 4 ? toNCHW(v as tf.Tensor4D) : v;
  const data = Float32Array.from(t.dataSync() as Float32Array);
  const shape = [...t.shape];
  if (t !== v) t.dispose();
  return { data, shape };
}

/**
 * Run our head on rows and record every intermediate under the fixture's names (`prefix` + name; logits
 * unprefixed). `order[i]` is the block number of map i.
 */
function runHead(built: BuiltOfficialHead, rows: tf.Tensor2D, order: number[], prefix: string, out: Map<string, Value>): void {
  const put = (name: string, v: Value) => out.set(name === "logits" ? name : prefix + name, v);
  const trace: HeadTrace = (name, v) => {
    const isMap = /^(pool|norm|conv)(_|$)/.test(name);
    const val = capture(v, isMap);
    if (built.kind === "attention") {
      const b = built.block;
      if (/^(pool|norm|conv|tokens)$/.test(name)) {
        put(`${name}_t0_b${b}`, val);
        if (name === "tokens") put("tokens_t0", val);
      } else if (name === "logits") put(name, val);
      else {
        put(`${name}_t0`, val);
        if (name === "cls") put("cls_concat", val); // one timestep: the concatenation is the CLS vector
      }
    } else {
      const m = /^(.*)_t(\d+)_m(\d+)$/.exec(name);
      put(m ? `${m[1]}_t${m[2]}_b${order[Number(m[3])]}` : name, val);
    }
  };
  tf.tidy(() => {
    built.head.apply(rows, trace);
  });
}

/** Timestep-major rows: for each t, each map (NCHW arrays of the batch) flattened per sample. */
function rowsFrom(maps: Value[][], n: number): tf.Tensor2D {
  const per = maps.flat().map((m) => m.data.length / n);
  const size = per.reduce((a, b) => a + b, 0);
  const rows = new Float32Array(n * size);
  for (let s = 0; s < n; s++) {
    let at = s * size;
    maps.flat().forEach((m, j) => {
      rows.set(m.data.subarray(s * per[j], (s + 1) * per[j]) as Float32Array, at);
      at += per[j];
    });
  }
  return tf.tensor2d(rows, [n, size]);
}

interface Item {
  name: string;
  file: string;
  kind?: string;
  shape?: number[];
}

/** Run the comparison for one folder. Throws only when no comparison is possible. */
export async function checkDiffsslFolder(folder: string, opts: DiffsslReferenceOptions = {}): Promise<DiffsslReport> {
  const tol = opts.tol ?? 1e-5;
  const scheduleTol = opts.scheduleTol ?? 1e-12;
  const manifest = readManifest(folder);
  const where = path.join(folder, "manifest.json");
  if (manifest.family !== "diffssl") throw new Error(`${where}: family is ${JSON.stringify(manifest.family)}, not "diffssl"`);
  const kind = manifest.kind;
  if (!["attention-head", "difformer", "diffeed"].includes(kind)) throw new Error(`${where}: kind ${JSON.stringify(kind)} is not one of attention-head, difformer, diffeed`);
  const items: Item[] = Array.isArray(manifest.tensors) ? manifest.tensors.filter((t: Item) => t && t.name && t.file) : [];
  if (!items.length) throw new Error(`${where}: "tensors" lists no tensors`);
  const spec = officialHeadFromManifest(manifest.head, where);

  const lines: ReferenceLine[] = [];
  const emit = (l: ReferenceLine) => {
    lines.push(l);
    opts.onLine?.(l);
  };
  const refs = new Map<string, NpyArray>();
  for (const it of items) {
    const f = path.join(folder, it.file);
    if (!fs.existsSync(f)) continue;
    try {
      refs.set(it.name, await readNpy(f));
    } catch (e) {
      emit({ name: it.name, file: it.file, status: "FAIL", note: `unreadable: ${(e as Error).message}` });
    }
  }
  /** An input array the computation needs: the manifest's entry (or the conventional file name). */
  const input = async (name: string): Promise<NpyArray> => {
    const r = refs.get(name);
    if (r) return r;
    const f = path.join(folder, `${name}.npy`);
    if (!fs.existsSync(f)) throw new Error(`${folder}: the input ${name}.npy is missing`);
    return readNpy(f);
  };
  const ckpt = (role: string, fallback: string): string => {
    const f = path.join(folder, manifest.checkpoints?.[role]?.file ?? fallback);
    if (!fs.existsSync(f)) throw new Error(`${folder}: checkpoint ${path.basename(f)} (${role}) is missing`);
    return f;
  };

  const ours = new Map<string, Value>();
  const t0 = Date.now();
  const built = buildOfficialHead(spec);
  let loadMs = 0, forwardMs = 0;
  let description = "";
  let unet: UNet | null = null;
  let feedback: FeedbackLayers | null = null;
  try {
    const headFile = ckpt("head", kind === "diffeed" ? "head.pt" : "model.pt");
    await loadOfficialHead(built, await loadStateDict(headFile), headFile);
    const order = headBlockOrder(spec).map((o) => o.block);
    const headText = built.kind === "attention"
      ? `attention head (pool ${built.config.pool}, dim ${built.config.dim}, ${built.config.heads} heads, ${built.config.blocks} blocks) on block ${built.block}`
      : `DifFormer head (blocks ${order.join(",")} x t ${spec.tList.join(",")}, pre-pool ${spec.prePool}, dim ${built.config.dim}, ${built.config.heads} heads, ${built.config.blocks} blocks)`;
    const headParams = countParams(built.head);
    description = `${headText}, ${headParams.toLocaleString("en-US")} parameters`;
    const recorded = manifest.num_parameters?.head;
    if (typeof recorded === "number") {
      emit({ name: "params:head", file: "manifest.json", status: recorded === headParams ? "PASS" : "FAIL", note: `ours ${headParams}, manifest num_parameters.head ${recorded}` });
    }

    if (kind === "diffeed") {
      const r = await diffeed(folder, manifest, spec, built, input, ckpt, ours);
      unet = r.unet;
      feedback = r.feedback;
      loadMs = Date.now() - t0 - r.forwardMs; // head, U-Net and feedback checkpoints
      forwardMs = r.forwardMs;
      const fbRecorded = manifest.num_parameters?.feedback;
      const fbOurs = feedbackParams(feedback.specs);
      if (typeof fbRecorded === "number") emit({ name: "params:feedback", file: "manifest.json", status: fbRecorded === fbOurs ? "PASS" : "FAIL", note: `ours ${fbOurs}, manifest num_parameters.feedback ${fbRecorded}` });
      description += `; feedback ${feedback.specs.map((s) => `${s.source}->${s.target}`).join(", ")} (${fbOurs.toLocaleString("en-US")} parameters) on a ${buildPlan(unet.config).blocks.length}-block U-Net`;
    } else {
      loadMs = Date.now() - t0;
      const feats: Value[][] = [];
      for (let i = 0; i < spec.tList.length; i++) {
        feats.push([]);
        for (const b of order) {
          const a = await input(`feat_t${i}_b${b}`);
          const want = spec.mapOf(b);
          if (a.shape.length !== 4 || a.shape[1] !== want[0] || a.shape[2] !== want[1] || a.shape[3] !== want[2]) {
            throw new Error(`${folder}: feat_t${i}_b${b}.npy has shape ${shapeText(a.shape)}; the manifest's head says N x ${want.join("x")}`);
          }
          feats[i].push({ data: npyToFloat32(a), shape: a.shape });
        }
      }
      const n = feats[0][0].shape[0];
      const t1 = Date.now();
      const rows = rowsFrom(feats, n);
      try {
        runHead(built, rows, order, "", ours);
      } finally {
        rows.dispose();
      }
      forwardMs = Date.now() - t1;
    }
  } finally {
    built.head.dispose();
    unet?.dispose();
    feedback?.dispose();
  }

  // One line per listed tensor.
  const failed = new Set(lines.map((l) => l.name));
  for (const it of items) {
    if (failed.has(it.name)) continue;
    const listed = listedReference(it, refs, folder);
    if ("fail" in listed) {
      emit(listed.fail);
      continue;
    }
    const ref = listed.ref;
    const mine = ours.get(it.name);
    if (!mine) {
      if (it.kind === "input") emit({ name: it.name, file: it.file, status: "INFO", shape: ref.shape, note: "input" });
      else emit({ name: it.name, file: it.file, status: "FAIL", shape: ref.shape, note: "no tensor of that name is computed by this check" });
      continue;
    }
    if (shapeText(mine.shape) !== shapeText(ref.shape)) {
      emit({ name: it.name, file: it.file, status: "FAIL", shape: ref.shape, note: `shape differs: ours ${shapeText(mine.shape)}, reference ${shapeText(ref.shape)}` });
      continue;
    }
    const bound = ref.data instanceof Float64Array ? scheduleTol : tol;
    const e = relError(mine.data, ref.data instanceof Float64Array ? ref.data : npyToFloat32(ref));
    emit({ name: it.name, file: it.file, status: e.rel <= bound ? "PASS" : "FAIL", shape: ref.shape, tol: bound, ...e });
  }
  return { folder, kind, description, backend: `tfjs ${tf.getBackend()}`, lines, ok: lines.every((l) => l.status !== "FAIL"), loadMs, forwardMs };
}

/** DifFeed: q_sample, first pass, feedback maps, second pass, head; every value into `ours`. */
async function diffeed(
  folder: string,
  manifest: Record<string, any>,
  spec: OfficialHead,
  built: BuiltOfficialHead,
  input: (name: string) => Promise<NpyArray>,
  ckpt: (role: string, fallback: string) => string,
  ours: Map<string, Value>,
): Promise<{ unet: UNet; feedback: FeedbackLayers; forwardMs: number }> {
  const where = path.join(folder, "manifest.json");
  if (!manifest.unet) throw new Error(`${where}: a diffeed folder needs a "unet" section (flags / unet_kwargs)`);
  const config = configFromManifest(manifest.unet);
  const fb = manifest.feedback ?? {};
  const arch = fb.feedback_arch ?? "C_B_R";
  if (arch !== "C_B_R") throw new Error(`${where}: feedback.feedback_arch ${JSON.stringify(arch)} is not supported (only C_B_R, scripts/feedback.sh)`);
  if (!Array.isArray(fb.feedback_b_list) || !fb.feedback_b_list.length) throw new Error(`${where}: feedback.feedback_b_list must list the decoder blocks`);
  const unetFile = ckpt("unet", "unet.pt");
  const unet = await UNet.fromCheckpoint(config, unetFile);
  let feedback: FeedbackLayers;
  try {
    feedback = new FeedbackLayers(config, fb.feedback_b_list);
    const fbFile = ckpt("feedback", "feedback.pt");
    await loadFeedbackLayers(feedback, await loadStateDict(fbFile), fbFile);
  } catch (e) {
    unet.dispose();
    throw e;
  }
  try {
    return await diffeedPasses(folder, manifest, spec, built, input, unet, feedback, ours);
  } catch (e) {
    unet.dispose();
    feedback.dispose();
    throw e;
  }
}

async function diffeedPasses(
  folder: string,
  manifest: Record<string, any>,
  spec: OfficialHead,
  built: BuiltOfficialHead,
  input: (name: string) => Promise<NpyArray>,
  unet: UNet,
  feedback: FeedbackLayers,
  ours: Map<string, Value>,
): Promise<{ unet: UNet; feedback: FeedbackLayers; forwardMs: number }> {
  const config = unet.config;
  const schedule: NoiseSchedule = scheduleFromManifest({ flags: manifest.unet.flags, diffusion: manifest.diffusion });
  ours.set("alphas_cumprod", { data: schedule.alphasCumprod, shape: [schedule.steps] });
  const x0 = await input("x0");
  if (x0.shape.length !== 4 || x0.shape[1] !== config.inChannels) throw new Error(`${folder}: x0.npy has shape ${shapeText(x0.shape)}; expected NCHW with ${config.inChannels} channels`);
  const tFile = await input("t");
  const tList = Array.from(tFile.data as ArrayLike<number | bigint>, Number);
  if (tList.join(",") !== spec.tList.join(",")) throw new Error(`${folder}: t.npy holds [${tList}] but head.t_list is [${spec.tList}]`);
  const [n, , hh, ww] = x0.shape;
  const x0v = npyToFloat32(x0);
  const plan = buildPlan(config);
  const names = [...(manifest.tensors as Item[]).map((t) => t.name)];
  const blocksIn = (re: RegExp) => [...new Set(names.map((s) => re.exec(s)).filter((m): m is RegExpExecArray => !!m).map((m) => Number(m[1])))];
  const firstWanted = [...new Set([...spec.firstBlocks, ...blocksIn(/^feat1_t\d+_b(\d+)$/)])];
  const secondWanted = [...new Set([...spec.secondBlocks, ...feedback.specs.map((s) => s.target), ...blocksIn(/^feat2_t\d+_b(\d+)$/)])];
  const put = (name: string, v: tf.Tensor) => ours.set(name, capture(v, true));

  const t1 = Date.now();
  const headMaps: Value[][] = [];
  for (let i = 0; i < tList.length; i++) {
    const noise = await input(`noise_t${i}`);
    if (noise.shape.join(",") !== x0.shape.join(",")) throw new Error(`${folder}: noise_t${i}.npy has shape ${shapeText(noise.shape)}, x0 ${shapeText(x0.shape)}`);
    const ts = new Array<number>(n).fill(tList[i]);
    const xt = qSampleArray(schedule, x0v, ts, npyToFloat32(noise));
    ours.set(`x_t_t${i}`, { data: xt, shape: [...x0.shape] });
    const x = tf.tidy(() => tf.tensor4d(xt, [n, x0.shape[1], hh, ww]).transpose([0, 2, 3, 1]) as tf.Tensor4D);
    let first: Map<number, tf.Tensor4D> | null = null;
    let second: Map<number, tf.Tensor4D> | null = null;
    try {
      first = difFeedFirstPass(unet, feedback, x, ts, firstWanted);
      for (const [b, v] of first) put(`feat1_t${i}_b${b}`, v);
      for (const training of [false, true]) {
        const maps = feedback.maps(first, training);
        for (const s of feedback.specs) {
          const m = maps.get(s.target)!;
          put(`${training ? "fbtrain" : "fb"}_t${i}_b${s.source}`, m);
          if (!training) {
            const ds = plan.blocks[s.target - 1].outDs;
            tf.tidy(() => {
              put(`fbi_t${i}_b${s.source}`, resizeBilinear(m, hh / ds, ww / ds));
            });
          }
        }
        for (const m of maps.values()) m.dispose();
      }
      second = difFeedSecondPass(unet, feedback, x, ts, first, secondWanted);
      for (const [b, v] of second) put(`feat2_t${i}_b${b}`, v);
      headMaps.push(headBlockOrder(spec).map((o) => capture((o.pass === 1 ? first! : second!).get(o.block)!, true)));
    } finally {
      x.dispose();
      for (const m of [first, second]) for (const v of m?.values() ?? []) v.dispose();
    }
  }
  const rows = rowsFrom(headMaps, n);
  try {
    runHead(built, rows, headBlockOrder(spec).map((o) => o.block), "head_", ours);
  } finally {
    rows.dispose();
  }
  return { unet, feedback, forwardMs: Date.now() - t1 };
}

/**
 * The check-reference CLI's report for one diffssl folder: one line per tensor, a summary, and the exit
 * status (0 all passed, 1 some tensor failed, 2 the comparison could not run).
 */
export async function runDiffsslCheck(
  folder: string,
  opts: { tol?: number; scheduleTol?: number; backend?: string; log?: (s: string) => void; error?: (s: string) => void } = {},
): Promise<number> {
  const log = opts.log ?? ((s: string) => console.log(s));
  const error = opts.error ?? ((s: string) => console.error(s));
  try {
    if (opts.backend) await selectBackend(opts.backend);
    const r = await checkDiffsslFolder(folder, { tol: opts.tol, scheduleTol: opts.scheduleTol, onLine: (l) => log(formatLine(l)) });
    const fails = r.lines.filter((l) => l.status === "FAIL").length;
    const passes = r.lines.filter((l) => l.status === "PASS" && l.rel !== undefined).length;
    const worst = Math.max(...r.lines.filter((l) => l.rel !== undefined && l.name !== "alphas_cumprod").map((l) => l.rel!));
    log(`diffssl ${r.kind}: ${r.description}`);
    log(`engine: ${r.backend}`);
    log(`load ${r.loadMs} ms, forward ${r.forwardMs} ms; worst float32 rel ${Number.isFinite(worst) ? worst.toExponential(2) : "n/a"}`);
    log(fails === 0 ? `ALL PASS (${passes} tensors)` : `${fails} FAILED, ${passes} passed`);
    return fails ? 1 : 0;
  } catch (e) {
    error(`ERROR: ${(e as Error).message}`);
    return 2;
  }
}
