/**
 * Execute the notebooks headlessly (Debian's Jupyter + the project-local tslab kernel) and write the
 * executed .ipynb and an HTML export of each to build/notebooks/<scale>/ (maths pre-rendered with
 * KaTeX), then the report page build/notebooks/<scale>/index.html (data-scripts/report.ts).
 *
 *   npm run notebooks -- [--scale smoke|demo|full] [--out build] [--timeout 3600] [--jobs N] [name-filter ...]
 *
 * With --jobs N, up to N notebooks run at once (each in its own kernel; many cells use one core: the heads'
 * tfjs wasm thread). A notebook that reads another's stored features says so in its metadata,
 * `"diffprobe": {"after": ["04-imagenet-linear"]}`, and starts only once that one has finished (when both run).
 * Their output lines are prefixed with the notebook's number.
 *
 * A failing cell fails the command; its source and output (tslab's TypeScript diagnostics) are printed.
 */
import { spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { parseScale, SCALE_ENV, SCALES } from "../lib/scale";
import { choiceOption, numberOption, parseCommandLine, runCommand } from "./cli";
import { COMMAND_ENV, commandLine } from "../lib/provenance";
import { checkJupyter, installKernel, jupyterEnv, PYTHON, ROOT } from "./jupyter";
import { renderMathInExport } from "./katex-export";
import { chainWeights, nextRunnable, notebookAfter, notebookWeight } from "./notebook-order";
import { writeReport } from "./report";

const USAGE = `usage: npm run notebooks -- [--scale smoke|demo|full] [--out DIR] [--timeout SECONDS] [filter ...]
  --scale S        smoke, demo or full (default: $${SCALE_ENV}, else demo)
  --out DIR        executed notebooks go to DIR/notebooks/<scale>/, results to DIR/results/ (default build)
  --timeout N      seconds one cell may run (default 3600)
  --jobs N         notebooks run at once (default 1; a notebook's metadata diffprobe.after orders them)
  filter           run only the notebooks whose file name contains one of these`;

async function main(): Promise<number> {
  const { values, positionals } = parseCommandLine({
    options: {
      scale: { type: "string", default: parseScale(process.env[SCALE_ENV]) },
      out: { type: "string", default: path.join(ROOT, "build") },
      timeout: { type: "string", default: "3600" },
      jobs: { type: "string", default: "1" },
    },
    positionals: [0, Infinity],
  });
  const scale = choiceOption(values, "scale", SCALES)!;
  const timeout = numberOption(values, "timeout", { integer: true, positive: true })!;
  const jobs = numberOption(values, "jobs", { integer: true, positive: true })!;
  const outDir = path.join(path.resolve(values.out!), "notebooks", scale);
  const nbDir = path.join(ROOT, "notebooks");
  const all = fs.readdirSync(nbDir).filter((f) => f.endsWith(".ipynb")).sort();
  const chosen = positionals.length ? all.filter((f) => positionals.some((p) => f.includes(p))) : all;
  if (chosen.length === 0) {
    console.error(`no notebook in ${nbDir} matches ${positionals.join(", ")} (have: ${all.join(", ")})`);
    return 2;
  }
  checkJupyter();
  installKernel();
  const runner = path.join(ROOT, "data-scripts", "execute_notebook.py");
  const command = commandLine(); // the kernels name it in their results' provenance
  let passed = 0;
  const failed: string[] = [];
  const stem = (f: string) => f.replace(/\.ipynb$/, "");
  const after = new Map(chosen.map((f) => [f, notebookAfter(path.join(nbDir, f)).map((d) => all.find((x) => stem(x) === d)).filter((d): d is string => !!d && chosen.includes(d))]));
  const chain = chainWeights(chosen, after, new Map(chosen.map((f) => [f, notebookWeight(path.join(nbDir, f))])));
  const done = new Set<string>();
  const running = new Set<string>();
  const waiting = [...chosen];
  const runOne = (name: string): Promise<void> =>
    new Promise((resolve) => {
      const i = chosen.indexOf(name);
      const t0 = Date.now();
      const tag = jobs > 1 ? `[${i + 1}] ` : "    ";
      console.log(`[${i + 1}/${chosen.length}] ${name} (scale ${scale}) ...`);
      const child = spawn(PYTHON, [runner, path.join(nbDir, name), outDir, "tslab", String(timeout)], {
        stdio: jobs > 1 ? ["ignore", "pipe", "pipe"] : "inherit",
        env: jupyterEnv({ [SCALE_ENV]: scale, DIFFPROBE_BUILD: path.resolve(values.out!), [COMMAND_ENV]: command }),
      });
      const prefix = (stream: NodeJS.ReadableStream | null, out: NodeJS.WriteStream) => {
        let rest = "";
        stream?.on("data", (d: Buffer) => {
          const lines = (rest + d.toString()).split("\n");
          rest = lines.pop()!;
          for (const l of lines) out.write(`${tag}${l}\n`);
        });
        stream?.on("end", () => rest && out.write(`${tag}${rest}\n`));
      };
      prefix(child.stdout, process.stdout);
      prefix(child.stderr, process.stderr);
      child.on("close", (code) => {
        const s = ((Date.now() - t0) / 1000).toFixed(1);
        const exported = path.join(outDir, name.replace(/\.ipynb$/, ".html"));
        if (fs.existsSync(exported)) {
          const maths = renderMathInExport(exported);
          for (const e of maths.errors) console.log(`${tag}KaTeX could not render (shown raw in red): ${e}`);
        }
        if (code === 0) {
          passed++;
          console.log(`${tag}ok in ${s}s -> ${path.relative(ROOT, exported)}`);
        } else {
          failed.push(name);
          console.log(`${tag}FAILED after ${s}s (${name})`);
        }
        resolve();
      });
    });
  await new Promise<void>((allDone) => {
    const next = () => {
      if (!waiting.length && !running.size) return allDone();
      while (running.size < jobs) {
        const k = nextRunnable(waiting, after, done, jobs > 1 ? chain : undefined);
        if (k < 0) break;
        const [name] = waiting.splice(k, 1);
        running.add(name);
        void runOne(name).then(() => {
          running.delete(name);
          done.add(name);
          next();
        });
      }
    };
    next();
  });
  const results = path.join(path.resolve(values.out!), "results");
  if (fs.existsSync(results)) {
    const files = fs.readdirSync(results).filter((f) => f.endsWith(`.${scale}.json`) || f.endsWith(`.${scale}.csv`)).sort();
    if (files.length) console.log(`results files in ${path.relative(ROOT, results) || results}: ${files.join(", ")}`);
  }
  const report = await writeReport({ scale, build: path.resolve(values.out!) });
  console.log(`notebooks: ${passed} passed, ${failed.length} failed${failed.length ? ` (${failed.join(", ")})` : ""}`);
  console.log(`report: ${report}`);
  return failed.length ? 1 : 0;
}

runCommand({ name: "run-notebooks", usage: USAGE }, main);
