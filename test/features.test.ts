import { strict as assert } from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../lib/model/backend";
import { createUNetConfig, UNetConfig } from "../lib/model/unet/config";
import { UNet } from "../lib/model/unet/model";
import { qSampleCoefficients, qSampleInto as qSampleOne } from "../lib/model/diffusion/q-sample";
import { extractFeatures, featureMatrix, FeatureModel, imageNoise, noiseStream, FeatureOptions, concatBatches, scheduleData } from "../lib/features/extract";
import { NoiseSchedule } from "../lib/model/diffusion/schedule";
import { poolNHWC } from "../lib/features/pooling";
import { readNpy, npyToFloat32 } from "../lib/model/npy";
import { sharedOrSkip } from "./helpers/shared";
import { TINY_FLAGS, testImages } from "./helpers/models";


/** Wraps a model, recording every forward call. */
class Spy implements FeatureModel {
  calls: { batch: number; t: number[]; capture?: string[]; stopEarly?: boolean }[] = [];
  constructor(readonly inner: UNet, private readonly tamper?: (r: ReturnType<FeatureModel["forward"]>) => void) {}
  get config(): UNetConfig {
    return this.inner.config;
  }
  forward(x: tf.Tensor4D, t: number[] | tf.Tensor1D, opts?: { y?: number[]; capture?: string[]; stopEarly?: boolean }) {
    this.calls.push({ batch: x.shape[0], t: Array.isArray(t) ? t : Array.from(t.dataSync()), capture: opts?.capture, stopEarly: opts?.stopEarly });
    const r = this.inner.forward(x, t, opts);
    this.tamper?.(r);
    return r;
  }
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

const rows = (m: { data: Float32Array; dim: number }, i: number) => m.data.subarray(i * m.dim, (i + 1) * m.dim);

const qk = (abar: number): [number, number] => {
  const c = qSampleCoefficients(abar);
  return [c.signal, c.noise];
};

describe("features", function () {
  this.timeout(120000);
  let config: UNetConfig;
  let model: UNet;
  const abar = NoiseSchedule.named("linear", 1000).alphasCumprod;
  const base: Omit<FeatureOptions, "blocks" | "timesteps"> = { pool: { kind: "adaptive", size: 2 } }; // default schedule: linear 1000

  before(async () => {
    await selectBackend("wasm");
    config = createUNetConfig(TINY_FLAGS);
    model = UNet.random(config, 3);
  });
  after(() => model?.dispose());

  describe("q_sample and noise", () => {
    it("the default schedule and q_sample match guided-diffusion bit for bit (tiny fixture)", async function () {
      const dir = sharedOrSkip(this, "fixtures", "guided-diffusion", "tiny");
      const ref = (await readNpy(path.join(dir, "alphas_cumprod.npy"))).data as Float64Array;
      const def = scheduleData(undefined).alphasCumprod;
      for (let i = 0; i < 1000; i++) assert.equal(def[i], ref[i], `alphas_cumprod[${i}]`);
      const x0 = npyToFloat32(await readNpy(path.join(dir, "x0.npy")));
      const eps = npyToFloat32(await readNpy(path.join(dir, "eps.npy")));
      const xt = npyToFloat32(await readNpy(path.join(dir, "x_t.npy")));
      const t = Array.from((await readNpy(path.join(dir, "t.npy"))).data as Int32Array);
      const per = x0.length / t.length;
      const out = new Float32Array(x0.length);
      t.forEach((ti, i) => qSampleOne(out.subarray(i * per, (i + 1) * per), x0.subarray(i * per, (i + 1) * per), eps.subarray(i * per, (i + 1) * per), ...qk(ref[ti])));
      assert.equal(maxDiff(out, xt), 0);
    });

    it("seeded noise depends on (seed, image key, t, draw) only", () => {
      const a = imageNoise(new Float32Array(64), 0, "img-7", 90);
      assert.deepEqual(imageNoise(new Float32Array(64), 0, "img-7", 90), a);
      for (const other of [imageNoise(new Float32Array(64), 1, "img-7", 90), imageNoise(new Float32Array(64), 0, "img-8", 90), imageNoise(new Float32Array(64), 0, "img-7", 91), imageNoise(new Float32Array(64), 0, "img-7", 90, 1)]) {
        assert.ok(maxDiff(a, other) > 0.1);
      }
      assert.notEqual(noiseStream("a", 1, 0), noiseStream("a", 10, 0));
      let mean = 0;
      const big = imageNoise(new Float32Array(20000), 5, "x", 3);
      for (const v of big) mean += v / big.length;
      assert.ok(Math.abs(mean) < 0.03, `mean ${mean}`);
    });
  });

  describe("extractFeatures", () => {
    it("equals noise + q_sample + forward + pool done by hand, for several blocks and timesteps", async () => {
      const imgs = testImages(3, 32);
      const blocks = [2, "output_blocks.1"];
      const timesteps = [0, 250];
      const r = await extractFeatures(model, imgs, { ...base, blocks, timesteps, noise: { policy: "seeded", seed: 11 } });
      assert.equal(r.n, 3);
      assert.deepEqual(r.ids, ["0", "1", "2"]);
      assert.deepEqual(r.matrices.map((m) => `${m.number}:${m.block}@${m.t}`), ["2:input_blocks.1@0", "2:input_blocks.1@250", "9:output_blocks.1@0", "9:output_blocks.1@250"]);
      const per = 32 * 32 * 3;
      for (const t of timesteps) {
        const xt = new Float32Array(imgs.data.length);
        const eps = new Float32Array(per);
        for (let i = 0; i < 3; i++) {
          imageNoise(eps, 11, String(i), t);
          qSampleOne(xt.subarray(i * per, (i + 1) * per), imgs.data.subarray(i * per, (i + 1) * per), eps, ...qk(abar[t]));
        }
        const x = tf.tensor4d(xt, [3, 32, 32, 3]);
        const res = model.forward(x, [t, t, t], { capture: ["input_blocks.1", "output_blocks.1"] });
        for (const [name, fm] of res.blocks) {
          const want = poolNHWC(fm.dataSync() as Float32Array, fm.shape, { kind: "adaptive", size: 2 });
          const got = featureMatrix(r, name, t);
          assert.deepEqual(got.rowShape, want.rowShape);
          assert.equal(maxDiff(got.data, want.data), 0, `${name}@${t}`);
          fm.dispose();
        }
        res.emb.dispose();
        res.out?.dispose();
        x.dispose();
      }
      assert.equal(featureMatrix(r, 9, 250), featureMatrix(r, "output_blocks.1", 250));
      assert.throws(() => featureMatrix(r, 5, 0), /no features for block 5 at t=0; have 2\/input_blocks.1@t=0/);
    });

    it("a respaced schedule calls the model with the original timestep (SpacedDiffusion)", async () => {
      const spaced = NoiseSchedule.named("linear", 1000, "10"); // 10 steps: 0, 111, 222, ...
      const spy = new Spy(model);
      const r = await extractFeatures(spy, testImages(1, 32), { ...base, schedule: spaced, blocks: [4], timesteps: [2] });
      assert.deepEqual(spy.calls[0].t, [spaced.timestepMap[2]]);
      assert.equal(r.matrices[0].t, 2);
      assert.throws(() => scheduleData({ alphasCumprod: [0.9, 0.8], timestepMap: [0] }), /timestepMap has 1 entries for 2 steps/);
      await assert.rejects(extractFeatures(model, testImages(1, 32), { ...base, schedule: spaced, blocks: [4], timesteps: [10] }), /timestep 10 is not an integer in \[0, 9\]/);
    });

    it("stops the forward pass after the deepest block asked for: one pass per timestep", async () => {
      const spy = new Spy(model);
      await extractFeatures(spy, testImages(2, 32), { ...base, blocks: ["input_blocks.4", 3], timesteps: [10, 20, 30] });
      assert.equal(spy.calls.length, 3);
      for (const c of spy.calls) {
        assert.deepEqual(c.capture, ["input_blocks.4", "input_blocks.2"]);
        assert.equal(c.stopEarly, true);
        assert.equal(c.batch, 2);
      }
      assert.deepEqual(spy.calls.map((c) => c.t[0]), [10, 20, 30]);
    });

    it("pool kinds give the paper's dims: global C, adaptive C*p*p, none C*H*W", async () => {
      const imgs = testImages(2, 32);
      const g = await extractFeatures(model, imgs, { ...base, blocks: [5], timesteps: [5], pool: { kind: "global" } });
      const a = await extractFeatures(model, imgs, { ...base, blocks: [5], timesteps: [5], pool: { kind: "adaptive", size: 3 } });
      const n = await extractFeatures(model, imgs, { ...base, blocks: [5], timesteps: [5], pool: { kind: "none" } });
      // input_blocks.4: 64 channels at 8x8.
      assert.deepEqual([g.matrices[0].dim, a.matrices[0].dim, n.matrices[0].dim], [64, 64 * 9, 64 * 64]);
      assert.deepEqual(n.matrices[0].mapShape, [8, 8, 64]);
      // The global mean is the mean of the unpooled map, channel by channel.
      for (let c = 0; c < 64; c += 13) {
        let s = 0;
        for (let p = 0; p < 64; p++) s += n.matrices[0].data[c * 64 + p];
        assert.ok(Math.abs(s / 64 - g.matrices[0].data[c]) < 1e-5);
      }
    });

    it("seeded features do not depend on batch composition or position", async () => {
      const imgs = testImages(4, 32);
      const ids = ["a", "b", "c", "d"];
      const full = await extractFeatures(model, imgs, { ...base, blocks: [4, 9], timesteps: [100], ids });
      const per = 32 * 32 * 3;
      // Images c and a alone, in another order.
      const sub = new Float32Array(2 * per);
      sub.set(imgs.data.subarray(2 * per, 3 * per), 0);
      sub.set(imgs.data.subarray(0, per), per);
      const part = await extractFeatures(model, { data: sub, shape: [2, 32, 32, 3] }, { ...base, blocks: [4, 9], timesteps: [100], ids: ["c", "a"] });
      for (const m of part.matrices) {
        const f = featureMatrix(full, m.block, 100);
        assert.ok(maxDiff(rows(m, 0), rows(f, 2)) < 1e-5, `${m.block} image c`);
        assert.ok(maxDiff(rows(m, 1), rows(f, 0)) < 1e-5, `${m.block} image a`);
      }
      // Same call again: identical. Another seed: different.
      const again = await extractFeatures(model, imgs, { ...base, blocks: [4, 9], timesteps: [100], ids });
      assert.equal(maxDiff(again.matrices[0].data, full.matrices[0].data), 0);
      const other = await extractFeatures(model, imgs, { ...base, blocks: [4, 9], timesteps: [100], ids, noise: { policy: "seeded", seed: 1 } });
      assert.ok(maxDiff(other.matrices[0].data, full.matrices[0].data) > 1e-3);
    });

    it("indexOffset gives the same keys as a whole-dataset call", async () => {
      const imgs = testImages(3, 32);
      const whole = await extractFeatures(model, imgs, { ...base, blocks: [4], timesteps: [50] });
      const last = await extractFeatures(model, { data: imgs.data.slice(2 * 32 * 32 * 3), shape: [1, 32, 32, 3] }, { ...base, blocks: [4], timesteps: [50], indexOffset: 2 });
      assert.deepEqual(last.ids, ["2"]);
      assert.ok(maxDiff(rows(last.matrices[0], 0), rows(whole.matrices[0], 2)) < 1e-5);
    });

    it("fresh noise draws anew on every call", async () => {
      const imgs = testImages(2, 32);
      const o = { ...base, blocks: [4], timesteps: [400], noise: { policy: "fresh" } as const };
      const a = await extractFeatures(model, imgs, o);
      const b = await extractFeatures(model, imgs, o);
      assert.ok(maxDiff(a.matrices[0].data, b.matrices[0].data) > 1e-3);
    });

    it("ensemble: k=1 equals seeded; k=3 is the mean of draws 0..2", async () => {
      const imgs = testImages(2, 32);
      const o = { ...base, blocks: [4], timesteps: [300] };
      const seeded = await extractFeatures(model, imgs, { ...o, noise: { policy: "seeded", seed: 4 } });
      const k1 = await extractFeatures(model, imgs, { ...o, noise: { policy: "ensemble", k: 1, seed: 4 } });
      assert.equal(maxDiff(k1.matrices[0].data, seeded.matrices[0].data), 0);
      const spy = new Spy(model);
      const k3 = await extractFeatures(spy, imgs, { ...o, noise: { policy: "ensemble", k: 3, seed: 4 } });
      assert.equal(spy.calls.length, 3);
      // By hand.
      const per = 32 * 32 * 3;
      const mean = new Float64Array(k3.matrices[0].data.length);
      for (let d = 0; d < 3; d++) {
        const xt = new Float32Array(2 * per);
        const eps = new Float32Array(per);
        for (let i = 0; i < 2; i++) {
          imageNoise(eps, 4, String(i), 300, d);
          qSampleOne(xt.subarray(i * per, (i + 1) * per), imgs.data.subarray(i * per, (i + 1) * per), eps, ...qk(abar[300]));
        }
        const x = tf.tensor4d(xt, [2, 32, 32, 3]);
        const res = model.forward(x, [300, 300], { capture: ["input_blocks.3"] });
        const fm = res.blocks.get("input_blocks.3")!;
        const p = poolNHWC(fm.dataSync() as Float32Array, fm.shape, { kind: "adaptive", size: 2 }).data;
        p.forEach((v, q) => (mean[q] += v / 3));
        tf.dispose([x, fm, res.emb]);
      }
      assert.ok(maxDiff(k3.matrices[0].data, Float32Array.from(mean)) < 1e-6);
      assert.ok(maxDiff(k3.matrices[0].data, seeded.matrices[0].data) > 1e-4);
    });

    it("tf memory does not grow, also when a call fails inside the forward pass", async () => {
      const imgs = testImages(2, 32);
      await extractFeatures(model, imgs, { ...base, blocks: [3], timesteps: [1] }); // warm-up
      const before = tf.memory().numTensors;
      for (let i = 0; i < 3; i++) await extractFeatures(model, imgs, { ...base, blocks: [2, 6, 10], timesteps: [1, 500], noise: { policy: "ensemble", k: 2, seed: i } });
      const tensor = tf.tensor4d(imgs.data, imgs.shape);
      await extractFeatures(model, tensor, { ...base, blocks: [7], timesteps: [3] });
      tensor.dispose();
      assert.equal(tf.memory().numTensors, before);
      // A model whose pass loses a block: the call rejects and still frees x, emb and the other blocks.
      const broken = new Spy(model, (r) => {
        const fm = r.blocks.get("input_blocks.1")!;
        r.blocks.delete("input_blocks.1");
        fm.dispose();
      });
      await assert.rejects(extractFeatures(broken, imgs, { ...base, blocks: [2, 5], timesteps: [1] }), /U-Net forward did not return block input_blocks.1 \(returned: input_blocks.4\)/);
      assert.equal(tf.memory().numTensors, before);
    });

    it("errors name the image, the block or the timestep at fault", async () => {
      const imgs = testImages(3, 32);
      const bad = { data: imgs.data.slice(), shape: imgs.shape };
      bad.data[2 * 32 * 32 * 3 + 100] = 255;
      await assert.rejects(extractFeatures(model, bad, { ...base, blocks: [4], timesteps: [1], ids: ["x", "y", "z"] }), /image 2 \(id "z"\): value 255 at position 100 is outside \[-1, 1\] \(pixels must be scaled to \[-1, 1\]\)/);
      await assert.rejects(extractFeatures(model, { data: new Float32Array(32 * 32 * 4), shape: [1, 32, 32, 4] }, { ...base, blocks: [4], timesteps: [1] }), /4 channels but the model takes 3 \(shape \[1, 32, 32, 4\]/);
      await assert.rejects(extractFeatures(model, { data: new Float32Array(30 * 30 * 3), shape: [1, 30, 30, 3] }, { ...base, blocks: [4], timesteps: [1] }), /30x30 is not a multiple of 4/);
      await assert.rejects(extractFeatures(model, imgs, { ...base, blocks: [99], timesteps: [1] }), /block 99 does not exist.*valid blocks: 1..13/);
      await assert.rejects(extractFeatures(model, imgs, { ...base, blocks: ["output_blocks.9"], timesteps: [1] }), /unknown block "output_blocks.9"/);
      await assert.rejects(extractFeatures(model, imgs, { ...base, blocks: [4], timesteps: [1000] }), /timestep 1000 is not an integer in \[0, 999\]/);
      await assert.rejects(extractFeatures(model, imgs, { ...base, blocks: [4], timesteps: [1], ids: ["a"] }), /1 ids for 3 images/);
      await assert.rejects(extractFeatures(model, imgs, { ...base, blocks: [4], timesteps: [1], noise: { policy: "ensemble", k: 0, seed: 1 } }), /noise.k/);
    });

    it("concatBatches joins rows in order", async () => {
      const imgs = testImages(3, 32);
      const o = { ...base, blocks: [4, 5], timesteps: [7] };
      const whole = await extractFeatures(model, imgs, o);
      const per = 32 * 32 * 3;
      const a = await extractFeatures(model, { data: imgs.data.slice(0, per), shape: [1, 32, 32, 3] }, o);
      const b = await extractFeatures(model, { data: imgs.data.slice(per), shape: [2, 32, 32, 3] }, { ...o, indexOffset: 1 });
      const joined = concatBatches([a, b]);
      assert.deepEqual(joined.ids, ["0", "1", "2"]);
      for (const m of joined.matrices) assert.ok(maxDiff(m.data, featureMatrix(whole, m.block, 7).data) < 1e-5);
    });
  });
});
