/**
 * The baselines (GAN discriminator, supervised encoder) on ONNX Runtime: the discriminator's graph is lowered
 * from the same stages as its tfjs pass (first layer checked against a brute-force convolution, deeper layers
 * against tfjs), the encoder's is the U-Net graph builder on the encoder file (against tfjs, whose U-Net code
 * is pinned to PyTorch by test/reference.test.ts), and the feature extractors give the same rows on either engine.
 */
import { strict as assert } from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../lib/model/backend";
import { saveSafetensors } from "../lib/model/checkpoint/index";
import { relError } from "../lib/model/unet/reference";
import { createUNetConfig } from "../lib/model/unet/index";
import { Dcgan, GAN_WEIGHTS } from "../lib/train/baselines/gan-trainer";
import { encoderClassifierSpecs } from "../lib/train/baselines/encoder-classifier";
import { EncoderClassifier, SUPERVISED_WEIGHTS } from "../lib/train/baselines/supervised-trainer";
import { ganExtractor, loadDiscriminatorModel, loadEncoderModel, supervisedExtractor } from "../lib/train/baselines/extractor";
import { tempDir } from "./helpers/tmp";
import { randomArray, TINY_GAN, TINY_UNET } from "./helpers/baselines";


async function outputs(m: { run(x: tf.Tensor4D, c: string[]): unknown }, x: Float32Array, shape: number[], capture: string[]): Promise<Map<string, { data: Float32Array; shape: number[] }>> {
  const xt = tf.tensor4d(x, shape as [number, number, number, number]);
  const res = (await m.run(xt, capture)) as Map<string, tf.Tensor4D>;
  xt.dispose();
  const out = new Map<string, { data: Float32Array; shape: number[] }>();
  for (const [k, t] of res) {
    out.set(k, { data: (await t.data()) as Float32Array, shape: t.shape.slice() });
    t.dispose();
  }
  return out;
}

describe("baselines on ONNX Runtime", function () {
  this.timeout(180000);
  let dir: string;
  before(async () => {
    await selectBackend("wasm");
    dir = tempDir("baselines-ort");
  });
  after(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("the discriminator: d.conv0 equals a brute-force conv + LeakyReLU, d.conv1 and d.conv2 equal tfjs", async () => {
    const gan = Dcgan.fresh(TINY_GAN, 5);
    const file = path.join(dir, GAN_WEIGHTS);
    await gan.save(file);
    gan.dispose();
    const cacheRoot = path.join(dir, "onnx");
    const ort = await loadDiscriminatorModel(file, TINY_GAN, { engine: "ort", cacheRoot });
    const tfm = await loadDiscriminatorModel(file, TINY_GAN, { engine: "tfjs" });
    try {
      assert.equal(ort.choice!.name, "ort");
      assert.equal(tfm.choice!.name, "tfjs");
      const x = randomArray(2 * 32 * 32, 3, 1);
      const a = await outputs(ort.model, x, [2, 32, 32, 1], ["d.conv2", "d.conv0", "d.conv1"]);
      const b = await outputs(tfm.model, x, [2, 32, 32, 1], ["d.conv0", "d.conv1", "d.conv2"]);
      for (const k of ["d.conv0", "d.conv1", "d.conv2"]) {
        assert.deepEqual(a.get(k)!.shape, b.get(k)!.shape, k);
        const e = relError(a.get(k)!.data, b.get(k)!.data);
        assert.ok(e.rel <= 1e-5, `${k}: rel ${e.rel}`);
      }
      // Independent of tfjs: the first layer by brute force from the file's PyTorch-layout weights.
      const saved = await Dcgan.load(file, TINY_GAN);
      const w = saved.d.get("d.conv0.weight")!.dataSync(); // tfjs HWIO [3, 3, 1, O]
      const bias = saved.d.get("d.conv0.bias")!.dataSync();
      saved.dispose();
      const O = TINY_GAN.width;
      const got = a.get("d.conv0")!.data; // NHWC [2, 16, 16, O]
      let worst = 0;
      for (let n = 0; n < 2; n++) for (let oy = 0; oy < 16; oy++) for (let ox = 0; ox < 16; ox++) for (let o = 0; o < O; o++) {
        let s = bias[o];
        for (let ky = 0; ky < 3; ky++) for (let kx = 0; kx < 3; kx++) {
          const iy = 2 * oy - 1 + ky;
          const ix = 2 * ox - 1 + kx;
          if (iy >= 0 && iy < 32 && ix >= 0 && ix < 32) s += w[(ky * 3 + kx) * O + o] * x[(n * 32 + iy) * 32 + ix];
        }
        const want = s > 0 ? s : 0.2 * s;
        worst = Math.max(worst, Math.abs(want - got[((n * 16 + oy) * 16 + ox) * O + o]));
      }
      assert.ok(worst < 1e-5, `max |diff| ${worst}`);
      assert.ok(fs.readdirSync(cacheRoot).length >= 1, "the graph is in the ONNX cache");
    } finally {
      await ort.close();
      await tfm.close();
    }
  });

  it("the supervised encoder: every block equals tfjs at t = 0; a file without a tensor names it", async () => {
    const cfg = createUNetConfig(TINY_UNET);
    const net = EncoderClassifier.fresh(cfg, 2, 1);
    const file = path.join(dir, SUPERVISED_WEIGHTS);
    await net.save(file);
    net.dispose();
    const cacheRoot = path.join(dir, "onnx");
    const ort = await loadEncoderModel(file, cfg, 2, { engine: "ort", cacheRoot });
    const tfm = await loadEncoderModel(file, cfg, 2, { engine: "tfjs" });
    try {
      const names = ort.model.layers.map((l) => l.name);
      assert.equal(names[names.length - 1], "middle_block");
      const x = randomArray(3 * 64, 4, 1);
      const a = await outputs(ort.model, x, [3, 8, 8, 1], names);
      const b = await outputs(tfm.model, x, [3, 8, 8, 1], names);
      for (const k of names) {
        assert.deepEqual(a.get(k)!.shape, b.get(k)!.shape, k);
        const e = relError(a.get(k)!.data, b.get(k)!.data);
        assert.ok(e.rel <= 1e-5, `${k}: rel ${e.rel}`);
      }
    } finally {
      await ort.close();
      await tfm.close();
    }
    // The same file without one block tensor: the error names the file and the key.
    const specs = encoderClassifierSpecs(cfg, 2).filter((s) => s.name !== "input_blocks.1.0.in_layers.2.weight");
    const broken = path.join(dir, "broken.safetensors");
    await saveSafetensors(broken, specs.map((s) => ({ name: s.name, shape: s.shape, data: () => new Float32Array(s.shape.reduce((p, q) => p * q, 1)) })), { format: "pt" });
    const bad = await loadEncoderModel(broken, cfg, 2, { engine: "ort", cacheRoot });
    const xt = tf.zeros([1, 8, 8, 1]) as tf.Tensor4D;
    await assert.rejects(async () => bad.model.run(xt, ["input_blocks.1"]), /broken\.safetensors.*input_blocks\.1\.0\.in_layers\.2\.weight/s);
    xt.dispose();
    await bad.close();
  });

  it("the GAN and supervised extractors give the same rows on ONNX Runtime as on tfjs", async () => {
    const gan = Dcgan.fresh(TINY_GAN, 6);
    const gfile = path.join(dir, "gan2.safetensors");
    await gan.save(gfile);
    gan.dispose();
    const cfg = createUNetConfig(TINY_UNET);
    const net = EncoderClassifier.fresh(cfg, 2, 2);
    const sfile = path.join(dir, "sup2.safetensors");
    await net.save(sfile);
    net.dispose();
    const cacheRoot = path.join(dir, "onnx");
    const req = (blocks: (number | string)[]) => ({ blocks, timesteps: [0], pool: { kind: "adaptive" as const, size: 2 }, noise: { policy: "seeded" as const, seed: 0 } });
    const cases = [
      { make: (engine: string) => ganExtractor(gfile, TINY_GAN, { engine, cacheRoot, batchSize: 2 }), images: { data: randomArray(3 * 1024, 8, 1), shape: [3, 32, 32, 1] }, blocks: [1, 3] },
      { make: (engine: string) => supervisedExtractor(sfile, cfg, 2, { engine, cacheRoot, batchSize: 2 }), images: { data: randomArray(3 * 64, 9, 1), shape: [3, 8, 8, 1] }, blocks: ["input_blocks.1", "middle_block"] },
    ];
    for (const c of cases) {
      const o = await c.make("ort");
      const t = await c.make("tfjs");
      try {
        const a = await o.extract(c.images, ["a", "b", "c"], req(c.blocks));
        const b = await t.extract(c.images, ["a", "b", "c"], req(c.blocks));
        assert.equal(a.matrices.length, b.matrices.length);
        for (let i = 0; i < a.matrices.length; i++) {
          assert.equal(a.matrices[i].dim, b.matrices[i].dim);
          const e = relError(a.matrices[i].data, b.matrices[i].data);
          assert.ok(e.rel <= 1e-5, `${a.matrices[i].block}: rel ${e.rel}`);
        }
      } finally {
        await o.close();
        await t.close();
      }
    }
  });
});
