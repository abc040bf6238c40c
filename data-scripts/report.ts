/**
 * The report to open after a run: build/notebooks/<scale>/index.html — for each notebook, in order,
 * its title, the question it answers and its answer in one sentence (the `summary` of its results
 * file), a thumbnail of its main chart, a link to its HTML export and how long it ran. One page that
 * works offline from the file system (thumbnails are embedded; maths uses the katex/ folder that the
 * exports already carry).
 *
 *   npm run report -- [--scale smoke|demo|full] [--out build]
 *
 * The main chart of a notebook: the first image/png output of a cell tagged "main-chart", else the
 * first image/png output of the executed notebook. Its results file: the name of its
 * writeResults("...") call, read from build/results/<name>.<scale>.json.
 */
import * as fs from "fs";
import * as path from "path";
import sharp from "sharp";
import { readResults, resultsFiles, ResultsJson } from "../lib/results";
import { parseScale, Scale, SCALE_ENV, SCALES } from "../lib/scale";
import { choiceOption, parseCommandLine, runCommand } from "./cli";
import { copyKatexAssets, KATEX_DIR, renderMathInText } from "./katex-export";

const ROOT = path.resolve(__dirname, "..");
export const MAIN_CHART_TAG = "main-chart";
const THUMB_WIDTH = 480;

interface Cell {
  cell_type: string;
  source: string | string[];
  metadata?: { tags?: string[]; execution?: Record<string, string> };
  outputs?: { output_type: string; data?: Record<string, string | string[]> }[];
}
interface Notebook {
  cells: Cell[];
}

export interface NotebookEntry {
  stem: string;
  title: string;
  /** The notebook's own question (a blockquote in its first markdown cell), when it has one. */
  question?: string;
  /** The results name of its writeResults("...") call. */
  resultsName?: string;
  results?: ResultsJson | null;
  /** "ok", "failed" (an error output) or "not run" (no executed notebook at this scale). */
  status: "ok" | "failed" | "not run";
  /** Seconds from the first cell's start to the last cell's end (nbclient's timing metadata). */
  seconds?: number;
  finished?: string;
  /** PNG bytes of the main chart. */
  chart?: Buffer;
  /** File name of the HTML export, when it exists. */
  exportHtml?: string;
}

const text = (s: string | string[]) => (Array.isArray(s) ? s.join("") : s);

function readNotebook(file: string): Notebook {
  try {
    const nb = JSON.parse(fs.readFileSync(file, "utf8"));
    if (!Array.isArray(nb.cells)) throw new Error('no "cells" array');
    return nb;
  } catch (e) {
    throw new Error(`${file}: not a notebook (${(e as Error).message})`);
  }
}

/** Title (first "# " line) and blockquoted question of a notebook's first markdown cell. */
function titleAndQuestion(nb: Notebook, fallback: string): { title: string; question?: string } {
  const md = nb.cells.find((c) => c.cell_type === "markdown");
  const src = md ? text(md.source) : "";
  const title = /^#\s+(.+)$/m.exec(src)?.[1].trim() ?? fallback;
  const quote = src.split("\n").filter((l) => l.startsWith(">")).map((l) => l.replace(/^>\s?/, "")).join(" ").trim();
  return { title, question: quote || undefined };
}

/** The main chart: first PNG of a cell tagged main-chart, else the first PNG of the notebook. */
export function mainChart(nb: Notebook): Buffer | undefined {
  const pngOf = (c: Cell) => c.outputs?.map((o) => o.data?.["image/png"]).find((p) => p !== undefined);
  const tagged = nb.cells.filter((c) => c.metadata?.tags?.includes(MAIN_CHART_TAG)).map(pngOf).find((p) => p !== undefined);
  const png = tagged ?? nb.cells.map(pngOf).find((p) => p !== undefined);
  return png === undefined ? undefined : Buffer.from(text(png).replace(/\s+/g, ""), "base64");
}

function timing(nb: Notebook): { seconds?: number; finished?: string } {
  const starts: number[] = [];
  const ends: number[] = [];
  for (const c of nb.cells) {
    const e = c.metadata?.execution;
    if (!e) continue;
    const s = Date.parse(e["iopub.status.busy"] ?? e["iopub.execute_input"] ?? "");
    const f = Date.parse(e["iopub.status.idle"] ?? e["shell.execute_reply"] ?? "");
    if (Number.isFinite(s)) starts.push(s);
    if (Number.isFinite(f)) ends.push(f);
  }
  if (!starts.length || !ends.length) return {};
  const last = Math.max(...ends);
  return { seconds: (last - Math.min(...starts)) / 1000, finished: new Date(last).toISOString() };
}

/** Everything the report shows about one notebook. */
export function collectNotebook(source: string, outDir: string, scale: Scale, resultsDir: string): NotebookEntry {
  const stem = path.basename(source).replace(/\.ipynb$/, "");
  const nb = readNotebook(source);
  const { title, question } = titleAndQuestion(nb, stem);
  const code = nb.cells.filter((c) => c.cell_type === "code").map((c) => text(c.source)).join("\n");
  const resultsName = /writeResults\(\s*["']([\w-]+)["']/.exec(code)?.[1];
  const entry: NotebookEntry = { stem, title, question, resultsName, status: "not run" };
  if (resultsName) entry.results = readResults(resultsName, scale, resultsDir);
  const executed = path.join(outDir, `${stem}.ipynb`);
  if (fs.existsSync(executed)) {
    const run = readNotebook(executed);
    entry.status = run.cells.some((c) => c.outputs?.some((o) => o.output_type === "error")) ? "failed" : "ok";
    Object.assign(entry, timing(run));
    entry.chart = mainChart(run);
  }
  if (fs.existsSync(path.join(outDir, `${stem}.html`))) entry.exportHtml = `${stem}.html`;
  return entry;
}

const escapeHtml = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** Escape a line of notebook prose, keep its **bold** and `code`, render its $TeX$. */
function prose(s: string): string {
  const html = escapeHtml(s)
    .replace(/\*\*(.+?)\*\*/g, "<strong>$1</strong>")
    .replace(/`([^`]+)`/g, "<code>$1</code>");
  // TeX outside <code>.
  return html.split(/(<code>[^<]*<\/code>)/).map((p) => (p.startsWith("<code>") ? p : renderMathInText(p).html)).join("");
}

async function thumbnail(png: Buffer): Promise<string> {
  const meta = await sharp(png).metadata();
  const small = (meta.width ?? 0) > THUMB_WIDTH ? await sharp(png).resize({ width: THUMB_WIDTH }).png().toBuffer() : png;
  return `data:image/png;base64,${small.toString("base64")}`;
}

function duration(s: number): string {
  return s < 90 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

async function card(e: NotebookEntry, outDir: string, scale: Scale, resultsDir: string): Promise<string> {
  const link = (inner: string) => (e.exportHtml ? `<a href="${escapeHtml(e.exportHtml)}">${inner}</a>` : inner);
  const status =
    e.status === "not run"
      ? `<span class="bad">not run at scale ${scale}</span> (npm run notebooks -- --scale ${scale} ${escapeHtml(e.stem)})`
      : `${e.status === "ok" ? '<span class="ok">ran</span>' : '<span class="bad">failed</span>'}` +
        (e.seconds !== undefined ? ` in ${duration(e.seconds)}` : "") +
        (e.finished ? `, finished ${e.finished.replace("T", " ").replace(/\.\d+Z$/, " UTC")}` : "");
  const summary = e.results?.summary;
  const question = summary?.question ?? e.question;
  let answer: string;
  if (summary) answer = prose(summary.answer);
  else if (!e.resultsName) answer = '<span class="dim">no results file (this notebook writes none)</span>';
  else if (!e.results) answer = `<span class="bad">no results file</span> (${escapeHtml(e.resultsName)}.${scale}.json)`;
  else answer = '<span class="dim">its results file has no summary</span>';
  const files = e.resultsName && e.results ? resultsFiles(e.resultsName, scale, resultsDir) : null;
  const rel = (f: string) => escapeHtml(path.relative(outDir, f).split(path.sep).join("/"));
  const links = [
    e.exportHtml ? `<a href="${escapeHtml(e.exportHtml)}">notebook (HTML)</a>` : '<span class="dim">no HTML export</span>',
    ...(files ? [`<a href="${rel(files.json)}">results JSON</a>`, `<a href="${rel(files.csv)}">CSV</a>`] : []),
  ].join(" · ");
  const img = e.chart ? link(`<img src="${await thumbnail(e.chart)}" alt="main chart of ${escapeHtml(e.title)}">`) : '<div class="nochart">no chart</div>';
  return `<section class="card" id="${escapeHtml(e.stem)}">
<div class="thumb">${img}</div>
<div class="text">
<h2>${link(prose(e.title))}</h2>
<p class="status">${status}</p>
${question ? `<p><b>Question.</b> ${prose(question)}</p>` : ""}
<p><b>Answer.</b> ${answer}</p>
<p class="links">${links}</p>
</div>
</section>`;
}

const CSS = `body{font:15px/1.45 "DejaVu Sans",system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.5em;margin-bottom:.2em} .sub{color:#666;margin-top:0}
.card{display:flex;gap:1.5em;border-top:1px solid #ddd;padding:1.2em 0}
.thumb{flex:0 0 360px} .thumb img{max-width:360px;border:1px solid #eee}
.nochart{width:360px;height:80px;display:flex;align-items:center;justify-content:center;background:#f6f6f6;color:#999}
.text{flex:1} h2{font-size:1.15em;margin:0 0 .3em} h2 a{color:inherit}
.status{color:#555;margin:.2em 0 .6em} .ok{color:#17803d;font-weight:bold} .bad{color:#b42318;font-weight:bold}
.dim{color:#888} .links{font-size:.92em} code{background:#f3f3f3;padding:0 .2em}`;

export interface ReportOptions {
  scale: Scale;
  /** The build folder (default build/): notebooks in <build>/notebooks/<scale>/, results in <build>/results/. */
  build?: string;
  /** Where the source notebooks are (default notebooks/). */
  notebooks?: string;
}

/** Write <build>/notebooks/<scale>/index.html and return its path. */
export async function writeReport(opts: ReportOptions): Promise<string> {
  const build = path.resolve(opts.build ?? path.join(ROOT, "build"));
  const nbDir = opts.notebooks ?? path.join(ROOT, "notebooks");
  const outDir = path.join(build, "notebooks", opts.scale);
  const resultsDir = path.join(build, "results");
  const sources = fs.readdirSync(nbDir).filter((f) => f.endsWith(".ipynb")).sort();
  if (!sources.length) throw new Error(`no notebooks in ${nbDir}`);
  const entries = sources.map((f) => collectNotebook(path.join(nbDir, f), outDir, opts.scale, resultsDir));
  const cards: string[] = [];
  for (const e of entries) cards.push(await card(e, outDir, opts.scale, resultsDir));
  fs.mkdirSync(outDir, { recursive: true });
  copyKatexAssets(outDir);
  const ran = entries.filter((e) => e.status !== "not run").length;
  const failed = entries.filter((e) => e.status === "failed").length;
  const html = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>diffprobe notebooks (${opts.scale})</title>
<link rel="stylesheet" href="${KATEX_DIR}/katex.min.css">
<style>${CSS}</style></head>
<body>
<h1>diffprobe: the notebooks at scale ${opts.scale}</h1>
<p class="sub">Reproducing “Diffusion Models Beat GANs on Image Classification” (arXiv 2307.08702) ·
${ran} of ${entries.length} notebooks ran${failed ? `, <span class="bad">${failed} failed</span>` : ""} · page written ${new Date().toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC")}
(npm run report -- --scale ${opts.scale})</p>
${cards.join("\n")}
</body></html>
`;
  const file = path.join(outDir, "index.html");
  const tmp = path.join(outDir, `.index.html.tmp-${process.pid}`);
  fs.writeFileSync(tmp, html);
  fs.renameSync(tmp, file);
  return file;
}

const USAGE = `usage: npm run report -- [--scale smoke|demo|full] [--out DIR]
  --scale S   the run to report on (default: $${SCALE_ENV}, else demo)
  --out DIR   the build folder: notebooks in DIR/notebooks/<scale>/, results in DIR/results/ (default build)
writes DIR/notebooks/<scale>/index.html and prints its path`;

if (require.main === module) {
  runCommand({ name: "report", usage: USAGE }, async () => {
    const { values } = parseCommandLine({
      options: { scale: { type: "string", default: parseScale(process.env[SCALE_ENV]) }, out: { type: "string", default: path.join(ROOT, "build") } },
    });
    const scale = choiceOption(values, "scale", SCALES)!;
    console.log(`report: ${await writeReport({ scale, build: values.out })}`);
    return 0;
  });
}
