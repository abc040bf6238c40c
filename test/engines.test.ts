/**
 * The U-Net engines: how one is chosen, ONNX Runtime against TensorFlow.js on every architecture variant
 * the project supports (the fixtures in ../shared pin both to PyTorch: test/reference.test.ts), and the
 * cache of built ONNX models.
 */
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { selectBackend } from "../lib/model/backend";
import { saveSafetensors } from "../lib/model/checkpoint/index";
import { chooseEngine, ENGINE_ENV, parseEngineName } from "../lib/model/engines/engine";
import { createUNetEngine } from "../lib/model/engines/create";
import { DATA_FILE, verifyCached } from "../lib/model/engines/onnx-cache";
import { buildOnnxModel, OrtUNetEngine } from "../lib/model/engines/ort-unet";
import { TfjsUNetEngine } from "../lib/model/engines/tfjs-unet";
import { loadOrt, ortBinaryFolder, sessionOptions } from "../lib/model/engines/ort-runtime";
import { createUNetConfig, UNetFlags } from "../lib/model/unet/config";
import { parameterSpecs } from "../lib/model/unet/parameters";
import { buildPlan } from "../lib/model/unet/plan";
import { randomParam } from "../lib/model/unet/weights";
import { relError } from "../lib/model/unet/reference";
import { TINY_FLAGS } from "./helpers/models";
import { tempDir, removeTempDir } from "./helpers/tmp";

const noOrt = () => ({ ort: null, reason: "onnxruntime-node cannot be loaded: test stand-in" });

describe("engine choice", () => {
  const saved = process.env[ENGINE_ENV];
  afterEach(() => {
    if (saved === undefined) delete process.env[ENGINE_ENV];
    else process.env[ENGINE_ENV] = saved;
  });

  it("automatic: ONNX Runtime where its binding loads, and says so", () => {
    delete process.env[ENGINE_ENV];
    assert.ok(loadOrt().ort, loadOrt().reason);
    const c = chooseEngine();
    assert.equal(c.name, "ort");
    assert.equal(c.forced, false);
    assert.match(c.log[0], /^ort: taken \(automatic: onnxruntime-node 1\.30\.0 loads\)/);
  });

  it("automatic falls back to tfjs when the binding cannot load, naming why", () => {
    delete process.env[ENGINE_ENV];
    const c = chooseEngine(undefined, noOrt);
    assert.equal(c.name, "tfjs");
    assert.deepEqual(c.log, ["ort: skipped (onnxruntime-node cannot be loaded: test stand-in)", "tfjs: taken (automatic fall-back)"]);
  });

  it("forced by argument or by $DIFFPROBE_ENGINE; a forced engine that cannot run is an error", () => {
    assert.equal(chooseEngine("tfjs").name, "tfjs");
    assert.equal(chooseEngine("onnxruntime").name, "ort");
    process.env[ENGINE_ENV] = "tfjs";
    const c = chooseEngine();
    assert.equal(c.name, "tfjs");
    assert.equal(c.forced, true);
    assert.match(c.log[0], /forced by \$DIFFPROBE_ENGINE/);
    process.env[ENGINE_ENV] = "ort";
    assert.throws(() => chooseEngine(undefined, noOrt), /engine ort was forced by \$DIFFPROBE_ENGINE, but onnxruntime-node cannot be loaded/);
    assert.throws(() => parseEngineName("torch"), /unknown engine "torch": use auto, ort or tfjs/);
  });
});

/** Architecture variants: every switch of the plan the project supports. */
const VARIANTS: Record<string, Partial<UNetFlags>> = {
  "tiny (resblock up/down, scale-shift, legacy attention)": TINY_FLAGS,
  "new attention order, class-conditional": { ...TINY_FLAGS, use_new_attention_order: true, class_cond: true },
  "conv resampling (no resblock_updown), additive embedding": { ...TINY_FLAGS, resblock_updown: false, use_scale_shift_norm: false },
  "two res blocks, num_heads 2, 16x16": { ...TINY_FLAGS, image_size: 16, num_res_blocks: 2, num_head_channels: -1, num_heads: 2, channel_mult: "1,2" },
};

describe("ONNX Runtime and tfjs agree on every architecture variant", function () {
  this.timeout(300000);
  let cache: string;
  before(async () => {
    await selectBackend("wasm");
    cache = tempDir("onnx-variants");
  });
  after(() => removeTempDir(cache));

  for (const [name, flags] of Object.entries(VARIANTS)) {
    it(name, async () => {
      const config = createUNetConfig(flags);
      const src = { config, seed: 3 };
      const outputs = ["emb", ...buildPlan(config).blocks.map((b) => b.name), "out"]; // every block
      const ort = await OrtUNetEngine.create(src, { outputs, cacheRoot: cache });
      const tfe = await TfjsUNetEngine.create(src, { outputs });
      try {
        const n = 2;
        const s = config.imageSize;
        const x = new Float32Array(n * 3 * s * s).map((_, i) => Math.sin(0.013 * i) * 0.9);
        const t = [7, 640];
        const y = config.numClasses === null ? undefined : [3, 999];
        const a = await ort.run(x, n, t, y);
        const b = await tfe.run(x, n, t, y);
        assert.deepEqual([...a.keys()], [...b.keys()]);
        for (const [k, v] of a) {
          assert.deepEqual(v.shape, b.get(k)!.shape, k);
          const e = relError(v.data, b.get(k)!.data);
          assert.ok(e.rel < 1e-5, `${k}: ort vs tfjs rel ${e.rel.toExponential(2)}`);
        }
      } finally {
        await ort.dispose();
        await tfe.dispose();
      }
    });
  }

  it("a pass that stops early equals the same blocks of the full pass, and writes only the weights it uses", async () => {
    const config = createUNetConfig(TINY_FLAGS);
    const src = { config, seed: 5 };
    const early = await OrtUNetEngine.create(src, { outputs: [3], cacheRoot: cache });
    const full = await OrtUNetEngine.create(src, { outputs: [3, "out"], cacheRoot: cache });
    const x = new Float32Array(3 * 32 * 32).fill(0.25);
    const a = (await early.run(x, 1, [90])).get("input_blocks.2")!;
    const b = (await full.run(x, 1, [90])).get("input_blocks.2")!;
    assert.deepEqual(early.outputs, ["input_blocks.2"]);
    assert.deepEqual(Array.from(a.data), Array.from(b.data));
    const bytes = (m: OrtUNetEngine) => fs.statSync(path.join(m.model.dir, DATA_FILE)).size;
    assert.ok(bytes(early) < bytes(full) / 3, `${bytes(early)} vs ${bytes(full)} bytes of weights`);
    await early.dispose();
    await full.dispose();
  });

  it("createUNetEngine takes the engine asked for", async () => {
    const src = { config: createUNetConfig(TINY_FLAGS), seed: 1 };
    const { engine, choice } = await createUNetEngine(src, { engine: "tfjs", outputs: [2] });
    assert.equal(engine.name, "tfjs");
    assert.equal(choice.name, "tfjs");
    assert.match(engine.description, /^tfjs 4\.22\.0, wasm$/);
    await engine.dispose();
  });
});

describe("cache of built ONNX models", function () {
  this.timeout(300000);
  let dir: string;
  const config = createUNetConfig(TINY_FLAGS);
  before(() => {
    dir = tempDir("onnx-cache");
  });
  after(() => removeTempDir(dir));

  async function writeCheckpoint(file: string, bump: number): Promise<void> {
    const specs = parameterSpecs(config);
    await saveSafetensors(file, specs.map((s, i) => {
      const data = randomParam(s, 11, i);
      if (i === Math.floor(specs.length / 2)) data[0] += bump; // one value in the middle of the file
      return { name: s.name, shape: s.shape, data };
    }));
  }

  it("a second run reuses the model; a checkpoint changed in the middle builds a new one", async () => {
    const ckpt = path.join(dir, "m.safetensors");
    const root = path.join(dir, "cache");
    await writeCheckpoint(ckpt, 0);
    const a = await buildOnnxModel({ config, checkpoint: ckpt }, { outputs: [4], cacheRoot: root });
    const b = await buildOnnxModel({ config, checkpoint: ckpt }, { outputs: [4], cacheRoot: root });
    assert.equal(a.built, true);
    assert.equal(b.built, false);
    assert.equal(a.dir, b.dir);
    await writeCheckpoint(ckpt, 0.5);
    fs.utimesSync(ckpt, new Date(), new Date(Date.now() + 10000));
    const c = await buildOnnxModel({ config, checkpoint: ckpt }, { outputs: [4], cacheRoot: root });
    assert.equal(c.built, true);
    assert.notEqual(c.dir, a.dir);
    // Other outputs are another model.
    const d = await buildOnnxModel({ config, checkpoint: ckpt }, { outputs: [5], cacheRoot: root });
    assert.notEqual(d.dir, c.dir);
  });

  it("a damaged or half-written cached model is detected and rebuilt, never loaded", async () => {
    const root = path.join(dir, "cache2");
    const src = { config, seed: 2 };
    const a = await buildOnnxModel(src, { outputs: [4], cacheRoot: root });
    const x = new Float32Array(3 * 32 * 32).fill(0.1);
    const run = async () => {
      const e = await OrtUNetEngine.create(src, { outputs: [4], cacheRoot: root });
      const v = (await e.run(x, 1, [10])).get("input_blocks.3")!.data.slice();
      await e.dispose();
      return { v, e };
    };
    const good = (await run()).v;
    // A flipped byte in the weights (same size).
    const w = path.join(a.dir, DATA_FILE);
    const bytes = fs.readFileSync(w);
    bytes[bytes.length - 5] ^= 0xff;
    fs.writeFileSync(w, bytes);
    assert.match(verifyCached(a.dir)!, /weights\.bin does not match its SHA-256/);
    const b = await buildOnnxModel(src, { outputs: [4], cacheRoot: root });
    assert.equal(b.built, true);
    assert.match(b.rebuiltBecause!, /SHA-256/);
    // Truncated by a full disk.
    fs.truncateSync(w, 100);
    assert.match(verifyCached(a.dir)!, /has 100 bytes/);
    // A run killed while writing: a folder without its completion marker.
    fs.rmSync(path.join(a.dir, "complete.json"));
    assert.equal(verifyCached(a.dir), "no complete.json");
    const { v } = await run();
    assert.deepEqual(Array.from(v), Array.from(good));
    assert.equal(verifyCached(a.dir), null);
  });
});

describe("ONNX Runtime providers", () => {
  it("cuda without its libraries (not in the npm package) is an error naming the missing files and environment.md", function () {
    const libs = ["libonnxruntime_providers_shared.so", "libonnxruntime_providers_cuda.so"].map((f) => path.join(ortBinaryFolder(), f));
    if (process.platform !== "linux" || libs.every((f) => fs.existsSync(f))) this.skip();
    assert.throws(() => sessionOptions({ provider: "cuda" }), /ONNX Runtime provider "cuda" is not installed: .*libonnxruntime_providers_cuda\.so.* missing from .*napi-v6.*environment\.md/);
    assert.throws(() => sessionOptions({ provider: "rocm" }), /provider "rocm" is not in this build \(have: cpu, /);
    assert.deepEqual(sessionOptions({ provider: "cpu", threads: 1 }).executionProviders, ["cpu"]);
  });
});
