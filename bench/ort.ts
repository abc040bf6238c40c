/**
 * Benchmarks of the ONNX Runtime engine on the 256x256 ADM (random weights, or the checkpoint written by the
 * "load" part), and the official PyTorch code on the same machine in the same run when Debian's PyTorch and
 * ../shared/tools/fixtures/bench_cpu.py are present (a comparison only: the project never needs Python).
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { OrtUNetEngine } from "../lib/model/engines/ort-unet";
import { createUNetConfig } from "../lib/model/unet/config";
import { blockTable, forwardFlops } from "../lib/model/unet/blocks";
import type { PartOptions, Row } from "./parts";

const MODEL = "adm-256-uncond (random)";
const now = () => performance.now() / 1000;
const log = (s: string) => process.stderr.write(`   ${s}\n`);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function maxRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}

/** Nominal float32 peak: cores x clock x vector lanes x 2 (FMA) x 2 FMA units (AVX-512: 16 lanes, AVX2: 8). */
export function nominalPeakGflops(): { gflops: number; how: string } {
  const info = fs.existsSync("/proc/cpuinfo") ? fs.readFileSync("/proc/cpuinfo", "utf8") : "";
  const lanes = /\bavx512f\b/.test(info) ? 16 : /\bavx2\b/.test(info) ? 8 : 4;
  const mhz = Number(/cpu MHz\s*:\s*([\d.]+)/.exec(info)?.[1] ?? os.cpus()[0]?.speed ?? 0);
  const cores = os.availableParallelism();
  const gflops = (cores * mhz * lanes * 2 * 2) / 1000;
  return { gflops, how: `${cores} cores x ${(mhz / 1000).toFixed(2)} GHz x ${lanes} lanes x 2 (FMA) x 2 units` };
}

function imagesNCHW(n: number, size: number): Float32Array {
  const x = new Float32Array(n * 3 * size * size);
  for (let i = 0; i < x.length; i++) x[i] = Math.fround(0.9 * Math.sin(0.37 * i));
  return x;
}

/** Block `o.block` features at t = o.t (batch 1 and 8), and the full pass, on ONNX Runtime. */
export async function ort256(o: PartOptions): Promise<Row[]> {
  const config = createUNetConfig("adm-256-uncond");
  const cacheRoot = fs.mkdtempSync(path.join(o.tmp || os.tmpdir(), "ort-bench-"));
  const rows: Row[] = [];
  const peak = nominalPeakGflops();
  const flopsTo = blockTable(config)[o.block - 1].cumulativeFlops;
  try {
    let t0 = now();
    log(`building the ONNX graph to block ${o.block} (random weights) ...`);
    const eng = await OrtUNetEngine.create({ config, seed: 0 }, { outputs: [o.block], cacheRoot });
    const backend = eng.description;
    rows.push({ part: "ort256", model: MODEL, backend, batch: "", measure: `build + load graph to block ${o.block}`, value: now() - t0, unit: "s", note: `${(fs.statSync(path.join(eng.model.dir, "weights.bin")).size / 2 ** 30).toFixed(2)} GiB of weights` });
    for (const batch of o.quick ? [1] : [1, 8]) {
      const x = imagesNCHW(batch, 256);
      const t = new Array(batch).fill(o.t);
      log(`features of block ${o.block} at t=${o.t}, batch ${batch}: warm-up + ${o.reps} timed ...`);
      t0 = now();
      await eng.run(x, batch, t);
      const warm = now() - t0;
      const times: number[] = [];
      for (let r = 0; r < o.reps; r++) {
        t0 = now();
        await eng.run(x, batch, t);
        times.push((now() - t0) / batch);
      }
      const s = median(times);
      const gf = flopsTo / 1e9 / s;
      rows.push({ part: "ort256", model: MODEL, backend, batch, measure: `first pass (warm-up)`, value: warm / batch, unit: "s/img" });
      rows.push({ part: "ort256", model: MODEL, backend, batch, measure: `features block ${o.block}, t=${o.t} (median of ${o.reps})`, value: s, unit: "s/img", note: `${(flopsTo / 1e9).toFixed(0)} GFLOP/img: ${gf.toFixed(0)} GFLOP/s, ${((100 * gf) / peak.gflops).toFixed(0)}% of the nominal ${peak.gflops.toFixed(0)} GFLOP/s (${peak.how})` });
      rows.push({ part: "ort256", model: MODEL, backend, batch, measure: `features block ${o.block}, t=${o.t}`, value: 1 / s, unit: "img/s" });
    }
    rows.push({ part: "ort256", model: MODEL, backend, batch: "", measure: `peak RSS (to block ${o.block})`, value: maxRssBytes(), unit: "B" });
    await eng.dispose();
    if (!o.quick) {
      log("full forward pass: building the whole graph ...");
      const full = await OrtUNetEngine.create({ config, seed: 0 }, { outputs: ["out"], cacheRoot });
      const x = imagesNCHW(1, 256);
      await full.run(x, 1, [o.t]);
      const times: number[] = [];
      for (let r = 0; r < o.reps; r++) {
        t0 = now();
        await full.run(x, 1, [o.t]);
        times.push(now() - t0);
      }
      const s = median(times);
      const gf = forwardFlops(config) / 1e9 / s;
      rows.push({ part: "ort256", model: MODEL, backend, batch: 1, measure: `full forward pass (median of ${o.reps})`, value: s, unit: "s/img", note: `${(forwardFlops(config) / 1e9).toFixed(0)} GFLOP: ${gf.toFixed(0)} GFLOP/s` });
      rows.push({ part: "ort256", model: MODEL, backend, batch: "", measure: "peak RSS (full graph)", value: maxRssBytes(), unit: "B" });
      await full.dispose();
    }
  } finally {
    fs.rmSync(cacheRoot, { recursive: true, force: true });
  }
  return rows;
}

/** Build the ONNX model from the 2.2 GB torch checkpoint written by the "load" part, then load it. */
export async function ortLoad(o: PartOptions): Promise<Row[]> {
  const config = createUNetConfig("adm-256-uncond");
  const file = path.join(o.tmp, "256x256_random.pt");
  const cacheRoot = path.join(o.tmp, "onnx");
  const rows: Row[] = [];
  const m = "adm-256-uncond checkpoint";
  let t0 = now();
  const first = await OrtUNetEngine.create({ config, checkpoint: file }, { outputs: ["out"], cacheRoot });
  rows.push({ part: "load", model: m, backend: first.description, batch: "", measure: "ONNX build from the checkpoint + session (first run)", value: now() - t0, unit: "s", note: `includes the SHA-256 of the checkpoint and of the built files` });
  await first.dispose();
  const rssBuild = maxRssBytes();
  t0 = now();
  const again = await OrtUNetEngine.create({ config, checkpoint: file }, { outputs: ["out"], cacheRoot });
  rows.push({ part: "load", model: m, backend: again.description, batch: "", measure: "cached ONNX model: verify + session (second run)", value: now() - t0, unit: "s" });
  await again.dispose();
  rows.push({ part: "load", model: m, backend: "ort", batch: "", measure: "peak RSS (build, then load twice)", value: maxRssBytes(), unit: "B", note: `peak after the build: ${(rssBuild / 2 ** 30).toFixed(2)} GiB` });
  return rows;
}

/** The official PyTorch code in the same run (Debian's python3-torch), stopped after the same block. */
export async function torchReference(o: PartOptions): Promise<Row[]> {
  const script = path.resolve(__dirname, "..", "..", "shared", "tools", "fixtures", "bench_cpu.py");
  const gd = path.resolve(__dirname, "..", "..", "shared", "reference", "guided-diffusion");
  const py = "/usr/bin/python3";
  const probe = spawnSync(py, ["-c", "import torch"], { encoding: "utf8" });
  if (!fs.existsSync(script) || probe.status !== 0) {
    log(`PyTorch comparison skipped: ${!fs.existsSync(script) ? `${script} is absent` : "Debian's python3-torch is not installed"}`);
    return [];
  }
  const stopAfter = o.block - blockTable(createUNetConfig("adm-256-uncond")).filter((b) => b.section !== "output").length - 1;
  const rows: Row[] = [];
  for (const args of [["--stop-after", String(stopAfter)], ...(o.quick ? [] : [[]])]) {
    log(`PyTorch ${args.length ? `to output_blocks[${stopAfter}] (block ${o.block})` : "full pass"} ...`);
    const r = spawnSync(py, [script, "adm256", "1", ...args, "--runs", String(o.reps), "--threads", String(os.availableParallelism())], { encoding: "utf8", env: { ...process.env, GD_SRC: gd }, maxBuffer: 1 << 24 });
    const line = r.stdout.trim().split("\n").pop() ?? "";
    if (r.status !== 0 || !line.startsWith("{")) throw new Error(`bench_cpu.py failed: ${r.stderr.slice(-500)}`);
    const j = JSON.parse(line);
    rows.push({ part: "torch", model: MODEL, backend: `PyTorch ${j.torch}, ${j.threads} threads`, batch: 1, measure: args.length ? `features block ${o.block} (median of ${o.reps})` : `full forward pass (median of ${o.reps})`, value: j.median_s, unit: "s/img" });
  }
  return rows;
}
