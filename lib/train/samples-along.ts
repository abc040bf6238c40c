/**
 * Samples along training: the same seeded noise denoised (DDIM, deterministic) by each kept export of a run,
 * one row per export, so a reader sees the same draw take shape as the model learns. Written as
 * `samples-along.png` beside the weights (rows top to bottom in step order; the steps are returned).
 */
import * as fs from "fs";
import * as path from "path";
import { NoiseSchedule } from "../model/diffusion/schedule";
import { sampleImages, unetEps } from "../model/diffusion/sample";
import { createUNetConfig, UNet } from "../model/unet/index";
import { saveImageGrid } from "../display/images";
import { progress } from "../display/progress";
import { KeptExport, keptExports } from "./kept-exports";

export interface SamplesAlongOptions {
  /** Samples per row (default 12). */
  samples?: number;
  respacing?: string;
  seed?: number;
  /** Which exports (default: all of keptExports(dir)). */
  exports?: KeptExport[];
  progress?: boolean;
}

export async function writeSamplesAlong(dir: string, opts: SamplesAlongOptions = {}): Promise<{ file: string; steps: number[] }> {
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, "model.json"), "utf8"));
  const config = createUNetConfig(manifest.unet_kwargs);
  const base = NoiseSchedule.named(manifest.diffusion.noise_schedule, manifest.diffusion.diffusion_steps);
  const exports = opts.exports ?? keptExports(dir);
  const n = opts.samples ?? 12;
  const shape: [number, number, number] = [config.imageSize, config.imageSize, config.inChannels];
  const per = n * shape[0] * shape[1] * shape[2];
  const all = new Float32Array(per * exports.length);
  const bar = opts.progress === false ? null : progress({ total: exports.length, label: `sampling ${n} images from each of ${exports.length} exports`, unit: "export" });
  for (const [i, e] of exports.entries()) {
    const model = await UNet.fromCheckpoint(config, e.file);
    try {
      all.set(await sampleImages(unetEps(model), base, { n, shape, seed: opts.seed ?? 0, method: "ddim", respacing: opts.respacing ?? "ddim50" }), i * per);
    } finally {
      model.dispose();
    }
    bar?.update(i + 1);
  }
  bar?.done();
  const file = path.join(dir, "samples-along.png");
  await saveImageGrid(file, all, [n * exports.length, ...shape], { cols: n, scale: 2 });
  return { file, steps: exports.map((e) => e.step) };
}
