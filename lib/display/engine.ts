/**
 * One line saying which engine computes the U-Net features (ONNX Runtime, or tfjs and its backend) and
 * why: the choice lib/features/store/extractor.ts createExtractor makes (lib/model/engines/engine.ts chooseEngine), printed
 * at the top of a notebook that extracts.
 */
import * as tf from "@tensorflow/tfjs";
import { chooseEngine } from "../model/engines/engine";
import { loadOrt, sessionOptions } from "../model/engines/ort-runtime";

export interface FeatureEngineOptions {
  /** The engine asked for, as ProbeGridSpec.engine ("auto" or absent: $DIFFPROBE_ENGINE, else automatic). */
  engine?: string;
  /** The tfjs backend of the feature workers when tfjs extracts (createExtractor's workers use "wasm"). */
  workerBackend?: string;
  /** showFeatureEngine only: the notebook's own tfjs backend (selectBackend's name), printed on a second line. */
  backend?: string;
}

/**
 * "feature engine: onnxruntime-node 1.30.0 (cpu, 2 threads), chosen automatically" (within 100 columns),
 * or "feature engine: tfjs 4.22.0, wasm in worker threads (onnxruntime-node cannot be loaded: ...)".
 */
export function featureEngineLine(opts: FeatureEngineOptions = {}): string {
  const choice = chooseEngine(opts.engine === "auto" ? undefined : opts.engine);
  const how = choice.forced ? `forced by ${opts.engine && opts.engine !== "auto" ? "the notebook" : "$DIFFPROBE_ENGINE"}` : "chosen automatically";
  if (choice.name === "ort") {
    const so = sessionOptions();
    const provider = String(so.executionProviders?.[0] ?? "cpu");
    const threads = so.intraOpNumThreads ?? 1;
    return `feature engine: ${loadOrt().reason} (${provider}, ${threads} thread${threads === 1 ? "" : "s"}), ${how}`;
  }
  const why = choice.forced ? how : `${loadOrt().reason}`;
  return `feature engine: tfjs ${tf.version.tfjs}, ${opts.workerBackend ?? "wasm"} in worker threads (${why})`;
}

/** "tfjs backend for the rest of this notebook: wasm (tfjs 4.22.0)". */
export function backendLine(backend: string): string {
  return `tfjs backend for the rest of this notebook: ${backend} (tfjs ${tf.version.tfjs})`;
}

/**
 * Print the feature engine line, and with `backend` the notebook's tfjs backend on a second line (plain
 * text: it reads the same in a notebook, a terminal and an export).
 */
export function showFeatureEngine(opts: FeatureEngineOptions = {}): void {
  console.log(featureEngineLine(opts));
  if (opts.backend) console.log(backendLine(opts.backend));
}
