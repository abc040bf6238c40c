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
import { ortProviders } from "../lib/model/engines/ort-runtime";
import type { PartOptions, Row } from "./parts";
import { measurePeak, nominalPeak } from "./peak";

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

function imagesNCHW(n: number, size: number): Float32Array {
  const x = new Float32Array(n * 3 * size * size);
  for (let i = 0; i < x.length; i++) x[i] = Math.fround(0.9 * Math.sin(0.37 * i));
  return x;
}

/**
 * The machine's measured peak on the same engine and threads (./peak), then block `o.block` features at
 * t = o.t (batch 1 and 8) and the full pass on ONNX Runtime. GFLOP/s and percentages are added by run.ts
 * from each row's `gflop` and the peak rows.
 */
export async function ort256(o: PartOptions): Promise<Row[]> {
  const config = createUNetConfig("adm-256-uncond");
  const cacheRoot = fs.mkdtempSync(path.join(o.tmp || os.tmpdir(), "ort-bench-"));
  const rows: Row[] = [];
  const flopsTo = blockTable(config)[o.block - 1].cumulativeFlops / 1e9;
  const providers = ortProviders().join(", ");
  try {
    const peak = await measurePeak(config, {}, Math.max(3, o.reps), cacheRoot, log);
    log(`execution provider: ${peak.provider} (this build of onnxruntime-node offers: ${providers})`);
    for (const f of peak.figures) {
      rows.push({ part: "ort256", model: "machine limit", backend: peak.description, batch: "", measure: `measured peak: ${f.what}`, value: f.gflops, unit: "GFLOP/s", note: `${f.gflop.toFixed(1)} GFLOP in ${f.seconds.toFixed(3)} s (median of ${Math.max(3, o.reps)})`, peak: f === peak.best ? "best" : "figure", provider: peak.provider });
    }
    const nominal = nominalPeak();
    rows.push({ part: "ort256", model: "machine limit", backend: "-", batch: "", measure: "nominal peak", value: nominal.gflops ?? NaN, unit: "GFLOP/s", note: nominal.gflops === null ? nominal.why : nominal.how, peak: "nominal" });

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
      rows.push({ part: "ort256", model: MODEL, backend, batch, measure: `first pass (warm-up)`, value: warm / batch, unit: "s/img" });
      rows.push({ part: "ort256", model: MODEL, backend, batch, measure: `features block ${o.block}, t=${o.t} (median of ${o.reps})`, value: s, unit: "s/img", gflop: flopsTo, provider: peak.provider });
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
      rows.push({ part: "ort256", model: MODEL, backend, batch: 1, measure: `full forward pass (median of ${o.reps})`, value: median(times), unit: "s/img", gflop: forwardFlops(config) / 1e9, provider: peak.provider });
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
  const config = createUNetConfig("adm-256-uncond");
  const stopAfter = o.block - blockTable(config).filter((b) => b.section !== "output").length - 1;
  const flopsTo = blockTable(config)[o.block - 1].cumulativeFlops / 1e9;
  const rows: Row[] = [];
  const runs: { batch: number; args: string[] }[] = [
    ...(o.quick ? [1] : [1, 8]).map((batch) => ({ batch, args: ["--stop-after", String(stopAfter)] })),
    ...(o.quick ? [] : [{ batch: 1, args: [] }]),
  ];
  for (const { batch, args } of runs) {
    log(`PyTorch ${args.length ? `to output_blocks[${stopAfter}] (block ${o.block})` : "full pass"}, batch ${batch} ...`);
    const r = spawnSync(py, [script, "adm256", String(batch), ...args, "--runs", String(o.reps), "--threads", String(os.availableParallelism())], { encoding: "utf8", env: { ...process.env, GD_SRC: gd }, maxBuffer: 1 << 24 });
    const line = r.stdout.trim().split("\n").pop() ?? "";
    if (r.status !== 0 || !line.startsWith("{")) throw new Error(`bench_cpu.py failed: ${r.stderr.slice(-500)}`);
    const j = JSON.parse(line);
    rows.push({
      part: "torch", model: MODEL, backend: `PyTorch ${j.torch}, ${j.threads} threads`, batch,
      measure: args.length ? `features block ${o.block}, t=90 (median of ${o.reps})` : `full forward pass (median of ${o.reps})`,
      value: j.median_s / batch, unit: "s/img", gflop: args.length ? flopsTo : forwardFlops(config) / 1e9,
    });
  }
  return rows;
}
