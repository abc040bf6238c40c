import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import sharp from "sharp";
import { selectBackend } from "../lib/model/backend";
import { saveSafetensors } from "../lib/model/checkpoint/index";
import { createUNetConfig, configToKwargs, UNet } from "../lib/model/unet/index";
import { NoiseSchedule } from "../lib/model/diffusion/schedule";
import { sampleImages, unetEps } from "../lib/model/diffusion/sample";
import { imageGrid } from "../lib/display/images";
import { guidedDiffusionInit } from "../lib/train/model-params";
import { emaExportName, keptExports } from "../lib/train/kept-exports";
import { writeSamplesAlong } from "../lib/train/samples-along";
import { projectRoot } from "../lib/paths";
import { Rng } from "../lib/rng";
import { tempDir, removeTempDir } from "./helpers/tmp";

const TINY = { image_size: 8, in_channels: 1, num_channels: 32, num_res_blocks: 1, channel_mult: "1,2", attention_resolutions: "", learn_sigma: false };

describe("kept exports of a training run and samples along training", function () {
  this.timeout(120000);
  let dir: string;
  before(async () => {
    await selectBackend("wasm");
    dir = tempDir("kept");
    const config = createUNetConfig(TINY);
    for (const [name, seed] of [["init.safetensors", 0], [emaExportName(30), 1], [emaExportName(60), 2], ["ema.safetensors", 3]] as const) {
      // guided-diffusion zero-initialises the output conv: give the later exports one, so their samples differ
      const params = guidedDiffusionInit(config, seed).map((p) => (seed > 0 && p.name.startsWith("out.") ? { ...p, data: new Rng(seed, 5).fillNormal(new Float32Array(p.data.length)).map((v) => 0.05 * v) } : p));
      await saveSafetensors(path.join(dir, name), params, { format: "pt" });
    }
    fs.writeFileSync(path.join(dir, "model.json"), JSON.stringify({
      weights: "ema.safetensors", step: 60, unet_kwargs: configToKwargs(config), diffusion: { diffusion_steps: 1000, noise_schedule: "linear" },
    }));
    fs.writeFileSync(path.join(dir, "ema-notes.txt"), "not an export");
  });
  after(() => removeTempDir(dir));

  it("lists init (step 0), the ema-<step> exports and model.json's weights, by step; the current export wins its step", () => {
    assert.equal(emaExportName(1294), "ema-0001294.safetensors");
    const k = keptExports(dir);
    assert.deepEqual(k.map((e) => [e.step, path.basename(e.file)]), [[0, "init.safetensors"], [30, "ema-0000030.safetensors"], [60, "ema.safetensors"]]);
  });

  it("the committed DDPM keeps its step-0 weights, the 1,294-step export and its current weights", () => {
    const assetDir = path.join(projectRoot(), "assets", "fashion-mnist-ddpm");
    const manifest = JSON.parse(fs.readFileSync(path.join(assetDir, "model.json"), "utf8"));
    const steps = keptExports(assetDir).map((e) => e.step);
    assert.equal(steps[0], 0);
    assert.ok(steps.includes(1294), `steps ${steps}`);
    assert.equal(steps[steps.length - 1], manifest.step);
  });

  it("names the missing piece of a broken run folder", () => {
    const bad = tempDir("kept-bad");
    try {
      assert.throws(() => keptExports(bad), /model\.json: not found/);
      fs.writeFileSync(path.join(bad, "model.json"), JSON.stringify({ weights: "ema.safetensors", step: 5 }));
      assert.throws(() => keptExports(bad), /its weights ema\.safetensors are missing/);
    } finally {
      removeTempDir(bad);
    }
  });

  it("samples-along.png holds, row by row, each export's DDIM samples from the same seed", async () => {
    const r = await writeSamplesAlong(dir, { samples: 3, respacing: "ddim5", seed: 7, progress: false });
    assert.deepEqual(r.steps, [0, 30, 60]);
    assert.equal((await sharp(r.file).metadata()).channels, 1, "a greyscale PNG");
    const { data, info } = await sharp(r.file).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
    const config = createUNetConfig(TINY);
    const rows: Float32Array[] = [];
    for (const e of keptExports(dir)) {
      const model = await UNet.fromCheckpoint(config, e.file);
      rows.push(await sampleImages(unetEps(model), NoiseSchedule.named("linear", 1000), { n: 3, shape: [8, 8, 1], seed: 7, method: "ddim", respacing: "ddim5" }));
      model.dispose();
    }
    const joined = new Float32Array(rows.reduce((a, x) => a + x.length, 0));
    rows.reduce((o, x) => (joined.set(x, o), o + x.length), 0);
    const expected = imageGrid(joined, [9, 8, 8, 1], { cols: 3, scale: 2 });
    assert.deepEqual([info.width, info.height], [expected.width, expected.height]);
    assert.ok(Buffer.from(expected.data).equals(data), "PNG pixels = the three exports' samples in rows");
    // different exports give different rows (the same noise, other weights)
    assert.notDeepEqual(Array.from(rows[0].slice(0, 64)), Array.from(rows[2].slice(0, 64)));
  });
});
