/**
 * Benchmarks (figures, not tests): `npm run bench -- [options]`
 *
 *   --only ort256,extract256,torch,adm256,adm256-pool,tiny,small,probe,load   parts to run (default: all)
 *   --workers N        workers for adm256-pool (default 2)
 *   --reps R           timed repetitions after one warm-up (default 3)
 *   --quick            one repetition, no 256 full pass (a check that everything runs)
 *   --backend NAME     tfjs backend (default wasm)
 *   --block B --t T    feature block / timestep for the 256 model (default 24 / 90)
 *   --batch N          batch size for tiny/small (default 16)
 *   --images N         images the extract256 part extracts (default 8; block 24 takes seconds per image)
 *
 * Parts:
 *   ort256       (runs extract256 after it, unless --quick) first the machine's limit on the same engine and threads (./peak: float32 matrix products
 *                of 2048 and 4096 squares, the 3x3 convolution of the 256 model's widest shape; the nominal
 *                peak only for processors whose FMA width the bench knows), then the 256x256 ADM on ONNX
 *                Runtime (random weights): features of block 24 at t=90, batch 1 and 8 (s/img, img/s,
 *                GFLOP/s as a percentage of the measured peak), the full pass; the execution provider;
 *   extract256   npm run extract's own code (openImageSource, createExtractor, extractToStore) on a synthetic
 *                ImageNet tree of 320x256 JPEGs with the weights of ort256 written as a torch checkpoint, at
 *                the default batch size (from the model's activation memory): the graph build from the torch
 *                file and the first call on their own lines, then img/s, where the time went and peak RSS,
 *                beside the bare engine on the same graph at the same batch (./extract.ts);
 *   torch        the official PyTorch code, same block at batch 1 and 8 and the full pass, when Debian's
 *                python3-torch and ../shared/tools/fixtures/bench_cpu.py are present (a comparison, with the
 *                ONNX Runtime / PyTorch ratio per batch size; skipped otherwise);
 *   adm256       the 256x256 unconditional ADM (random weights), one instance: features of block 24
 *                at t=90, batch 1 (s/img, img/s), and a full forward pass;
 *   adm256-pool  the same features on a worker pool (img/s);
 *   tiny, small  the reference configs at batch 16: full pass and middle-block features;
 *   probe        the linear probe: 1,500 (and 15,000) rows x 1,024 features, 10 classes, 20 epochs;
 *   load         write a 2.2 GB random checkpoint in the official layout to a temp folder, load it with
 *                UNet.fromCheckpoint (seconds, peak RSS), build and load its ONNX model (first and cached
 *                run, peak RSS), delete it.
 * Each part runs in a child process so that peak RSS figures are per part.
 */
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { headerComment, numberOption, parseCommandLine, runCommand, UsageError } from "../data-scripts/cli";
import { machineLine, PartOptions, PARTS, Row } from "./parts";
import { annotateFlops, comparisons } from "./peak";

const ALL = ["ort256", "extract256", "torch", "adm256", "adm256-pool", "tiny", "small", "probe", "load"];
const MARK = "@@BENCH ";

function parse(): { parts: string[]; opts: PartOptions; child: string | null } {
  const { values } = parseCommandLine({
    options: {
      only: { type: "string" },
      workers: { type: "string", default: "2" },
      reps: { type: "string" },
      quick: { type: "boolean", default: false },
      backend: { type: "string", default: "wasm" },
      block: { type: "string", default: "24" },
      t: { type: "string", default: "90" },
      batch: { type: "string", default: "16" },
      images: { type: "string", default: "8" },
      child: { type: "string" },
      tmp: { type: "string", default: "" },
    },
  });
  const quick = values.quick!;
  const int = (name: string, min: number) => numberOption(values, name, { integer: true, min })!;
  const parts = values.only ? values.only.split(",").map((s) => s.trim()).filter(Boolean) : ALL;
  for (const p of parts) if (!ALL.includes(p)) throw new UsageError(`unknown part ${JSON.stringify(p)}; parts: ${ALL.join(", ")}`);
  // The engine's figure comes with the real extraction path's beside it (not in a quick run).
  if (parts.includes("ort256") && !parts.includes("extract256") && !quick) parts.splice(parts.indexOf("ort256") + 1, 0, "extract256");
  return {
    parts,
    child: values.child ?? null,
    opts: {
      backend: values.backend!,
      reps: values.reps === undefined ? (quick ? 1 : 3) : int("reps", 1),
      quick,
      workers: int("workers", 1),
      block: int("block", 1),
      t: int("t", 0),
      batch: int("batch", 1),
      images: int("images", 1),
      tmp: values.tmp!,
    },
  };
}

/** Run one part in a child process (same node flags, so tsx stays registered); collect its rows. */
function runChild(part: string, opts: PartOptions): Promise<Row[]> {
  const args = [
    ...process.execArgv, __filename, "--child", part, "--backend", opts.backend, "--reps", String(opts.reps), "--workers", String(opts.workers),
    "--block", String(opts.block), "--t", String(opts.t), "--batch", String(opts.batch), "--images", String(opts.images), "--tmp", opts.tmp, ...(opts.quick ? ["--quick"] : []),
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
    const rows: Row[] = [];
    let buf = "";
    child.stdout.on("data", (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.startsWith(MARK)) rows.push(JSON.parse(line.slice(MARK.length)) as Row);
        else process.stdout.write(line + "\n");
      }
    });
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      if (code === 0) resolve(rows);
      else reject(new Error(`part ${part} failed (${signal ? `signal ${signal}` : `exit code ${code}`})${rows.length ? "; figures so far kept" : ""}`));
    });
  });
}

function formatValue(r: Row): string {
  switch (r.unit) {
    case "B":
      return `${(r.value / 2 ** 30).toFixed(2)} GiB`;
    case "s":
      return `${r.value.toFixed(1)} s`;
    case "s/img":
      return `${r.value.toFixed(r.value < 1 ? 3 : 2)} s/img`;
    case "img/s":
      return `${r.value.toFixed(r.value < 1 ? 3 : 1)} img/s`;
    case "GFLOP/s":
      return Number.isFinite(r.value) ? `${r.value.toFixed(0)} GFLOP/s` : "n/a";
  }
}

function table(rows: Row[]): string {
  const head = ["part", "model", "backend", "batch", "measure", "result", "note"];
  const body = rows.map((r) => [r.part, r.model, r.backend, String(r.batch), r.measure, formatValue(r), r.note ?? ""]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...body.map(line)].join("\n");
}

function markdown(rows: Row[], command: string): string {
  const out = [
    "| model | backend | batch | measure | result |",
    "|---|---|---|---|---|",
    ...rows.map((r) => `| ${r.model} | ${r.backend} | ${r.batch} | ${r.measure}${r.note ? ` (${r.note})` : ""} | ${formatValue(r)} |`),
    "",
    `Measured with \`${command}\` on ${machineLine()}, ${new Date().toISOString().slice(0, 10)}.`,
  ];
  out.push(...comparisons(rows));
  return out.join("\n");
}

async function main(): Promise<number> {
  const { parts, opts, child } = parse();
  if (child) {
    const fn = PARTS[child];
    if (!fn) throw new Error(`unknown child part ${child}`);
    for (const row of await fn(opts)) process.stdout.write(MARK + JSON.stringify(row) + "\n");
    return 0;
  }
  const command = `npm run bench${process.argv.length > 2 ? " -- " + process.argv.slice(2).join(" ") : ""}`;
  console.log(`diffprobe benchmarks: ${parts.join(", ")}${opts.quick ? " (quick)" : ""}`);
  console.log(`machine: ${machineLine()}`);
  console.log("(other processes on the machine change these figures: run on an otherwise idle machine)\n");
  const rows: Row[] = [];
  const failures: string[] = [];
  for (const part of parts) {
    const t0 = Date.now();
    console.log(`== ${part}`);
    try {
      if (part === "extract256") {
        const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "diffprobe-bench-"));
        try {
          rows.push(...(await runChild("extract256-inputs", { ...opts, tmp })));
          rows.push(...(await runChild("extract256", { ...opts, tmp })));
        } finally {
          fs.rmSync(tmp, { recursive: true, force: true });
        }
      } else if (part === "load") {
        const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "diffprobe-bench-"));
        try {
          rows.push(...(await runChild("load-write", { ...opts, tmp })));
          rows.push(...(await runChild("load-read", { ...opts, tmp })));
          rows.push(...(await runChild("load-ort", { ...opts, tmp })));
        } finally {
          fs.rmSync(tmp, { recursive: true, force: true });
        }
      } else rows.push(...(await runChild(part, opts)));
      console.log(`   done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    } catch (e) {
      failures.push(`${part}: ${(e as Error).message}`);
      console.log(`   FAILED: ${(e as Error).message}`);
    }
  }
  const annotated = annotateFlops(rows);
  console.log("\n" + table(annotated));
  console.log("\n" + comparisons(annotated).join("\n"));
  console.log("\nMarkdown for the README:\n");
  console.log(markdown(annotated, command));
  if (failures.length) {
    console.log(`\n${failures.length} part(s) failed:\n  ${failures.join("\n  ")}`);
    return 1;
  }
  return 0;
}

runCommand({ name: "bench", usage: () => headerComment(__filename) }, main, { exit: true });
