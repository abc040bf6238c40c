/**
 * Run-time choice of the TensorFlow.js backend.
 *
 * Order of preference: tfjs-node-gpu (binding present and a GPU visible), tfjs-node (binding present),
 * wasm (SIMD, one thread per instance), cpu (pure JS, ~30x slower). An explicit choice — the `prefer`
 * argument or the DIFFPROBE_BACKEND environment variable — is honoured, and is an error when unavailable.
 *
 * Native bindings are *detected* before anything is required: a `require` of a package whose native
 * addon is missing throws half way through registering its kernels, which leaves tfjs in a bad state.
 */
import * as fs from "fs";
import * as path from "path";
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";

export type BackendName = "tensorflow-gpu" | "tensorflow" | "wasm" | "cpu";
export const BACKEND_ORDER: readonly BackendName[] = ["tensorflow-gpu", "tensorflow", "wasm", "cpu"];

/** Accepted spellings of each backend (package names and tfjs backend names). */
const ALIASES: Record<string, BackendName> = {
  "tensorflow-gpu": "tensorflow-gpu", "tfjs-node-gpu": "tensorflow-gpu", "node-gpu": "tensorflow-gpu", gpu: "tensorflow-gpu",
  tensorflow: "tensorflow", "tfjs-node": "tensorflow", node: "tensorflow",
  wasm: "wasm", cpu: "cpu",
};

export interface BackendCandidate {
  name: BackendName;
  available: boolean;
  /** Why it is or is not available. */
  reason: string;
}

export interface BackendChoice {
  /** The backend now active in tfjs. */
  name: BackendName;
  /** One line per backend considered: taken, skipped and why. */
  log: string[];
  /** Whether the choice was forced by argument or environment variable. */
  forced: boolean;
}

/** Probe hooks, replaceable in tests. */
export interface Probe {
  resolvePackage(name: string): string | null;
  fileExists(p: string): boolean;
  gpuVisible(): { visible: boolean; reason: string };
}

export const defaultProbe: Probe = {
  resolvePackage(name) {
    try {
      return path.dirname(require.resolve(`${name}/package.json`));
    } catch {
      return null;
    }
  },
  fileExists: (p) => fs.existsSync(p),
  gpuVisible() {
    if (process.env.CUDA_VISIBLE_DEVICES !== undefined && /^(|-1|none)$/i.test(process.env.CUDA_VISIBLE_DEVICES.trim())) {
      return { visible: false, reason: `CUDA_VISIBLE_DEVICES=${JSON.stringify(process.env.CUDA_VISIBLE_DEVICES)} hides every GPU` };
    }
    if (fs.existsSync("/proc/driver/nvidia/gpus")) {
      const gpus = fs.readdirSync("/proc/driver/nvidia/gpus");
      if (gpus.length > 0) return { visible: true, reason: `${gpus.length} NVIDIA GPU(s) in /proc/driver/nvidia/gpus` };
    }
    if (fs.existsSync("/dev/nvidia0")) return { visible: true, reason: "/dev/nvidia0 exists" };
    return { visible: false, reason: "no NVIDIA GPU visible (/proc/driver/nvidia/gpus, /dev/nvidia0)" };
  },
};

/** Find the compiled binding of tfjs-node(-gpu) without loading it. */
function findBinding(pkg: string, probe: Probe): { found: boolean; reason: string } {
  const dir = probe.resolvePackage(pkg);
  if (!dir) return { found: false, reason: `${pkg} is not installed` };
  const candidates = ["lib/napi-v8/tfjs_binding.node", "lib/napi-v9/tfjs_binding.node", "lib/napi-v7/tfjs_binding.node"];
  for (const rel of candidates) {
    if (probe.fileExists(path.join(dir, rel))) return { found: true, reason: `${pkg} binding at ${rel}` };
  }
  return { found: false, reason: `${pkg} is installed but its native binding is missing (libtensorflow download failed at install?)` };
}

/** What each backend's availability looks like right now, in preference order. */
export function probeBackends(probe: Probe = defaultProbe): BackendCandidate[] {
  const gpuBinding = findBinding("@tensorflow/tfjs-node-gpu", probe);
  const gpu = probe.gpuVisible();
  const nodeBinding = findBinding("@tensorflow/tfjs-node", probe);
  return [
    {
      name: "tensorflow-gpu",
      available: gpuBinding.found && gpu.visible,
      reason: gpuBinding.found ? `${gpuBinding.reason}; ${gpu.reason}` : gpuBinding.reason,
    },
    { name: "tensorflow", available: nodeBinding.found, reason: nodeBinding.reason },
    { name: "wasm", available: tf.findBackendFactory("wasm") != null, reason: "@tensorflow/tfjs-backend-wasm (SIMD, 1 thread per instance)" },
    { name: "cpu", available: true, reason: "pure-JS reference backend (slow)" },
  ];
}

/** Normalise a user-given backend name; throws a clear error listing the accepted names. */
export function parseBackendName(raw: string): BackendName {
  const key = raw.trim().toLowerCase().replace(/^@tensorflow\//, "");
  const name = ALIASES[key];
  if (!name) {
    throw new Error(`unknown backend ${JSON.stringify(raw)}: expected one of ${Object.keys(ALIASES).join(", ")}`);
  }
  return name;
}

/**
 * Pick the backend to use: the forced one when given, else the first available in BACKEND_ORDER.
 * Pure: does not touch tfjs. Throws when a forced backend is unavailable, naming why.
 */
export function planBackend(candidates: BackendCandidate[], prefer?: string): BackendChoice {
  const log: string[] = [];
  if (prefer) {
    const name = parseBackendName(prefer);
    const c = candidates.find((x) => x.name === name)!;
    if (!c.available) throw new Error(`backend "${name}" was requested but is unavailable: ${c.reason}`);
    for (const x of candidates) log.push(x.name === name ? `${x.name}: taken (forced) — ${x.reason}` : `${x.name}: not considered (forced choice)`);
    return { name, log, forced: true };
  }
  let chosen: BackendName | null = null;
  for (const c of candidates) {
    if (chosen) log.push(`${c.name}: not needed — ${c.reason}`);
    else if (c.available) {
      chosen = c.name;
      log.push(`${c.name}: taken — ${c.reason}`);
    } else log.push(`${c.name}: skipped — ${c.reason}`);
  }
  return { name: chosen ?? "cpu", log, forced: false };
}

const NATIVE_PACKAGE: Partial<Record<BackendName, string>> = {
  "tensorflow-gpu": "@tensorflow/tfjs-node-gpu",
  tensorflow: "@tensorflow/tfjs-node",
};

/** The environment variable that forces a backend. */
export const BACKEND_ENV = "DIFFPROBE_BACKEND";

/**
 * Choose and activate a backend. `prefer` (or $DIFFPROBE_BACKEND) forces one.
 * Returns what was taken and a line per backend saying why the others were skipped.
 */
export async function selectBackend(prefer?: string, probe: Probe = defaultProbe): Promise<BackendChoice> {
  const forced = prefer ?? (process.env[BACKEND_ENV] || undefined);
  const choice = planBackend(probeBackends(probe), forced);
  const pkg = NATIVE_PACKAGE[choice.name];
  // tfjs-node registers itself under the backend name "tensorflow" (also the GPU build).
  const tfName = pkg ? "tensorflow" : choice.name;
  if (pkg && tf.findBackendFactory("tensorflow") == null) {
    const dynamicRequire = require; // keeps the optional package out of static type-checking
    dynamicRequire(pkg);
  }
  const ok = await tf.setBackend(tfName);
  if (!ok) throw new Error(`tfjs could not initialise backend "${choice.name}" (${tfName})`);
  await tf.ready();
  return choice;
}

/** One-line summary: "wasm (tfjs 4.22.0)". */
export function describeBackend(): string {
  return `${tf.getBackend()} (tfjs ${tf.version.tfjs})`;
}
