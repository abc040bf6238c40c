import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../lib/model/backend";
import { readSafetensors, saveSafetensors } from "../lib/model/checkpoint/index";
import { createUNetConfig, UNet } from "../lib/model/unet/index";
import { parameterSpecs } from "../lib/model/unet/parameters";
import { syntheticBlobs } from "../lib/train/synthetic-data";
import { DEFAULT_TRAIN_CONFIG } from "../lib/train/trainer";
import { dcganInit, DEFAULT_DCGAN, discriminate, discriminatorSpecs, generate, generatorSpecs } from "../lib/train/baselines/dcgan";
import { encoderClassifierInit, encoderClassifierSpecs, encoderClassify } from "../lib/train/baselines/encoder-classifier";
import { variablesFrom, weightSource } from "../lib/train/baselines/named-params";
import { Dcgan, GAN_WEIGHTS, trainGan } from "../lib/train/baselines/gan-trainer";
import { EncoderClassifier, LabelledData, stratifiedHoldout, SUPERVISED_WEIGHTS, trainSupervised } from "../lib/train/baselines/supervised-trainer";
import { cleanImageExtractor, discriminatorModel, ganExtractor, supervisedExtractor } from "../lib/train/baselines/extractor";
import { CsvLog } from "../lib/train/baselines/train-loop";
import { chooseSetting } from "../lib/train/baselines/probe";
import { memorySource as memoryImages } from "../lib/features/store/images";
import { validationSplit } from "../lib/experiments/protocol/split";
import { probeTraining } from "../lib/experiments/protocol/select";
import { tempDir, removeTempDir } from "./helpers/tmp";
import { randomArray, TINY_GAN, TINY_UNET } from "./helpers/baselines";


/** Synthetic labelled 8x8 data: blobs, label = blob index mod 2 (learnable). */
function tinyLabelled(n = 24, size = 8): LabelledData {
  const blobs = syntheticBlobs(10, size, 1);
  return {
    n, shape: [size, size, 1], labels: Int32Array.from({ length: n }, (_, i) => (i % 10) % 2),
    batch: (idx) => blobs.batch(Array.from(idx, (i) => i % 10)),
  };
}

describe("baselines (GAN, supervised encoder)", function () {
  this.timeout(120000);
  before(async () => {
    await selectBackend("wasm");
  });

  describe("parameters", () => {
    it("the DCGAN's names and PyTorch shapes", () => {
      const g = generatorSpecs(DEFAULT_DCGAN).map((s) => `${s.name}:${s.shape.join("x")}`);
      const d = discriminatorSpecs(DEFAULT_DCGAN).map((s) => `${s.name}:${s.shape.join("x")}`);
      assert.deepEqual(g, [
        "g.fc.weight:2048x64", "g.fc.bias:2048", "g.bn0.weight:128", "g.bn0.bias:128",
        "g.conv1.weight:64x128x3x3", "g.conv1.bias:64", "g.bn1.weight:64", "g.bn1.bias:64",
        "g.conv2.weight:32x64x3x3", "g.conv2.bias:32", "g.bn2.weight:32", "g.bn2.bias:32",
        "g.conv3.weight:1x32x3x3", "g.conv3.bias:1",
      ]);
      assert.deepEqual(d, [
        "d.conv0.weight:32x1x3x3", "d.conv0.bias:32", "d.conv1.weight:64x32x3x3", "d.conv1.bias:64",
        "d.conv2.weight:128x64x3x3", "d.conv2.bias:128", "d.fc.weight:1x2048", "d.fc.bias:1",
      ]);
    });

    it("the encoder-classifier has the embedded U-Net's encoder names and shapes, plus the head", async function () {
      const file = path.join(__dirname, "..", "assets", "fashion-mnist-ddpm", "ema.safetensors");
      if (!fs.existsSync(file)) {
        console.log(`      (skipped: ${file} is absent)`);
        this.skip();
      }
      const { tensors } = await readSafetensors(file);
      const cfg = createUNetConfig(DEFAULT_TRAIN_CONFIG.model);
      const specs = encoderClassifierSpecs(cfg, 10);
      const body = specs.filter((s) => !s.name.startsWith("out."));
      const committed = [...tensors.keys()].filter((k) => /^(time_embed|input_blocks|middle_block)\./.test(k));
      assert.deepEqual(body.map((s) => s.name).sort(), committed.sort());
      for (const s of body) assert.deepEqual(s.shape, tensors.get(s.name)!.shape, s.name);
      assert.deepEqual(specs.filter((s) => s.name.startsWith("out.")).map((s) => `${s.name}:${s.shape.join("x")}`), ["out.0.weight:64", "out.0.bias:64", "out.3.weight:10x64", "out.3.bias:10"]);
    });
  });

  describe("forward passes", () => {
    it("the discriminator's first layer equals a brute-force conv (3x3, stride 2, pad 1) + LeakyReLU", () => {
      const specs = discriminatorSpecs(TINY_GAN);
      const init = new Map(specs.map((s, i) => [s.name, randomArray(s.shape.reduce((a, b) => a * b, 1), i, 0.5)]));
      const vars = variablesFrom(specs, init, "test");
      const x = randomArray(2 * 32 * 32, 99, 1);
      const out = tf.tidy(() => discriminate(TINY_GAN, weightSource(vars), tf.tensor4d(x, [2, 32, 32, 1]), { capture: ["d.conv0"], stopEarly: true }).layers.get("d.conv0")!.arraySync()) as unknown as number[][][][];
      const w = init.get("d.conv0.weight")!; // [O, I=1, 3, 3]
      const b = init.get("d.conv0.bias")!;
      let maxErr = 0;
      for (let n = 0; n < 2; n++) for (let oy = 0; oy < 16; oy++) for (let ox = 0; ox < 16; ox++) for (let o = 0; o < TINY_GAN.width; o++) {
        let s = b[o];
        for (let ky = 0; ky < 3; ky++) for (let kx = 0; kx < 3; kx++) {
          const iy = 2 * oy - 1 + ky;
          const ix = 2 * ox - 1 + kx;
          if (iy >= 0 && iy < 32 && ix >= 0 && ix < 32) s += w[(o * 3 + ky) * 3 + kx] * x[(n * 32 + iy) * 32 + ix];
        }
        const ref = s > 0 ? s : 0.2 * s;
        maxErr = Math.max(maxErr, Math.abs(ref - out[n][oy][ox][o]));
      }
      assert.ok(maxErr < 1e-5, `max error ${maxErr}`);
      for (const v of vars.values()) v.dispose();
    });

    it("the generator makes images in (-1, 1) of the right shape", () => {
      const specs = generatorSpecs(TINY_GAN);
      const vars = variablesFrom(specs, dcganInit(specs, 3), "test");
      const img = tf.tidy(() => generate(TINY_GAN, weightSource(vars), tf.tensor2d(randomArray(4 * 8, 5, 1), [4, 8])));
      assert.deepEqual(img.shape, [4, 32, 32, 1]);
      const v = img.dataSync();
      assert.ok(v.every((q) => q > -1 && q < 1));
      img.dispose();
      for (const x of vars.values()) x.dispose();
    });

    it("the encoder-classifier's blocks equal lib/model/unet's U-Net blocks given the same weights", async () => {
      const cfg = createUNetConfig(TINY_UNET);
      const dir = tempDir("baselines");
      const full = parameterSpecs(cfg).map((s, i) => ({ name: s.name, shape: s.shape, data: randomArray(s.shape.reduce((a, b) => a * b, 1), 100 + i) }));
      const file = path.join(dir, "unet.safetensors");
      await saveSafetensors(file, full, { format: "pt" });
      const unet = await UNet.fromCheckpoint(cfg, file);
      const specs = encoderClassifierSpecs(cfg, 3);
      const init = encoderClassifierInit(cfg, 3, 0);
      for (const t of full) if (init.has(t.name) && !t.name.startsWith("out.")) init.set(t.name, t.data);
      const vars = variablesFrom(specs, init, "test");
      const names = ["input_blocks.0", "input_blocks.1", "input_blocks.2", "input_blocks.3", "middle_block"];
      const x = tf.tensor4d(randomArray(2 * 64, 4, 1), [2, 8, 8, 1]);
      const ours = encoderClassify(cfg, weightSource(vars), x, { capture: names });
      const ref = unet.forward(x, [0, 0], { capture: names });
      for (const n of names) {
        const a = ours.blocks.get(n)!.dataSync();
        const b = ref.blocks.get(n)!.dataSync();
        let m = 0;
        for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
        assert.ok(m < 1e-5, `${n}: max difference ${m}`);
      }
      assert.deepEqual(ours.logits!.shape, [2, 3]);
      tf.dispose([x, ours.logits!, ref.emb, ...ours.blocks.values(), ...ref.blocks.values()]);
      unet.dispose();
      for (const v of vars.values()) v.dispose();
      removeTempDir(dir);
    });
  });

  describe("training", () => {
    it("supervised: a few steps on a tiny batch lower the loss", async () => {
      const dir = tempDir("baselines");
      const r = await trainSupervised({ dir, data: tinyLabelled(12), config: { model: TINY_UNET, classes: 2, steps: 12, batchSize: 8, lr: 1e-3, valPerClass: 2, evalEvery: 0, checkpointEvery: 12 }, progress: false, log: () => undefined });
      const rows = new CsvLog(path.join(dir, "metrics.csv"), ["step", "loss", "train_acc"]).read();
      assert.equal(r.step, 12);
      const first = rows.slice(0, 3).reduce((a, q) => a + q.loss, 0) / 3;
      const last = rows.slice(-3).reduce((a, q) => a + q.loss, 0) / 3;
      assert.ok(last < first, `loss ${first} -> ${last}`);
      removeTempDir(dir);
    });

    it("GAN: the discriminator's loss falls in the first steps", async () => {
      const dir = tempDir("baselines");
      const data = syntheticBlobs(10, 32, 1);
      await trainGan({ dir, data, config: { model: TINY_GAN, steps: 6, batchSize: 8, lr: 2e-3, checkpointEvery: 6 }, progress: false, log: () => undefined });
      const rows = new CsvLog(path.join(dir, "metrics.csv"), ["step", "d_loss", "g_loss", "d_real", "d_fake"]).read();
      assert.equal(rows.length, 6);
      assert.ok(rows[5].d_loss < rows[0].d_loss, `D loss ${rows[0].d_loss} -> ${rows[5].d_loss}`);
      assert.ok(rows[5].d_real > rows[5].d_fake, "D tells real from fake");
      removeTempDir(dir);
    });

    it("GAN and supervised: a run stopped and resumed ends with the same weights as an uninterrupted run", async () => {
      const quiet = { progress: false as const, log: () => undefined };
      const ganData = syntheticBlobs(10, 32, 1);
      const ganCfg = { model: TINY_GAN, steps: 5, batchSize: 4, lr: 1e-3, checkpointEvery: 2 };
      const supCfg = { model: TINY_UNET, classes: 2, steps: 5, batchSize: 4, valPerClass: 2, evalEvery: 2, checkpointEvery: 2 };
      const [a, b, c, d] = [tempDir("baselines"), tempDir("baselines"), tempDir("baselines"), tempDir("baselines")];
      await trainGan({ dir: a, data: ganData, config: ganCfg, ...quiet });
      // b: stopped at step 3 like a crash (no stop checkpoint: resumes from step 2), then resumed.
      await trainGan({ dir: b, data: ganData, config: ganCfg, maxStepsThisCall: 3, checkpointOnStop: false, ...quiet });
      await trainGan({ dir: b, data: ganData, config: ganCfg, ...quiet });
      assert.ok(fs.readFileSync(path.join(a, GAN_WEIGHTS)).equals(fs.readFileSync(path.join(b, GAN_WEIGHTS))), "GAN weights differ");
      assert.equal(fs.readFileSync(path.join(a, "metrics.csv"), "utf8"), fs.readFileSync(path.join(b, "metrics.csv"), "utf8"));
      await trainSupervised({ dir: c, data: tinyLabelled(), config: supCfg, ...quiet });
      await trainSupervised({ dir: d, data: tinyLabelled(), config: supCfg, maxStepsThisCall: 3, ...quiet });
      await trainSupervised({ dir: d, data: tinyLabelled(), config: supCfg, ...quiet });
      assert.ok(fs.readFileSync(path.join(c, SUPERVISED_WEIGHTS)).equals(fs.readFileSync(path.join(d, SUPERVISED_WEIGHTS))), "supervised weights differ");
      assert.equal(fs.readFileSync(path.join(c, "eval.csv"), "utf8"), fs.readFileSync(path.join(d, "eval.csv"), "utf8"));
      await assert.rejects(trainGan({ dir: a, data: ganData, config: { ...ganCfg, lr: 5e-4 }, ...quiet }), /another configuration[\s\S]*lr/);
      for (const x of [a, b, c, d]) removeTempDir(x);
    });

    it("a run stopped early can be declared finished at its step (model.json and checkpoint.json say so)", async () => {
      const dir = tempDir("baselines");
      const data = syntheticBlobs(10, 32, 1);
      const cfg = { model: TINY_GAN, steps: 6, batchSize: 4, checkpointEvery: 10 };
      const quiet = { progress: false as const, log: () => undefined };
      await trainGan({ dir, data, config: cfg, maxStepsThisCall: 3, ...quiet });
      const r = await trainGan({ dir, data, config: { ...cfg, steps: 3 }, ...quiet });
      assert.equal(r.finished, true);
      const m = JSON.parse(fs.readFileSync(path.join(dir, "model.json"), "utf8"));
      assert.deepEqual([m.step, m.steps, m.train.images_seen], [3, 3, 12]);
      assert.equal(JSON.parse(fs.readFileSync(path.join(dir, "checkpoint.json"), "utf8")).extra.config.steps, 3);
      removeTempDir(dir);
    });

    it("the stratified holdout takes the same number from each class and never overlaps the rest", () => {
      const labels = Int32Array.from({ length: 100 }, (_, i) => i % 4);
      const s = stratifiedHoldout(labels, 3, 1);
      assert.equal(s.val.length, 12);
      for (let k = 0; k < 4; k++) assert.equal(Array.from(s.val).filter((i) => labels[i] === k).length, 3);
      assert.equal(new Set([...s.val, ...s.train]).size, 100);
      assert.deepEqual(stratifiedHoldout(labels, 3, 1).val, s.val);
    });
  });

  describe("feature extraction", () => {
    const meanPool = (t: tf.Tensor4D) => tf.tidy(() => tf.mean(t, [1, 2]).dataSync() as Float32Array);

    it("the GAN extractor's rows equal the discriminator's layer, globally pooled; keyed by the file's sha256", async () => {
      const dir = tempDir("baselines");
      const gan = Dcgan.fresh(TINY_GAN, 3);
      const file = path.join(dir, GAN_WEIGHTS);
      await gan.save(file);
      const ex = await ganExtractor(file, TINY_GAN);
      assert.match(ex.modelId, /^sha256:[0-9a-f]{64}$/);
      const x = randomArray(3 * 1024, 8, 1);
      const batch = await ex.extract({ data: x, shape: [3, 32, 32, 1] }, ["a", "b", "c"], { blocks: [2, "d.conv2"], timesteps: [0], pool: { kind: "global" }, noise: { policy: "seeded", seed: 0 } });
      const direct = discriminate(TINY_GAN, { get: (k) => gan.d.get(k)! }, tf.tensor4d(x, [3, 32, 32, 1]), { capture: ["d.conv1", "d.conv2"] });
      assert.deepEqual(batch.matrices.map((m) => `${m.number}/${m.block}:${m.dim}`), ["2/d.conv1:8", "3/d.conv2:16"]);
      for (const m of batch.matrices) {
        const ref = meanPool(direct.layers.get(m.block)!);
        for (let i = 0; i < ref.length; i++) assert.ok(Math.abs(ref[i] - m.data[i]) < 1e-5, `${m.block}[${i}]`);
      }
      await assert.rejects(ex.extract({ data: x, shape: [3, 32, 32, 1] }, ["a", "b", "c"], { blocks: [1], timesteps: [25], pool: { kind: "global" }, noise: { policy: "seeded", seed: 0 } }), /no timestep/);
      assert.throws(() => ex.layout({ blocks: [7], timesteps: [0], pool: { kind: "global" }, noise: { policy: "seeded", seed: 0 } }, 32, 32), /no probed layer 7/);
      tf.dispose([...direct.layers.values(), direct.logits!]);
      await ex.close();
      gan.dispose();
      removeTempDir(dir);
    });

    it("a pool computed alongside (alsoPool) is served without a second forward pass and equals a direct request", async () => {
      const gan = Dcgan.fresh(TINY_GAN, 4);
      const base = discriminatorModel(gan);
      let calls = 0;
      const counted = { layers: base.layers, run: (x: tf.Tensor4D, cap: string[]) => (calls++, base.run(x, cap)) };
      const pools = [{ kind: "global" as const }, { kind: "adaptive" as const, size: 2 }];
      const x = { data: randomArray(2 * 1024, 10, 1), shape: [2, 32, 32, 1] };
      const req = (pool: (typeof pools)[number]) => ({ blocks: [1, 3], timesteps: [0], pool, noise: { policy: "seeded" as const, seed: 0 } });
      const ex = cleanImageExtractor(counted, "test", { alsoPool: pools });
      await ex.extract(x, ["p", "q"], req(pools[0]));
      const second = await ex.extract(x, ["p", "q"], req(pools[1]));
      assert.equal(calls, 1);
      const plain = await cleanImageExtractor(base, "test").extract(x, ["p", "q"], req(pools[1]));
      for (let k = 0; k < 2; k++) assert.deepEqual(Array.from(second.matrices[k].data), Array.from(plain.matrices[k].data));
      await ex.extract(x, ["p", "q"], req(pools[1]));
      assert.equal(calls, 2, "a kept pool is served once, then computed again");
      gan.dispose();
    });

    it("the protocol chooses on validation and extracts test features for the chosen setting only", async () => {
      // Images are constant ±0.5 by class; layer "good" is the image, layer "bad" is noise.
      const model = {
        layers: [
          { name: "good", number: 1, mapShape: (): [number, number, number] => [4, 4, 1] },
          { name: "bad", number: 2, mapShape: (): [number, number, number] => [4, 4, 1] },
        ],
        run: (x: tf.Tensor4D, cap: string[]) => new Map(cap.map((c) => [c, c === "good" ? tf.image.resizeBilinear(x, [4, 4]) : tf.randomNormal([x.shape[0], 4, 4, 1], 0, 1, "float32", 3) as tf.Tensor4D])),
      };
      const make = (n: number, split: string, off: number) => {
        const labels = Int32Array.from({ length: n }, (_, i) => i % 2);
        const data = new Float32Array(n * 64);
        labels.forEach((l, i) => data.fill(l ? 0.5 : -0.5, i * 64, (i + 1) * 64));
        return memoryImages({ dataset: "toy", split, preprocessing: "none", images: { data, shape: [n, 8, 8, 1] }, labels, ids: Array.from(labels, (_, i) => `img${i + off}`) });
      };
      const root = tempDir("baselines");
      const train = make(30, "train", 0);
      const data = { train, test: make(10, "test", 200), split: validationSplit(train.labels!, { seed: 0, fraction: 1 / 3 }), numClasses: 2 };
      const grid = { blocks: [2, 1], timesteps: [0], pools: [1, 2] };
      const r = await chooseSetting("toy", cleanImageExtractor(model, "toy-model"), data, grid, { root, training: probeTraining(0, { epochs: 30, optimizer: { kind: "adam", lr: 0.05, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-4 } }), showProgress: false });
      assert.equal(r.chosen.block!.module, "good");
      assert.equal(r.chosen.valAcc, 1);
      assert.equal(r.chosen.testAcc, 1);
      assert.equal(r.grid.length, 4, "2 blocks x 2 pools, from one stored side (2x2)");
      const testSets = fs.readdirSync(root, { recursive: true } as never).map(String).filter((f) => /toy-test-b\d/.test(f) && !f.includes("/"));
      assert.deepEqual(testSets.map((f) => f.split("-")[2]), ["b1"], `test sets: ${testSets.join(", ")}`);
      removeTempDir(root);
    });

    it("the supervised extractor's rows equal the encoder's block, adaptively pooled, in the U-Net's numbering", async () => {
      const dir = tempDir("baselines");
      const cfg = createUNetConfig(TINY_UNET);
      const net = EncoderClassifier.fresh(cfg, 2, 1);
      const file = path.join(dir, SUPERVISED_WEIGHTS);
      await net.save(file);
      const ex = await supervisedExtractor(file, cfg, 2, { batchSize: 2 });
      const x = randomArray(3 * 64, 9, 1);
      const batch = await ex.extract({ data: x, shape: [3, 8, 8, 1] }, ["a", "b", "c"], { blocks: ["input_blocks.1"], timesteps: [0], pool: { kind: "adaptive", size: 1 }, noise: { policy: "seeded", seed: 0 } });
      const direct = net.forward(tf.tensor4d(x, [3, 8, 8, 1]), { capture: ["input_blocks.1"], stopEarly: true });
      const ref = meanPool(direct.blocks.get("input_blocks.1")!);
      const m = batch.matrices[0];
      assert.equal(m.number, 2);
      for (let i = 0; i < ref.length; i++) assert.ok(Math.abs(ref[i] - m.data[i]) < 1e-5);
      tf.dispose([...direct.blocks.values()]);
      await ex.close();
      net.dispose();
      removeTempDir(dir);
    });
  });
});
