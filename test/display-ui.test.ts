/**
 * The display helpers that make a notebook read well at a normal width: progress lines within 100 columns,
 * settings as a table, the feature-engine line, and the accuracy chart (zoomed axis, interval bars, labels
 * not cut), checked on their vega-lite spec and on the SVG vega renders from it.
 */
import { strict as assert } from "assert";
import { accuracyChartSpec, accuracyDomain, accuracyPoint, AccuracyPoint } from "../lib/display/accuracy-chart";
import { renderSvg } from "../lib/display/charts";
import { backendLine, featureEngineLine } from "../lib/display/engine";
import { LINE_WIDTH, progressBundle, statusLine } from "../lib/display/progress";
import { settingsHtml, settingsRows, settingsText } from "../lib/display/settings";
import { packageVersion } from "../lib/environment";
import { loadOrt } from "../lib/model/engines/ort-runtime";

describe("progress lines within 100 columns", () => {
  const long = "trained U-Net (embedded DDPM, 10,000 steps): train features of every block at every timestep";
  it("keep short lines as they were", () => {
    assert.equal(statusLine("extract", 25, 100, 5, "img", {}), "extract: 25/100 (25%) 5.00 img/s elapsed 5.0s ETA 15.0s");
  });
  it("shorten a long label with an ellipsis, never a figure", () => {
    const line = statusLine(long, 12345, 60000, 123.4, "img", {});
    assert.ok(line.length <= LINE_WIDTH, `${line.length}: ${line}`);
    assert.match(line, /^trained U-Net .*…: 12345\/60000 \(21%\) 100 img\/s elapsed 2m03s ETA 7m56s$/);
  });
  it("drop extra fields from the end before shortening the label below 16 characters", () => {
    const info = { loss: 0.123456, lr: 0.0001, "grad norm": 12.5, "ema decay": 0.9999, epoch: 12 };
    const line = statusLine(long, 5, 10, 10, "step", info, 90);
    assert.ok(line.length <= 90, `${line.length}: ${line}`);
    assert.match(line, /: 5\/10 \(50%\) 2\.00 s\/step elapsed 10\.0s ETA 10\.0s loss=0\.1235/);
    assert.ok(!line.includes("epoch="), line);
    assert.ok(line.split(":")[0].length >= 16);
  });
  it("show a bar and a line that does not wrap in the notebook, with how far it got", () => {
    const b = progressBundle("job: 3/4 (75%)", 3, 4);
    assert.equal(b["text/plain"], "job: 3/4 (75%)");
    assert.match(b["text/html"] as string, /class="diffprobe-progress" data-value="3" data-total="4"/);
    assert.match(b["text/html"] as string, /white-space:pre/);
    assert.match(b["text/html"] as string, /width:75\.0%/);
  });
});

describe("settings as a table", () => {
  const settings = {
    nTrain: 1500,
    blocks: ["input_blocks.3", "middle_block", "output_blocks.2"],
    probe: { epochs: 20, lr: 0.001 },
    note: "a <long> explanation ".repeat(8).trim(),
    seed: null,
  };
  it("flattens nested settings to dotted keys and lists arrays", () => {
    assert.deepEqual(settingsRows(settings).map(([k]) => k), ["nTrain", "blocks", "probe.epochs", "probe.lr", "note", "seed"]);
    assert.equal(settingsRows(settings)[1][1], "input_blocks.3, middle_block, output_blocks.2");
  });
  it("wraps long values at spaces within 100 columns, keys aligned", () => {
    const lines = settingsText(settings, "settings").split("\n");
    assert.equal(lines[0], "settings");
    assert.ok(lines.every((l) => l.length <= 100), lines.join("\n"));
    assert.equal(lines[1], "nTrain        1500");
    const note = lines.filter((l) => l.startsWith("note") || l.startsWith("      "));
    assert.ok(note.length >= 2, "the note wraps");
    assert.equal(note.map((l) => l.slice(14)).join(" "), settings.note);
  });
  it("escapes HTML", () => {
    const html = settingsHtml(settings, "a & b");
    assert.match(html, /<caption[^>]*>a &amp; b<\/caption>/);
    assert.match(html, /a &lt;long&gt; explanation/);
    assert.equal((html.match(/<tr>/g) ?? []).length, 6);
  });
});

describe("feature engine line", () => {
  const saved = process.env.DIFFPROBE_ENGINE;
  afterEach(() => {
    if (saved === undefined) delete process.env.DIFFPROBE_ENGINE;
    else process.env.DIFFPROBE_ENGINE = saved;
  });
  it("names tfjs with its installed version and worker backend when tfjs is forced", () => {
    process.env.DIFFPROBE_ENGINE = "tfjs";
    assert.equal(featureEngineLine(), `feature engine: tfjs ${packageVersion("@tensorflow/tfjs")}, wasm in worker threads (forced by $DIFFPROBE_ENGINE)`);
    assert.equal(backendLine("cpu"), `tfjs backend for the rest of this notebook: cpu (tfjs ${packageVersion("@tensorflow/tfjs")})`);
  });
  it("names onnxruntime-node with its installed version, provider and threads when it is chosen", function () {
    delete process.env.DIFFPROBE_ENGINE;
    if (!loadOrt().ort) this.skip();
    assert.ok(featureEngineLine().length <= 100, featureEngineLine());
    assert.match(featureEngineLine(), new RegExp(`^feature engine: onnxruntime-node ${packageVersion("onnxruntime-node").replace(/\./g, "\\.")} \\(cpu, \\d+ threads?\\), chosen automatically$`));
    assert.match(featureEngineLine({ engine: "ort" }), /\), forced by the notebook$/);
  });
});

describe("accuracy chart", () => {
  const features = "U-Net output_blocks.2 at t = 100, adaptive 4x4 pool, linear probe";
  const pixels = "raw pixels (32x32, padded from 28x28, flattened), linear probe";
  const points: AccuracyPoint[] = [accuracyPoint(features, 0.86, 500, "diffusion"), accuracyPoint(pixels, 0.81, 500, "baseline")];
  type Layer = { mark: { type: string }; encoding: Record<string, { field?: string; scale?: { domain: number[]; zero: boolean }; axis?: { labelLimit: number } }> };
  const spec = accuracyChartSpec(points, { title: "test accuracy" }) as unknown as { layer: Layer[]; encoding: { y: { axis: { labelLimit: number } } } };

  it("zooms the x axis to the intervals, not from 0", () => {
    const [lo, hi] = accuracyDomain(points);
    assert.ok(lo > 0.7 && lo < Math.min(...points.map((p) => p.low)), `low end ${lo}`);
    assert.ok(hi < 0.95 && hi > Math.max(...points.map((p) => p.high)), `high end ${hi}`);
    for (const layer of spec.layer) {
      assert.deepEqual(layer.encoding.x.scale!.domain, [lo, hi]);
      assert.equal(layer.encoding.x.scale!.zero, false);
    }
  });
  it("draws each 95% interval as a bar from low to high, and the accuracy as a point", () => {
    const [rule, point] = spec.layer;
    assert.equal(rule.mark.type, "rule");
    assert.equal(rule.encoding.x.field, "low");
    assert.equal(rule.encoding.x2.field, "high");
    assert.equal(point.mark.type, "point");
    assert.equal(point.encoding.x.field, "accuracy");
    assert.ok(points.every((p) => p.low < p.accuracy && p.accuracy < p.high && p.high - p.low > 0.04 && p.high - p.low < 0.08));
  });
  it("turns the label limit off, and the rendered chart shows every label whole on a zoomed axis", async () => {
    assert.equal(spec.encoding.y.axis.labelLimit, 0);
    const svg = await renderSvg(spec as never);
    assert.ok(svg.includes(features) && svg.includes(pixels), "a label is cut");
    assert.ok(!svg.includes("…"), "vega shortened a label");
    const ticks = [...svg.matchAll(/>(\d+)%</g)].map((m) => Number(m[1]));
    assert.ok(ticks.length >= 3 && Math.min(...ticks) >= 75 && Math.max(...ticks) <= 90, `ticks ${ticks}`);
  });
  it("names the bad point", () => {
    assert.throws(() => accuracyChartSpec([{ label: "odd", accuracy: 0.5, low: 0.6, high: 0.7 }]), /point 0 \("odd"\) needs 0 <= low <= accuracy <= high <= 1/);
    assert.throws(() => accuracyChartSpec([]), /no points/);
  });
});
