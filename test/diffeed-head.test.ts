/**
 * DifFeed as a trainable head (lib/heads/diffeed.ts) through the one head factory, trainer and evaluator:
 * the official code's logits on ../shared/fixtures/diffssl/diffeed-tiny (official weights, eval mode);
 * training on a small x_t problem with the embedded U-Net (loss falls, feedback and head move, the U-Net's
 * weights stay bit-equal, BatchNorm running statistics move, no tensor leaks); a killed-and-resumed run
 * equal to an uninterrupted one (parameters and running statistics); the full-size parameter count of
 * the official feedback.sh (fullsize_param_counts.json); bad specs refused with the reason.
 */
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../lib/model/backend";
import { loadStateDict } from "../lib/model/checkpoint/index";
import { modelSchedule } from "../lib/model/model-source";
import { qSampleInto } from "../lib/model/diffusion/q-sample";
import { embeddedModel } from "../lib/model/embedded";
import { readNpy, npyToFloat32 } from "../lib/model/npy";
import { configFromManifest, createUNetConfig } from "../lib/model/unet/config";
import { UNet } from "../lib/model/unet/model";
import { parameterSpecs } from "../lib/model/unet/parameters";
import { getPreset } from "../lib/model/unet/presets";
import { relError } from "../lib/model/unet/reference";
import type { UNetWeights } from "../lib/model/unet/weights";
import { loadFeedbackLayers, loadOfficialHead, officialHeadConfig, officialHeadFromManifest } from "../lib/diffssl/official";
import { buildHead, HeadSpec, specParams } from "../lib/heads/create";
import { difFeedEvalBatch, DifFeedHead, frozenUNet, FrozenUNet, loadFrozenUNet, unetShape } from "../lib/heads/diffeed";
import { evaluateHead, headScores } from "../lib/heads/evaluate";
import { countParams } from "../lib/heads/head";
import { memorySource, FeatureSource } from "../lib/heads/source";
import { trainHead, TrainHeadOptions } from "../lib/heads/train-head";
import { fitHead, headLabel } from "../lib/experiments/protocol/select";
import { Rng } from "../lib/rng";
import { sharedOrSkip } from "./helpers/shared";
import { TINY_FLAGS } from "./helpers/models";
import { tempDir, removeTempDir } from "./helpers/tmp";

const TOL = 1e-5;

/** Every weight of a U-Net, copied (read through its private weight store: the test's only peek inside). */
function unetWeights(unet: UNet): Map<string, Float32Array> {
  const w = (unet as unknown as { weights: UNetWeights }).weights;
  return new Map(parameterSpecs(unet.config).map((s) => [s.name, Float32Array.from(w.get(s.name).dataSync() as Float32Array)]));
}

const copyVars = (vs: ReadonlyArray<{ name: string; variable: tf.Variable }>) => new Map(vs.map((p) => [p.name, Float32Array.from(p.variable.dataSync() as Float32Array)]));

describe("DifFeed head: official logits, training, resume, parameter counts", function () {
  this.timeout(900000);
  before(async () => {
    await selectBackend("wasm");
  });

  it("diffeed-tiny: built by buildHead with the official feedback.pt + head.pt, evaluateHead's logits are the official code's (eval mode)", async function () {
    const dir = sharedOrSkip(this, "fixtures", "diffssl", "diffeed-tiny");
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8"));
    const where = path.join(dir, "manifest.json");
    const official = officialHeadConfig(officialHeadFromManifest(manifest.head, where));
    assert.equal(official.kind, "attention");
    if (official.kind !== "attention") return;
    const unet = await UNet.fromCheckpoint(configFromManifest(manifest.unet), path.join(dir, "unet.pt"));
    const xt = await readNpy(path.join(dir, "x_t_t0.npy")); // NCHW = channel-major rows
    const [n, c, h, w] = xt.shape;
    const numClasses = manifest.head.num_classes;
    const src = memorySource(npyToFloat32(xt), [c, h, w], new Int32Array(n), numClasses);
    const spec: HeadSpec = { kind: "diffeed", unet: frozenUNet(unet, "diffeed-tiny"), t: manifest.t_list[0], feedback: manifest.feedback.feedback_b_list, block: official.block, ...official.config };
    assert.match(JSON.stringify(spec), /^\{"kind":"diffeed","unet":"diffeed-tiny","t":150,"feedback":\[8,9,11\],"block":10,"dim":64,/);
    const built = await buildHead(spec, src, 0);
    const head = built.head as DifFeedHead;
    try {
      const fbFile = path.join(dir, "feedback.pt"), headFile = path.join(dir, "head.pt");
      await loadFeedbackLayers(head.feedback, await loadStateDict(fbFile), fbFile);
      await loadOfficialHead({ ...official, head: head.attention }, await loadStateDict(headFile), headFile);
      assert.equal(countParams(head), manifest.num_parameters.feedback + manifest.num_parameters.head);
      assert.equal(specParams(spec, [c, h, w], numClasses), countParams(head));
      const unetBefore = unetWeights(unet);
      const ref = await readNpy(path.join(dir, "logits.npy"));
      const scores = await headScores(head, built.input(src));
      const e = relError(scores, npyToFloat32(ref));
      console.log(`      diffeed-tiny logits: rel ${e.rel.toExponential(2)} (max |diff| ${e.maxAbsDiff.toExponential(2)})`);
      assert.ok(e.rel <= TOL, `logits rel ${e.rel}`);
      const ev = await evaluateHead(head, built.input(src));
      assert.deepEqual(Array.from(ev.predictions), Array.from({ length: n }, (_, i) => {
        const row = npyToFloat32(ref).subarray(i * numClasses, (i + 1) * numClasses);
        return row.indexOf(Math.max(...row));
      }));
      // Training mode normalises with the batch's statistics: other logits, and the running statistics move.
      const stats = copyVars(head.buffers);
      head.setTraining(true);
      const trainLogits = tf.tidy(() => head.apply(tf.tensor2d(npyToFloat32(xt), [n, c * h * w])).dataSync());
      head.setTraining(false);
      assert.ok(relError(trainLogits, npyToFloat32(ref)).rel > 1e-3);
      assert.notDeepEqual(copyVars(head.buffers), stats);
      assert.deepEqual(unetWeights(unet), unetBefore);
    } finally {
      head.dispose();
      unet.dispose();
    }
  });

  describe("training on x_t of a 4-class problem with the embedded U-Net (t = 100)", () => {
    const T = 100;
    const N = 32;
    let frozen: FrozenUNet;
    let data: FeatureSource;
    let dir = "";
    const spec = (): HeadSpec => ({ kind: "diffeed", unet: frozen, t: T, feedback: [8, 9, 11], block: 10, dim: 32, heads: 2, mlpRatio: 2, blocks: 1, pool: 2, project: true });
    const opts: TrainHeadOptions = { epochs: 3, batchSize: 8, optimizer: { kind: "adam", lr: 2e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }, seed: 5, showProgress: false };
    // The uninterrupted run, shared by the tests below.
    let ref: { head: DifFeedHead; loss: number[]; init: Map<string, Float32Array>; initBuffers: Map<string, Float32Array>; unetBefore: Map<string, Float32Array>; tensors: number[] };

    before(async () => {
      dir = tempDir("diffeed-head");
      const em = embeddedModel();
      frozen = await loadFrozenUNet(em.source);
      assert.match(String(frozen), /^ckpt:[0-9a-f]{24}$/);
      // x0: background -1 with a bright 12x12 square in quadrant y (plus pixel noise); x_t = q_sample at t.
      const size = 32, per = size * size;
      const rng = new Rng(3, 1), lab = new Rng(3, 2), eps = new Rng(3, 3);
      const { signal, noise } = modelSchedule(em.source).coefficients([T]);
      const xs = new Float32Array(N * per);
      const labels = new Int32Array(N);
      for (let i = 0; i < N; i++) {
        const y = (labels[i] = i % 4 === 0 ? lab.uint32() % 4 : i % 4); // every class present, a few drawn
        const x0 = new Float32Array(per).map(() => -1 + 0.1 * rng.normal());
        const oy = (y >> 1) * 16 + 2, ox = (y & 1) * 16 + 2;
        for (let r = 0; r < 12; r++) for (let q = 0; q < 12; q++) x0[(oy + r) * size + ox + q] = 0.8;
        qSampleInto(xs.subarray(i * per, (i + 1) * per), x0, eps.fillNormal(new Float32Array(per)), signal[0], noise[0]);
      }
      data = memorySource(xs, [1, size, size], labels, 4);

      const built = await buildHead(spec(), data, 1);
      const head = built.head as DifFeedHead;
      const init = copyVars(head.params), initBuffers = copyVars(head.buffers);
      const unetBefore = unetWeights(frozen.unet!);
      const tensors: number[] = [];
      const t0 = Date.now();
      const r = await trainHead(head, built.input(data), { ...opts, onEpoch: () => void tensors.push(tf.memory().numTensors) });
      console.log(`      ${opts.epochs} epochs of ${N} images, batch ${opts.batchSize}: ${((Date.now() - t0) / 1000).toFixed(1)} s; loss ${r.lossHistory.map((l) => l.toFixed(3)).join(" -> ")}`);
      ref = { head, loss: r.lossHistory, init, initBuffers, unetBefore, tensors };
    });
    after(() => {
      ref?.head.dispose();
      frozen?.unet?.dispose();
      if (dir) removeTempDir(dir);
    });

    it("the loss falls, every feedback and head parameter moves (Adam, no weight decay), the U-Net's weights stay bit-equal", () => {
      assert.ok(ref.loss[ref.loss.length - 1] < ref.loss[0], `loss ${ref.loss.join(" -> ")}`);
      const after = copyVars(ref.head.params);
      // No weight decay: a parameter moves only through its gradient.
      for (const [name, v] of ref.init) assert.notDeepEqual(after.get(name), v, `${name} did not change`);
      assert.equal([...ref.init.keys()].filter((k) => k.startsWith("feedback.")).length, 9);
      assert.deepEqual(unetWeights(frozen.unet!), ref.unetBefore);
    });

    it("the BatchNorm running statistics moved; training mode is off afterwards; no tensor is left behind per epoch", () => {
      const now = copyVars(ref.head.buffers);
      assert.deepEqual([...now.keys()], ["feedback.0.1.running_mean", "feedback.0.1.running_var", "feedback.1.1.running_mean", "feedback.1.1.running_var", "feedback.2.1.running_mean", "feedback.2.1.running_var"]);
      for (const [name, v] of ref.initBuffers) assert.notDeepEqual(now.get(name), v, name);
      assert.equal(ref.head.training, false);
      assert.equal(new Set(ref.tensors).size, 1, `tensors after each epoch: ${ref.tensors.join(", ")}`);
    });

    it("evaluation in chunks (evalBatch, uneven) gives the scores of one call", async () => {
      const whole = await headScores(ref.head, data, N);
      assert.ok(ref.head.evalBatch >= N, `evalBatch ${ref.head.evalBatch}`); // the small model: one call
      ref.head.evalBatch = 5;
      try {
        const chunked = await headScores(ref.head, data, N);
        assert.ok(relError(chunked, whole).rel <= TOL, `rel ${relError(chunked, whole).rel}`);
      } finally {
        ref.head.evalBatch = difFeedEvalBatch(frozen.config, [8, 9, 11, 10], [1, 32, 32]);
      }
      // ADM-256 to decoder block 36: a couple of images per call, not evaluateHead's 256.
      assert.ok(difFeedEvalBatch(createUNetConfig(getPreset("adm-256-uncond").flags), [21, 24, 27, 30, 33, 36, 24], [3, 256, 256]) <= 4);
    });

    it("fitHead (the selection code) fits and scores it from its spec; the spec's label and JSON name the U-Net by id", async () => {
      const fitted = await fitHead(spec(), data, Array.from({ length: 16 }, (_, i) => i), { ...opts, epochs: 1 });
      try {
        assert.equal(fitted.params, specParams(spec(), [1, 32, 32], 4));
        const ev = await fitted.evaluate(data);
        assert.equal(ev.n, N);
      } finally {
        fitted.dispose();
      }
      assert.match(headLabel(spec()), /^diffeed \(unet ckpt:[0-9a-f]{24}, t 100, feedback 8x9x11, block 10, dim 32, /);
      assert.equal(JSON.parse(JSON.stringify(spec())).unet, frozen.id);
    });

    it("a run killed after its first epoch and resumed ends with the same parameters and running statistics", async () => {
      const file = path.join(dir, "diffeed.ckpt");
      const a = (await buildHead(spec(), data, 1)).head;
      await assert.rejects(trainHead(a, data, { ...opts, checkpoint: file, onEpoch: (e) => { if (e === 0) throw new Error("killed"); } }), /killed/);
      assert.equal(a.setTraining && (a as DifFeedHead).training, false); // switched off on the way out
      a.dispose();
      const b = (await buildHead(spec(), data, 1)).head as DifFeedHead; // initial values: all must come from the checkpoint
      const r = await trainHead(b, data, { ...opts, checkpoint: file });
      assert.equal(r.resumedFrom, 1);
      assert.deepEqual(r.lossHistory, ref.loss);
      assert.deepEqual(copyVars(b.params), copyVars(ref.head.params));
      assert.deepEqual(copyVars(b.buffers), copyVars(ref.head.buffers));
      b.dispose();
    });
  });

  it("specParams: the official feedback.sh on ADM-256 (feedback 21,24,27,30,33,36, second pass 24) = 2,759,680 feedback + the head", function () {
    const file = sharedOrSkip(this, "fixtures", "diffssl", "fullsize_param_counts.json");
    const sc = JSON.parse(fs.readFileSync(file, "utf8")).scripts["feedback.sh"];
    const config = createUNetConfig(getPreset("adm-256-uncond").flags);
    const arc = /Attention:(\d+):(\d+):(\d+):(\d+)/.exec(sc.fusion_arc)!.slice(1).map(Number);
    assert.deepEqual(sc.second_fw_b_list, [24]);
    const attention = { dim: arc[0], heads: arc[1], mlpRatio: arc[2], blocks: arc[3], pool: 16 / Math.min(16, sc.pre_pool_size), project: true };
    const spec: HeadSpec = { kind: "diffeed", unet: unetShape(config, "adm-256-uncond"), t: sc.t_list[0], feedback: sc.feedback_b_list, block: 24, ...attention };
    const total = specParams(spec, [3, 256, 256], sc.num_classes);
    const head = specParams({ kind: "attention", ...attention }, [1024, 16, 16], sc.num_classes);
    console.log(`      feedback.sh: feedback ${(total - head).toLocaleString("en-US")}, head ${head.toLocaleString("en-US")} (official ${sc.feedback_parameters.toLocaleString("en-US")}, ${sc.head_parameters.toLocaleString("en-US")})`);
    assert.equal(total - head, sc.feedback_parameters);
    assert.equal(total - head, 2_759_680);
    assert.equal(head, sc.head_parameters);
  });

  it("bad specs are refused with the reason (rows, order of blocks, class-conditional U-Net, shape-only U-Net)", async () => {
    const tiny = createUNetConfig(TINY_FLAGS);
    const shapeOnly = unetShape(tiny, "tiny");
    const base = { kind: "diffeed" as const, unet: shapeOnly, t: 10, feedback: [8, 9, 11], block: 10, dim: 8, heads: 2, mlpRatio: 2, blocks: 1, pool: 4, project: true };
    assert.throws(() => specParams(base, [1, 32, 32], 3), /diffeed head \(U-Net tiny\): rows \[1,32,32\] are not images this U-Net takes \(\[3, H, W\], H and W multiples of 4\)/);
    assert.throws(() => specParams({ ...base, block: 5 }, [3, 32, 32], 3), /the head's block 5 runs before encoder block 6, where feedback from block 8 is added; choose a later block/);
    assert.throws(() => specParams({ ...base, feedback: [4] }, [3, 32, 32], 3), /feedback block 4: feedback comes from decoder blocks 8\.\.13/);
    assert.throws(() => specParams({ ...base, unet: unetShape(createUNetConfig({ ...TINY_FLAGS, class_cond: true }), "cond") }, [3, 32, 32], 3), /class-conditional \(1000 classes\)/);
    const src = memorySource(new Float32Array(2 * 3 * 32 * 32), [3, 32, 32], [0, 1], 2);
    await assert.rejects(buildHead(base, src, 0), /U-Net tiny has no weights here \(made with unetShape/);
    assert.equal(specParams(base, [3, 32, 32], 3) > 0, true);
  });
});
