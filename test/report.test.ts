/**
 * Results files (lib/results.ts: the scale in the name, the optional summary) and the report page
 * (data-scripts/report.ts), on a temporary build folder with hand-made executed notebooks whose
 * charts are PNGs of known size and colour.
 */
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import sharp from "sharp";
import { readResults, resultsFiles, writeResults } from "../lib/results";
import { writeReport } from "../data-scripts/report";
import { provenance } from "../lib/provenance";

const prov = provenance({ engine: { name: "none", version: "-" }, seeds: { probe: 0 }, options: {} });
import { tempDir, removeTempDir } from "./helpers/tmp";

function withEnv(vars: Record<string, string | undefined>): () => void {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  for (const [k, v] of Object.entries(vars)) (v === undefined ? delete process.env[k] : (process.env[k] = v));
  return () => {
    for (const [k, v] of Object.entries(saved)) (v === undefined ? delete process.env[k] : (process.env[k] = v));
  };
}

describe("results files", () => {
  let build: string;
  let restore: () => void;
  beforeEach(() => {
    build = tempDir("results");
    restore = withEnv({ DIFFPROBE_BUILD: build, DIFFPROBE_SCALE: "demo" });
  });
  afterEach(() => {
    restore();
    removeTempDir(build);
  });

  const rows = [
    { features: "a", testAcc: 0.5 },
    { features: "b, quoted", testAcc: 0.25 },
  ];

  it("puts the scale in the file names, so a smoke run leaves the demo's files alone", () => {
    const demo = writeResults("probe", rows, { settings: { n: 1 }, provenance: prov });
    assert.equal(demo.json, path.join(build, "results", "probe.demo.json"));
    assert.equal(demo.csv, path.join(build, "results", "probe.demo.csv"));
    const demoBytes = fs.readFileSync(demo.json, "utf8");
    const smoke = writeResults("probe", [rows[0]], { scale: "smoke", provenance: prov });
    assert.equal(smoke.json, path.join(build, "results", "probe.smoke.json"));
    assert.equal(fs.readFileSync(demo.json, "utf8"), demoBytes);
    assert.equal(JSON.parse(fs.readFileSync(smoke.json, "utf8")).scale, "smoke");
    assert.equal(JSON.parse(demoBytes).scale, "demo"); // from $DIFFPROBE_SCALE
    assert.deepEqual(fs.readdirSync(path.join(build, "results")).sort(), ["probe.demo.csv", "probe.demo.json", "probe.smoke.csv", "probe.smoke.json"]);
    assert.equal(fs.readFileSync(demo.csv, "utf8").trim().split("\n").length, 3, "header + 2 rows");
  });

  it("stores a summary {question, answer} and reads it back", () => {
    const summary = { question: "Does it beat pixels?", answer: "Yes: 80.0% (95% interval 76.3%-83.2%) vs 70.0%." };
    writeResults("probe", rows, { summary, provenance: prov });
    const back = readResults("probe", "demo")!;
    assert.deepEqual(back.summary, summary);
    assert.deepEqual(back.rows, rows);
    assert.equal(readResults("probe", "smoke"), null);
  });

  it("rejects a bad scale, a bad summary and a dotted name, naming what is wrong", () => {
    assert.throws(() => writeResults("probe", rows, { scale: "huge", provenance: prov }), /DIFFPROBE_SCALE="huge": expected one of smoke, demo, full/);
    assert.throws(() => writeResults("probe", rows, { summary: { question: "q?", answer: " " }, provenance: prov }), /results probe: summary\.answer must be a non-empty string/);
    assert.throws(() => writeResults("probe.v2", rows, { provenance: prov }), /results name "probe\.v2"/);
    assert.equal(fs.existsSync(path.join(build, "results")), false, "nothing written");
  });

  it("names the file when a results file is not JSON", () => {
    const { json } = resultsFiles("probe", "demo");
    fs.mkdirSync(path.dirname(json), { recursive: true });
    fs.writeFileSync(json, "{ nope");
    assert.throws(() => readResults("probe", "demo"), new RegExp(`${json.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}: not valid JSON`));
  });
});

describe("report page (npm run report)", () => {
  let root: string;
  let restore: () => void;
  const png = (w: number, h: number, rgb: [number, number, number]) =>
    sharp({ create: { width: w, height: h, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } }).png().toBuffer();
  const notebook = (cells: object[]) => JSON.stringify({ cells, metadata: {}, nbformat: 4, nbformat_minor: 5 });
  const md = (source: string) => ({ cell_type: "markdown", metadata: {}, source });
  const code = (source: string, outputs: object[] = [], metadata: object = {}) => ({ cell_type: "code", metadata, outputs, source });
  const timed = (busy: string, idle: string) => ({ execution: { "iopub.status.busy": busy, "iopub.status.idle": idle } });

  before(async () => {
    root = tempDir("report");
    const nbDir = path.join(root, "notebooks");
    const out = path.join(root, "build", "notebooks", "demo");
    fs.mkdirSync(nbDir);
    fs.mkdirSync(out, { recursive: true });
    restore = withEnv({ DIFFPROBE_BUILD: path.join(root, "build"), DIFFPROBE_SCALE: "demo" });

    // 01: a question in its own markdown, a results file with a summary, two charts (the second tagged main).
    const a = [md("# 01 · Alpha $x_0$\n\nIntro.\n\n> Does alpha beat the raw pixels?"), code('writeResults("alpha", rows, {});')];
    fs.writeFileSync(path.join(nbDir, "01-alpha.ipynb"), notebook(a));
    const red = (await png(600, 300, [255, 0, 0])).toString("base64");
    const blue = (await png(800, 400, [0, 0, 255])).toString("base64");
    fs.writeFileSync(path.join(out, "01-alpha.ipynb"), notebook([
      a[0],
      code("first", [{ output_type: "display_data", data: { "image/png": red, "text/plain": "x" } }], timed("2026-01-01T10:00:00.000Z", "2026-01-01T10:00:02.000Z")),
      code("main", [{ output_type: "display_data", data: { "image/png": blue } }], { tags: ["main-chart"], ...timed("2026-01-01T10:00:02.000Z", "2026-01-01T10:00:12.500Z") }),
    ]));
    fs.writeFileSync(path.join(out, "01-alpha.html"), "<html>export</html>");
    writeResults("alpha", [{ acc: 0.8 }], { provenance: prov, summary: { question: "Does alpha's probe beat pixels?", answer: "Yes: 80.0% (95% interval 76.3%-83.2%) vs 70.0%, p < 0.05 & more." } });

    // 02: writes results but none exist; its run failed; no chart.
    const b = [md("# 02 · Beta"), code("writeResults('beta', rows);")];
    fs.writeFileSync(path.join(nbDir, "02-beta.ipynb"), notebook(b));
    fs.writeFileSync(path.join(out, "02-beta.ipynb"), notebook([b[0], code("boom", [{ output_type: "error", ename: "Error", evalue: "x", traceback: [] }])]));

    // 03: never run at this scale; writes no results.
    fs.writeFileSync(path.join(nbDir, "03-gamma.ipynb"), notebook([md("# 03 · Gamma"), code("1 + 1")]));
  });
  after(() => {
    restore();
    removeTempDir(root);
  });

  let html: string;
  let page: string;
  before(async () => {
    page = await writeReport({ scale: "demo", build: path.join(root, "build"), notebooks: path.join(root, "notebooks") });
    html = fs.readFileSync(page, "utf8");
  });

  const sections = () => html.split('<section class="card"').slice(1);

  it("writes build/notebooks/<scale>/index.html with one card per notebook, in file order, titled from the notebook", () => {
    assert.equal(page, path.join(root, "build", "notebooks", "demo", "index.html"));
    const ids = sections().map((s) => /id="([^"]+)"/.exec(s)![1]);
    assert.deepEqual(ids, ["01-alpha", "02-beta", "03-gamma"]);
    assert.match(sections()[0], /<h2><a href="01-alpha.html">01 · Alpha <span class="katex">/, "title links to the export; its TeX rendered");
  });

  it("shows the summary's question and its answer, escaped; 'no results file' where the file is absent", () => {
    const [a, b, c] = sections();
    assert.ok(a.includes("<b>Question.</b> Does alpha's probe beat pixels?"), "the summary's question wins over the notebook's blockquote");
    assert.ok(a.includes("<b>Answer.</b> Yes: 80.0% (95% interval 76.3%-83.2%) vs 70.0%, p &lt; 0.05 &amp; more."));
    assert.match(b, /<span class="bad">no results file<\/span> \(beta\.demo\.json\)/);
    assert.match(c, /no results file \(this notebook writes none\)/);
  });

  it("states each run: time from the cells' timing metadata, failed, or not run", () => {
    const [a, b, c] = sections();
    assert.match(a, /<span class="ok">ran<\/span> in 12\.5 s, finished 2026-01-01 10:00:12 UTC/);
    assert.match(b, /<span class="bad">failed<\/span>/);
    assert.match(c, /not run at scale demo/);
  });

  it("embeds a thumbnail of the chart tagged main-chart (not the first one), shrunk to 480 px wide", async () => {
    const src = /<img src="data:image\/png;base64,([^"]+)"/.exec(sections()[0])![1];
    const img = sharp(Buffer.from(src, "base64"));
    const meta = await img.metadata();
    assert.deepEqual([meta.width, meta.height], [480, 240]);
    const { channels } = await img.stats();
    assert.deepEqual(channels.slice(0, 3).map((ch) => Math.round(ch.mean)), [0, 0, 255], "the blue (tagged) chart");
    assert.match(sections()[1], /no chart/);
  });

  it("works offline: every link and source is relative or a data URI, and resolves to a file", () => {
    const refs = [...html.matchAll(/(?:href|src)="([^"]+)"/g)].map((m) => m[1]).filter((r) => !r.startsWith("data:"));
    assert.ok(refs.length >= 4, refs.join(" "));
    for (const r of refs) {
      assert.doesNotMatch(r, /^[a-z]+:/i, `absolute URL ${r}`);
      assert.ok(fs.existsSync(path.join(path.dirname(page), r)), `${r} does not exist`);
    }
    assert.ok(refs.includes("../../results/alpha.demo.json") && refs.includes("katex/katex.min.css"), refs.join(" "));
  });
});
