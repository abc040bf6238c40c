/**
 * Loading ONNX Runtime (onnxruntime-node) at run time, saying why when it cannot be loaded, and the
 * session options the project uses (CPU by default; CUDA when asked and present).
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type * as Ort from "onnxruntime-node";

export type OrtModule = typeof Ort;

export interface OrtLoad {
  ort: OrtModule | null;
  /** Version, or why it is unavailable. */
  reason: string;
}

let cached: OrtLoad | null = null;

/** Load onnxruntime-node once: its JS and its native binding (the binding is what fails on odd platforms). */
export function loadOrt(): OrtLoad {
  if (cached) return cached;
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const ort = require("onnxruntime-node") as OrtModule;
    const backends = ort.listSupportedBackends?.() ?? [];
    if (!backends.some((b) => b.name === "cpu")) throw new Error(`its native binding lists no CPU backend (${JSON.stringify(backends)})`);
    cached = { ort, reason: `onnxruntime-node ${ort.env.versions.node ?? "?"}` };
  } catch (e) {
    cached = { ort: null, reason: `onnxruntime-node cannot be loaded: ${(e as Error).message.split("\n")[0]}` };
  }
  return cached;
}

/** Execution providers the binding was built with ("cpu", "cuda", ...). */
export function ortProviders(): string[] {
  const { ort } = loadOrt();
  return ort ? ort.listSupportedBackends().map((b) => b.name) : [];
}

/** The folder of the native binding, where providers that the npm package does not ship must be put. */
export function ortBinaryFolder(): string {
  return path.join(path.dirname(require.resolve("onnxruntime-node/package.json")), "bin", "napi-v6", process.platform, process.arch);
}

/**
 * Why a provider the binding knows but the npm package does not bundle (cuda, tensorrt) cannot be used here,
 * or null when its libraries are in place.
 */
export function missingProviderLibraries(provider: string): string | null {
  const { ort } = loadOrt();
  const b = ort?.listSupportedBackends().find((x) => x.name === provider);
  if (!b || b.bundled) return null;
  const dir = ortBinaryFolder();
  const need = ["libonnxruntime_providers_shared.so", `libonnxruntime_providers_${provider}.so`];
  const missing = process.platform === "linux" ? need.filter((f) => !fs.existsSync(path.join(dir, f))) : [];
  return missing.length ? `ONNX Runtime provider "${provider}" is not installed: ${missing.join(" and ")} ${missing.length > 1 ? "are" : "is"} missing from ${dir} (the npm package does not ship them; environment.md, "CUDA", gives the steps)` : null;
}

export const ORT_THREADS_ENV = "DIFFPROBE_ORT_THREADS";
export const ORT_PROVIDER_ENV = "DIFFPROBE_ORT_PROVIDER";

export interface OrtSessionSettings {
  /** Intra-op threads (default: $DIFFPROBE_ORT_THREADS, else the number of cores). */
  threads?: number;
  /** "cpu" (default) or "cuda" (needs the CUDA provider: see environment.md); $DIFFPROBE_ORT_PROVIDER. */
  provider?: string;
}

export function sessionOptions(s: OrtSessionSettings = {}): Ort.InferenceSession.SessionOptions {
  const envThreads = process.env[ORT_THREADS_ENV] ? Number(process.env[ORT_THREADS_ENV]) : NaN;
  const threads = s.threads ?? (Number.isInteger(envThreads) && envThreads > 0 ? envThreads : os.availableParallelism?.() ?? os.cpus().length);
  const provider = (s.provider ?? process.env[ORT_PROVIDER_ENV] ?? "cpu").toLowerCase();
  if (provider !== "cpu" && !ortProviders().includes(provider)) {
    throw new Error(`ONNX Runtime provider "${provider}" is not in this build (have: ${ortProviders().join(", ")}); see environment.md`);
  }
  const missing = provider === "cpu" ? null : missingProviderLibraries(provider);
  if (missing) throw new Error(missing);
  return {
    executionProviders: provider === "cpu" ? ["cpu"] : [provider, "cpu"],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: "all",
    enableCpuMemArena: true,
  };
}

/** An ONNX Runtime session on a built model, and what runs it ("onnxruntime-node 1.30.0, cpu, 2 threads"). */
export interface OrtSession {
  ort: OrtModule;
  session: Ort.InferenceSession;
  /** The execution provider asked for first ("cpu", "cuda"). */
  provider: string;
  description: string;
}

/** Open `modelPath` with the project's session options; the error names the file. */
export async function openSession(modelPath: string, settings: OrtSessionSettings = {}): Promise<OrtSession> {
  const { ort, reason } = loadOrt();
  if (!ort) throw new Error(reason);
  const so = sessionOptions(settings);
  let session: Ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(modelPath, so);
  } catch (e) {
    throw new Error(`ONNX Runtime could not load ${modelPath}: ${(e as Error).message}`);
  }
  const provider = (so.executionProviders as string[])[0];
  const description = `${reason}, ${provider}, ${so.intraOpNumThreads} thread${so.intraOpNumThreads === 1 ? "" : "s"}`;
  return { ort, session, provider, description };
}
