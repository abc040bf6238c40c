import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../lib/model/backend";
import { loadStateDict, validateStateDict } from "../lib/model/checkpoint";
import { gaussian } from "../lib/model/diffusion";
import {
  blockCount, blockName, blockTable, buildPlan, configFromManifest, createUNetConfig, expectedParameterShapes,
  forwardFlops, parameterCount, parameterSpecs, parseBlock, planStreaming, PRESETS, timestepEmbedding, toNCHW,
  toTfLayout, UNet, UNetConfig, WASM_PACKED_COPIES,
} from "../lib/model/unet";
import { attend, attentionBlock } from "../lib/model/unet/attention";
import { avgPool2x, conv2d, groupNorm, torchExpf, upsampleNearest2x, WeightSource } from "../lib/model/unet/layers";
import { AttnSpec } from "../lib/model/unet/plan";
import { sharedOrSkip } from "./helpers/shared";

/** A WeightSource over plain tensors (tfjs layout). */
class MapWeights implements WeightSource {
  constructor(private readonly m: Map<string, tf.Tensor>) {}
  get(name: string): tf.Tensor {
    const t = this.m.get(name);
    if (!t) throw new Error(`no weight ${name}`);
    return t;
  }
  dispose() {
    for (const t of this.m.values()) t.dispose();
  }
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** A small config exercising every module kind. */
function smallConfig(extra: Record<string, unknown> = {}): UNetConfig {
  return createUNetConfig({
    image_size: 16, num_channels: 32, num_res_blocks: 1, channel_mult: "1,2", attention_resolutions: "8",
    num_head_channels: 16, resblock_updown: true, use_scale_shift_norm: true, learn_sigma: true, ...extra,
  });
}

describe("unet: configuration", () => {
  it("derives the network from script_util flags like create_model", () => {
    const c = createUNetConfig({ image_size: 256, num_channels: 256, attention_resolutions: "32,16,8", learn_sigma: true, class_cond: true, num_heads: 4 });
    assert.deepEqual(c.channelMult, [1, 1, 2, 2, 4, 4]); // channel_mult "" at 256
    assert.deepEqual(c.attentionDs, [8, 16, 32]); // image_size // r
    assert.equal(c.outChannels, 6);
    assert.equal(c.numClasses, 1000);
    assert.equal(c.numHeadsUpsample, 4); // -1 -> num_heads
    assert.equal(c.modelChannels, 256);
    assert.equal(c.useScaleShiftNorm, true); // model_and_diffusion_defaults
    assert.equal(c.resblockUpdown, false);
    for (const [size, mult] of [[512, [0.5, 1, 1, 2, 2, 4, 4]], [128, [1, 1, 2, 3, 4]], [64, [1, 2, 3, 4]]] as const) {
      assert.deepEqual(createUNetConfig({ image_size: size }).channelMult, mult);
    }
    assert.throws(() => createUNetConfig({ image_size: 32 }), /unsupported image size 32 with channel_mult ""/);
    assert.deepEqual(createUNetConfig({ image_size: 32, channel_mult: "1,2,2" }).channelMult, [1, 2, 2]);
    assert.equal(createUNetConfig({ learn_sigma: false, in_channels: 1, channel_mult: "1,2" }).outChannels, 1);
  });

  it("accepts UNetModel kwargs and Python-style booleans, and refuses unknown keys", () => {
    const k = createUNetConfig({
      image_size: 32, in_channels: 3, model_channels: 64, out_channels: 3, num_res_blocks: 2, attention_resolutions: [2, 4],
      channel_mult: [1, 2], num_classes: 10, num_heads: 2, num_heads_upsample: -1, use_new_attention_order: true,
    });
    assert.deepEqual(k.attentionDs, [2, 4]); // kwargs are already rates
    assert.equal(k.numClasses, 10);
    assert.equal(k.useNewAttentionOrder, true);
    assert.equal(k.numHeadsUpsample, 2);
    assert.equal(k.learnSigma, false);
    assert.equal(createUNetConfig({ class_cond: "True" as unknown as boolean, channel_mult: "1,2" }).numClasses, 1000);
    assert.throws(() => createUNetConfig({ num_channel: 32 } as never), /unknown U-Net flag\(s\) num_channel/);
    assert.throws(() => createUNetConfig({ model_channels: 32, foo: 1 } as never), /unknown UNetModel argument\(s\) foo/);
    assert.throws(() => createUNetConfig({ num_channels: 48, channel_mult: "1,2" }), /GroupNorm\(32\) cannot normalise 48 channels/);
    // Diffusion flags in a flag set are accepted and ignored.
    assert.doesNotThrow(() => createUNetConfig({ diffusion_steps: 1000, noise_schedule: "cosine", use_fp16: true } as never));
  });

  it("flags and unet_kwargs of a manifest must agree", () => {
    const flags = { image_size: 32, num_channels: 32, num_res_blocks: 1, channel_mult: "1,2", attention_resolutions: "16", learn_sigma: true };
    const kwargs = { image_size: 32, in_channels: 3, model_channels: 32, out_channels: 6, num_res_blocks: 1, attention_resolutions: [2], channel_mult: [1, 2], num_heads: 4, use_scale_shift_norm: true };
    assert.equal(configFromManifest({ flags, unet_kwargs: kwargs }).modelChannels, 32);
    assert.throws(() => configFromManifest({ flags, unet_kwargs: { ...kwargs, attention_resolutions: [16] } }), /describe different networks: attentionDs: \[16\] vs \[2\]/);
  });

  it("class_cond, new attention order and resblock_updown False change exactly the expected parameters", () => {
    const base = smallConfig();
    const names = (c: UNetConfig) => [...expectedParameterShapes(c).keys()];
    const cond = smallConfig({ class_cond: true });
    assert.deepEqual(expectedParameterShapes(cond).get("label_emb.weight"), [1000, 128]);
    assert.equal(names(cond).length, names(base).length + 1);
    assert.deepEqual([...expectedParameterShapes(smallConfig({ use_new_attention_order: true }))], [...expectedParameterShapes(base)]);
    const plain = smallConfig({ resblock_updown: false });
    const p = expectedParameterShapes(plain);
    assert.deepEqual(p.get("input_blocks.2.0.op.weight"), [32, 32, 3, 3]); // Downsample conv, stride 2
    assert.deepEqual(p.get("output_blocks.1.2.conv.weight"), [64, 64, 3, 3]); // Upsample conv after the attention
    assert.ok(!names(plain).some((n) => n.startsWith("input_blocks.2.0.in_layers")));
    const noSS = expectedParameterShapes(smallConfig({ use_scale_shift_norm: false }));
    assert.deepEqual(noSS.get("input_blocks.1.0.emb_layers.1.weight"), [32, 128]);
    assert.deepEqual(p.get("input_blocks.1.0.emb_layers.1.weight"), [64, 128]);
  });

  it("presets give the published parameter counts (256x256 uncond: 552,814,086 in 566 tensors)", () => {
    const c = createUNetConfig("adm-256-uncond");
    assert.equal(parameterSpecs(c).length, 566);
    assert.equal(parameterCount(c), 552_814_086);
    const counts: Record<string, number> = {
      "adm-256-cond": 553_838_086, "adm-64-cond": 295_904_454, "adm-128-cond": 421_529_606, "adm-512-cond": 558_997_638,
      "lsun-bedroom": 552_814_086, "lsun-cat": 552_814_086, "lsun-horse": 552_814_086,
    };
    for (const [name, n] of Object.entries(counts)) assert.equal(parameterCount(createUNetConfig(name)), n, name);
    assert.equal(createUNetConfig("adm-64-cond").useNewAttentionOrder, true);
    assert.equal(createUNetConfig("lsun-cat").dropout, 0.1);
    assert.equal(PRESETS["adm-64-cond"].diffusion.noiseSchedule, "cosine");
    assert.throws(() => createUNetConfig("adm-1024"), /unknown U-Net preset "adm-1024"; presets: adm-256-uncond/);
  });

  for (const name of ["tiny", "small"]) {
    it(`parameter names, shapes and order match the ${name} fixture's state dict`, function () {
      const dir = sharedOrSkip(this, "fixtures", "guided-diffusion", name);
      const m = JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8"));
      const c = configFromManifest(m);
      assert.deepEqual(
        [...expectedParameterShapes(c)].map(([k, s]) => ({ name: k, shape: s })),
        m.checkpoint.parameters.map((p: { name: string; shape: number[] }) => ({ name: p.name, shape: p.shape })),
      );
      assert.equal(parameterCount(c), m.checkpoint.num_parameters);
      // Block table: module descriptions and output shapes as the fixture generator printed them.
      const table = blockTable(c);
      const blocks = m.blocks.filter((b: { name: string }) => b.name !== "emb");
      assert.deepEqual(table.map((b) => b.name), blocks.map((b: { name: string }) => b.name));
      assert.deepEqual(table.map((b) => b.description), blocks.map((b: { description: string }) => b.description));
      assert.deepEqual(table.map((b) => [m.batch, ...b.shape]), blocks.map((b: { shape: number[] }) => b.shape));
    });
  }

  it("a checkpoint for another configuration fails validation with one error naming keys and shapes", async function () {
    const dir = sharedOrSkip(this, "fixtures", "guided-diffusion", "tiny");
    const file = path.join(dir, "model.pt");
    const sd = await loadStateDict(file);
    const tiny = configFromManifest(JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8")));
    assert.doesNotThrow(() => validateStateDict(expectedParameterShapes(tiny), sd, file));
    const wrong = createUNetConfig({ ...JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8")).flags, num_res_blocks: 2 });
    assert.throws(
      () => validateStateDict(expectedParameterShapes(wrong), sd, file),
      (e: Error) =>
        /model\.pt: the checkpoint does not match the model: \d+ missing/.test(e.message) &&
        /missing keys \(118\):\n  input_blocks\.4\.0\.skip_connection\.weight expected \[64, 32, 1, 1\]/.test(e.message) &&
        /input_blocks\.3\.0\.out_layers\.3\.weight: expected \[32, 32, 3, 3\], found \[64, 64, 3, 3\]/.test(e.message),
    );
  });
});

describe("unet: block numbering and arithmetic", () => {
  const c256 = createUNetConfig("adm-256-uncond");

  it("numbers the 256x256 model's blocks 1..18 (input), 19 (middle), 20..37 (output)", () => {
    assert.equal(blockCount(c256), 37);
    assert.equal(blockName(c256, 1), "input_blocks.0");
    assert.equal(blockName(c256, 18), "input_blocks.17");
    assert.equal(blockName(c256, 19), "middle_block");
    assert.equal(blockName(c256, 20), "output_blocks.0");
    assert.equal(blockName(c256, 24), "output_blocks.4");
    assert.equal(blockName(c256, 37), "output_blocks.17");
    assert.equal(parseBlock(c256, "24").number, 24);
    assert.equal(parseBlock(c256, "output_blocks.4").number, 24);
    assert.equal(parseBlock(c256, "model.output_blocks[4]").number, 24);
    assert.equal(parseBlock(c256, " middle_block ").number, 19);
    assert.throws(() => parseBlock(c256, 38), /block 38 does not exist.*valid blocks: 1\.\.37 \(1\.\.18 = input_blocks\.0\.\.17, 19 = middle_block, 20\.\.37 = output_blocks\.0\.\.17\)/);
    assert.throws(() => parseBlock(c256, "output_blocks.18"), /unknown block "output_blocks.18"; valid blocks: 1\.\.37/);
    assert.throws(() => parseBlock(c256, 0), /block 0 does not exist/);
  });

  it("block table: shapes of the official 256x256 model and the cost of stopping after block 24", () => {
    const t = blockTable(c256);
    assert.deepEqual(t[0].shape, [256, 256, 256]);
    assert.deepEqual(t[12].shape, [512, 16, 16]); // block 13 = input_blocks.12 (down)
    assert.deepEqual(t[13].shape, [1024, 16, 16]); // block 14 = input_blocks.13
    assert.deepEqual(t[18].shape, [1024, 8, 8]); // middle
    assert.deepEqual(t[23].shape, [1024, 16, 16]); // block 24
    assert.deepEqual(t[36].shape, [256, 256, 256]);
    assert.match(t[23].description, /^ResBlock\(2048->1024, skip=conv1x1, scale_shift_norm=True\) \+ AttentionBlock\(ch=1024, heads=16, head_ch=64, qkv_order=legacy\)$/);
    // Full pass ~2.24 TFLOPs (1.12 T multiply-accumulates); stopping after block 24 needs ~28.5% of it.
    const full = forwardFlops(c256);
    assert.ok(Math.abs(full / 2.2397e12 - 1) < 1e-3, `full pass ${full}`);
    assert.ok(t[23].fractionOfFull > 0.27 && t[23].fractionOfFull < 0.3, `block 24 fraction ${t[23].fractionOfFull}`);
    assert.ok(t[36].fractionOfFull < 1 && t[36].fractionOfFull > 0.998);
    for (let i = 1; i < t.length; i++) assert.ok(t[i].cumulativeFlops > t[i - 1].cumulativeFlops);
    // A 3x3 conv 256->256 at 256x256 is 9*256*256*65536 MACs; input_blocks.1 has two plus an emb linear.
    assert.equal(t[1].macs, 2 * 9 * 256 * 256 * 65536 + 1024 * 512);
  });
});

describe("unet: layers", () => {
  before(async () => {
    await selectBackend("wasm");
  });

  it("converts PyTorch layouts: OIHW -> HWIO, [out, in] and [out, in, 1] -> [in, out]", () => {
    const oihw = Float32Array.from({ length: 2 * 3 * 2 * 2 }, (_, i) => i);
    const conv = toTfLayout({ name: "c.weight", shape: [2, 3, 2, 2], kind: "conv2d", uses: 1 }, oihw);
    assert.deepEqual(conv.shape, [2, 2, 3, 2]);
    const expected = tf.tidy(() => tf.transpose(tf.tensor4d(oihw, [2, 3, 2, 2]), [2, 3, 1, 0]).dataSync());
    assert.deepEqual(Array.from(conv.data), Array.from(expected));
    const lin = toTfLayout({ name: "l.weight", shape: [2, 3, 1], kind: "conv1d", uses: 1 }, Float32Array.from([1, 2, 3, 4, 5, 6]));
    assert.deepEqual(lin.shape, [3, 2]);
    assert.deepEqual(Array.from(lin.data), [1, 4, 2, 5, 3, 6]);
    assert.throws(() => toTfLayout({ name: "x.weight", shape: [2, 2], kind: "linear", uses: 1 }, new Float32Array(3)), /x\.weight: 3 values for shape \[2, 2\]/);
  });

  it("stride-2 conv pads 1 on every side like PyTorch (not tfjs 'same')", () => {
    const [n, h, w, ci, co] = [1, 6, 6, 2, 3];
    const x = gaussian(n * h * w * ci, 1);
    const wt = gaussian(3 * 3 * ci * co, 2); // HWIO
    const bias = gaussian(co, 3);
    const ws = new MapWeights(new Map<string, tf.Tensor>([["c.weight", tf.tensor4d(wt, [3, 3, ci, co])], ["c.bias", tf.tensor1d(bias)]]));
    const y = tf.tidy(() => conv2d(tf.tensor4d(x, [n, h, w, ci]), ws, "c", 2).dataSync());
    ws.dispose();
    // Naive: out[i, j] = sum over ky, kx of x[2i - 1 + ky, 2j - 1 + kx] (zero outside).
    const ho = 3;
    const ref = new Float32Array(ho * ho * co);
    for (let i = 0; i < ho; i++) for (let j = 0; j < ho; j++) for (let o = 0; o < co; o++) {
      let s = bias[o];
      for (let ky = 0; ky < 3; ky++) for (let kx = 0; kx < 3; kx++) {
        const yy = 2 * i - 1 + ky, xx = 2 * j - 1 + kx;
        if (yy < 0 || xx < 0 || yy >= h || xx >= w) continue;
        for (let c = 0; c < ci; c++) s += x[(yy * w + xx) * ci + c] * wt[((ky * 3 + kx) * ci + c) * co + o];
      }
      ref[(i * ho + j) * co + o] = s;
    }
    assert.ok(maxAbsDiff(y, ref) < 1e-5);
  });

  it("GroupNorm: per (sample, group) statistics over positions and the group's channels, eps inside the sqrt", () => {
    const [b, hw, c, g] = [2, 5, 8, 4];
    const x = gaussian(b * hw * c, 4).map((v, i) => v * 3 + (i % 3));
    const gamma = gaussian(c, 5);
    const beta = gaussian(c, 6);
    const ws = new MapWeights(new Map([["n.weight", tf.tensor1d(gamma)], ["n.bias", tf.tensor1d(beta)]]));
    const y = tf.tidy(() => groupNorm(tf.tensor3d(x, [b, hw, c]), ws, "n", g, 1e-5).dataSync());
    ws.dispose();
    const cg = c / g;
    for (let s = 0; s < b; s++) for (let gi = 0; gi < g; gi++) {
      const idx: number[] = [];
      for (let p = 0; p < hw; p++) for (let k = 0; k < cg; k++) idx.push((s * hw + p) * c + gi * cg + k);
      const mean = idx.reduce((a, i) => a + x[i], 0) / idx.length;
      const v = idx.reduce((a, i) => a + (x[i] - mean) ** 2, 0) / idx.length;
      for (const i of idx) {
        const ch = i % c;
        const ref = ((x[i] - mean) / Math.sqrt(v + 1e-5)) * gamma[ch] + beta[ch];
        assert.ok(Math.abs(y[i] - ref) < 2e-5, `GroupNorm at ${i}: ${y[i]} vs ${ref}`);
      }
    }
  });

  it("nearest x2 upsampling and 2x2 average pooling", () => {
    const x = tf.tensor4d([1, 2, 3, 4], [1, 2, 2, 1]);
    assert.deepEqual(Array.from(upsampleNearest2x(x).dataSync()), [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
    const y = tf.tensor4d(Float32Array.from({ length: 16 }, (_, i) => i), [1, 4, 4, 1]);
    assert.deepEqual(Array.from(avgPool2x(y).dataSync()), [2.5, 4.5, 10.5, 12.5]);
    assert.throws(() => avgPool2x(tf.zeros([1, 3, 4, 1]) as tf.Tensor4D), /even height and width, got 3x4/);
    tf.dispose([x, y]);
  });

  it("timestep embedding: [cos | sin] with PyTorch's float32 frequencies; zero column for odd sizes", () => {
    const e = timestepEmbedding([0, 3], 8);
    assert.deepEqual(Array.from(e.subarray(0, 8)), [1, 1, 1, 1, 0, 0, 0, 0]);
    const freqs = [0, 1, 2, 3].map((i) => torchExpf(Math.fround(Math.fround(Math.fround(-Math.log(10000)) * i) / 4)));
    for (let i = 0; i < 4; i++) {
      assert.equal(e[8 + i], Math.fround(Math.cos(Math.fround(3 * freqs[i]))));
      assert.equal(e[12 + i], Math.fround(Math.sin(Math.fround(3 * freqs[i]))));
    }
    const odd = timestepEmbedding([5], 7);
    assert.equal(odd.length, 7);
    assert.equal(odd[6], 0);
    // PyTorch's float32 exp (SLEEF) is not correctly rounded; values checked against torch 1.13.
    assert.equal(torchExpf(-0.19188208878040314), Math.fround(0.8254041671752930));
    assert.ok(Math.abs(torchExpf(-3.3) - Math.exp(-3.3)) / Math.exp(-3.3) < 2e-7);
  });

  it("attention: legacy and new qkv orders agree when the qkv weights are permuted accordingly", () => {
    const [b, hw, c, heads] = [2, 4, 32, 2];
    const ch = c / heads;
    const x = gaussian(b * hw * hw * c, 7);
    const wq = gaussian(c * 3 * c, 8).map((v) => v / Math.sqrt(c)); // [in, 3C], legacy column order
    const bq = gaussian(3 * c, 9);
    // new order column (s * C + h * ch + k) <- legacy column (h * 3ch + s * ch + k)
    const perm = (col: number) => {
      const s = Math.floor(col / c), h = Math.floor((col % c) / ch), k = col % ch;
      return h * 3 * ch + s * ch + k;
    };
    const wqNew = new Float32Array(wq.length);
    for (let i = 0; i < c; i++) for (let j = 0; j < 3 * c; j++) wqNew[i * 3 * c + j] = wq[i * 3 * c + perm(j)];
    const bqNew = Float32Array.from({ length: 3 * c }, (_, j) => bq[perm(j)]);
    const common: [string, tf.Tensor][] = [
      ["a.norm.weight", tf.ones([c])], ["a.norm.bias", tf.zeros([c])],
      ["a.proj_out.weight", tf.tensor2d(gaussian(c * c, 10), [c, c])], ["a.proj_out.bias", tf.zeros([c])],
    ];
    const legacy = new MapWeights(new Map([...common, ["a.qkv.weight", tf.tensor2d(wq, [c, 3 * c])], ["a.qkv.bias", tf.tensor1d(bq)]]));
    const fresh = new MapWeights(new Map([...common, ["a.qkv.weight", tf.tensor2d(wqNew, [c, 3 * c])], ["a.qkv.bias", tf.tensor1d(bqNew)]]));
    const spec = (order: "legacy" | "new"): AttnSpec => ({ kind: "attn", name: "a", ch: c, heads, order });
    const xt = tf.tensor4d(x, [b, hw, hw, c]);
    const norm = { groups: 32, eps: 1e-5 };
    const yl = tf.tidy(() => attentionBlock(xt, legacy, spec("legacy"), norm).dataSync());
    const yn = tf.tidy(() => attentionBlock(xt, fresh, spec("new"), norm).dataSync());
    assert.ok(maxAbsDiff(yl, yn) < 1e-5);
    // and the order matters: the same weights read in the other order give another result
    const other = tf.tidy(() => attentionBlock(xt, legacy, spec("new"), norm).dataSync());
    assert.ok(maxAbsDiff(yl, other) > 1e-2);
    legacy.dispose();
    fresh.dispose();
    xt.dispose();
  });

  it("attention core: per-head and batched paths give the same softmax(q k^T) v", () => {
    const [bh, t, ch] = [3, 256, 8];
    const q = tf.tensor3d(gaussian(bh * t * ch, 1), [bh, t, ch]);
    const k = tf.tensor3d(gaussian(bh * t * ch, 2), [bh, t, ch]);
    const v = tf.tensor3d(gaussian(bh * t * ch, 3), [bh, t, ch]);
    const perHead = tf.tidy(() => attend(q, k, v).dataSync()); // T >= 256: one head at a time
    const batched = tf.tidy(() => tf.matMul(tf.softmax(tf.matMul(q, k, false, true)), v).dataSync());
    assert.ok(maxAbsDiff(perHead, batched) < 1e-5);
    tf.dispose([q, k, v]);
  });
});

describe("unet: forward pass", function () {
  this.timeout(300000);
  let model: UNet;
  let x: tf.Tensor4D;
  before(async () => {
    await selectBackend("wasm");
    model = UNet.random(smallConfig(), 3);
    x = tf.tensor4d(gaussian(2 * 16 * 16 * 3, 4), [2, 16, 16, 3]);
  });
  after(() => {
    model?.dispose();
    x?.dispose();
  });

  it("returns NHWC outputs, frees every intermediate, and leaves the input alone", () => {
    const before = tf.memory().numTensors;
    const r = model.forward(x, [10, 500]);
    assert.deepEqual(r.out!.shape, [2, 16, 16, 6]);
    assert.deepEqual(r.emb.shape, [2, 128]);
    assert.equal(r.blocks.size, 0);
    assert.equal(tf.memory().numTensors, before + 2);
    tf.dispose([r.out!, r.emb]);
    assert.equal(tf.memory().numTensors, before);
    assert.ok(!x.isDisposed);
  });

  it("captures blocks by name or number, and stops after the last one", () => {
    const before = tf.memory().numTensors;
    const full = model.forward(x, [10, 500], { capture: ["output_blocks.1", "out"] });
    const early = model.forward(x, [10, 500], { capture: ["2", "middle_block", "output_blocks.1"] });
    assert.equal(early.out, undefined);
    assert.deepEqual([...early.blocks.keys()].sort(), ["input_blocks.1", "middle_block", "output_blocks.1"]);
    assert.deepEqual(early.blocks.get("input_blocks.1")!.shape, [2, 16, 16, 32]);
    assert.deepEqual(early.blocks.get("middle_block")!.shape, [2, 8, 8, 64]);
    assert.equal(maxAbsDiff(early.blocks.get("output_blocks.1")!.dataSync(), full.blocks.get("output_blocks.1")!.dataSync()), 0);
    const nchw = toNCHW(early.blocks.get("middle_block")!);
    assert.deepEqual(nchw.shape, [2, 64, 8, 8]);
    const onlyInput = model.forward(x, [10, 500], { capture: ["input_blocks.0"] });
    assert.deepEqual([...onlyInput.blocks.keys()], ["input_blocks.0"]);
    tf.dispose([full.out!, full.emb, ...full.blocks.values(), early.emb, ...early.blocks.values(), nchw, onlyInput.emb, ...onlyInput.blocks.values()]);
    assert.equal(tf.memory().numTensors, before);
  });

  it("validates its inputs with messages naming the problem", () => {
    const before = tf.memory().numTensors;
    const nchw = tf.zeros([2, 3, 16, 16]) as tf.Tensor4D;
    assert.throws(() => model.forward(nchw, [1, 2]), /x has 16 channels in its last axis, the model takes 3 \(x must be NHWC/);
    assert.throws(() => model.forward(x, [1]), /1 timesteps for a batch of 2/);
    assert.throws(() => model.forward(x, [1, 2], { y: [1, 2] }), /labels y were given to an unconditional model/);
    assert.throws(() => model.forward(x, [1, 2], { capture: ["99"] }), /block 99 does not exist/);
    const odd = tf.zeros([1, 12, 12, 3]) as tf.Tensor4D;
    assert.ok(model.forward(odd, [1]).out); // multiples of 2 suffice for 2 levels
    const bad = tf.zeros([1, 9, 9, 3]) as tf.Tensor4D;
    assert.throws(() => model.forward(bad, [1]), /9x9; height and width must be multiples of 2/);
    tf.dispose([nchw, odd, bad]);
    assert.ok(tf.memory().numTensors <= before + 2); // the 12x12 pass's out + emb were not disposed above
  });

  it("class-conditional models need labels and use them", () => {
    const cond = UNet.random(smallConfig({ class_cond: true }), 5);
    try {
      assert.throws(() => cond.forward(x, [3, 3]), /class-conditional \(1000 classes\): pass y/);
      assert.throws(() => cond.forward(x, [3, 3], { y: [0, 1000] }), /label 1000 is outside 0..999/);
      const a = cond.forward(x, [3, 3], { y: [1, 2] });
      const b = cond.forward(x, [3, 3], { y: [1, 7] });
      const oa = a.out!.dataSync(), ob = b.out!.dataSync();
      const half = oa.length / 2;
      assert.equal(maxAbsDiff(oa.subarray(0, half), ob.subarray(0, half)), 0); // sample 0: same label
      assert.ok(maxAbsDiff(oa.subarray(half), ob.subarray(half)) > 1e-3); // sample 1: label changed
      assert.equal(maxAbsDiff(a.emb.dataSync(), b.emb.dataSync()), 0); // emb is time_embed's output
      tf.dispose([a.out!, a.emb, b.out!, b.emb]);
    } finally {
      cond.dispose();
    }
  });

  it("streamed and resident weights give identical results", () => {
    const cfg = smallConfig({ resblock_updown: false, use_new_attention_order: true });
    const resident = UNet.random(cfg, 9, { residency: "resident" });
    const streamed = UNet.random(cfg, 9, { residency: "streamed" });
    try {
      assert.equal(resident.weightBytes.streamed, 0);
      assert.ok(streamed.weightBytes.streamed > 0.95 * 4 * parameterCount(cfg));
      const before = tf.memory().numTensors;
      const a = resident.forward(x, [7, 8]);
      const b = streamed.forward(x, [7, 8]);
      assert.equal(maxAbsDiff(a.out!.dataSync(), b.out!.dataSync()), 0);
      tf.dispose([a.out!, a.emb, b.out!, b.emb]);
      assert.equal(tf.memory().numTensors, before); // streamed weight tensors were freed
    } finally {
      resident.dispose();
      streamed.dispose();
    }
    assert.throws(() => resident.forward(x, [7, 8]), /weight time_embed\.0\.weight requested after the model was disposed/);
  });

  it("auto residency on wasm streams the least-used matrices first, within the budget", () => {
    const specs = parameterSpecs(createUNetConfig("adm-256-uncond"));
    const streamed = planStreaming(specs, "wasm", { residentBudgetBytes: 2.25 * 2 ** 30 });
    assert.ok(streamed.has("middle_block.0.in_layers.2.weight")); // 8x8, 37.7 MB
    assert.ok(!streamed.has("input_blocks.1.0.in_layers.2.weight")); // 256x256, 2.4 MB
    const isMatrix = (n: string) => /weight$/.test(n) && specs.find((s) => s.name === n)!.kind !== "vector";
    let residentCost = 0;
    for (const s of specs) {
      const bytes = 4 * s.shape.reduce((a, d) => a * d, 1);
      if (!streamed.has(s.name)) residentCost += isMatrix(s.name) ? (1 + WASM_PACKED_COPIES) * bytes : bytes;
    }
    assert.ok(residentCost <= 2.25 * 2 ** 30 && residentCost > 2.2 * 2 ** 30, `resident cost ${residentCost}`);
    // Everything used at 64x64 or more positions stays resident; what is streamed is low-resolution.
    for (const sp of specs) if (sp.uses >= 64 * 64) assert.ok(!streamed.has(sp.name), sp.name);
    assert.ok([...streamed].every((n) => specs.find((sp) => sp.name === n)!.uses <= 32 * 32));
    assert.equal(planStreaming(specs, "cpu").size, 0);
    assert.equal(planStreaming(specs, "wasm", { residency: "resident" }).size, 0);
  });

  it("wasm and cpu backends agree on a random model", async () => {
    const cfg = createUNetConfig({ image_size: 8, num_channels: 32, num_res_blocks: 1, channel_mult: "1,2", attention_resolutions: "4", num_head_channels: 16, learn_sigma: true, resblock_updown: true });
    const xs = gaussian(8 * 8 * 3, 12);
    const run = async (backend: string) => {
      await selectBackend(backend);
      const m = UNet.random(cfg, 21);
      const xi = tf.tensor4d(xs, [1, 8, 8, 3]);
      const r = m.forward(xi, [250]);
      const out = r.out!.dataSync().slice();
      tf.dispose([xi, r.out!, r.emb]);
      m.dispose();
      return out;
    };
    try {
      const a = await run("wasm");
      const b = await run("cpu");
      const scale = Math.max(...Array.from(a, Math.abs));
      assert.ok(maxAbsDiff(a, b) / scale < 1e-5, `wasm vs cpu rel ${maxAbsDiff(a, b) / scale}`);
    } finally {
      await selectBackend("wasm");
    }
  });

  it("plans match the paper numbering for every preset", () => {
    for (const name of Object.keys(PRESETS)) {
      const c = createUNetConfig(name);
      const blocks = buildPlan(c).blocks;
      const nIn = blocks.filter((b) => b.section === "input").length;
      assert.equal(nIn, 1 + c.channelMult.length * c.numResBlocks + c.channelMult.length - 1, name);
      assert.equal(blocks.length, 2 * nIn + 1, name); // output blocks mirror input blocks
      assert.equal(blocks[nIn].name, "middle_block");
      assert.equal(blocks[blocks.length - 1].outRes, c.imageSize);
    }
  });
});
