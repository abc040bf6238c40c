/**
 * Baseline rows for CKA (lib/metrics/cka/baseline-rows): the rows streamed for the GAN discriminator and the
 * supervised encoder equal a direct, whole-set forward pass (no stopping early, every layer captured)
 * pooled by a brute-force adaptive average pool written here (PyTorch's bin formula, float64, from the
 * NHWC map); the widths match baselineLayerDims; two streams zipped over the same batches stay in step;
 * bad layers, image sizes and batches fail with messages naming them.
 */
import { strict as assert } from "assert";
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../lib/model/backend";
import { Rng } from "../lib/rng";
import { createUNetConfig, UNetConfig } from "../lib/model/unet/index";
import { discriminate, DISCRIMINATOR_LAYERS } from "../lib/train/baselines/dcgan";
import { encoderBlocks, encoderClassify } from "../lib/train/baselines/encoder-classifier";
import { weightSource } from "../lib/train/baselines/named-params";
import { Dcgan } from "../lib/train/baselines/gan-trainer";
import { EncoderClassifier } from "../lib/train/baselines/supervised-trainer";
import { discriminatorModel, encoderModel } from "../lib/train/baselines/extractor";
import { baselineBatchRows, baselineLayerDims, baselineRows, ImageRowsBatch } from "../lib/metrics/cka/baseline-rows";
import { sameImages } from "../lib/metrics/cka/network-rows";
import { zipStreams } from "../lib/metrics/cka/zip";

const TINY_UNET = {
  image_size: 8, in_channels: 1, num_channels: 32, num_res_blocks: 1, channel_mult: "1,2", attention_resolutions: "4",
  num_head_channels: 32, resblock_updown: true, use_scale_shift_norm: true, learn_sigma: false,
};
const TINY_GAN = { zDim: 8, width: 4, imageSize: 32 as const, channels: 1 as const };

/** Brute-force adaptive average pooling of image i of an NHWC map to [C, p, p] (start floor(i H / p), end ceil((i + 1) H / p)). */
function refPool(map: Float32Array, shape: number[], i: number, p: number): number[] {
  const [, h, w, c] = shape;
  const out: number[] = [];
  for (let ch = 0; ch < c; ch++) {
    for (let a = 0; a < p; a++) {
      for (let b = 0; b < p; b++) {
        const y0 = Math.floor((a * h) / p), y1 = Math.ceil(((a + 1) * h) / p);
        const x0 = Math.floor((b * w) / p), x1 = Math.ceil(((b + 1) * w) / p);
        let s = 0;
        for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) s += map[((i * h + y) * w + x) * c + ch];
        out.push(s / ((y1 - y0) * (x1 - x0)));
      }
    }
  }
  return out;
}

/** Every image's pooled row of every captured output, from one whole-set forward pass. */
async function refRows(outs: Map<string, tf.Tensor4D>, n: number, p: number): Promise<Map<string, number[][]>> {
  const res = new Map<string, number[][]>();
  for (const [k, t] of outs) {
    const data = (await t.data()) as Float32Array;
    res.set(k, Array.from({ length: n }, (_, i) => refPool(data, t.shape, i, p)));
    t.dispose();
  }
  return res;
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string, tol = 1e-5): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  assert.ok(scale > 1e-6, `${what}: the reference is all zeros (the test would prove nothing)`);
  for (let i = 0; i < expected.length; i++) {
    if (!(Math.abs(actual[i] - expected[i]) <= tol * Math.max(1e-3, scale))) assert.fail(`${what}: value ${i} is ${actual[i]}, expected ${expected[i]}`);
  }
}

function images(n: number, size: number, seed: number): Float32Array {
  return new Rng(seed, 5).fillNormal(new Float32Array(n * size * size)).map((v) => Math.tanh(v));
}

function* batchesOf(ids: string[], data: Float32Array, size: number, per: number, hw: number): Generator<ImageRowsBatch> {
  for (let i = 0; i < ids.length; i += size) {
    const k = Math.min(size, ids.length - i);
    yield { ids: ids.slice(i, i + k), images: () => ({ data: data.subarray(i * per, (i + k) * per), shape: [k, hw, hw, 1] }) };
  }
}

/** Concatenate a stream's rows per layer; returns them and the ids seen. */
async function collect(stream: AsyncIterable<{ ids: string[]; rows: Map<string, Float32Array> }>): Promise<{ ids: string[]; rows: Map<string, number[]> }> {
  const ids: string[] = [];
  const rows = new Map<string, number[]>();
  for await (const b of stream) {
    ids.push(...b.ids);
    for (const [k, v] of b.rows) rows.set(k, [...(rows.get(k) ?? []), ...v]);
  }
  return { ids, rows };
}

describe("baseline rows for CKA (lib/metrics/cka/baseline-rows)", function () {
  this.timeout(120000);
  let gan: Dcgan;
  let net: EncoderClassifier;
  let cfg: UNetConfig;
  const n = 5;
  const ids = Array.from({ length: n }, (_, i) => `img${i}`);
  const gImages = images(n, 32, 1);
  const eImages = images(n, 8, 2);

  before(async () => {
    await selectBackend("wasm");
    gan = Dcgan.fresh(TINY_GAN, 3);
    cfg = createUNetConfig(TINY_UNET);
    net = EncoderClassifier.fresh(cfg, 2, 1);
    // The init zeroes some convs (guided-diffusion's zero_module) and gives small biases: random weights
    // everywhere make every layer's output depend on every parameter.
    let seed = 100;
    for (const v of [...gan.d.values(), ...net.vars.values()]) v.assign(tf.randomNormal(v.shape, 0, 0.3, "float32", seed++));
  });

  after(() => {
    gan?.dispose();
    net?.dispose();
  });

  it("the discriminator's rows, streamed in batches of 2, equal one whole-set forward pass pooled by brute force (pools 1, 2, 3)", async () => {
    const model = discriminatorModel(gan);
    const x = tf.tensor4d(gImages, [n, 32, 32, 1]);
    const direct = discriminate(gan.config, { get: (k) => gan.d.get(k)! }, x, { capture: [...DISCRIMINATOR_LAYERS] });
    assert.ok(direct.logits, "the reference pass runs to the logits");
    direct.logits!.dispose();
    x.dispose();
    const keep = new Map<string, { data: Float32Array; shape: number[] }>();
    for (const [k, t] of direct.layers) {
      keep.set(k, { data: (await t.data()) as Float32Array, shape: t.shape });
      t.dispose();
    }
    for (const p of [1, 2, 3]) {
      const opts = { layers: [...DISCRIMINATOR_LAYERS], pool: p };
      const got = await collect(baselineRows(model, batchesOf(ids, gImages, 2, 32 * 32, 32), opts));
      assert.deepEqual(got.ids, ids);
      const dims = baselineLayerDims(model, opts, 32, 32);
      assert.deepEqual([...got.rows.keys()], [...DISCRIMINATOR_LAYERS]);
      for (const [layer, { data, shape }] of keep) {
        const want = Array.from({ length: n }, (_, i) => refPool(data, shape, i, p)).flat();
        assert.equal(dims.get(layer), shape[3] * p * p, `${layer} width at pool ${p}`);
        assertClose(got.rows.get(layer)!, want, `${layer}, pool ${p}`);
      }
    }
  });

  it("the supervised encoder's rows (asked by block number and by name, deepest first) equal a whole-set forward pass to the logits", async () => {
    const model = encoderModel(net);
    const blocks = encoderBlocks(cfg);
    const x = tf.tensor4d(eImages, [n, 8, 8, 1]);
    const direct = encoderClassify(cfg, weightSource(net.vars), x, { capture: blocks.map((b) => b.name) });
    assert.ok(direct.logits, "the reference pass runs to the logits");
    direct.logits!.dispose();
    x.dispose();
    const want = await refRows(direct.blocks, n, 2);
    // Deepest first, one by number: rows come back keyed by module name, in the order asked.
    const asked: (string | number)[] = [blocks[blocks.length - 1].name, blocks[0].number, ...blocks.slice(1, -1).map((b) => b.name)];
    const opts = { layers: asked, pool: 2 };
    const got = await collect(baselineRows(model, batchesOf(ids, eImages, 3, 64, 8), opts));
    assert.deepEqual(got.ids, ids);
    assert.deepEqual([...got.rows.keys()], [blocks[blocks.length - 1].name, blocks[0].name, ...blocks.slice(1, -1).map((b) => b.name)]);
    const dims = baselineLayerDims(model, opts, 8, 8);
    for (const b of blocks) {
      assert.equal(dims.get(b.name), b.outCh * 4, `${b.name} width`);
      assertClose(got.rows.get(b.name)!, want.get(b.name)!.flat(), `block ${b.number} (${b.name})`);
    }
  });

  it("one layer asked alone runs only as deep as it (stopping early) and gives the same rows", async () => {
    const model = encoderModel(net);
    const first = encoderBlocks(cfg)[1];
    const all = await baselineBatchRows(model, { data: eImages, shape: [n, 8, 8, 1] }, { layers: encoderBlocks(cfg).map((b) => b.name), pool: 4 });
    const alone = await baselineBatchRows(model, { data: eImages, shape: [n, 8, 8, 1] }, { layers: [first.number], pool: 4 });
    assert.deepEqual([...alone.keys()], [first.name]);
    assertClose(alone.get(first.name)!, all.get(first.name)!, first.name, 1e-6);
  });

  it("two streams zipped over the same batches stay in step, and a stream out of step is caught", async () => {
    const a = baselineRows(encoderModel(net), batchesOf(ids, eImages, 2, 64, 8), { layers: [1], pool: 1 });
    const b = baselineRows(encoderModel(net), batchesOf(ids, eImages, 2, 64, 8), { layers: [2], pool: 1 });
    let batches = 0;
    for await (const [x, y] of zipStreams([a, b])) {
      sameImages(x.ids, y.ids, `batch ${batches}`);
      batches++;
    }
    assert.equal(batches, 3);
    const shifted = batchesOf(ids.slice(1).concat(ids[0]), eImages, 2, 64, 8);
    const c = baselineRows(encoderModel(net), batchesOf(ids, eImages, 2, 64, 8), { layers: [1], pool: 1 });
    const d = baselineRows(encoderModel(net), shifted, { layers: [1], pool: 1 });
    await assert.rejects(async () => {
      for await (const [x, y] of zipStreams([c, d])) sameImages(x.ids, y.ids, "batch");
    }, /out of step.*position 0.*"img0" vs "img1"/);
  });

  it("bad requests fail with messages naming the layer, the image size or the batch", async () => {
    const model = discriminatorModel(gan);
    let read = 0;
    function* counted(): Generator<ImageRowsBatch> {
      read++;
      yield* batchesOf(ids, gImages, 2, 32 * 32, 32);
    }
    await assert.rejects(collect(baselineRows(model, counted(), { layers: ["d.conv9"], pool: 2 })), /no layer "d\.conv9" \(layers: 1\/d\.conv0, 2\/d\.conv1, 3\/d\.conv2\)/);
    assert.equal(read, 0, "an unknown layer fails before any image is read");
    await assert.rejects(collect(baselineRows(model, counted(), { layers: [1], pool: 0 })), /pool must be an integer >= 1, got 0/);
    await assert.rejects(
      collect(baselineRows(model, batchesOf(ids, eImages, 2, 64, 8), { layers: [1], pool: 2 })),
      /batch img0\.\.img1: .*takes 32x32 images, got 8x8/,
    );
    await assert.rejects(
      collect(baselineRows(model, [{ ids: ["a", "b", "c"], images: { data: gImages.subarray(0, 2 * 1024), shape: [2, 32, 32, 1] } }], { layers: [1], pool: 2 })),
      /a batch has 3 ids for 2 images/,
    );
    await assert.rejects(baselineBatchRows(model, { data: gImages.subarray(0, 100), shape: [1, 32, 32, 1] }, { layers: [1], pool: 2 }), /shape \[1, 32, 32, 1\] and 100 values/);
  });
});
