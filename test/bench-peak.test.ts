/**
 * The bench's limit and percentages (bench/peak.ts): the widest convolution of a U-Net config, the nominal peak
 * only for processors whose FMA width is known, every GFLOP/s figure as a percentage of the measured peak of the
 * same run, and the ONNX Runtime / PyTorch ratio per batch size. (The timings themselves are figures, not tests.)
 */
import { strict as assert } from "assert";
import { annotateFlops, comparisons, nominalPeak, widestConv } from "../bench/peak";
import type { Row } from "../bench/parts";
import { createUNetConfig } from "../lib/model/unet/config";

const row = (r: Partial<Row>): Row => ({ part: "ort256", model: "m", backend: "b", batch: 1, measure: "x", value: 1, unit: "s/img", ...r });

describe("bench: measured peak and percentages", () => {
  it("the 256 model's widest 3x3 convolution: 1024 channels at 16x16", () => {
    assert.deepEqual(widestConv(createUNetConfig("adm-256-uncond")), { ch: 1024, res: 16 });
  });

  it("a nominal peak only where the processor's FMA width is known, saying which processor it assumed", () => {
    const generic = nominalPeak("model name\t: AMD EPYC\ncpu MHz\t\t: 2445.402\n");
    assert.equal(generic.gflops, null);
    assert.match((generic as { why: string }).why, /FMA width of "AMD EPYC" is not known/);
    const zen4 = nominalPeak("model name\t: AMD EPYC 9654 96-Core Processor\ncpu MHz\t\t: 2400.000\n");
    assert.ok(zen4.gflops !== null);
    const cores = require("os").availableParallelism();
    assert.ok(Math.abs(zen4.gflops - cores * 2.4 * 32) < 1e-9);
    assert.match((zen4 as { how: string }).how, /assumed AMD EPYC 9xx4 \(Zen 4\): .* x 32 FLOP\/cycle \(2 x 256-bit FMA units/);
  });

  it("every figure with a FLOP count is a percentage of the best measured peak; ratios per batch size", () => {
    const rows = annotateFlops([
      row({ measure: "measured peak: matmul 2048²", value: 150, unit: "GFLOP/s", peak: "figure", batch: "" }),
      row({ measure: "measured peak: matmul 4096²", value: 200, unit: "GFLOP/s", peak: "best", batch: "", provider: "cpu" }),
      row({ measure: "nominal peak", value: NaN, unit: "GFLOP/s", peak: "nominal", batch: "", note: "no nominal figure: unknown" }),
      row({ measure: "features block 24", value: 4, gflop: 600, batch: 1, provider: "cpu" }),
      row({ measure: "features block 24", value: 3, gflop: 600, batch: 8, provider: "cpu" }),
      row({ part: "torch", measure: "features block 24, t=90", value: 5, gflop: 600, batch: 1 }),
      row({ part: "torch", measure: "features block 24, t=90", value: 6, gflop: 600, batch: 8 }),
      row({ measure: "first pass (warm-up)", value: 9 }),
    ]);
    assert.match(rows[0].note!, /75% of the measured peak/);
    assert.match(rows[1].note!, /100% of the measured peak/);
    assert.match(rows[3].note!, /^600 GFLOP\/img: 150 GFLOP\/s, 75% of the measured peak 200 GFLOP\/s \(matmul 4096², same run\)$/);
    assert.match(rows[4].note!, /200 GFLOP\/s, 100% of the measured peak/);
    assert.match(rows[6].note!, /100 GFLOP\/s, 50% of the measured peak/);
    assert.doesNotMatch(rows[4].note!, /ABOVE/);
    const above = annotateFlops([rows[1], row({ measure: "full forward pass", value: 2, gflop: 600 })]);
    assert.match(above[1].note!, /300 GFLOP\/s, 150% of the measured peak .*ABOVE the measured peak: the machine was busier while the peak was measured/);
    assert.equal(rows[7].note, undefined);
    assert.deepEqual(comparisons(rows), [
      "ONNX Runtime / PyTorch, features, batch 1, same run: 4.00 / 5.00 s/img = 0.80x the time.",
      "ONNX Runtime / PyTorch, features, batch 8, same run: 3.00 / 6.00 s/img = 0.50x the time.",
      "ONNX Runtime execution provider: cpu.",
      "Nominal peak: no nominal figure: unknown.",
    ]);
    const alone = annotateFlops([row({ part: "torch", measure: "features", value: 5, gflop: 600 })]);
    assert.match(alone[0].note!, /no measured peak in this run \(part ort256 measures it\)/);
  });

  it("the extract path beside the bare engine of the same run, and whether it is within 15%", () => {
    const x = (measure: string, value: number, gflop?: number) => row({ part: "extract256", batch: 8, measure, value, ...(gflop ? { gflop } : {}) });
    const rows = [x("extract path: first call (warm-up)", 9), x("extract path: 8 images, whole call", 4.4, 639), x("bare engine: features block 24, t=90 (median of 2)", 4, 639)];
    assert.deepEqual(comparisons(rows), ["Extract path / bare engine, batch 8, same run: 4.40 / 4.00 s/img = 1.10x the time (0.227 / 0.250 img/s; within 15%)."]);
    rows[1] = x("extract path: 8 images, whole call", 4.8, 639);
    assert.match(comparisons(rows)[0], /= 1\.20x the time .*NOT within 15%/);
    assert.deepEqual(comparisons(rows.slice(0, 2)), []);
  });
});
