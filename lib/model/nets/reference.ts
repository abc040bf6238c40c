/**
 * Compare the torchvision networks, on ONNX Runtime or tfjs (./net-engine), with a folder of PyTorch reference tensors (the layout of
 * ../shared/fixtures/torchvision/<config>/, see its README):
 *
 *   manifest.json   family "torchvision", constructor, kwargs, layers (ResNet), input, tensors (name, file, shape)
 *   model.pt        torch.save(model.state_dict())
 *   x.npy           the input, NCHW float32, used as is
 *   <module>.npy    one per saved module output ("relu", "layer1.0", "avgpool", "conv_proj", "encoder.ln", ...)
 *
 * One line per tensor, `rel = max|ours - ref| / max|ref|` against `tol` (default 1e-5), as the U-Net check.
 */
import * as fs from "fs";
import * as path from "path";
import { loadStateDict } from "../checkpoint/index";
import type { HostTensor } from "../engines/engine";
import { npyToFloat32, NpyArray, readNpy } from "../npy";
import { formatLine, listedReference, relError, ReferenceLine, shapeText } from "../unet/reference";
import { configFromManifest, NetConfig } from "./load";
import { createNetEngine, netDescription } from "./net-engine";

export interface NetReferenceOptions {
  tol?: number;
  /** "auto" (default: $DIFFPROBE_ENGINE, else ONNX Runtime where it loads), "ort" or "tfjs" (on the active backend). */
  engine?: string;
  /** Where built ONNX models are kept (default .cache/onnx or $DIFFPROBE_ONNX_CACHE). */
  cacheRoot?: string;
  onLine?: (line: ReferenceLine) => void;
}

export interface NetReferenceReport {
  folder: string;
  net: NetConfig;
  /** What ran: "onnxruntime-node 1.30.0, cpu, 2 threads" or "tfjs 4.22.0, wasm". */
  backend: string;
  lines: ReferenceLine[];
  ok: boolean;
  /** Reading the weights and making the engine ready (an ONNX build or cache hit included). */
  loadMs: number;
  /** The first forward pass. */
  forwardMs: number;
  /** Parameters in the checkpoint (BatchNorm running statistics not counted). */
  parameters: number;
}


/** Whether `folder`'s manifest says it is a torchvision-family reference folder. */
export function isTorchvisionFolder(folder: string): boolean {
  const f = path.join(folder, "manifest.json");
  if (!fs.existsSync(f)) return false;
  try {
    return JSON.parse(fs.readFileSync(f, "utf8")).family === "torchvision";
  } catch {
    return false;
  }
}

/**
 * Run the comparison for one folder on the chosen engine (tfjs: its active backend). Throws only when no comparison is possible
 * (no manifest, checkpoint or input; a checkpoint that does not match the manifest's network).
 */
export async function checkTorchvisionFolder(folder: string, opts: NetReferenceOptions = {}): Promise<NetReferenceReport> {
  const tol = opts.tol ?? 1e-5;
  const lines: ReferenceLine[] = [];
  const emit = (l: ReferenceLine) => {
    lines.push(l);
    opts.onLine?.(l);
  };
  const manifestFile = path.join(folder, "manifest.json");
  if (!fs.existsSync(manifestFile)) throw new Error(`${folder}: no manifest.json (expected the torchvision reference layout)`);
  const manifest = JSON.parse(fs.readFileSync(manifestFile, "utf8"));
  if (manifest.family !== "torchvision") throw new Error(`${manifestFile}: family is ${JSON.stringify(manifest.family)}, not "torchvision"`);
  const net = configFromManifest(manifest);
  const inputFile = path.join(folder, manifest.input?.file ?? "x.npy");
  if (!fs.existsSync(inputFile)) throw new Error(`${folder}: the input ${path.basename(inputFile)} is missing`);
  const input = await readNpy(inputFile);
  if (input.shape.length !== 4) throw new Error(`${inputFile}: shape ${shapeText(input.shape)}; expected NCHW`);
  const ckpt = path.join(folder, manifest.checkpoint?.file ?? "model.pt");
  if (!fs.existsSync(ckpt)) throw new Error(`${folder}: checkpoint ${path.basename(ckpt)} is missing`);

  const t0 = Date.now();
  const sd = await loadStateDict(ckpt);
  let parameters = 0;
  for (const [k, t] of sd) if (!/running_(mean|var)$|num_batches_tracked$/.test(k)) parameters += t.shape.reduce((a, b) => a * b, 1);
  const all = netDescription(net).stages.map((s) => s.name);
  const known = new Set(all);

  const items = ((manifest.tensors ?? []) as { name: string; file: string; shape?: number[] }[]).filter((t) => t.name && t.file);
  const refs = new Map<string, NpyArray>();
  const wanted: string[] = [];
  for (const it of items) {
    const file = path.join(folder, it.file);
    if (!known.has(it.name)) continue;
    if (!fs.existsSync(file)) continue;
    try {
      refs.set(it.name, await readNpy(file));
      wanted.push(it.name);
    } catch (e) {
      emit({ name: it.name, file: it.file, status: "FAIL", note: `unreadable: ${(e as Error).message}` });
    }
  }
  const { engine } = await createNetEngine(ckpt, { engine: opts.engine, config: net, stateDict: sd, layers: wanted.length ? wanted : [all[0]], cacheRoot: opts.cacheRoot });
  const loadMs = Date.now() - t0;
  let forwardMs = 0;
  let outputs = new Map<string, HostTensor>();
  try {
    if (wanted.length) {
      const t1 = Date.now();
      outputs = await engine.run(npyToFloat32(input), input.shape);
      forwardMs = Date.now() - t1;
    }
    for (const it of items) {
      if (lines.some((l) => l.name === it.name)) continue;
      if (!known.has(it.name)) {
        emit({ name: it.name, file: it.file, status: "FAIL", note: `no layer of that name; the layers are ${all.join(", ")}` });
        continue;
      }
      const listed = listedReference(it, refs, folder);
      if ("fail" in listed) {
        emit(listed.fail);
        continue;
      }
      const ref = listed.ref;
      const ours = outputs.get(it.name)!;
      if (shapeText(ours.shape) !== shapeText(ref.shape)) {
        emit({ name: it.name, file: it.file, status: "FAIL", shape: ref.shape, note: `shape differs: ours ${shapeText(ours.shape)}, reference ${shapeText(ref.shape)}` });
        continue;
      }
      const e = relError(ours.data, npyToFloat32(ref));
      emit({ name: it.name, file: it.file, status: e.rel <= tol ? "PASS" : "FAIL", shape: ref.shape, tol, ...e });
    }
    if (items.length === 0) emit({ name: "(manifest)", file: "manifest.json", status: "FAIL", note: "the manifest lists no tensors" });
  } finally {
    await engine.dispose();
  }
  return { folder, net, backend: engine.description, lines, ok: lines.every((l) => l.status !== "FAIL"), loadMs, forwardMs, parameters };
}

/** One line describing the network, e.g. "ResNet layers 3,4,6,3, widths 64..512, 1000 classes". */
export function describeNet(n: NetConfig): string {
  if (n.family === "resnet") {
    const c = n.config;
    return `ResNet (Bottleneck) layers ${c.layers.join(",")}, stem ${c.stemWidth}, widths ${c.widths.join(",")}, out ${c.outChannels.join(",")}, ${c.numClasses ?? "no"} classes`;
  }
  const c = n.config;
  return `VisionTransformer image ${c.imageSize}, patch ${c.patchSize}, ${c.numLayers} layers, ${c.numHeads} heads, hidden ${c.hiddenDim}, mlp ${c.mlpDim}, ${c.numClasses ?? "no"} classes`;
}

/**
 * The check-reference CLI's report for one torchvision folder: one line per tensor, a summary, and the exit
 * status (0 all passed, 1 some tensor failed, 2 the comparison could not run).
 */
export async function runTorchvisionCheck(
  folder: string,
  opts: { tol?: number; engine?: string; cacheRoot?: string; log?: (s: string) => void; error?: (s: string) => void } = {},
): Promise<number> {
  const log = opts.log ?? ((s: string) => console.log(s));
  const error = opts.error ?? ((s: string) => console.error(s));
  try {
    const r = await checkTorchvisionFolder(folder, { tol: opts.tol, engine: opts.engine, cacheRoot: opts.cacheRoot, onLine: (l) => log(formatLine(l)) });
    const fails = r.lines.filter((l) => l.status === "FAIL").length;
    const passes = r.lines.filter((l) => l.status === "PASS").length;
    const worst = Math.max(...r.lines.filter((l) => l.rel !== undefined).map((l) => l.rel!));
    log(`network: ${describeNet(r.net)}, ${r.parameters.toLocaleString("en-US")} parameters`);
    log(`engine: ${r.backend}`);
    log(`load ${r.loadMs} ms, forward ${r.forwardMs} ms; worst float32 rel ${Number.isFinite(worst) ? worst.toExponential(2) : "n/a"}`);
    log(fails === 0 ? `ALL PASS (${passes} tensors)` : `${fails} FAILED, ${passes} passed`);
    return fails ? 1 : 0;
  } catch (e) {
    error(`ERROR: ${(e as Error).message}`);
    return 2;
  }
}
