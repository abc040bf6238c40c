import { strict as assert } from "assert";
import sharp from "sharp";
import { chartBundle, chartText, renderSvg } from "../lib/display/charts";
import { tableText, tableHtml, toCsv, aq } from "../lib/display/tables";
import { parseScale, byScale } from "../lib/scale";
import { progress, formatDuration, formatRate, statusLine, detectMode, PROGRESS_ENV } from "../lib/display/progress";
import { inNotebook, displayBundle } from "../lib/display/notebook";
import { packageVersion } from "../lib/environment";

const spec = {
  title: "accuracy by timestep",
  width: 200,
  height: 100,
  data: { values: [{ t: 10, acc: 0.5 }, { t: 90, acc: 0.7 }] },
  mark: "line",
  encoding: { x: { field: "t", type: "quantitative" }, y: { field: "acc", type: "quantitative" } },
} as const;

describe("charts", () => {
  it("renders a vega-lite spec to an SVG with its title and axes", async () => {
    const svg = await renderSvg(spec as any);
    assert.match(svg, /^<svg/);
    assert.match(svg, /accuracy by timestep/);
    assert.match(svg, />acc</);
  });

  it("bundles the spec, a PNG of its natural size and a text form", async () => {
    const { data, metadata } = await chartBundle(spec as any, { scale: 2 });
    assert.deepEqual(data["application/vnd.vegalite.v5+json"], spec);
    const png = Buffer.from(data["image/png"] as string, "base64");
    const meta = await sharp(png).metadata();
    assert.equal(meta.format, "png");
    assert.ok(meta.width! > 200 * 2 && meta.height! > 100 * 2, `png ${meta.width}x${meta.height} smaller than the 2x plot area`);
    assert.deepEqual(metadata["image/png"], { width: Math.round(meta.width! / 2), height: Math.round(meta.height! / 2) });
    // the picture is not blank: some pixels differ from the background
    const { data: px } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    assert.ok(new Set(px).size > 10, "the PNG looks blank");
    assert.equal(data["text/plain"], chartText(spec as any));
    assert.match(data["text/plain"] as string, /accuracy by timestep\n {2}\{"t":10,"acc":0.5\}/);
  });
});

describe("tables", () => {
  const rows = [
    { block: 24, t: 90, acc: 0.71234 },
    { block: 19, t: 150, acc: 0.6 },
  ];
  it("renders aligned text with fixed digits", () => {
    const text = tableText(rows);
    assert.equal(text.split("\n")[0], "block    t    acc");
    assert.equal(text.split("\n")[2], "   24   90  0.712");
  });
  it("renders HTML from rows or an arquero table, escaping text", () => {
    const html = tableHtml(aq.from([{ name: "<b>", n: 1 }]));
    assert.match(html, /<th>name<\/th><th>n<\/th>/);
    assert.match(html, /&lt;b&gt;/);
  });
  it("writes CSV with RFC 4180 quoting", () => {
    assert.equal(toCsv([{ a: 'x,"y"', b: 2 }, { a: "z", b: null }]), 'a,b\n"x,""y""",2\nz,\n');
  });
  it("writes no [object Object] to CSV: flat objects become dotted columns, deeper values JSON text", () => {
    const rows = [
      { block: { number: 6, module: "input_blocks.5" }, t: 0, seeds: [1, 2], split: { seed: 0, perClass: { 0: [4, 1] } } },
      { block: null, t: null, seeds: [], split: null },
    ];
    const csv = toCsv(rows);
    assert.equal(
      csv,
      "block.number,block.module,t,seeds,split\n" +
        '6,input_blocks.5,0,"[1,2]","{""seed"":0,""perClass"":{""0"":[4,1]}}"\n' +
        ",,,[],\n",
    );
    assert.doesNotMatch(csv, /object Object/);
    assert.doesNotMatch(tableText(rows), /object Object/);
  });
});

describe("scale switch", () => {
  it("parses the three scales, defaults to demo, rejects others", () => {
    assert.equal(parseScale(undefined), "demo");
    assert.equal(parseScale(" SMOKE "), "smoke");
    assert.throws(() => parseScale("huge"), /DIFFPROBE_SCALE="huge": expected one of smoke, demo, full/);
    assert.equal(byScale({ smoke: 1, demo: 2, full: 3 }, "full"), 3);
  });
});

describe("progress", () => {
  it("formats durations and rates", () => {
    assert.equal(formatDuration(12.34), "12.3s");
    assert.equal(formatDuration(185), "3m05s");
    assert.equal(formatDuration(3725), "1h02m");
    assert.equal(formatRate(12.5, "img"), "12.50 img/s");
    assert.equal(formatRate(0.25, "img"), "4.00 s/img");
  });
  it("reports count, rate and ETA", () => {
    assert.equal(statusLine("extract", 25, 100, 5, "img", { loss: 0.5 }), "extract: 25/100 (25%) 5.00 img/s elapsed 5.0s ETA 15.0s loss=0.5000");
  });
  it("writes log lines at start and end, throttled in between", () => {
    const lines: string[] = [];
    const p = progress({ total: 3, label: "job", unit: "it", mode: "log", intervalMs: 60_000, write: (l) => lines.push(l) });
    p.tick();
    p.tick(1, { loss: 1.5 });
    p.tick();
    p.done();
    assert.equal(lines.length, 2, lines.join("\n"));
    assert.match(lines[0], /^job: 0\/3 \(0%\)/);
    assert.match(lines[1], /^job: 3\/3 \(100%\) .* ETA 0s loss=1\.500$/);
    assert.equal(p.value, 3);
  });
  it("DIFFPROBE_PROGRESS sets the default mode and rejects unknown modes by name", () => {
    const saved = process.env[PROGRESS_ENV];
    try {
      process.env[PROGRESS_ENV] = "log";
      assert.equal(detectMode(), "log");
      process.env[PROGRESS_ENV] = "silent";
      const lines: string[] = [];
      const p = progress({ total: 2, label: "quiet", write: (l) => lines.push(l) });
      p.tick(2);
      p.done();
      assert.equal(p.value, 2);
      assert.deepEqual(lines, []);
      process.env[PROGRESS_ENV] = "loud";
      assert.throws(() => detectMode(), /DIFFPROBE_PROGRESS="loud": expected one of notebook, tty, log, silent/);
      delete process.env[PROGRESS_ENV];
      assert.equal(detectMode(), process.stderr.isTTY ? "tty" : "log");
    } finally {
      if (saved === undefined) delete process.env[PROGRESS_ENV];
      else process.env[PROGRESS_ENV] = saved;
    }
  });
});

describe("notebook display", () => {
  it("knows it is not in a notebook here and displays nothing", () => {
    assert.equal(inNotebook(), false);
    assert.equal(displayBundle({ "text/plain": "x" }), false);
  });
  it("reads package versions even where exports hide package.json", () => {
    assert.match(packageVersion("sharp"), /^\d+\.\d+\.\d+/);
    assert.equal(packageVersion("no-such-package-xyz"), "not installed");
  });
});
