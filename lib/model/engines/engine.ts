/**
 * Inference engines for the U-Net: ONNX Runtime (fast on CPU, CUDA where installed) and TensorFlow.js (the
 * training engine, as fall-back). Both take NCHW float32 images and return NCHW block outputs keyed by module
 * name, so the feature code never knows which one ran.
 *
 * The choice is like the tfjs backend choice: automatic (ONNX Runtime where its binding loads, else tfjs),
 * or forced by argument or $DIFFPROBE_ENGINE, and it says which it took and why.
 */
import type { UNetConfig } from "../unet/config";
import { loadOrt, OrtLoad } from "./ort-runtime";

export type EngineName = "ort" | "tfjs";
export const ENGINE_ORDER: readonly EngineName[] = ["ort", "tfjs"];
export const ENGINE_ENV = "DIFFPROBE_ENGINE";

const ALIASES: Record<string, EngineName> = {
  ort: "ort", onnx: "ort", onnxruntime: "ort", "onnxruntime-node": "ort",
  tfjs: "tfjs", tensorflow: "tfjs", "tensorflow.js": "tfjs",
};

/** A tensor in plain memory (row-major). */
export interface HostTensor {
  data: Float32Array;
  shape: number[];
}

export interface UNetEngine {
  readonly name: EngineName;
  /** What runs, e.g. "onnxruntime-node 1.30.0, cpu, 2 threads" or "tfjs 4.22.0, wasm". */
  readonly description: string;
  readonly config: UNetConfig;
  /** Output names in network order ("emb", block module names, "out"). */
  readonly outputs: string[];
  /** Seconds it took to make the engine ready (build or cache hit, then load). */
  readonly loadSeconds: number;
  /**
   * One forward pass on `x` = x_t, NCHW [n, C, H, W], at model timesteps `t` (one per image, unscaled),
   * with labels `y` for class-conditional models. Returns every output, NCHW ("emb": [n, 4C]).
   */
  run(x: Float32Array, n: number, t: number[], y?: number[]): Promise<Map<string, HostTensor>>;
  dispose(): Promise<void>;
}

export interface EngineChoice {
  name: EngineName;
  /** One line per engine considered: taken, skipped and why. */
  log: string[];
  forced: boolean;
}

export function parseEngineName(raw: string): EngineName | "auto" {
  const k = raw.trim().toLowerCase();
  if (k === "auto" || k === "") return "auto";
  const n = ALIASES[k];
  if (!n) throw new Error(`unknown engine ${JSON.stringify(raw)}: use auto, ${ENGINE_ORDER.join(" or ")} (also via $${ENGINE_ENV})`);
  return n;
}

/**
 * Pick the engine: `prefer` (argument), else $DIFFPROBE_ENGINE, else automatic. A forced engine that cannot
 * run is an error naming why; automatic takes ONNX Runtime when its binding loads, else tfjs.
 */
export function chooseEngine(prefer?: string, probe: () => OrtLoad = loadOrt): EngineChoice {
  const raw = prefer ?? process.env[ENGINE_ENV] ?? "auto";
  const wanted = parseEngineName(raw);
  const ort = probe();
  const forced = wanted !== "auto";
  const how = prefer !== undefined ? "asked for" : `forced by $${ENGINE_ENV}`;
  if (wanted === "ort") {
    if (!ort.ort) throw new Error(`engine ort was ${how}, but ${ort.reason}`);
    return { name: "ort", forced, log: [`ort: taken (${how}; ${ort.reason})`] };
  }
  if (wanted === "tfjs") {
    return { name: "tfjs", forced, log: [`tfjs: taken (${how})`, `ort: not used (${ort.ort ? ort.reason + " is available" : ort.reason})`] };
  }
  if (ort.ort) return { name: "ort", forced, log: [`ort: taken (automatic: ${ort.reason} loads)`, "tfjs: not needed"] };
  return { name: "tfjs", forced, log: [`ort: skipped (${ort.reason})`, "tfjs: taken (automatic fall-back)"] };
}
