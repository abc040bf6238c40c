/**
 * Training views (lib/features/store/views.ts, lib/experiments/views.ts): augmented / re-noised views of an
 * image source, the trainer reading one view per epoch (forEpoch), K views cycled vs online, features of a
 * view equal to the U-Net's features of the augmented images computed directly, x_t rows equal to what the
 * extractor feeds its U-Net, and the official recipes read from the paper record.
 */
import { strict as assert } from "assert";
import * as fs from "fs";
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../lib/model/backend";
import { createExtractor } from "../lib/features/store/extractor";
import { memorySource as memoryImages, ImageSource } from "../lib/features/store/images";
import { modelInputToRgb, viewId, viewRng, viewSource } from "../lib/features/store/views";
import { randomCropArr } from "../lib/data/augment";
import { toModelBatch } from "../lib/data/preprocess";
import { noisedImageSource, viewCandidate, viewFeatures, viewOfEpoch, withViews } from "../lib/experiments/views";
import { runPlan } from "../lib/experiments/extraction-plan";
import { storedCandidates } from "../lib/experiments/candidates";
import { diffsslRecipe } from "../lib/experiments/diffssl-recipe";
import { PAPER_LINEAR_RECIPE } from "../lib/heads/optim";
import { memorySource, FeatureSource, subsetSource, poolSource } from "../lib/heads/source";
import { trainHead } from "../lib/heads/train-head";
import { createMlpHead } from "../lib/heads/mlp";
import { testFixed, pairedOnTest } from "../lib/experiments/protocol/select";
import { validationSplit } from "../lib/experiments/protocol/split";
import { loadModel } from "../lib/model/load-model";
import { modelSchedule } from "../lib/model/model-source";
import { poolNHWC } from "../lib/features/pooling";
import { parseBlock } from "../lib/model/unet/blocks";
import { Rng } from "../lib/rng";
import { tempDir, removeTempDir } from "./helpers/tmp";

const TINY = {
  image_size: 16, in_channels: 1, num_channels: 32, num_res_blocks: 1, channel_mult: "1,2",
  attention_resolutions: "8", num_head_channels: 32, resblock_updown: true, use_scale_shift_norm: true, learn_sigma: false,
};

/** Two classes of 16x16 one-channel images (uint8 values mapped to [-1, 1], as Fashion-MNIST's). */
function blobs(n: number, seed: number, split: string): ImageSource {
  const rng = new Rng(seed);
  const data = new Float32Array(n * 256);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = i % 2;
    const cx = labels[i] ? 4 : 11;
    for (let y = 0; y < 16; y++) for (let x = 0; x < 16; x++) {
      const v = Math.exp(-((x - cx) ** 2 + (y - 8) ** 2) / 8) * 255 * (0.7 + 0.3 * rng.uniform());
      data[i * 256 + y * 16 + x] = Math.round(v) / 127.5 - 1;
    }
  }
  return memoryImages({ dataset: "blobs", split, preprocessing: "synthetic-16", images: { data, shape: [n, 16, 16, 1] }, ids: Array.from({ length: n }, (_, i) => `${split}:${i}`), labels });
}

async function allRows(s: FeatureSource): Promise<Float32Array> {
  return s.readRows(Int32Array.from({ length: s.rows }, (_, i) => i));
}

describe("training views", function () {
  before(async () => {
    await selectBackend("wasm");
  });

  it("a view is the official augmentation of each image under its own id, independent of how it is loaded", async () => {
    const src = blobs(6, 1, "train");
    const v = viewSource(src, { view: 3, augment: true, seed: 7 });
    assert.deepEqual(v.ids, src.ids.map((id) => `${id}#a7.v3`));
    assert.equal(v.ids[0], viewId(src.ids[0], { view: 3, augment: true, seed: 7 }));
    assert.match(v.preprocessing, /\+random_crop_arr\(0\.8,1\)\+flip$/);
    const whole = await v.load(0, 6);
    const part = await v.load(2, 4);
    assert.deepEqual(Array.from(part.data), Array.from(whole.data.subarray(2 * 256, 4 * 256)));
    let changed = 0;
    for (let i = 0; i < 6; i++) {
      const x = (await src.load(i, i + 1)).data;
      // independent path: the uint8 picture (x + 1) * 127.5, random_crop_arr with the view's draws (PIL-checked
      // in preprocess.test.ts), channel 0 back to [-1, 1]
      const u8 = Uint8Array.from(x, (a) => Math.round((a + 1) * 127.5));
      const rgb = { width: 16, height: 16, channels: 3 as const, data: Uint8Array.from({ length: 768 }, (_, k) => u8[Math.floor(k / 3)]) };
      const want = toModelBatch([randomCropArr(rgb, 16, viewRng(7, 3, src.ids[i])).image]).data.filter((_, k) => k % 3 === 0);
      assert.deepEqual(Array.from(whole.data.subarray(i * 256, (i + 1) * 256)), Array.from(want));
      if (want.some((a, k) => a !== x[k])) changed++;
    }
    assert.ok(changed >= 4, `only ${changed} of 6 images changed under augmentation`);
    // crop fractions 1 and no flip: the augmentation is the identity
    const same = viewSource(src, { view: 0, augment: true, seed: 7, crop: { minCropFrac: 1, maxCropFrac: 1, randomFlip: false } });
    assert.deepEqual(Array.from((await same.load(0, 6)).data), Array.from((await src.load(0, 6)).data));
    // without augmentation a view is the image itself under a view id (its own noise in the store)
    const plain = viewSource(src, { view: 2, augment: false, seed: 7 });
    assert.deepEqual(plain.ids, src.ids.map((id) => `${id}#v2`));
    assert.deepEqual(Array.from((await plain.load(0, 6)).data), Array.from((await src.load(0, 6)).data));
    assert.throws(() => viewSource(src, { view: -1, augment: true, seed: 0 }), /view: index -1/);
    assert.throws(() => modelInputToRgb(new Float32Array(8), 2, 2, 2), /2 channels cannot be augmented/);
  });

  it("trainHead reads epoch e's rows from forEpoch(e), through subset and pooling views, and resumes on the same views", async () => {
    const n = 24, rng = new Rng(4);
    const base = Float32Array.from({ length: n * 8 }, () => rng.normal());
    const labels = Int32Array.from({ length: n }, (_, i) => i % 2);
    const calls: number[] = [];
    const epochRows = (e: number) => memorySource(base.map((x, i) => x + (labels[Math.floor(i / 8)] ? 0.1 * (e + 1) : 0)), [2, 2, 2], labels, 2);
    const source: FeatureSource = { ...epochRows(0), forEpoch: async (e) => (calls.push(e), epochRows(e)) };
    const view = poolSource(subsetSource(source, Int32Array.from({ length: 20 }, (_, i) => i + 2)), 1);
    const train = async (onEpoch?: (e: number) => void, checkpoint?: string) => {
      const head = createMlpHead({ inShape: [2], numClasses: 2, hidden: [], seed: 1 });
      await trainHead(head, view, { epochs: 4, batchSize: 8, optimizer: { kind: "sgd", lr: 0.1, momentum: 0, weightDecay: 0 }, seed: 2, showProgress: false, onEpoch, checkpoint });
      const w = Array.from(head.params[0].variable.dataSync());
      head.dispose();
      return w;
    };
    const whole = await train();
    assert.deepEqual(calls, [0, 1, 2, 3]);
    // the same rows without views: a different result (the views are read)
    const fixed = createMlpHead({ inShape: [2], numClasses: 2, hidden: [], seed: 1 });
    await trainHead(fixed, poolSource(subsetSource(epochRows(0), Int32Array.from({ length: 20 }, (_, i) => i + 2)), 1), { epochs: 4, batchSize: 8, optimizer: { kind: "sgd", lr: 0.1, momentum: 0, weightDecay: 0 }, seed: 2, showProgress: false });
    assert.notDeepEqual(Array.from(fixed.params[0].variable.dataSync()), whole);
    fixed.dispose();
    const dir = tempDir("views-resume");
    try {
      const ck = `${dir}/head.ckpt`;
      calls.length = 0;
      await assert.rejects(train((e) => {
        if (e === 1) throw new Error("killed");
      }, ck), /killed/);
      const resumed = await train(undefined, ck);
      assert.deepEqual(calls, [0, 1, 2, 3]);
      assert.deepEqual(resumed, whole);
    } finally {
      removeTempDir(dir);
    }
    // a view that is not the same examples is an error naming the epoch
    const bad: FeatureSource = { ...epochRows(0), forEpoch: async () => memorySource(base.subarray(0, 16 * 8), [2, 2, 2], labels.subarray(0, 16), 2) };
    const head = createMlpHead({ inShape: [2, 2, 2], numClasses: 2, hidden: [], seed: 1 });
    await assert.rejects(trainHead(head, bad, { epochs: 1, batchSize: 8, optimizer: { kind: "sgd", lr: 0.1, momentum: 0, weightDecay: 0 }, seed: 2, showProgress: false }), /epoch 0's rows are 16 x/);
    head.dispose();
  });

  it("K views cycle (epoch e reads view e mod K), online views are all new, and a view's stored features are the U-Net's features of its images", async function () {
    this.timeout(120000);
    const root = tempDir("views-store");
    const src = { config: TINY, seed: 3 };
    const extractor = createExtractor(src, { engine: "tfjs", workers: 1, batchSize: 8 });
    try {
      const train = blobs(10, 1, "train"), test = blobs(6, 2, "test");
      const ctx = { root, extractor, train, test, numClasses: 2 };
      const block = { number: 3, module: "input_blocks.2" };
      const at = { block, t: 100, side: 2 };
      assert.equal(viewOfEpoch({ kind: "views", k: 2, augment: true }, 5), 1);
      const k2 = viewFeatures(ctx, at, { views: { kind: "views", k: 2, augment: true }, seed: 5 });
      assert.deepEqual(k2.shape, [32, 2, 2]);
      const e0 = await allRows(await k2.forEpoch!(0)), e1 = await allRows(await k2.forEpoch!(1)), e2 = await allRows(await k2.forEpoch!(2));
      assert.deepEqual(Array.from(e2), Array.from(e0));
      assert.notDeepEqual(Array.from(e1), Array.from(e0));
      // the source's own rows (validation, statistics) are the centre images with the same seeded noise
      const centre = await allRows(viewFeatures(ctx, at, { views: { kind: "cached" }, seed: 5 }));
      assert.deepEqual(Array.from(await allRows(k2)), Array.from(centre));
      assert.notDeepEqual(Array.from(centre), Array.from(e0));
      // independent path: the view's images through the U-Net itself (tfjs), the block's map pooled 2x2
      const unet = await loadModel(src);
      const schedule = modelSchedule(src);
      const view1 = viewSource(train, { view: 1, augment: true, seed: 5 });
      const x0 = await view1.load(0, 10);
      const xt = await noisedImageSource(view1, schedule, 100, { views: { kind: "cached" }, seed: 5 }, 2);
      const xRows = await allRows(xt); // [N, 1, 16, 16] channel-major = NHWC for one channel
      const name = parseBlock(unet.config, 3).name;
      const r = unet.forward(tf.tensor4d(xRows, [10, 16, 16, 1]), Array(10).fill(100), { capture: [name] });
      const map = r.blocks.get(name)!;
      const pooled = poolNHWC(map.dataSync() as Float32Array, map.shape, { kind: "adaptive", size: 2 });
      r.emb.dispose();
      for (const t of r.blocks.values()) t.dispose();
      // both channel-major [32, 2, 2] per image
      let maxErr = 0, maxAbs = 0;
      for (let k = 0; k < e1.length; k++) {
        maxErr = Math.max(maxErr, Math.abs(e1[k] - pooled.data[k]));
        maxAbs = Math.max(maxAbs, Math.abs(pooled.data[k]));
      }
      assert.equal(pooled.data.length, e1.length);
      assert.ok(maxErr <= 1e-5 * Math.max(1, maxAbs), `view features differ from the U-Net's by ${maxErr}`);
      assert.ok(x0.data.length === 10 * 256);
      // online: every epoch its own view; keepViews false deletes views once passed (view 0 stays: the source's own rows)
      const online = viewFeatures(ctx, at, { views: { kind: "online", augment: false, keepViews: false }, seed: 5 });
      const o = [];
      for (let e = 0; e < 3; e++) o.push(Array.from(await allRows(await online.forEpoch!(e))));
      assert.notDeepEqual(o[1], o[0]);
      assert.notDeepEqual(o[2], o[1]);
      // stored sets now: the two K views, the centre set, and online view 2 (views 0 and 1 deleted once
      // view 2 was read)
      assert.equal(fs.readdirSync(root).length, 4, `sets in the store: ${fs.readdirSync(root).join(", ")}`);
      // a stored candidate (a notebook's grid) under views: its own rows stay the stored ones, its epochs
      // read the views of the same block, t and side
      const stored = await runPlan({ root, extractor, images: train, jobs: [{ blocks: [block], timesteps: [100], pool: 2 }], noise: { policy: "seeded", seed: 5 } });
      const [sc] = storedCandidates(stored, [], { numClasses: 2 });
      const viewed = withViews(sc, ctx, { views: { kind: "views", k: 2, augment: true }, seed: 5 });
      assert.equal(viewed.setting.tags!.views, "2 views (augmented + noise)");
      const vs = viewed.train();
      assert.deepEqual(Array.from(await allRows(vs)), Array.from(await allRows(sc.train())));
      assert.deepEqual(Array.from(await allRows(await vs.forEpoch!(3))), Array.from(e1));
      assert.equal(withViews(sc, ctx, { views: { kind: "cached" }, seed: 5 }), sc);
      // a view candidate, fixed in advance, scored once and paired with another
      const split = validationSplit(train.labels!, { seed: 0, fraction: 0.2, ids: train.ids });
      const training = { epochs: 3, batchSize: 5, optimizer: { kind: "sgd" as const, lr: 0.05, momentum: 0, weightDecay: 0 }, seed: 0, showProgress: false };
      const head = { kind: "linear" as const, pool: 2, init: "zeros" as const };
      const a = await testFixed("k2", viewCandidate(ctx, at, head, { views: { kind: "views", k: 2, augment: true }, seed: 5 }), { split: split.record, why: "fixed", training });
      const b = await testFixed("cached", viewCandidate(ctx, at, head, { views: { kind: "cached" }, seed: 5 }), { split: split.record, why: "fixed", training });
      assert.equal(a.testRows, 6);
      assert.equal(a.views, "2 views (augmented + noise)");
      assert.ok(Number.isNaN(a.valAcc));
      const p = pairedOnTest(a, b, test.labels!);
      assert.equal(p.onlyA + p.onlyB + p.both + p.neither, 6);
      unet.dispose();
    } finally {
      await extractor.close();
      removeTempDir(root);
    }
  });

  it("the official recipes come from the paper record; the linear one is PAPER_LINEAR_RECIPE at the scripts' batch", () => {
    const lin = diffsslRecipe("linear", 3);
    assert.deepEqual(lin.optimizer, PAPER_LINEAR_RECIPE.optimizer);
    assert.deepEqual(lin.schedule, PAPER_LINEAR_RECIPE.schedule);
    assert.equal(lin.epochs, PAPER_LINEAR_RECIPE.epochs);
    assert.equal(lin.batchSize, 128);
    assert.equal(diffsslRecipe("attention", 0).optimizer.lr, 0.05);
    assert.equal(diffsslRecipe("diffeed", 0).batchSize, 16);
    assert.equal(diffsslRecipe("difformer", 0, { epochs: 5 }).epochs, 5);
  });
});
