import { strict as assert } from "assert";
import * as path from "path";
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../lib/model/backend";
import { betaSchedule, gaussian, linspace, noiseFor, NoiseSchedule, qSample, qSampleArray, Rng, spaceTimesteps } from "../lib/model/diffusion";
import { roundHalfEven } from "../lib/model/diffusion/schedule";
import { npyToFloat32, readNpy } from "../lib/model/npy";
import { sharedOrSkip } from "./helpers/shared";

describe("diffusion: schedules", () => {
  it("linspace follows numpy (i * step + start, last element exactly stop)", () => {
    // Values printed by numpy 1.24 (repr).
    assert.deepEqual(Array.from(linspace(0.1, 0.7, 4)), [0.1, 0.3, 0.5, 0.7]);
    assert.deepEqual(Array.from(linspace(1e-4 * 0.25, 0.02 * 0.25, 7)), [
      2.5e-5, 0.0008541666666666667, 0.0016833333333333336, 0.0025125, 0.003341666666666667, 0.004170833333333334, 0.005,
    ]);
    assert.equal(linspace(2, 5, 1)[0], 2);
  });

  it("linear schedule: betas scaled by 1000/T (values from numpy)", () => {
    const b = betaSchedule("linear", 1000);
    assert.equal(b[0], 1e-4);
    assert.equal(b[999], 0.02);
    const b4k = betaSchedule("linear", 4000);
    assert.equal(b4k[1], 2.6244061015253815e-5);
    assert.equal(b4k[2345], 0.0029423230807701923);
    assert.equal(new NoiseSchedule(b4k).alphasCumprod[3999], 4.246652275802249e-5);
  });

  it("cosine schedule matches guided-diffusion's betas_for_alpha_bar (values from Python)", () => {
    const b = betaSchedule("cosine", 1000);
    assert.ok(Math.abs(b[0] - 4.128422482196914e-5) <= 1e-18);
    assert.ok(Math.abs(b[500] - 0.003155691441585007) <= 1e-17);
    assert.equal(b[999], 0.999); // clipped at max_beta
    const acp = new NoiseSchedule(b).alphasCumprod;
    assert.ok(Math.abs(acp[0] - 0.999958715775178) < 1e-15);
    assert.ok(Math.abs(acp[499] - 0.4938435904406382) < 1e-14);
    assert.ok(Math.abs(acp[998] / 2.4287669070348544e-6 - 1) < 1e-12);
  });

  it("unknown schedule names and bad step counts are refused", () => {
    assert.throws(() => betaSchedule("quadratic", 1000), /unknown beta schedule "quadratic"/);
    assert.throws(() => betaSchedule("linear", 0), /positive integer/);
  });

  it("alphas_cumprod equals the reference fixture bit for bit", async function () {
    const dir = sharedOrSkip(this, "fixtures", "guided-diffusion", "tiny");
    const ref = (await readNpy(path.join(dir, "alphas_cumprod.npy"))).data as Float64Array;
    const ours = NoiseSchedule.named("linear", 1000).alphasCumprod;
    assert.equal(ours.length, ref.length);
    for (let i = 0; i < ref.length; i++) assert.equal(ours[i], ref[i], `alphas_cumprod[${i}]`);
  });

  it("space_timesteps: section counts with Python's round-half-even, and ddimN", () => {
    assert.deepEqual(spaceTimesteps(10, "3,2"), [0, 2, 4, 5, 9]);
    assert.deepEqual(spaceTimesteps(100, "7"), [0, 16, 33, 50, 66, 82, 99]);
    assert.deepEqual(spaceTimesteps(6, "5"), [0, 1, 2, 4, 5]);
    const s250 = spaceTimesteps(1000, "250");
    assert.equal(s250.length, 250);
    assert.deepEqual(s250.slice(0, 8), [0, 4, 8, 12, 16, 20, 24, 28]);
    assert.deepEqual(s250.slice(-3), [991, 995, 999]);
    assert.deepEqual(spaceTimesteps(1000, "ddim50"), Array.from({ length: 50 }, (_, i) => 20 * i));
    assert.equal(spaceTimesteps(1000, "").length, 1000);
    assert.throws(() => spaceTimesteps(10, "7,7"), /cannot divide section of 5 steps into 7/);
    assert.deepEqual([0.5, 1.5, 2.5, 2.4, 2.6].map(roundHalfEven), [0, 2, 2, 2, 3]);
  });

  it("a respaced schedule keeps alphas_cumprod at the kept steps", () => {
    const base = NoiseSchedule.named("linear", 1000);
    const sp = NoiseSchedule.named("linear", 1000, "ddim50");
    assert.equal(sp.steps, 50);
    assert.equal(sp.timestepMap[3], 60);
    for (let i = 0; i < 50; i++) assert.ok(Math.abs(sp.alphasCumprod[i] - base.alphasCumprod[20 * i]) < 1e-15);
  });
});

describe("diffusion: seeded Gaussian noise", () => {
  it("is deterministic per (seed, stream) and differs across seeds and streams", () => {
    const a = gaussian(1000, 42, 7);
    assert.deepEqual(a, gaussian(1000, 42, 7));
    assert.notDeepEqual(a, gaussian(1000, 43, 7));
    assert.notDeepEqual(a, gaussian(1000, 42, 8));
    // Large seeds use all their bits.
    assert.notDeepEqual(gaussian(10, 2 ** 40), gaussian(10, 2 ** 40 + 2 ** 33));
  });

  it("has standard-normal statistics", () => {
    const x = gaussian(200000, 1);
    let m = 0;
    for (const v of x) m += v;
    m /= x.length;
    let v2 = 0;
    let tail = 0;
    for (const v of x) {
      v2 += (v - m) ** 2;
      if (Math.abs(v) > 1.96) tail++;
    }
    const sd = Math.sqrt(v2 / x.length);
    assert.ok(Math.abs(m) < 0.01, `mean ${m}`);
    assert.ok(Math.abs(sd - 1) < 0.01, `std ${sd}`);
    assert.ok(Math.abs(tail / x.length - 0.05) < 0.003, `P(|z| > 1.96) = ${tail / x.length}`);
  });

  it("fillUniform has the requested mean and standard deviation", () => {
    const x = new Rng(3).fillUniform(new Float64Array(100000), 2, 0.5);
    const m = x.reduce((a, v) => a + v, 0) / x.length;
    const sd = Math.sqrt(x.reduce((a, v) => a + (v - m) ** 2, 0) / x.length);
    assert.ok(Math.abs(m - 2) < 0.01 && Math.abs(sd - 0.5) < 0.005, `mean ${m}, std ${sd}`);
    assert.ok(x.every((v) => v >= 2 - 0.5 * Math.sqrt(3) && v < 2 + 0.5 * Math.sqrt(3)));
  });

  it("uniform() stays inside (0, 1) and rejects bad seeds", () => {
    const r = new Rng(0);
    for (let i = 0; i < 10000; i++) {
      const u = r.uniform();
      assert.ok(u > 0 && u < 1);
    }
    assert.throws(() => new Rng(-1), /seed must be a non-negative safe integer/);
    assert.throws(() => new Rng(1.5), /seed/);
  });

  it("noiseFor gives each sample key its own stream, independent of batch composition", () => {
    const batch = noiseFor([5, 9], [3, 2, 2], 11);
    const alone = noiseFor([9], [3, 2, 2], 11);
    assert.deepEqual(batch.subarray(12), alone);
  });
});

describe("diffusion: q_sample", () => {
  before(async () => {
    await selectBackend("wasm");
  });

  it("uses float32 per-sample coefficients and agrees between tensor and array forms", () => {
    const s = NoiseSchedule.named("linear", 1000);
    const x0 = gaussian(2 * 3 * 4 * 4, 1);
    const eps = gaussian(2 * 3 * 4 * 4, 2);
    const t = [0, 999];
    const arr = qSampleArray(s, x0, t, eps);
    const ten = tf.tidy(() => qSample(s, tf.tensor4d(x0, [2, 3, 4, 4]), t, tf.tensor4d(eps, [2, 3, 4, 4])).dataSync());
    assert.deepEqual(Array.from(ten), Array.from(arr));
    const f = Math.fround;
    assert.equal(arr[0], f(f(f(Math.sqrt(s.alphasCumprod[0])) * x0[0]) + f(f(Math.sqrt(1 - s.alphasCumprod[0])) * eps[0])));
    assert.throws(() => qSampleArray(s, x0, [0, 1000], eps), /timestep 1000 is outside 0..999/);
    assert.throws(() => qSampleArray(s, x0, [0, 1, 2, 3, 4], eps), /do not split into 5 samples/);
  });

  it("reproduces the reference x_t exactly", async function () {
    const dir = sharedOrSkip(this, "fixtures", "guided-diffusion", "small");
    const [x0, eps, t, xt] = await Promise.all(["x0", "eps", "t", "x_t"].map((n) => readNpy(path.join(dir, `${n}.npy`))));
    const ours = qSampleArray(NoiseSchedule.named("linear", 1000), npyToFloat32(x0), Array.from(t.data as Int32Array), npyToFloat32(eps));
    const ref = npyToFloat32(xt);
    let maxDiff = 0;
    for (let i = 0; i < ref.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ours[i] - ref[i]));
    assert.equal(maxDiff, 0);
  });
});
