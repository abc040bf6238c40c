/**
 * The official diffssl heads (attention head, DifFormer) and DifFeed against the official code's outputs
 * (../shared/fixtures/diffssl, made by ../shared/tools/fixtures/make_diffssl_fixtures.py with PyTorch),
 * the full-size parameter counts of the official scripts (fullsize_param_counts.json), PyTorch's bilinear
 * resize (test/fixtures/resize, made with PyTorch), and the gradient that reaches the feedback layers.
 */
import { strict as assert } from "assert";
import { execFile } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../lib/model/backend";
import { readNpy, writeNpy } from "../lib/model/npy";
import { formatLine } from "../lib/model/unet/reference";
import { checkDiffsslFolder, isDiffsslFolder } from "../lib/diffssl/reference";
import { officialHeadFromManifest, officialHeadParams, parseFusionArc } from "../lib/diffssl/official";
import { createUNetConfig, UNetConfig } from "../lib/model/unet/config";
import { getPreset } from "../lib/model/unet/presets";
import { buildPlan } from "../lib/model/unet/plan";
import { UNet } from "../lib/model/unet/model";
import { difFeedFirstPass, difFeedSecondPass, FeedbackLayers, feedbackParams, feedbackPlan, mirrorBlock } from "../lib/model/unet/feedback";
import { adaptiveAvgPool, resizeBilinear } from "../lib/model/resize";
import { createAttentionHead } from "../lib/heads/attention";
import { createDifFormerHead } from "../lib/heads/difformer";
import { countParams } from "../lib/heads/head";
import { buildHead, specParams } from "../lib/heads/create";
import { difformerParams } from "../lib/heads/params";
import { memorySource } from "../lib/heads/source";
import { Rng } from "../lib/rng";
import { installTrainingKernels } from "../lib/train/wasm-kernels";
import { sharedOrSkip, sharedPath } from "./helpers/shared";
import { TINY_FLAGS } from "./helpers/models";
import { tempDir, removeTempDir } from "./helpers/tmp";

const TOL = 1e-5;
const FIXTURES = sharedPath("fixtures", "diffssl");
const FOLDERS = FIXTURES ? fs.readdirSync(FIXTURES).filter((f) => isDiffsslFolder(path.join(FIXTURES, f))).sort() : [];

function rand(shape: number[], seed: number, scale = 1): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(new Rng(seed).fillNormal(new Float32Array(n)).map((v) => v * scale), shape);
}

function runScript(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const root = path.resolve(__dirname, "..");
  const tsx = path.join(root, "node_modules", ".bin", "tsx");
  return new Promise((resolve) => {
    execFile(tsx, [path.join(root, "data-scripts", "check-reference.ts"), ...args], { cwd: root, maxBuffer: 1 << 24 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

describe("diffssl: parity with the official head and feedback code", function () {
  this.timeout(600000);
  before(async () => {
    await selectBackend("wasm");
  });

  it("finds the fixture folders (at least the four of the README; every diffssl folder there is checked below)", function () {
    sharedOrSkip(this, "fixtures", "diffssl");
    for (const f of ["attn-head", "diffeed", "diffeed-tiny", "difformer"]) assert.ok(FOLDERS.includes(f), `${f} is not a diffssl folder`);
  });

  for (const name of FOLDERS) {
    it(`${name}: every saved tensor within ${TOL} of the official code, parameter counts equal`, async function () {
      const dir = path.join(FIXTURES!, name);
      const manifest = JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8"));
      const r = await checkDiffsslFolder(dir, { tol: TOL });
      const bad = r.lines.filter((l) => l.status === "FAIL" || l.status === "SKIP");
      assert.equal(bad.length, 0, bad.map(formatLine).join("\n"));
      assert.ok(r.ok);
      const byName = new Map(r.lines.map((l) => [l.name, l]));
      for (const t of manifest.tensors as { name: string; kind: string }[]) {
        const l = byName.get(t.name);
        assert.ok(l, `${t.name} has no line`);
        if (t.kind === "input" && !/^x_t_t\d+$/.test(t.name)) assert.equal(l!.status, "INFO", formatLine(l!)); // x_t is recomputed (q_sample) and compared
        else {
          assert.equal(l!.status, "PASS", formatLine(l!));
          assert.ok(l!.rel! <= (t.name === "alphas_cumprod" ? 1e-12 : TOL), formatLine(l!));
        }
      }
      assert.equal(byName.get("params:head")!.status, "PASS");
      if (manifest.kind === "diffeed") assert.equal(byName.get("params:feedback")!.status, "PASS");
      const worst = Math.max(...r.lines.filter((l) => l.rel !== undefined && l.name !== "alphas_cumprod").map((l) => l.rel!));
      console.log(`      ${name}: ${r.description}; worst rel ${worst.toExponential(2)}, forward ${r.forwardMs} ms`);
    });
  }

  describe("a corrupted or malformed folder", function () {
    let tmp: string;
    before(() => {
      tmp = tempDir("diffssl");
    });
    after(() => {
      if (tmp) removeTempDir(tmp);
    });
    const copy = (src: string, name: string) => {
      const dst = path.join(tmp, name);
      fs.mkdirSync(dst);
      for (const f of fs.readdirSync(src)) {
        fs.copyFileSync(path.join(src, f), path.join(dst, f));
        fs.chmodSync(path.join(dst, f), 0o644);
      }
      return dst;
    };
    const perturb = async (file: string, rel: number) => {
      const a = await readNpy(file);
      const d = a.data as Float32Array;
      const max = d.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      d[7] += rel * max;
      await writeNpy(file, a);
    };

    it("a perturbed attention probability FAILS at its size; the rest passes; the script exits 1", async function () {
      const dir = copy(sharedOrSkip(this, "fixtures", "diffssl", "attn-head"), "attn");
      await perturb(path.join(dir, "block1_attn_t0.npy"), 1e-4);
      const r = await checkDiffsslFolder(dir);
      const byName = new Map(r.lines.map((l) => [l.name, l]));
      assert.equal(r.ok, false);
      assert.equal(byName.get("block1_attn_t0")!.status, "FAIL");
      assert.ok(Math.abs(byName.get("block1_attn_t0")!.rel! - 1e-4) < 1e-5, formatLine(byName.get("block1_attn_t0")!));
      assert.equal(byName.get("logits")!.status, "PASS");
      const { code, stdout } = await runScript([dir]);
      assert.equal(code, 1, stdout);
      assert.match(stdout, /^FAIL  block1_attn_t0 +3x4x17x17 +rel 1\.0\de-4/m);
      assert.match(stdout, /^PASS  logits +3x10 +rel /m);
      assert.match(stdout, /1 FAILED, 26 passed/);
    });

    it("DifFeed: a perturbed resized feedback map and a perturbed second-pass block FAIL", async function () {
      const dir = copy(sharedOrSkip(this, "fixtures", "diffssl", "diffeed-tiny"), "fb");
      await perturb(path.join(dir, "fbi_t0_b9.npy"), 1e-4);
      await perturb(path.join(dir, "feat2_t0_b5.npy"), 1e-4);
      const r = await checkDiffsslFolder(dir);
      const failed = r.lines.filter((l) => l.status === "FAIL").map((l) => l.name);
      assert.deepEqual(failed, ["fbi_t0_b9", "feat2_t0_b5"]);
    });

    it("bad folders are refused with the file and key at fault (exit 2)", async function () {
      const src = sharedOrSkip(this, "fixtures", "diffssl", "difformer");
      const dir = copy(src, "bad");
      const mf = path.join(dir, "manifest.json");
      const manifest = JSON.parse(fs.readFileSync(mf, "utf8"));
      const write = (m: unknown) => fs.writeFileSync(mf, JSON.stringify(m));
      write({ ...manifest, kind: "lora" });
      await assert.rejects(checkDiffsslFolder(dir), /manifest\.json: kind "lora" is not one of attention-head, difformer, diffeed/);
      write({ ...manifest, head: { ...manifest.head, fusion_arc: "Use_CLS_Token:True:64,Insert_CLS_Token,Attention:64:3:4:2,Extract_CLS_Token" } });
      await assert.rejects(checkDiffsslFolder(dir), /head\.fusion_arc: 3 heads do not divide dim 64/);
      write({ ...manifest, head: { ...manifest.head, feature_dim_dict: { 19: 64, 24: 64 } } });
      await assert.rejects(checkDiffsslFolder(dir), /head\.feature_dim_dict\["30"\]: expected a positive integer, got undefined/);
      write({ ...manifest, head: { ...manifest.head, feature_dim_dict: { ...manifest.head.feature_dim_dict, 30: 48 } } });
      await assert.rejects(checkDiffsslFolder(dir), /model\.pt: pre_layer\.30\.1\.weight has shape \[32, 4, 4\], which does not fit our \[4, 4, 48\]/);
      write(manifest);
      fs.copyFileSync(path.join(dir, "feat_t0_b24.npy"), path.join(dir, "feat_t0_b30.npy"));
      await assert.rejects(checkDiffsslFolder(dir), /feat_t0_b30\.npy has shape 2x64x4x4; the manifest's head says N x 32x8x8/);
      fs.unlinkSync(path.join(dir, "model.pt"));
      await assert.rejects(checkDiffsslFolder(dir), /checkpoint model\.pt \(head\) is missing/);
      const { code, stderr } = await runScript([dir]);
      assert.equal(code, 2);
      assert.match(stderr, /ERROR: .*checkpoint model\.pt \(head\) is missing/);

      const fbDir = copy(sharedOrSkip(this, "fixtures", "diffssl", "diffeed-tiny"), "bad-fb");
      const fm = JSON.parse(fs.readFileSync(path.join(fbDir, "manifest.json"), "utf8"));
      fm.feedback.feedback_b_list = [8, 9, 10]; // 10 -> 4 (64 channels) instead of 11 -> 3 (32)
      fs.writeFileSync(path.join(fbDir, "manifest.json"), JSON.stringify(fm));
      await assert.rejects(checkDiffsslFolder(fbDir), /feedback\.pt: 2\.0\.weight has shape \[32, 64, 1, 1\], which does not fit our \[64, 64\]/);
      fm.feedback.feedback_b_list = [8, 9, 5];
      fs.writeFileSync(path.join(fbDir, "manifest.json"), JSON.stringify(fm));
      await assert.rejects(checkDiffsslFolder(fbDir), /feedback block 5: feedback comes from decoder blocks 8\.\.13 of this 13-block U-Net/);
    });
  });
});

describe("diffssl: full-size parameter counts equal the official scripts'", () => {
  it("linear 4,097,000, attention 27,786,216, DifFormer 31,802,344, DifFeed feedback 2,759,680 on ADM-256 (our configs)", function () {
    const file = sharedOrSkip(this, "fixtures", "diffssl", "fullsize_param_counts.json");
    const official = JSON.parse(fs.readFileSync(file, "utf8"));
    const config = createUNetConfig(getPreset("adm-256-uncond").flags);
    const blocks = buildPlan(config).blocks;
    assert.equal(blocks.length, official.const_check.blocks);
    // The official scripts' arguments with the block channels and sizes of OUR ADM-256 plan.
    const headOf = (s: Record<string, any>) => {
      const used = [...s.first_fw_b_list, ...s.second_fw_b_list] as number[];
      const dims = Object.fromEntries(used.map((b) => [b, blocks[b - 1].outCh]));
      const sizes = Object.fromEntries(used.map((b) => [b, blocks[b - 1].outRes]));
      return officialHeadFromManifest({ ...s, feature_dim_dict: dims, feature_size_dict: sizes }, s.name);
    };
    const sc = official.scripts;
    const ours: Record<string, number> = {};
    const lin = sc["linear.sh"];
    const b24 = blocks[lin.first_fw_b_list[0] - 1];
    ours["linear.sh head"] = specParams({ kind: "linear", pool: lin.pre_pool_size }, [b24.outCh, b24.outRes, b24.outRes], lin.num_classes);
    ours["attention.sh head"] = officialHeadParams(headOf({ ...sc["attention.sh"], name: "attention.sh" }));
    ours["fusion.sh head"] = officialHeadParams(headOf({ ...sc["fusion.sh"], name: "fusion.sh" }));
    ours["feedback.sh head"] = officialHeadParams(headOf({ ...sc["feedback.sh"], name: "feedback.sh" }));
    const fbPlan = feedbackPlan(config, sc["feedback.sh"].feedback_b_list);
    ours["feedback.sh feedback layers"] = feedbackParams(fbPlan);
    const want: Record<string, number> = {
      "linear.sh head": lin.head_parameters,
      "attention.sh head": sc["attention.sh"].head_parameters,
      "fusion.sh head": sc["fusion.sh"].head_parameters,
      "feedback.sh head": sc["feedback.sh"].head_parameters,
      "feedback.sh feedback layers": sc["feedback.sh"].feedback_parameters,
    };
    for (const [k, v] of Object.entries(ours)) console.log(`      ${k.padEnd(28)} ours ${v.toLocaleString("en-US").padStart(11)}   official ${want[k].toLocaleString("en-US").padStart(11)}`);
    assert.deepEqual(ours, want);
    assert.deepEqual(
      fbPlan.map((l) => ({ block: l.source, in_dim: l.inCh, out_dim: l.outCh, parameters: l.inCh * l.outCh + 2 * l.outCh })),
      sc["feedback.sh"].feedback_per_layer,
    );
    // The numbers the issue names.
    assert.deepEqual([ours["linear.sh head"], ours["attention.sh head"], ours["fusion.sh head"], ours["feedback.sh feedback layers"]], [4_097_000, 27_786_216, 31_802_344, 2_759_680]);
  });

  it("the DifFormer formula equals a built head's count (shared and separate pre-layers)", () => {
    const cfg = { dim: 8, heads: 2, mlpRatio: 3, blocks: 2, prePool: 2, maps: [[4, 2, 2], [3, 4, 4], [4, 2, 2]], timesteps: 3 };
    for (const preLayerKeys of [undefined, ["19", "24", "19"]]) {
      const head = createDifFormerHead({ ...cfg, preLayerKeys, numClasses: 5, seed: 1 });
      assert.equal(countParams(head), difformerParams(5, { ...cfg, preLayerKeys }));
      head.dispose();
    }
  });
});

describe("diffssl: DifFormer head", () => {
  before(async () => {
    await selectBackend("wasm");
  });

  it("with one block and one timestep it is the attention head (project: true) given the same weights", () => {
    const [c, s] = [6, 4];
    const att = createAttentionHead({ inShape: [c, s, s], numClasses: 3, dim: 8, heads: 2, mlpRatio: 2, blocks: 2, pool: 2, project: true, seed: 3 });
    const dif = createDifFormerHead({ maps: [[c, s, s]], timesteps: 1, prePool: 2, numClasses: 3, dim: 8, heads: 2, mlpRatio: 2, blocks: 2, seed: 4 });
    assert.equal(att.params.length, dif.params.length);
    const rng = new Rng(5);
    att.params.forEach((p, i) => {
      const v = tf.tensor(rng.fillNormal(new Float32Array(p.variable.size)), p.variable.shape);
      p.variable.assign(v);
      dif.params[i].variable.assign(v);
      v.dispose();
    });
    const x = rand([3, c * s * s], 6) as tf.Tensor2D;
    const a = tf.tidy(() => att.apply(x).dataSync());
    const d = tf.tidy(() => dif.apply(x).dataSync());
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - d[i]) <= 1e-5 * Math.max(1, Math.abs(a[i])), `${a[i]} vs ${d[i]}`);
    tf.dispose([x]);
    att.dispose();
    dif.dispose();
  });

  it("the head factory builds it on [T * sum(C*H*W)] rows and refuses other shapes naming the layout", async () => {
    const spec = { kind: "difformer" as const, dim: 8, heads: 2, mlpRatio: 2, blocks: 1, prePool: 2, maps: [[2, 4, 4], [3, 2, 2]], timesteps: 2 };
    const size = 2 * (32 + 12);
    const src = memorySource(new Float32Array(4 * size), [size], [0, 1, 0, 1], 2);
    const built = await buildHead(spec, src, 0);
    assert.equal(built.head.kind, "difformer");
    assert.equal(countParams(built.head), specParams(spec, [size], 2));
    built.head.dispose();
    await assert.rejects(buildHead(spec, memorySource(new Float32Array(4 * 44), [44], [0, 1, 0, 1], 2), 0), /rows must be \[88\] \(2 timestep\(s\) x maps \[\[2,4,4\],\[3,2,2\]\], flattened\), got \[44\]/);
  });

  it("parses the official fusion_arc and refuses other forms", () => {
    assert.deepEqual(parseFusionArc("Use_CLS_Token:True:1024,Insert_CLS_Token,Attention:1024:8:4:2,Extract_CLS_Token"), { dim: 1024, heads: 8, mlpRatio: 4, blocks: 2 });
    assert.throws(() => parseFusionArc("Use_CLS_Token:True:64,Insert_CLS_Token,Attention:32:4:4:2,Extract_CLS_Token"), /Attention dim 32 must equal the Use_CLS_Token dim 64/);
    assert.throws(() => parseFusionArc("Attention:64:4:4:2"), /first part must be Use_CLS_Token/);
  });
});

describe("resize: PyTorch's bilinear interpolation and adaptive average pooling", () => {
  before(async () => {
    await selectBackend("wasm");
  });
  const fromJson = (file: string) => JSON.parse(fs.readFileSync(path.join(__dirname, "fixtures", file), "utf8")).cases as any[];

  it("resizeBilinear = F.interpolate(bilinear, align_corners=False) (down, up, uneven, identity)", () => {
    for (const c of fromJson("resize/bilinear.json")) {
      const out = tf.tidy(() => resizeBilinear(tf.tensor4d(c.inputNHWC.map(Math.fround), c.shapeNHWC), c.size[0], c.size[1]).dataSync());
      assert.equal(out.length, c.expectedNHWC.length, c.name);
      const max = Math.max(...c.expectedNHWC.map(Math.abs));
      c.expectedNHWC.forEach((v: number, i: number) => assert.ok(Math.abs(out[i] - v) <= 1e-6 * max, `${c.name}[${i}]: ${out[i]} vs ${v}`));
    }
  });

  it("adaptiveAvgPool = nn.AdaptiveAvgPool2d (uneven bins, upsampling, non-square)", () => {
    for (const c of fromJson("pooling/cases.json")) {
      const got = tf.tidy(() => tf.transpose(adaptiveAvgPool(tf.tensor4d(c.inputNHWC.map(Math.fround), c.shapeNHWC), c.size[0], c.size[1]), [0, 3, 1, 2]).dataSync());
      assert.equal(got.length, c.adaptive.length, c.name);
      c.adaptive.forEach((v: number, i: number) => assert.ok(Math.abs(got[i] - v) <= 1e-5 * Math.max(1, Math.abs(v)), `${c.name}[${i}]: ${got[i]} vs ${v}`));
    }
  });

  it("gradients of resizeBilinear are its transpose (what tf.image.resizeBilinear's gradient gets wrong)", () => {
    const x = rand([2, 5, 7, 3], 1) as tf.Tensor4D;
    const r = rand([2, 3, 4, 3], 2);
    // <resize(x), r> is linear in x, so its gradient g satisfies <g, x> = <resize(x), r>.
    const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(resizeBilinear(v as tf.Tensor4D, 3, 4), r)))(x);
    const lhs = tf.sum(tf.mul(g, x)).dataSync()[0];
    const rhs = tf.sum(tf.mul(resizeBilinear(x, 3, 4), r)).dataSync()[0];
    assert.ok(Math.abs(lhs - rhs) <= 1e-4 * Math.abs(rhs), `${lhs} vs ${rhs}`);
    tf.dispose([x, r, g]);
  });
});

describe("DifFeed: mirror rule, the U-Net's feedback option, and gradients to the feedback layers", function () {
  this.timeout(600000);
  const tiny: UNetConfig = createUNetConfig(TINY_FLAGS);
  before(async () => {
    await selectBackend("wasm");
    installTrainingKernels(); // as every trainer does: U-Net gradients on wasm need them (GroupNorm, convs)
  });

  it("mirror 2E+2-b: 38-b on ADM-256 (37 blocks), 14-b on tiny (13); only decoder blocks", () => {
    const adm = createUNetConfig(getPreset("adm-256-uncond").flags);
    for (let b = 20; b <= 37; b++) assert.equal(mirrorBlock(adm, b), 38 - b);
    for (let b = 8; b <= 13; b++) assert.equal(mirrorBlock(tiny, b), 14 - b);
    assert.throws(() => mirrorBlock(tiny, 7), /feedback block 7: feedback comes from decoder blocks 8\.\.13 of this 13-block U-Net/);
    assert.deepEqual(feedbackPlan(tiny, [8, 9, 11]).map((l) => [l.source, l.target, l.inCh, l.outCh]), [[8, 6, 64, 64], [9, 5, 64, 64], [11, 3, 64, 32]]);
  });

  it("addToInputBlocks: zeros change nothing; a map on block k changes block k on, not before; bad maps are refused", () => {
    const unet = UNet.random(tiny, 1);
    const x = rand([2, 32, 32, 3], 2, 0.5) as tf.Tensor4D;
    const t = [10, 500];
    const run = (add?: Map<number, tf.Tensor4D>) => {
      const r = unet.forward(x, t, { capture: ["2", "3", "10"], addToInputBlocks: add });
      r.emb.dispose();
      const out = new Map([...r.blocks].map(([k, v]) => [k, v.dataSync().slice()]));
      tf.dispose([...r.blocks.values()]);
      return out;
    };
    const base = run();
    const zero = tf.zeros([2, 32, 32, 32]) as tf.Tensor4D; // block 3 is 16x16: resized
    assert.deepEqual(run(new Map([[3, zero]])), base);
    const m = rand([2, 32, 32, 32], 3) as tf.Tensor4D;
    const fed = run(new Map([[3, m]]));
    assert.deepEqual(fed.get("input_blocks.1"), base.get("input_blocks.1"));
    assert.notDeepEqual(fed.get("input_blocks.2"), base.get("input_blocks.2"));
    assert.notDeepEqual(fed.get("output_blocks.2"), base.get("output_blocks.2"));
    assert.throws(() => unet.forward(x, t, { addToInputBlocks: new Map([[8, m]]) }), /addToInputBlocks: block 8 is output_blocks\.0; maps can only be added to input blocks \(1\.\.6\)/);
    assert.throws(() => unet.forward(x, t, { addToInputBlocks: new Map([[4, m]]) }), /the map for input_blocks\.3 has shape \[2, 32, 32, 32\]; expected NHWC \[2, h, w, 64\]/);
    tf.dispose([x, zero, m]);
    unet.dispose();
  });

  it("a feedback layer equals PyTorch's Conv1x1 -> BatchNorm2d -> ReLU: train mode, running statistics update, eval", () => {
    const ref = JSON.parse(fs.readFileSync(path.join(__dirname, "fixtures", "feedback", "batchnorm.json"), "utf8"));
    const fl = new FeedbackLayers(tiny, [11]); // 64 -> 32 channels, as the reference layer
    assert.deepEqual([fl.specs[0].inCh, fl.specs[0].outCh], [ref.cin, ref.cout]);
    const f32 = (a: number[]) => Float32Array.from(a.map(Math.fround));
    const [conv, gamma, beta] = fl.params.map((p) => p.variable);
    const [rm, rv] = fl.buffers.map((p) => p.variable);
    tf.tidy(() => {
      conv.assign(tf.tensor2d(f32(ref.conv_weight), [ref.cout, ref.cin]).transpose());
      gamma.assign(tf.tensor1d(f32(ref.bn_weight)));
      beta.assign(tf.tensor1d(f32(ref.bn_bias)));
      rm.assign(tf.tensor1d(f32(ref.running_mean)));
      rv.assign(tf.tensor1d(f32(ref.running_var)));
    });
    const x = tf.tidy(() => tf.tensor4d(f32(ref.input), ref.inputShapeNCHW).transpose([0, 2, 3, 1]) as tf.Tensor4D);
    const close = (got: tf.Tensor, want: number[], what: string) => {
      const g = got.dataSync();
      const max = Math.max(...want.map(Math.abs));
      assert.equal(g.length, want.length, what);
      want.forEach((v, i) => assert.ok(Math.abs(g[i] - v) <= 1e-5 * max, `${what}[${i}]: ${g[i]} vs ${v}`));
    };
    const nchw = (m: Map<number, tf.Tensor4D>) => m.get(3)!.transpose([0, 3, 1, 2]);
    const train = fl.maps(new Map([[11, x]]), true, true);
    tf.tidy(() => close(nchw(train), ref.train_output, "train-mode output"));
    close(rm, ref.running_mean_after, "running_mean");
    close(rv, ref.running_var_after, "running_var");
    const evalMaps = fl.maps(new Map([[11, x]]));
    tf.tidy(() => close(nchw(evalMaps), ref.eval_output_after, "eval output with the updated statistics"));
    // Without the flag, train mode leaves the statistics alone.
    const before = rm.dataSync().slice();
    const again = fl.maps(new Map([[11, x]]), true);
    assert.deepEqual(rm.dataSync(), before);
    tf.dispose([x, ...train.values(), ...evalMaps.values(), ...again.values()]);
    fl.dispose();
  });

  it("the second pass is differentiable in the feedback layers (gradient = finite differences), the U-Net frozen", () => {
    const unet = UNet.random(tiny, 7);
    const layers = new FeedbackLayers(tiny, [8, 9, 11], 3);
    const x = rand([2, 32, 32, 3], 8, 0.7) as tf.Tensor4D;
    const t = [150, 150];
    const first = difFeedFirstPass(unet, layers, x, t);
    const r = rand([2, 16, 16, 64], 9);
    const loss = () => {
      const out = difFeedSecondPass(unet, layers, x, t, first, [10], { training: true });
      const l = tf.sum(tf.mul(out.get(10)!, r)) as tf.Scalar;
      out.get(10)!.dispose();
      return l;
    };
    const vars = layers.params.map((p) => p.variable);
    const { value, grads } = tf.variableGrads(loss, vars);
    value.dispose();
    assert.equal(Object.keys(grads).length, 9); // 3 x (conv, BatchNorm weight, bias): the U-Net's weights are constants
    for (const p of layers.params) {
      const g = grads[p.variable.name];
      assert.ok(g, `no gradient for ${p.name}`);
      assert.ok(tf.max(tf.abs(g)).dataSync()[0] > 0, `zero gradient for ${p.name}`);
    }
    // Directional derivative along a random direction d: (L(p + e d) - L(p - e d)) / 2e vs <grad, d>.
    const rng = new Rng(10);
    const dirs = vars.map((v) => tf.tensor(rng.fillNormal(new Float32Array(v.size)).map((e) => e * 0.01), v.shape));
    const analytic = vars.reduce((s, v, i) => s + tf.sum(tf.mul(grads[v.name], dirs[i])).dataSync()[0], 0);
    const eps = 1e-2; // step norm ~1e-2: the float32 noise of the loss and the curvature each cost < 1% here
    const orig = vars.map((v) => v.clone());
    const at = (sign: number) => {
      vars.forEach((v, i) => v.assign(tf.tidy(() => orig[i].add(dirs[i].mul(sign * eps)))));
      return tf.tidy(() => loss().dataSync()[0]);
    };
    const numeric = (at(1) - at(-1)) / (2 * eps);
    vars.forEach((v, i) => v.assign(orig[i]));
    assert.ok(Math.abs(numeric - analytic) <= 2e-2 * Math.abs(analytic), `finite differences ${numeric} vs gradient ${analytic}`);
    tf.dispose([x, r, ...dirs, ...orig, ...Object.values(grads), ...first.values()]);
    layers.dispose();
    unet.dispose();
  });
});
