/**
 * Built ONNX models on disk, keyed by everything that changes them: the weights' content fingerprint (or
 * seed), the architecture config, the outputs, the input size and the builder's version.
 *
 * A model is built into a temporary folder and renamed into place only when complete, with a
 * `complete.json` holding the size and SHA-256 of both files. Loading checks both first: a folder from a
 * run killed while writing (never renamed), a truncated or altered file, or a missing marker is removed and
 * rebuilt, never loaded.
 */
import * as fs from "fs";
import * as path from "path";
import { createHash } from "crypto";
import { projectRoot } from "../../paths";
import { sha256FileSync } from "../checkpoint/fingerprint";
import { OnnxGraph } from "./onnx-graph";

/** Bump when the graph builder changes what it writes for the same key. */
export const GRAPH_VERSION = 2;

export const MODEL_FILE = "model.onnx";
export const DATA_FILE = "weights.bin";
const MARKER = "complete.json";

export function defaultOnnxCacheRoot(): string {
  return process.env.DIFFPROBE_ONNX_CACHE ?? path.join(projectRoot(), ".cache", "onnx");
}

/** Folder name for a key object (stable JSON -> SHA-256). */
export function cacheKeyId(key: Record<string, unknown>): string {
  return createHash("sha256").update(JSON.stringify({ ...key, graphVersion: GRAPH_VERSION })).digest("hex").slice(0, 32);
}

interface Marker { files: Record<string, { bytes: number; sha256: string }>; key: Record<string, unknown>; built: string; buildSeconds: number }


/** Why the cached folder cannot be used, or null when it is complete and intact. */
export function verifyCached(dir: string): string | null {
  const markerFile = path.join(dir, MARKER);
  if (!fs.existsSync(markerFile)) return `no ${MARKER}`;
  let marker: Marker;
  try {
    marker = JSON.parse(fs.readFileSync(markerFile, "utf8"));
  } catch (e) {
    return `${MARKER} unreadable (${(e as Error).message})`;
  }
  for (const f of [MODEL_FILE, DATA_FILE]) {
    const want = marker.files?.[f];
    const p = path.join(dir, f);
    if (!want) return `${MARKER} does not list ${f}`;
    if (!fs.existsSync(p)) return `${f} missing`;
    const bytes = fs.statSync(p).size;
    if (bytes !== want.bytes) return `${f} has ${bytes} bytes, ${want.bytes} were written`;
    if (sha256FileSync(p) !== want.sha256) return `${f} does not match its SHA-256`;
  }
  return null;
}

export interface CachedModel {
  dir: string;
  modelPath: string;
  /** True when this call built it. */
  built: boolean;
  buildSeconds: number;
  /** Why an existing folder was rebuilt (absent when there was none, or it was used). */
  rebuiltBecause?: string;
}

/**
 * The cached model for `key`, building it with `build(tmpDir)` (which writes MODEL_FILE and DATA_FILE)
 * when absent or damaged.
 */
export async function cachedModel(key: Record<string, unknown>, build: (dir: string) => Promise<void>, root = defaultOnnxCacheRoot()): Promise<CachedModel> {
  const dir = path.join(root, cacheKeyId(key));
  const modelPath = path.join(dir, MODEL_FILE);
  let rebuiltBecause: string | undefined;
  if (fs.existsSync(dir)) {
    const problem = verifyCached(dir);
    if (problem === null) {
      const marker = JSON.parse(fs.readFileSync(path.join(dir, MARKER), "utf8")) as Marker;
      return { dir, modelPath, built: false, buildSeconds: marker.buildSeconds };
    }
    rebuiltBecause = problem;
    fs.rmSync(dir, { recursive: true, force: true });
  }
  fs.mkdirSync(root, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(root, `.build-${process.pid}-`));
  const t0 = Date.now();
  try {
    await build(tmp);
    const files: Marker["files"] = {};
    for (const f of [MODEL_FILE, DATA_FILE]) {
      const p = path.join(tmp, f);
      files[f] = { bytes: fs.statSync(p).size, sha256: sha256FileSync(p) };
    }
    const buildSeconds = (Date.now() - t0) / 1000;
    const marker: Marker = { files, key, built: new Date().toISOString(), buildSeconds };
    const mfd = fs.openSync(path.join(tmp, MARKER), "w");
    fs.writeSync(mfd, JSON.stringify(marker, null, 2) + "\n");
    fs.fsyncSync(mfd);
    fs.closeSync(mfd);
    try {
      fs.renameSync(tmp, dir);
    } catch (e) {
      // Another process finished the same model first: use it if intact.
      if (fs.existsSync(dir) && verifyCached(dir) === null) fs.rmSync(tmp, { recursive: true, force: true });
      else throw e;
    }
    return { dir, modelPath, built: true, buildSeconds, rebuiltBecause };
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** Remove build folders left by killed runs (older than `maxAgeMs`). */
export function sweepStaleBuilds(root = defaultOnnxCacheRoot(), maxAgeMs = 24 * 3600 * 1000): number {
  if (!fs.existsSync(root)) return 0;
  let n = 0;
  for (const e of fs.readdirSync(root)) {
    if (!e.startsWith(".build-")) continue;
    const p = path.join(root, e);
    if (Date.now() - fs.statSync(p).mtimeMs > maxAgeMs) {
      fs.rmSync(p, { recursive: true, force: true });
      n++;
    }
  }
  return n;
}

/**
 * A `build` function for cachedModel: `fill` adds the graph (weights go to DATA_FILE as they are added) and
 * returns the model's metadata; the encoded model is written to MODEL_FILE and synced.
 */
export function graphBuilder(doc: string, fill: (g: OnnxGraph) => Promise<Record<string, string>> | Record<string, string>): (dir: string) => Promise<void> {
  return async (dir) => {
    const g = new OnnxGraph(path.join(dir, DATA_FILE), DATA_FILE);
    try {
      const meta = await fill(g);
      const bytes = g.finish(meta, doc);
      const fd = fs.openSync(path.join(dir, MODEL_FILE), "w");
      fs.writeSync(fd, bytes);
      fs.fsyncSync(fd);
      fs.closeSync(fd);
    } catch (e) {
      g.abort();
      throw e;
    }
  };
}
