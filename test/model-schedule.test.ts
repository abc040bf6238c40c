/**
 * A model travels with its noise schedule: t always means the model's own timestep. A cosine model is noised
 * with the cosine alphas_cumprod (checked against q_sample written out here), a linear one with the linear
 * ones, and a request naming another schedule than the model's is refused.
 */
import { strict as assert } from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { NoiseSchedule } from "../lib/model/diffusion/schedule";
import { embeddedModel } from "../lib/model/embedded";
import { OrtUNetEngine } from "../lib/model/engines/ort-unet";
import { imageNoise, nchwToNhwc, nhwcToNchw } from "../lib/features/extract";
import { poolNHWC } from "../lib/features/pooling";
import { extractToStore } from "../lib/features/store/extract";
import { engineExtractor } from "../lib/features/store/extractor";
import { memorySource } from "../lib/features/store/images";
import { createUNetConfig } from "../lib/model/unet/config";
import { modelSchedule, sourceDiffusion } from "../lib/model/model-source";
import { testImages, TINY_FLAGS } from "./helpers/models";
import { tempDir, removeTempDir } from "./helpers/tmp";

describe("the model's own noise schedule", function () {
  this.timeout(120000);
  let dir: string;
  before(() => {
    dir = tempDir("sched");
    process.env.DIFFPROBE_ONNX_CACHE = path.join(dir, "onnx");
  });
  after(() => {
    delete process.env.DIFFPROBE_ONNX_CACHE;
    removeTempDir(dir);
  });

  it("comes from the source, a preset, a trained model's manifest, or script_util's defaults", () => {
    const config = createUNetConfig(TINY_FLAGS);
    assert.deepEqual(sourceDiffusion({ config, seed: 0, diffusion: { noiseSchedule: "cosine", steps: 4000 } }).spec, { noiseSchedule: "cosine", steps: 4000 });
    assert.deepEqual(sourceDiffusion({ config: "adm-64-cond", seed: 0 }).spec, { noiseSchedule: "cosine", steps: 1000 });
    assert.deepEqual(sourceDiffusion({ config: "adm-256-uncond", seed: 0 }).spec, { noiseSchedule: "linear", steps: 1000 });
    assert.match(sourceDiffusion({ config, seed: 0 }).from, /script_util defaults/);
    const em = embeddedModel();
    assert.deepEqual(em.source.diffusion, { noiseSchedule: em.manifest.diffusion.noise_schedule, steps: em.manifest.diffusion.diffusion_steps });
    const cos = modelSchedule({ config: "adm-64-cond", seed: 0 });
    assert.deepEqual(Array.from(cos.alphasCumprod), Array.from(NoiseSchedule.named("cosine", 1000).alphasCumprod));
  });

  it("a cosine model's features are those of x_t noised with the cosine alphas_cumprod; a linear request is refused", async () => {
    const config = createUNetConfig(TINY_FLAGS);
    const src = { config, seed: 4, diffusion: { noiseSchedule: "cosine", steps: 1000 } };
    const n = 3;
    const imgs = testImages(n, 32, 2);
    const ids = ["a", "b", "c"];
    const t = 600;
    const extractor = engineExtractor(src, { engine: "ort" });
    const images = memorySource({ dataset: "synthetic", split: "train", preprocessing: "none", images: imgs, ids });
    const job = { root: path.join(dir, "store"), extractor, images, blocks: [4], timesteps: [t], pool: { kind: "adaptive" as const, size: 2 }, noise: { policy: "seeded" as const, seed: 9 }, progress: false as const };
    const r = await extractToStore(job);
    const got = r.sets[0].matrix();

    // Independently: x_t = sqrt(abar) x0 + sqrt(1 - abar) eps with the cosine schedule, then the engine.
    const abar = NoiseSchedule.named("cosine", 1000).alphasCumprod[t];
    assert.ok(Math.abs(abar - NoiseSchedule.named("linear", 1000).alphasCumprod[t]) > 0.05, "the two schedules differ at t");
    const per = 32 * 32 * 3;
    const xt = new Float32Array(n * per);
    const eps = new Float32Array(per);
    for (let i = 0; i < n; i++) {
      imageNoise(eps, 9, ids[i], t);
      for (let k = 0; k < per; k++) xt[i * per + k] = Math.fround(Math.fround(Math.sqrt(abar)) * imgs.data[i * per + k]) + Math.fround(Math.fround(Math.sqrt(1 - abar)) * eps[k]);
    }
    const eng = await OrtUNetEngine.create(src, { outputs: [4] });
    const out = (await eng.run(nhwcToNchw(xt, n, 32, 32, 3), n, [t, t, t])).get("input_blocks.3")!;
    const [bn, bc, bh, bw] = out.shape;
    const want = poolNHWC(nchwToNhwc(out.data, bn, bc, bh, bw), [bn, bh, bw, bc], { kind: "adaptive", size: 2 }).data;
    await eng.dispose();
    assert.deepEqual(Array.from(got), Array.from(want));

    await assert.rejects(extractToStore({ ...job, schedule: NoiseSchedule.named("linear", 1000) }), /not the model's own .* t must mean the model's timestep/);
    await extractor.close();
  });
});
