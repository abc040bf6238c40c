/**
 * The machine's measured limit for the bench's percentages: ONNX Runtime, with the same session settings
 * (provider, threads) as the model it is compared with, timing a large float32 matrix product (2048 and
 * 4096 squares) and the 3x3 convolution of the 256x256 model's widest shape (modelChannels x max(channel
 * mult) channels in and out, at the resolution where that width first appears, batch 8). The highest of
 * these is "the measured peak"; a model's GFLOP/s are given as a percentage of it.
 *
 * A nominal peak (cores x clock x FP32 FLOP per cycle) is given only for processors whose FMA width the bench
 * knows (NOMINAL_TABLE, matched on /proc/cpuinfo's model name); elsewhere it says why there is none.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { graphBuilder, MODEL_FILE } from "../lib/model/engines/onnx-cache";
import { openSession, OrtSessionSettings } from "../lib/model/engines/ort-runtime";
import type { UNetConfig } from "../lib/model/unet/config";
import type * as Ort from "onnxruntime-node";
import type { Row } from "./parts";
import { extractComparison } from "./extract";

export interface PeakFigure {
  what: string;
  gflop: number;
  /** Median seconds of one pass. */
  seconds: number;
  gflops: number;
}

export interface MeasuredPeak {
  figures: PeakFigure[];
  /** The highest figure. */
  best: PeakFigure;
  description: string;
  provider: string;
}

const now = () => performance.now() / 1000;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function filled(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.fround(0.5 * Math.sin(seed + 0.731 * i));
  return a;
}

/** The widest 3x3 convolution of a U-Net config: channels, resolution. */
export function widestConv(c: UNetConfig): { ch: number; res: number } {
  const top = Math.max(...c.channelMult);
  const level = c.channelMult.indexOf(top);
  return { ch: c.modelChannels * top, res: c.imageSize >> level };
}

async function timeGraph(dir: string, fill: Parameters<typeof graphBuilder>[1], feeds: (ort: typeof Ort) => Record<string, Ort.Tensor>, reps: number, settings: OrtSessionSettings) {
  fs.mkdirSync(dir, { recursive: true });
  await graphBuilder("bench peak", fill)(dir);
  const s = await openSession(path.join(dir, MODEL_FILE), settings);
  try {
    const f = feeds(s.ort);
    await s.session.run(f); // warm-up
    const times: number[] = [];
    for (let r = 0; r < reps; r++) {
      const t0 = now();
      await s.session.run(f);
      times.push(now() - t0);
    }
    return { seconds: median(times), description: s.description, provider: s.provider };
  } finally {
    await s.session.release();
  }
}

/** Measure the peak on ONNX Runtime (graphs written under `tmp`, removed after). */
export async function measurePeak(config: UNetConfig, settings: OrtSessionSettings, reps: number, tmp: string, log: (s: string) => void = () => undefined): Promise<MeasuredPeak> {
  const root = fs.mkdtempSync(path.join(tmp, "peak-"));
  const figures: PeakFigure[] = [];
  let description = "";
  let provider = "";
  try {
    for (const n of [2048, 4096]) {
      log(`peak: float32 matrix product ${n}x${n} @ ${n}x${n} ...`);
      const r = await timeGraph(
        path.join(root, `mm${n}`),
        (g) => {
          const a = g.input("a", [n, n]);
          g.node("MatMul", [a, g.weight("b", [n, n], filled(n * n, 2))], {}, ["y"]);
          g.output("y", [n, n]);
          return {};
        },
        (ort) => ({ a: new ort.Tensor("float32", filled(n * n, 1), [n, n]) }),
        reps,
        settings,
      );
      const gflop = (2 * n ** 3) / 1e9;
      figures.push({ what: `matmul ${n}²`, gflop, seconds: r.seconds, gflops: gflop / r.seconds });
      description = r.description;
      provider = r.provider;
    }
    const { ch, res } = widestConv(config);
    const batch = 8;
    log(`peak: 3x3 convolution ${ch} -> ${ch} channels at ${res}x${res}, batch ${batch} ...`);
    const r = await timeGraph(
      path.join(root, "conv"),
      (g) => {
        const x = g.input("x", [batch, ch, res, res]);
        g.node("Conv", [x, g.weight("w", [ch, ch, 3, 3], filled(ch * ch * 9, 3).map((v) => v * 0.05)), g.weight("b", [ch], filled(ch, 4))], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, ["y"]);
        g.output("y", [batch, ch, res, res]);
        return {};
      },
      (ort) => ({ x: new ort.Tensor("float32", filled(batch * ch * res * res, 5), [batch, ch, res, res]) }),
      reps,
      settings,
    );
    const gflop = (2 * batch * ch * ch * 9 * res * res) / 1e9;
    figures.push({ what: `conv 3x3 ${ch}->${ch} @ ${res}x${res}, batch ${batch}`, gflop, seconds: r.seconds, gflops: gflop / r.seconds });
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
  const best = figures.reduce((a, b) => (b.gflops > a.gflops ? b : a));
  return { figures, best, description, provider };
}

/**
 * Processors whose FP32 FLOP per cycle per core the bench knows. AMD Zen 2/3/4 (EPYC 7xx2, 7xx3, 9xx4): two
 * 256-bit FMA pipes per core (Zen 4 runs AVX-512 on them in two halves): 2 x 8 lanes x 2 = 32.
 */
const NOMINAL_TABLE: { match: RegExp; name: string; flopPerCycle: number; how: string }[] = [
  { match: /AMD EPYC 7\d\d[23]\b/, name: "AMD EPYC 7xx2/7xx3 (Zen 2/3)", flopPerCycle: 32, how: "2 x 256-bit FMA units x 8 lanes x 2" },
  { match: /AMD EPYC 9\d\d4\b/, name: "AMD EPYC 9xx4 (Zen 4)", flopPerCycle: 32, how: "2 x 256-bit FMA units x 8 lanes x 2 (AVX-512 is split in two 256-bit halves)" },
];

/** The nominal FP32 peak where the processor is known, or why there is none. */
export function nominalPeak(cpuinfo = fs.existsSync("/proc/cpuinfo") ? fs.readFileSync("/proc/cpuinfo", "utf8") : ""): { gflops: number; how: string } | { gflops: null; why: string } {
  const model = /model name\s*:\s*(.+)/.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model ?? "unknown";
  const known = NOMINAL_TABLE.find((k) => k.match.test(model));
  if (!known) return { gflops: null, why: `no nominal figure: the FMA width of "${model}" is not known to the bench (the processor's model number is needed)` };
  const mhz = Number(/cpu MHz\s*:\s*([\d.]+)/.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.speed ?? 0);
  const cores = os.availableParallelism();
  return { gflops: (cores * mhz * known.flopPerCycle) / 1000, how: `assumed ${known.name}: ${cores} logical CPUs x ${(mhz / 1000).toFixed(2)} GHz x ${known.flopPerCycle} FLOP/cycle (${known.how})` };
}

/**
 * Every row with a FLOP count gets its GFLOP/s as a percentage of the peak measured in the same run (the
 * best "measured peak" row), and of the nominal peak where the bench knows the processor.
 */
export function annotateFlops(rows: Row[]): Row[] {
  const best = rows.find((r) => r.peak === "best");
  const nominal = rows.find((r) => r.peak === "nominal" && Number.isFinite(r.value));
  return rows.map((r) => {
    if (r.peak && r.peak !== "nominal" && best) {
      return { ...r, note: `${r.note ? r.note + "; " : ""}${((100 * r.value) / best.value).toFixed(0)}% of the measured peak` };
    }
    if (r.gflop === undefined || r.unit !== "s/img") return r;
    const gf = r.gflop / r.value;
    const parts = [`${r.gflop.toFixed(0)} GFLOP/img: ${gf.toFixed(0)} GFLOP/s`];
    parts.push(best ? `${((100 * gf) / best.value).toFixed(0)}% of the measured peak ${best.value.toFixed(0)} GFLOP/s (${best.measure.replace(/^measured peak: /, "")}, same run)` : "no measured peak in this run (part ort256 measures it)");
    // Above the peak means the peak part ran under more contention than this one (a shared machine), not a faster engine.
    if (best && gf > best.value) parts.push("ABOVE the measured peak: the machine was busier while the peak was measured; rerun on an idle machine");
    if (nominal) parts.push(`${((100 * gf) / nominal.value).toFixed(0)}% of the nominal ${nominal.value.toFixed(0)} GFLOP/s`);
    return { ...r, note: `${r.note ? r.note + "; " : ""}${parts.join(", ")}` };
  });
}

/** ONNX Runtime / PyTorch per batch size (same measure, same run), the provider ONNX Runtime ran on, the nominal peak. */
export function comparisons(rows: Row[]): string[] {
  const out: string[] = [];
  const kind = (r: Row) => (r.measure.startsWith("features") ? "features" : r.measure.startsWith("full forward") ? "full pass" : null);
  for (const o of rows.filter((r) => r.part === "ort256" && r.unit === "s/img" && r.gflop !== undefined)) {
    const t = rows.find((r) => r.part === "torch" && r.unit === "s/img" && r.batch === o.batch && kind(r) === kind(o));
    if (t) out.push(`ONNX Runtime / PyTorch, ${kind(o)}, batch ${o.batch}, same run: ${o.value.toFixed(2)} / ${t.value.toFixed(2)} s/img = ${(o.value / t.value).toFixed(2)}x the time.`);
  }
  const extract = extractComparison(rows);
  if (extract) out.push(extract);
  const provider = rows.find((r) => r.part === "ort256" && r.provider)?.provider;
  if (provider) out.push(`ONNX Runtime execution provider: ${provider}.`);
  const nominal = rows.find((r) => r.peak === "nominal");
  if (nominal) out.push(Number.isFinite(nominal.value) ? `Nominal peak ${nominal.value.toFixed(0)} GFLOP/s: ${nominal.note}.` : `Nominal peak: ${nominal.note}.`);
  return out;
}
