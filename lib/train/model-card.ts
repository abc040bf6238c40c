/**
 * What a trained run shows a reader: a grid of samples drawn from its EMA model (DDIM, seeded) and
 * its loss curve (the steps of its kept exports marked), written beside the weights as samples.png and loss.png.
 */
import * as fs from "fs";
import * as path from "path";
import { NoiseSchedule } from "../model/diffusion/schedule";
import { sampleImages, unetEps } from "../model/diffusion/sample";
import { saveImageGrid } from "../display/images";
import { renderPng } from "../display/charts";
import { loadTrainedModel } from "./trainer";
import { LossLog } from "./loss-log";
import { keptExports } from "./kept-exports";
import { progress, Progress } from "../display/progress";

export interface ModelCardOptions {
  /** Number of samples (default 64). */
  samples?: number;
  /** DDIM respacing (default "ddim50"). */
  respacing?: string;
  seed?: number;
  /** Loss points averaged per plotted point (default: about 100 points in all). */
  smoothing?: number;
  /** Show sampling progress (default true). */
  progress?: boolean;
}

export interface ModelCard {
  step: number;
  samplesPng: string;
  lossPng: string | null;
  finalLoss: number | null;
}

/** Mean of consecutive windows of `k` losses: [{step, loss}] at each window's last step. */
export function smoothLoss(rows: { step: number; loss: number }[], k: number): { step: number; loss: number }[] {
  const out: { step: number; loss: number }[] = [];
  for (let i = 0; i < rows.length; i += k) {
    const w = rows.slice(i, i + k);
    out.push({ step: w[w.length - 1].step, loss: w.reduce((a, r) => a + r.loss, 0) / w.length });
  }
  return out;
}

export async function writeModelCard(dir: string, opts: ModelCardOptions = {}): Promise<ModelCard> {
  const { model, manifest } = await loadTrainedModel(dir);
  const n = opts.samples ?? 64;
  const c = model.config;
  const shape: [number, number, number] = [c.imageSize, c.imageSize, c.inChannels];
  try {
    const base = NoiseSchedule.named(manifest.diffusion.noise_schedule, manifest.diffusion.diffusion_steps);
    let bar: Progress | null = null;
    const images = await sampleImages(unetEps(model), base, {
      n, shape, seed: opts.seed ?? 0, method: "ddim", respacing: opts.respacing ?? "ddim50",
      onStep: opts.progress === false ? undefined : (done, total) => (bar ??= progress({ total, label: `sampling ${n} images`, unit: "step" })).update(done),
    });
    (bar as Progress | null)?.done();
    const samplesPng = path.join(dir, "samples.png");
    await saveImageGrid(samplesPng, images, [n, ...shape], { scale: 2 });

    let lossPng: string | null = null;
    let finalLoss: number | null = null;
    if (fs.existsSync(path.join(dir, "loss.csv"))) {
      const rows = new LossLog(path.join(dir, "loss.csv")).read();
      if (rows.length > 0) {
        const k = opts.smoothing ?? Math.max(1, Math.round(rows.length / 100));
        const points = smoothLoss(rows, k);
        finalLoss = points[points.length - 1].loss;
        lossPng = path.join(dir, "loss.png");
        const kept = keptExports(dir).filter((e) => e.step > 0).map((e) => ({ step: e.step, label: String(e.step) }));
        const png = await renderPng({
          title: `Training loss (mean of ${k} steps), ${rows[rows.length - 1].step} steps; dotted: kept exports`,
          width: 420, height: 200,
          layer: [
            {
              data: { values: points },
              mark: "line",
              encoding: {
                x: { field: "step", type: "quantitative", title: "step" },
                y: { field: "loss", type: "quantitative", title: "MSE(ε̂, ε)", scale: { type: "log" } },
              },
            },
            { data: { values: kept }, mark: { type: "rule", strokeDash: [2, 3], color: "grey" }, encoding: { x: { field: "step", type: "quantitative" } } },
          ],
        });
        fs.writeFileSync(lossPng, png);
      }
    }
    return { step: manifest.step, samplesPng, lossPng, finalLoss };
  } finally {
    model.dispose();
  }
}
