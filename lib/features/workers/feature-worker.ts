/**
 * Worker entry of the feature pool: one tfjs instance (wasm by default: one SIMD thread per worker)
 * and one copy of the model per worker; each task is a batch of images, answered with its features.
 */
import { serveWorker } from "./protocol";
import { selectBackend } from "../../model/backend";
import type { ModelSource } from "../../model/model-source";
import { loadModel } from "../../model/load-model";
import { extractFeatures, FeatureOptions, FeatureBatch } from "../extract";

export interface FeatureWorkerInit {
  model: ModelSource;
  /** tfjs backend for the worker (default "wasm"). */
  backend?: string;
}

/** A batch sent to a worker: NHWC images, their ids, and what to extract. */
export interface FeatureTask {
  data: Float32Array;
  shape: [number, number, number, number];
  ids: string[];
  y?: number[];
  /** Extraction options, without cache (the main thread owns the cache). */
  options: Omit<FeatureOptions, "ids" | "y" | "cache" | "indexOffset">;
}

export interface FeatureWorkerInfo {
  backend: string;
  loadSeconds: number;
  /** Resident set size of the process after loading (all threads share one process). */
  rssBytes: number;
}

serveWorker<FeatureWorkerInit, FeatureTask, FeatureBatch>(async (init) => {
  const choice = await selectBackend(init.backend ?? "wasm");
  const t0 = Date.now();
  const model = await loadModel(init.model);
  const info: FeatureWorkerInfo = { backend: choice.name, loadSeconds: (Date.now() - t0) / 1000, rssBytes: process.memoryUsage().rss };
  return {
    info,
    handler: async (task) => {
      const batch = await extractFeatures(model, { data: task.data, shape: task.shape }, { ...task.options, ids: task.ids, y: task.y });
      return { result: batch, transfer: batch.matrices.map((m) => m.data.buffer as ArrayBuffer) };
    },
  };
});
