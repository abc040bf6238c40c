/**
 * Model card pictures of the baseline runs: the GAN's samples and loss curves; the supervised network's
 * loss and train/validation accuracy curves. Written beside the weights.
 */
import * as fs from "fs";
import * as path from "path";
import { renderPng } from "../../display/charts";
import { saveImageGrid } from "../../display/images";
import { smoothLoss } from "../model-card";
import { Dcgan, GAN_WEIGHTS } from "./gan-trainer";
import { CsvLog } from "./train-loop";

function readCsv(file: string): Record<string, number>[] {
  if (!fs.existsSync(file)) return [];
  const cols = fs.readFileSync(file, "utf8").split("\n")[0].split(",");
  return new CsvLog(file, cols).read();
}

/** Long rows {step, value, series} of the columns of `rows`, averaged over windows of k steps. */
function smoothed(rows: Record<string, number>[], columns: string[], k: number): { step: number; value: number; series: string }[] {
  return columns.flatMap((c) => smoothLoss(rows.map((r) => ({ step: r.step, loss: r[c] })), k).map((p) => ({ step: p.step, value: p.loss, series: c })));
}

/** samples.png (64 samples, seed 0) and loss.png (D and G losses, D's mean outputs). Returns the files. */
export async function writeGanCard(dir: string): Promise<string[]> {
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, "model.json"), "utf8"));
  const gan = await Dcgan.load(path.join(dir, GAN_WEIGHTS), manifest.config);
  const files: string[] = [];
  try {
    const n = 64;
    const samples = path.join(dir, "samples.png");
    await saveImageGrid(samples, gan.sample(n, 0), [n, 32, 32, 1], { scale: 2 });
    files.push(samples);
  } finally {
    gan.dispose();
  }
  const rows = readCsv(path.join(dir, "metrics.csv"));
  if (rows.length) {
    const k = Math.max(1, Math.round(rows.length / 100));
    const png = await renderPng({
      title: `GAN training (mean of ${k} steps), ${rows[rows.length - 1].step} steps`,
      hconcat: [
        { width: 300, height: 180, data: { values: smoothed(rows, ["d_loss", "g_loss"], k) }, mark: "line",
          encoding: { x: { field: "step", type: "quantitative" }, y: { field: "value", type: "quantitative", title: "loss" }, color: { field: "series", type: "nominal", title: null } } },
        { width: 300, height: 180, data: { values: smoothed(rows, ["d_real", "d_fake"], k) }, mark: "line",
          encoding: { x: { field: "step", type: "quantitative" }, y: { field: "value", type: "quantitative", title: "mean σ(D)", scale: { domain: [0, 1] } }, color: { field: "series", type: "nominal", title: null } } },
      ],
    } as never);
    const lossPng = path.join(dir, "loss.png");
    fs.writeFileSync(lossPng, png);
    files.push(lossPng);
  }
  return files;
}

/** loss.png: training loss and accuracy (per step, smoothed) and validation accuracy. */
export async function writeSupervisedCard(dir: string): Promise<string[]> {
  const rows = readCsv(path.join(dir, "metrics.csv"));
  const evals = readCsv(path.join(dir, "eval.csv"));
  if (!rows.length) return [];
  const k = Math.max(1, Math.round(rows.length / 100));
  const train = smoothed(rows, ["train_acc"], k).map((r) => ({ ...r, series: "training batches" }));
  const val = evals.map((r) => ({ step: r.step, value: r.val_acc, series: "validation (holdout)" }));
  const enc = { x: { field: "step", type: "quantitative" }, y: { field: "value", type: "quantitative", title: "accuracy", scale: { domain: [0, 1] } }, color: { field: "series", type: "nominal", title: null } };
  const png = await renderPng({
    title: `Supervised encoder (mean of ${k} steps), ${rows[rows.length - 1].step} steps`,
    hconcat: [
      { width: 300, height: 180, data: { values: smoothed(rows, ["loss"], k) }, mark: "line",
        encoding: { x: { field: "step", type: "quantitative" }, y: { field: "value", type: "quantitative", title: "cross-entropy" } } },
      { width: 300, height: 180, layer: [
        { data: { values: train }, mark: "line", encoding: enc },
        { data: { values: val }, mark: { type: "line", point: true }, encoding: enc },
      ] },
    ],
  } as never);
  const file = path.join(dir, "loss.png");
  fs.writeFileSync(file, png);
  return [file];
}
