import { strict as assert } from "assert";
import { smoothLoss, writeModelCard } from "../lib/train/model-card";
import { keptExports } from "../lib/train/kept-exports";
import * as fs from "fs";
import * as path from "path";
import { spawn } from "child_process";
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../lib/model/backend";
import { readSafetensors, saveSafetensors } from "../lib/model/checkpoint";
import { createUNetConfig, UNet } from "../lib/model/unet";
import { parameterSpecs } from "../lib/model/unet/parameters";
import { toTfLayout } from "../lib/model/unet/weights";
import { AdamW } from "../lib/train/adamw";
import { epochPermutation, StepSampler } from "../lib/train/batches";
import { Ema } from "../lib/train/ema";
import { LossLog } from "../lib/train/loss-log";
import { installTrainingKernels, uninstallTrainingKernels } from "../lib/train/wasm-kernels";
import { syntheticBlobs } from "../lib/train/synthetic-data";
import { guidedDiffusionInit, toTorchLayout, trainableParams } from "../lib/train/model-params";
import { NoiseSchedule } from "../lib/model/diffusion";
import { EpsModel, sampleImages, samplerCoefficients } from "../lib/model/diffusion/sample";
import { imageGrid, saveImageGrid } from "../lib/display/images";
import sharp from "sharp";
import { configConflicts, loadTrainedModel, makeTrainData, resolveTrainConfig, TrainConfig, trainDdpm } from "../lib/train/trainer";
import { tempDir } from "./helpers/tmp";

/** A U-Net small enough for tests: 8x8 grey images, 2 levels, attention at 4x4. */
const TINY_MODEL = {
  image_size: 8, in_channels: 1, num_channels: 32, num_res_blocks: 1, channel_mult: "1,2", attention_resolutions: "4",
  num_head_channels: 32, resblock_updown: true, use_scale_shift_norm: true, learn_sigma: false,
};
const TINY: Partial<TrainConfig> = { model: TINY_MODEL, batchSize: 3, steps: 6, checkpointEvery: 2, lr: 1e-3, seed: 5, emaRate: 0.9 };

const syntheticData = () => syntheticBlobs(10, 8, 1);

/**
 * Start data-scripts/train-ddpm.ts on synthetic 8x8 data in a child process (as `npm run train`), with
 * `extra` options; `untilRows(n)` resolves once loss.csv has n rows (the child still running).
 */
function spawnTraining(dir: string, extra: string[], detached = false) {
  const script = path.join(__dirname, "..", "data-scripts", "train-ddpm.ts");
  const child = spawn(process.execPath, ["--require", "tsx/cjs", script, "--out", dir, "--data", "synthetic", "--image-size", "8",
    "--num-channels", "32", "--num-res-blocks", "1", "--channel-mult", "1,2", "--attention-resolutions", "4", "--progress", "silent", ...extra],
  { cwd: path.join(__dirname, ".."), stdio: ["ignore", "ignore", "pipe"], detached });
  const out = { child, stderr: "", exited: new Promise<number | null>((res) => child.on("exit", (code) => res(code))), rows, untilRows };
  child.stderr!.on("data", (d) => (out.stderr += d));
  function rows(): number {
    return fs.existsSync(path.join(dir, "loss.csv")) ? new LossLog(path.join(dir, "loss.csv")).read().length : 0;
  }
  async function untilRows(n: number): Promise<void> {
    const t0 = Date.now();
    while (rows() < n) {
      if (child.exitCode !== null) throw new Error(`the training process ended early: ${out.stderr}`);
      if (Date.now() - t0 > 120000) throw new Error("the training process did not get going");
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  return out;
}

async function stateTensors(file: string): Promise<Map<string, Float32Array>> {
  const { tensors } = await readSafetensors(file);
  const out = new Map<string, Float32Array>();
  for (const [k, e] of tensors) out.set(k, await e.readFloat32());
  return out;
}

describe("training", function () {
  this.timeout(300000);
  before(async () => {
    await selectBackend("wasm");
  });
  after(async () => {
    uninstallTrainingKernels(); // the trainer installs them; leave tfjs stock for other test files
    await selectBackend("wasm");
  });

  describe("pieces", () => {
    it("AdamW matches torch.optim.AdamW (lr 0.01, betas 0.8/0.95, eps 1e-6, weight decay 0.1, 3 steps)", () => {
      const p = tf.variable(tf.tensor1d([0.5, -1.25, 2.0, 0.0, -0.3]));
      const opt = new AdamW(new Map([["w", p]]), { lr: 0.01, beta1: 0.8, beta2: 0.95, eps: 1e-6, weightDecay: 0.1 });
      for (const g of [[0.1, -0.2, 0.3, 0.0, 1.5], [-0.4, 0.05, 0.2, -0.1, 1.0], [0.3, 0.3, -0.6, 0.2, -2.0]]) {
        const gt = tf.tensor1d(g);
        opt.update(new Map([["w", gt]]));
        gt.dispose();
      }
      // torch 1.13 reference (float32)
      const want = {
        p: [0.49393755197525024, -1.2361316680908203, 1.9768799543380737, 0.0040166983380913734, -0.31807801127433777],
        m: [0.008800000883638859, 0.04240000247955322, -0.04959999769926071, 0.024000000208616257, -0.04800000786781311],
        v: [0.01255125179886818, 0.006423750426620245, 0.023961251601576805, 0.0024750002194195986, 0.3490312695503235],
      };
      const close = (a: ArrayLike<number>, b: number[]) => b.forEach((x, i) => assert.ok(Math.abs(a[i] - x) <= 1e-6 * Math.max(1, Math.abs(x)), `${a[i]} vs ${x}`));
      close(p.dataSync(), want.p);
      close(opt.m.get("w")!.dataSync(), want.m);
      close(opt.v.get("w")!.dataSync(), want.v);
      assert.equal(opt.step, 3);
      opt.dispose();
      p.dispose();
    });

    it("EMA follows ema = rate·ema + (1-rate)·param from the initial weights", () => {
      const p = tf.variable(tf.tensor1d([1, 2]));
      const ema = new Ema(new Map([["w", p]]), 0.5);
      p.assign(tf.tensor1d([3, 6]));
      ema.update(); // 0.5·[1,2] + 0.5·[3,6]
      p.assign(tf.tensor1d([5, 2]));
      ema.update(); // 0.5·[2,4] + 0.5·[5,2]
      assert.deepEqual(Array.from(ema.shadow.get("w")!.dataSync()), [3.5, 3]);
      ema.dispose();
      p.dispose();
    });

    it("toTorchLayout inverts lib/model/unet's toTfLayout for every parameter kind", () => {
      const cfg = createUNetConfig(TINY_MODEL);
      const kinds = new Set<string>();
      for (const spec of parameterSpecs(cfg)) {
        const n = spec.shape.reduce((a, b) => a * b, 1);
        const data = Float32Array.from({ length: n }, (_, i) => i * 0.5 - 3);
        assert.deepEqual(Array.from(toTorchLayout(spec, toTfLayout(spec, data).data)), Array.from(data), spec.name);
        kinds.add(spec.kind);
      }
      assert.deepEqual([...kinds].sort(), ["conv1d", "conv2d", "linear", "vector"]);
    });

    it("initialises like guided-diffusion: zero_module layers, GroupNorm 1/0, U(±1/√fan_in) elsewhere; output 0", async () => {
      const cfg = createUNetConfig(TINY_MODEL);
      const init = guidedDiffusionInit(cfg, 3);
      const by = new Map(init.map((t) => [t.name, t]));
      assert.ok([...by.get("out.2.weight")!.data].every((v) => v === 0));
      assert.ok([...by.get("input_blocks.1.0.out_layers.3.weight")!.data].every((v) => v === 0));
      assert.ok([...by.get("middle_block.1.proj_out.bias")!.data].every((v) => v === 0));
      assert.ok([...by.get("out.0.weight")!.data].every((v) => v === 1));
      assert.ok([...by.get("middle_block.1.norm.bias")!.data].every((v) => v === 0));
      const w = by.get("input_blocks.1.0.in_layers.2.weight")!; // [32, 32, 3, 3]: fan_in 288
      const bound = 1 / Math.sqrt(288);
      assert.ok(w.data.every((v) => Math.abs(v) <= bound) && Math.max(...w.data.map(Math.abs)) > 0.9 * bound);
      assert.ok(by.get("input_blocks.1.0.in_layers.2.bias")!.data.every((v) => Math.abs(v) <= bound));
      assert.deepEqual(Array.from(guidedDiffusionInit(cfg, 3)[5].data), Array.from(init[5].data), "seeded");
      // Built through the ordinary loader, the fresh model predicts exactly zero noise.
      const dir = tempDir("train");
      await saveSafetensors(path.join(dir, "init.safetensors"), init);
      const model = await UNet.fromCheckpoint(cfg, path.join(dir, "init.safetensors"));
      const r = model.forward(tf.randomNormal([2, 8, 8, 1]) as tf.Tensor4D, [10, 900]);
      assert.ok(Array.from(r.out!.dataSync()).every((v) => v === 0));
      tf.dispose([r.out!, r.emb]);
      model.dispose();
    });

    it("draws each step's data, timesteps and noise from (seed, step) alone; epochs are permutations", () => {
      const p = epochPermutation(10, 1, 0);
      assert.deepEqual(Array.from(p).sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      assert.notDeepEqual(Array.from(epochPermutation(10, 1, 1)), Array.from(p));
      const a = new StepSampler(10, 4, 1000, 64, 1);
      const seen = [...a.draw(0).indices, ...a.draw(1).indices, ...Array.from(a.draw(2).indices).slice(0, 2)];
      assert.deepEqual(seen.sort((x, y) => x - y), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], "first epoch covered once");
      const late = new StepSampler(10, 4, 1000, 64, 1).draw(7); // a fresh sampler, straight to step 7
      const replay = a.draw(7);
      assert.deepEqual(Array.from(late.indices), Array.from(replay.indices));
      assert.deepEqual(Array.from(late.t), Array.from(replay.t));
      assert.deepEqual(Array.from(late.noise), Array.from(replay.noise));
      assert.ok(late.t.every((t) => t >= 0 && t < 1000));
      assert.equal(late.noise.length, 4 * 64);
      const ts: number[] = [];
      for (let s = 0; s < 200; s++) ts.push(...a.draw(s).t);
      const mean = ts.reduce((x, y) => x + y, 0) / ts.length;
      assert.ok(Math.abs(mean - 499.5) < 30, `uniform t mean ${mean}`);
    });

    it("the loss log drops lines written after the checkpoint, and a torn last line", () => {
      const dir = tempDir("train");
      const log = new LossLog(path.join(dir, "loss.csv"));
      log.reset();
      for (let s = 1; s <= 5; s++) log.append({ step: s, loss: 1 / s, seconds: s * 2 });
      fs.appendFileSync(log.file, "6,0.1");
      assert.equal(log.read().length, 5);
      log.reset(3);
      assert.deepEqual(log.read().map((r) => r.step), [1, 2, 3]);
      assert.equal(fs.readFileSync(log.file, "utf8").split("\n")[0], "step,loss,seconds");
    });

    it("trainableParams turns the model's weights into variables the forward pass uses", async () => {
      const cfg = createUNetConfig(TINY_MODEL);
      const model = UNet.random(cfg, 1, { residency: "resident" });
      const params = trainableParams(model);
      assert.equal(params.size, parameterSpecs(cfg).length);
      assert.ok([...params.values()].every((v) => v instanceof tf.Variable));
      assert.equal(trainableParams(model).get("out.2.bias"), params.get("out.2.bias"), "idempotent");
      const x = tf.randomNormal([1, 8, 8, 1], 0, 1, "float32", 1) as tf.Tensor4D;
      const before = model.forward(x, [3]).out!.dataSync()[0];
      params.get("out.2.bias")!.assign(tf.add(params.get("out.2.bias")!, 1));
      const after = model.forward(x, [3]).out!.dataSync()[0];
      assert.ok(Math.abs(after - before - 1) < 1e-5);
      model.dispose();
    });

    it("the U-Net loss gradient on wasm (training kernels) equals cpu's and a finite-difference derivative", async () => {
      installTrainingKernels();
      const cfg = createUNetConfig(TINY_MODEL);
      const x = Float32Array.from({ length: 2 * 64 }, (_, i) => Math.sin(i * 0.7));
      const eps = Float32Array.from({ length: 2 * 64 }, (_, i) => Math.cos(i * 1.3));
      const run = async (backend: string) => {
        await selectBackend(backend);
        const model = UNet.random(cfg, 4, { residency: "resident" });
        const params = trainableParams(model);
        const vars = [...params.values()];
        const loss = () => tf.tidy(() => {
          const r = model.forward(tf.tensor4d(x, [2, 8, 8, 1]), [10, 700]);
          r.emb.dispose();
          return tf.mean(tf.squaredDifference(r.out!, tf.tensor4d(eps, [2, 8, 8, 1]))) as tf.Scalar;
        });
        const { value, grads } = tf.variableGrads(loss, vars);
        const g = new Map([...params].map(([n, v]) => [n, grads[v.name].dataSync() as Float32Array]));
        // Directional derivative along d = sign pattern, by central differences.
        const h = 1e-3;
        const dirs = new Map([...params].map(([n, v]) => [n, tf.tensor(Float32Array.from({ length: v.size }, (_, i) => ((i * 7919 + n.length) % 3) - 1), v.shape)]));
        const shift = (k: number) => { for (const [n, v] of params) v.assign(tf.add(v, tf.mul(dirs.get(n)!, k))); };
        shift(h); const lp = loss().dataSync()[0];
        shift(-2 * h); const lm = loss().dataSync()[0];
        shift(h);
        let gd = 0;
        for (const [n, d] of dirs) { const dd = d.dataSync(); const gg = g.get(n)!; for (let i = 0; i < dd.length; i++) gd += dd[i] * gg[i]; }
        const out = { loss: value.dataSync()[0], g, fd: (lp - lm) / (2 * h), gd };
        tf.dispose([value, ...Object.values(grads), ...dirs.values()]);
        model.dispose();
        return out;
      };
      const cpu = await run("cpu");
      const wasm = await run("wasm");
      assert.ok(Math.abs(cpu.loss - wasm.loss) < 1e-5 * cpu.loss);
      let globalMax = 0;
      for (const gc of cpu.g.values()) for (const v of gc) globalMax = Math.max(globalMax, Math.abs(v));
      for (const [n, gc] of cpu.g) {
        const gw = wasm.g.get(n)!;
        let d = 0, m = 0;
        for (let i = 0; i < gc.length; i++) { d = Math.max(d, Math.abs(gc[i] - gw[i])); m = Math.max(m, Math.abs(gc[i])); }
        // Relative to the tensor's largest gradient; gradients that vanish analytically (a bias right
        // before a GroupNorm) are compared at float32 noise level.
        assert.ok(d <= 1e-4 * m + 1e-6 * globalMax, `${n}: max diff ${d}, max |g| ${m}, largest gradient ${globalMax}`);
      }
      for (const r of [cpu, wasm]) assert.ok(Math.abs(r.fd - r.gd) < 2e-2 * Math.abs(r.gd), `finite difference ${r.fd} vs gradient ${r.gd}`);
      await selectBackend("wasm");
    });

    it("refuses to resume with a different configuration, naming the differences", () => {
      const a = resolveTrainConfig(TINY);
      assert.deepEqual(configConflicts(a, { ...a, steps: 99, checkpointEvery: 7 }), []);
      assert.deepEqual(configConflicts(a, { ...a, lr: 0.5 }), ["lr: run has 0.001, asked 0.5"]);
      assert.throws(() => resolveTrainConfig({ model: { learn_sigma: true } }), /learn_sigma must be false/);
    });
  });

  describe("runs", () => {
    const data = syntheticData();
    let full: string;

    before(async () => {
      full = tempDir("train");
      await trainDdpm({ dir: full, data, config: TINY, progress: false, log: () => undefined });
    });

    it("writes checkpoints, a loss log, and EMA weights that UNet.fromCheckpoint reads", async () => {
      const files = fs.readdirSync(full).sort();
      assert.deepEqual(files, ["checkpoint.json", "ema.safetensors", "init.safetensors", "loss.csv", "model.json", "state-0000004.safetensors", "state-0000006.safetensors"]);
      const info = JSON.parse(fs.readFileSync(path.join(full, "checkpoint.json"), "utf8"));
      assert.equal(info.step, 6);
      assert.equal(info.extra.rng.nextStep, 6);
      const rows = new LossLog(path.join(full, "loss.csv")).read();
      assert.deepEqual(rows.map((r) => r.step), [1, 2, 3, 4, 5, 6]);
      assert.ok(rows.every((r) => r.loss > 0 && r.loss < 10 && r.seconds > 0));
      // ema.safetensors: guided-diffusion names, PyTorch shapes, values = the checkpoint's "ema/" group
      // with the initial weights' share rate^n removed: (ema - r^n θ0) / (1 - r^n).
      const state = await stateTensors(path.join(full, "state-0000006.safetensors"));
      const { tensors, metadata } = await readSafetensors(path.join(full, "ema.safetensors"));
      const init = (await readSafetensors(path.join(full, "init.safetensors"))).tensors;
      assert.equal(metadata.ema_bias_corrected, "true");
      const share = Math.pow(resolveTrainConfig(TINY).emaRate, 6);
      const cfg = createUNetConfig(TINY_MODEL);
      let corrected = 0;
      for (const spec of parameterSpecs(cfg)) {
        const e = tensors.get(spec.name)!;
        assert.deepEqual(e.shape, spec.shape, spec.name);
        const ema = toTorchLayout(spec, state.get(`ema/${spec.name}`)!);
        const theta0 = await init.get(spec.name)!.readFloat32();
        const got = await e.readFloat32();
        for (let i = 0; i < got.length; i++) {
          const want = (ema[i] - share * theta0[i]) / (1 - share);
          assert.ok(Math.abs(got[i] - want) <= 1e-6 * Math.max(1, Math.abs(want)), `${spec.name}[${i}]: ${got[i]} vs ${want}`);
          if (Math.abs(got[i] - ema[i]) > 1e-6) corrected++;
        }
      }
      assert.ok(corrected > 0, "the export equals the raw EMA: no bias correction applied");
      const { model, manifest } = await loadTrainedModel(full);
      assert.equal(manifest.step, 6);
      assert.equal(manifest.diffusion.diffusion_steps, 1000);
      const r = model.forward(tf.zeros([1, 8, 8, 1]) as tf.Tensor4D, [500]);
      assert.deepEqual(r.out!.shape, [1, 8, 8, 1]);
      assert.ok(Array.from(r.out!.dataSync()).some((v) => v !== 0), "trained EMA output is no longer zero");
      model.dispose();
    });

    it("keeps the EMA exports of chosen steps (ema-<step>.safetensors) without changing the run", async () => {
      const dir = tempDir("train");
      const lines: string[] = [];
      await trainDdpm({ dir, data, config: TINY, progress: false, log: (l) => lines.push(l), keepExportsAt: [3, 5] });
      assert.ok(lines.some((l) => /kept the EMA export of step 3 as ema-0000003\.safetensors/.test(l)), lines.join("\n"));
      assert.deepEqual(keptExports(dir).map((e) => [e.step, path.basename(e.file)]), [[0, "init.safetensors"], [3, "ema-0000003.safetensors"], [5, "ema-0000005.safetensors"], [6, "ema.safetensors"]]);
      // the final weights are those of the run without kept exports, bit for bit
      assert.ok(fs.readFileSync(path.join(full, "ema.safetensors")).equals(fs.readFileSync(path.join(dir, "ema.safetensors"))));
      // the step-3 export is what a run stopped at step 3 exports
      const at3 = tempDir("train");
      await trainDdpm({ dir: at3, data, config: TINY, progress: false, log: () => undefined, maxStepsThisCall: 3 });
      assert.ok(fs.readFileSync(path.join(at3, "ema.safetensors")).equals(fs.readFileSync(path.join(dir, "ema-0000003.safetensors"))));
      assert.ok(!fs.readFileSync(path.join(dir, "ema-0000005.safetensors")).equals(fs.readFileSync(path.join(dir, "ema.safetensors"))));
    });

    it("a run that died after step 5 resumes from the step-4 checkpoint and ends bitwise like the uninterrupted run", async () => {
      const dir = tempDir("train");
      // Stop after step 5 without a final checkpoint (as a crash): step 5 is lost and redone.
      let r = await trainDdpm({ dir, data, config: TINY, progress: false, log: () => undefined, maxStepsThisCall: 5, checkpointOnStop: false });
      assert.equal(r.step, 5);
      assert.equal(r.finished, false);
      assert.equal(JSON.parse(fs.readFileSync(path.join(dir, "checkpoint.json"), "utf8")).step, 4);
      const lines: string[] = [];
      r = await trainDdpm({ dir, data, config: TINY, progress: false, log: (l) => lines.push(l) });
      assert.equal(r.resumedFrom, 4);
      assert.equal(r.step, 6);
      assert.ok(r.finished);
      assert.match(lines[0], /resumed .* at step 4\/6/);
      const a = await stateTensors(path.join(full, "state-0000006.safetensors"));
      const b = await stateTensors(path.join(dir, "state-0000006.safetensors"));
      assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
      for (const [k, v] of a) assert.ok(Buffer.from(v.buffer).equals(Buffer.from(b.get(k)!.buffer)), `${k} differs after resume`);
      const la = new LossLog(path.join(full, "loss.csv")).read(), lb = new LossLog(path.join(dir, "loss.csv")).read();
      assert.deepEqual(lb.map((x) => [x.step, x.loss]), la.map((x) => [x.step, x.loss]));
      assert.ok(fs.readFileSync(path.join(full, "ema.safetensors")).equals(fs.readFileSync(path.join(dir, "ema.safetensors"))));
    });

    it("a training process killed with SIGKILL resumes and ends bitwise like an uninterrupted run", async function () {
      const cfg: Partial<TrainConfig> = { ...TINY, steps: 12, checkpointEvery: 3 };
      const ref = tempDir("train");
      await trainDdpm({ dir: ref, data, config: cfg, progress: false, log: () => undefined });
      const dir = tempDir("train");
      const run = spawnTraining(dir, ["--batch", "3", "--steps", "12", "--checkpoint-every", "3", "--lr", "0.001", "--seed", "5", "--ema", "0.9"]);
      // Kill it once it is past its second checkpoint (step 6), somewhere in steps 7..12.
      await run.untilRows(7);
      run.child.kill("SIGKILL");
      await run.exited;
      const killedAt = run.rows();
      const ckpt = JSON.parse(fs.readFileSync(path.join(dir, "checkpoint.json"), "utf8")).step;
      assert.ok(ckpt >= 6 && ckpt <= killedAt, `checkpoint ${ckpt}, killed after step ${killedAt}`);
      const r = await trainDdpm({ dir, data, config: cfg, progress: false, log: () => undefined });
      assert.equal(r.resumedFrom, ckpt);
      const a = await stateTensors(path.join(ref, "state-0000012.safetensors"));
      const b = await stateTensors(path.join(dir, "state-0000012.safetensors"));
      for (const [k, v] of a) assert.ok(Buffer.from(v.buffer).equals(Buffer.from(b.get(k)!.buffer)), `${k} differs`);
      assert.deepEqual(new LossLog(path.join(dir, "loss.csv")).read().map((x) => [x.step, x.loss]), new LossLog(path.join(ref, "loss.csv")).read().map((x) => [x.step, x.loss]));
      console.log(`      (killed after step ${killedAt}, resumed from checkpoint ${ckpt})`);
    });

    it("Ctrl-C to the process group (npm relays it: a second signal) stops gracefully with a checkpoint", async function () {
      const dir = tempDir("train");
      // As `npm run train` in a terminal: a process group of its own (detached).
      const run = spawnTraining(dir, ["--batch", "3", "--steps", "500", "--checkpoint-every", "100"], true);
      await run.untilRows(3);
      process.kill(-run.child.pid!, "SIGINT");
      await new Promise((r) => setTimeout(r, 100));
      process.kill(-run.child.pid!, "SIGINT"); // the relayed copy
      assert.equal(await run.exited, 0, run.stderr);
      assert.match(run.stderr, /SIGINT: stopping after this step/);
      assert.doesNotMatch(run.stderr, /exiting now/);
      const step = JSON.parse(fs.readFileSync(path.join(dir, "checkpoint.json"), "utf8")).step;
      assert.ok(step >= 3 && step < 100, `checkpoint at step ${step}: written at the stop, not a periodic one`);
      assert.equal(run.rows(), step);
    });

    it("trains on 2 worker threads like in one thread (to float rounding), and resumes bitwise", async () => {
      const spec = makeTrainData({ kind: "synthetic", n: 10, size: 8, channels: 1 });
      const p1 = tempDir("train");
      await trainDdpm({ dir: p1, data: spec, config: TINY, progress: false, log: () => undefined, workers: 2 });
      const one = new LossLog(path.join(full, "loss.csv")).read(), two = new LossLog(path.join(p1, "loss.csv")).read();
      two.forEach((r, i) => assert.ok(Math.abs(r.loss - one[i].loss) < 1e-4 * one[i].loss, `step ${r.step}: ${r.loss} vs ${one[i].loss}`));
      // Weights agree to rounding, amplified where Adam normalises near-zero gradients; compare what
      // matters: the EMA models' predictions.
      const x = tf.tensor4d(Float32Array.from({ length: 2 * 64 }, (_, i) => Math.sin(i)), [2, 8, 8, 1]);
      const preds: Float32Array[] = [];
      for (const d of [full, p1]) {
        const { model } = await loadTrainedModel(d);
        const r = model.forward(x, [20, 600]);
        preds.push(r.out!.dataSync() as Float32Array);
        tf.dispose([r.out!, r.emb]);
        model.dispose();
      }
      let dmax = 0, mmax = 0;
      preds[0].forEach((v, i) => { dmax = Math.max(dmax, Math.abs(v - preds[1][i])); mmax = Math.max(mmax, Math.abs(v)); });
      assert.ok(dmax < 1e-3 * mmax, `EMA predictions differ by ${dmax} (max ${mmax})`);
      x.dispose();
      const b = await stateTensors(path.join(p1, "state-0000006.safetensors"));
      const p2 = tempDir("train");
      await trainDdpm({ dir: p2, data: spec, config: TINY, progress: false, log: () => undefined, workers: 2, maxStepsThisCall: 3, checkpointOnStop: false });
      const r = await trainDdpm({ dir: p2, data: spec, config: TINY, progress: false, log: () => undefined, workers: 2 });
      assert.equal(r.resumedFrom, 2);
      const c = await stateTensors(path.join(p2, "state-0000006.safetensors"));
      for (const [k, v] of b) assert.ok(Buffer.from(v.buffer).equals(Buffer.from(c.get(k)!.buffer)), `${k} differs after a parallel resume`);
    });

    it("extending a finished run continues it; other changes are refused", async () => {
      const dir = tempDir("train");
      fs.cpSync(full, dir, { recursive: true });
      const r = await trainDdpm({ dir, data, config: { ...TINY, steps: 7 }, progress: false, log: () => undefined });
      assert.equal(r.resumedFrom, 6);
      assert.equal(r.step, 7);
      await assert.rejects(trainDdpm({ dir, data, config: { ...TINY, steps: 8, lr: 0.1 }, progress: false, log: () => undefined }), /another configuration.*\n.*lr: run has 0.001, asked 0.1/);
    });
  });
});

describe("sampling", function () {
  this.timeout(120000);
  const base = NoiseSchedule.named("linear", 1000);
  before(async () => {
    await selectBackend("wasm");
  });

  /** The exact ε-predictor when every image equals `c`: ε = (x_t − √ᾱ_t·c) / √(1 − ᾱ_t). */
  const constantData = (c: number): EpsModel => (x, t) => tf.tidy(() => {
    const a = t.map((s) => base.alphasCumprod[s]);
    const sa = tf.tensor(a.map(Math.sqrt), [t.length, 1, 1, 1]), sb = tf.tensor(a.map((v) => Math.sqrt(1 - v)), [t.length, 1, 1, 1]);
    return tf.div(tf.sub(x, tf.mul(sa, c)), sb) as tf.Tensor4D;
  });
  /** The exact ε-predictor for pixels i.i.d. N(0, s²): E[ε | x_t] = √(1−ᾱ)·x_t / (ᾱ·s² + 1 − ᾱ). */
  const gaussianData = (s: number): EpsModel => (x, t) => tf.tidy(() => {
    const k = t.map((u) => { const a = base.alphasCumprod[u]; return Math.sqrt(1 - a) / (a * s * s + 1 - a); });
    return tf.mul(x, tf.tensor(k, [t.length, 1, 1, 1])) as tf.Tensor4D;
  });
  const stats = (v: Float32Array) => {
    const m = v.reduce((a, b) => a + b, 0) / v.length;
    return { mean: m, std: Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / v.length) };
  };

  it("both samplers land on the data point when the data is a single image", async () => {
    for (const method of ["ddpm", "ddim"] as const) {
      const out = await sampleImages(constantData(0.3), base, { n: 3, shape: [4, 4, 1], seed: 1, method, respacing: method === "ddim" ? "ddim25" : 100 });
      assert.ok(out.every((v) => Math.abs(v - 0.3) < 1e-4), `${method}: ${out.slice(0, 4)}`);
    }
  });

  it("with the exact score of N(0, 0.5²) data, DDPM and DDIM samples have std 0.5", async () => {
    for (const [method, respacing] of [["ddpm", 250], ["ddim", "ddim50"]] as const) {
      const out = await sampleImages(gaussianData(0.5), base, { n: 64, shape: [8, 8, 1], seed: 2, method, respacing, clipDenoised: false, batchSize: 64 });
      const s = stats(out);
      assert.ok(Math.abs(s.mean) < 0.03 && Math.abs(s.std - 0.5) < 0.03, `${method}: mean ${s.mean} std ${s.std}`);
    }
  });

  it("gives the model the original timesteps of the respaced schedule, from T-1 down to 0", async () => {
    const seen: number[] = [];
    const spy: EpsModel = (x, t) => { seen.push(t[0]); return tf.zerosLike(x); };
    await sampleImages(spy, base, { n: 1, shape: [2, 2, 1], seed: 0, method: "ddim", respacing: "ddim10" });
    assert.deepEqual(seen, [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]);
    seen.length = 0;
    await sampleImages(spy, base, { n: 1, shape: [2, 2, 1], seed: 0, method: "ddpm", respacing: 4 });
    assert.deepEqual(seen, [999, 666, 333, 0]);
    const co = samplerCoefficients(base, 4);
    assert.ok(Math.abs(co.alphasCumprod[2] - base.alphasCumprod[666]) < 1e-15);
  });

  it("is seeded per sample: same seed same samples, independent of the batch size", async () => {
    const model = gaussianData(0.5);
    const o = { n: 5, shape: [4, 4, 1] as [number, number, number], method: "ddpm" as const, respacing: 20 };
    const a = await sampleImages(model, base, { ...o, seed: 9, batchSize: 5 });
    const b = await sampleImages(model, base, { ...o, seed: 9, batchSize: 2 });
    const c = await sampleImages(model, base, { ...o, seed: 10, batchSize: 5 });
    assert.deepEqual(Array.from(a), Array.from(b));
    assert.notDeepEqual(Array.from(a), Array.from(c));
  });

  it("writes a PNG grid of samples", async () => {
    const images = Float32Array.from({ length: 3 * 2 * 2 }, (_, i) => (i % 4 === 0 ? 1 : -1)); // top-left pixel white
    const g = imageGrid(images, [3, 2, 2, 1], { cols: 2, padding: 1, padValue: 0, scale: 2 });
    assert.deepEqual([g.width, g.height], [(2 * 3 + 1) * 2, (2 * 3 + 1) * 2]);
    const file = path.join(tempDir("train"), "grid.png");
    await saveImageGrid(file, images, [3, 2, 2, 1], { cols: 2, padding: 1, padValue: 0, scale: 2 });
    const meta = await sharp(file).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height, meta.channels], ["png", 14, 14, 1]);
    const { data } = await sharp(file).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
    const px = (x: number, y: number) => data[y * 14 + x];
    assert.equal(px(0, 0), 128); // padding, value 0
    assert.equal(px(2, 2), 255); // image 0, pixel (0,0), scaled 2x
    assert.equal(px(3, 3), 255);
    assert.equal(px(4, 4), 0);   // image 0, pixel (1,1)
    assert.equal(px(8, 2), 255); // image 1 starts at x = (1 + 3) * 2
  });
});

describe("model card", () => {
  it("smooths the loss curve in windows, each point at its window's last step", () => {
    const rows = [1, 2, 3, 4, 5].map((s) => ({ step: s, loss: s * 2 }));
    assert.deepEqual(smoothLoss(rows, 2), [{ step: 2, loss: 3 }, { step: 4, loss: 7 }, { step: 5, loss: 10 }]);
    assert.deepEqual(smoothLoss(rows, 1), rows);
  });

  it("writes samples.png (a grid of the EMA model's DDIM samples) and loss.png for a run folder", async function () {
    this.timeout(120000);
    await selectBackend("wasm");
    const dir = tempDir("train");
    await trainDdpm({ dir, data: syntheticData(), config: { ...TINY, steps: 4 }, progress: false, log: () => undefined });
    const card = await writeModelCard(dir, { samples: 3, respacing: "ddim3", smoothing: 2, progress: false });
    assert.equal(card.step, 4);
    assert.equal(card.samplesPng, path.join(dir, "samples.png"));
    const meta = await sharp(card.samplesPng).metadata();
    assert.equal(meta.format, "png");
    // 3 samples of 8x8 on a 2x2 grid, padding 2, scale 2: (2 * (8 + 2) + 2) * 2 = 44 pixels a side.
    assert.deepEqual([meta.width, meta.height], [44, 44]);
    const losses = new LossLog(path.join(dir, "loss.csv")).read().map((r) => r.loss);
    assert.ok(Math.abs(card.finalLoss! - (losses[2] + losses[3]) / 2) < 1e-12, `final smoothed loss ${card.finalLoss}`);
    assert.equal((await sharp(card.lossPng!).metadata()).format, "png");
    // The same seed draws the same samples.
    const first = fs.readFileSync(card.samplesPng);
    await writeModelCard(dir, { samples: 3, respacing: "ddim3", progress: false });
    assert.ok(fs.readFileSync(card.samplesPng).equals(first));
    await assert.rejects(writeModelCard(path.join(dir, "nope")), /model\.json/);
  });
});
