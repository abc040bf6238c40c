/**
 * The torchvision networks on ONNX Runtime (lib/model/nets/net-engine, lowered from the same stages as tfjs):
 * parity with PyTorch's reference outputs (../shared/fixtures/torchvision, torchvision 0.14), the default
 * engine through the check-reference CLI, layer selection (the graph ends at the last layer asked for and
 * holds only its weights), the shared ONNX cache with its corruption check, and input errors.
 */
import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { loadStateDict } from "../lib/model/checkpoint/index";
import { ENGINE_ENV } from "../lib/model/engines/engine";
import { DATA_FILE, MODEL_FILE, verifyCached } from "../lib/model/engines/onnx-cache";
import { configFromManifest } from "../lib/model/nets/load";
import { createNetEngine } from "../lib/model/nets/net-engine";
import { checkTorchvisionFolder } from "../lib/model/nets/reference";
import { npyToFloat32, readNpy } from "../lib/model/npy";
import { formatLine, relError } from "../lib/model/unet/reference";
import { sharedOrSkip } from "./helpers/shared";
import { tempDir } from "./helpers/tmp";

const TOL = 1e-5;
const FOLDERS = ["resnet-lite", "vit-lite"];
const ROOT = path.resolve(__dirname, "..");

describe("torchvision networks on ONNX Runtime", function () {
  this.timeout(300000);
  let cache: string;
  before(() => {
    cache = tempDir("nets-ort");
  });
  after(() => {
    fs.rmSync(cache, { recursive: true, force: true });
  });

  for (const name of FOLDERS) {
    it(`${name}: every saved module output within ${TOL} of PyTorch`, async function () {
      const dir = sharedOrSkip(this, "fixtures", "torchvision", name);
      const manifest = JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8"));
      const r = await checkTorchvisionFolder(dir, { tol: TOL, engine: "ort", cacheRoot: cache });
      assert.match(r.backend, /^onnxruntime-node 1\.30\.0, cpu, \d+ threads?$/);
      const bad = r.lines.filter((l) => l.status !== "PASS");
      assert.equal(bad.length, 0, bad.map(formatLine).join("\n"));
      assert.deepEqual(r.lines.map((l) => l.name), manifest.tensors.map((t: { name: string }) => t.name));
      const worst = r.lines.reduce((a, l) => (l.rel! > a.rel! ? l : a));
      console.log(`      ${name} on ${r.backend}: worst rel ${worst.rel!.toExponential(2)} (${worst.name}), forward ${r.forwardMs} ms`);
    });

    it(`${name}: the check-reference CLI's default engine is ONNX Runtime and passes; --engine tfjs passes on wasm`, function () {
      const dir = sharedOrSkip(this, "fixtures", "torchvision", name);
      const env: NodeJS.ProcessEnv = { ...process.env, DIFFPROBE_ONNX_CACHE: cache };
      delete env[ENGINE_ENV];
      const tsx = path.join(ROOT, "node_modules", ".bin", "tsx");
      const run = (...args: string[]) => spawnSync(tsx, [path.join(ROOT, "data-scripts", "check-reference.ts"), dir, ...args], { encoding: "utf8", env });
      const d = run();
      assert.equal(d.status, 0, d.stdout + d.stderr);
      assert.match(d.stdout, /engine ort: taken \(automatic: onnxruntime-node 1\.30\.0 loads\)/);
      assert.match(d.stdout, /engine: onnxruntime-node 1\.30\.0, cpu/);
      assert.match(d.stdout, /ALL PASS \(\d+ tensors\)/);
      const t = run("--engine", "tfjs");
      assert.equal(t.status, 0, t.stdout + t.stderr);
      assert.match(t.stdout, /backend: wasm/);
      assert.match(t.stdout, /engine: tfjs 4\.22\.0, wasm/);
      assert.match(t.stdout, /ALL PASS/);
    });

    it(`${name}: a graph that stops at one layer equals that layer of the full graph, holds fewer weights, and is cached`, async function () {
      const dir = sharedOrSkip(this, "fixtures", "torchvision", name);
      const manifest = JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8"));
      const net = configFromManifest(manifest);
      const file = path.join(dir, "model.pt");
      const sd = await loadStateDict(file);
      const xa = await readNpy(path.join(dir, "x.npy"));
      const x = npyToFloat32(xa);
      const full = await createNetEngine(file, { engine: "ort", config: net, stateDict: sd, cacheRoot: cache });
      const mid: string = manifest.tensors[Math.floor(manifest.tensors.length / 2)].name;
      const part = await createNetEngine(file, { engine: "ort", config: net, stateDict: sd, cacheRoot: cache, layers: [mid] });
      try {
        assert.equal(full.choice.name, "ort");
        assert.deepEqual(part.engine.outputs, [mid]);
        const a = await full.engine.run(x, xa.shape);
        const b = await part.engine.run(x, xa.shape);
        assert.deepEqual([...b.keys()], [mid]);
        assert.deepEqual(b.get(mid)!.shape, a.get(mid)!.shape);
        assert.ok(relError(b.get(mid)!.data, a.get(mid)!.data).rel <= 1e-6);
        assert.ok(relError(b.get(mid)!.data, npyToFloat32(await readNpy(path.join(dir, `${mid}.npy`)))).rel <= TOL);
        const dirOf = (e: unknown) => (e as { modelDir: string }).modelDir;
        const size = (e: unknown) => fs.statSync(path.join(dirOf(e), DATA_FILE)).size;
        assert.ok(size(part.engine) < size(full.engine), `${size(part.engine)} vs ${size(full.engine)} bytes`);
        assert.equal(verifyCached(dirOf(full.engine)), null);
      } finally {
        await full.engine.dispose();
        await part.engine.dispose();
      }
      // The same request again is a cache hit; a damaged model file is found and rebuilt, never loaded.
      const again = await createNetEngine(file, { engine: "ort", config: net, stateDict: sd, cacheRoot: cache, layers: [mid] });
      const dirAgain = (again.engine as unknown as { modelDir: string }).modelDir;
      await again.engine.dispose();
      fs.truncateSync(path.join(dirAgain, MODEL_FILE), 100);
      assert.match(verifyCached(dirAgain) ?? "", /model\.onnx has 100 bytes/);
      const rebuilt = await createNetEngine(file, { engine: "ort", config: net, stateDict: sd, cacheRoot: cache, layers: [mid] });
      try {
        const out = await rebuilt.engine.run(x, xa.shape);
        assert.ok(relError(out.get(mid)!.data, npyToFloat32(await readNpy(path.join(dir, `${mid}.npy`)))).rel <= TOL);
        assert.equal(verifyCached(dirAgain), null);
      } finally {
        await rebuilt.engine.dispose();
      }
    });
  }

  it("bad input and unknown layers are errors naming the shape or the layers", async function () {
    const dir = sharedOrSkip(this, "fixtures", "torchvision", "vit-lite");
    const net = configFromManifest(JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8")));
    const file = path.join(dir, "model.pt");
    await assert.rejects(createNetEngine(file, { engine: "ort", config: net, cacheRoot: cache, layers: ["heads", "nope"] }), /VisionTransformer: unknown layer "nope"; the layers are conv_proj, /);
    const { engine } = await createNetEngine(file, { engine: "ort", config: net, cacheRoot: cache, layers: ["heads"] });
    try {
      await assert.rejects(engine.run(new Float32Array(3 * 16 * 16), [1, 3, 16, 16]), /input is 16x16; this network takes 32x32/);
      await assert.rejects(engine.run(new Float32Array(32 * 32 * 3), [1, 32, 32, 3]), /expected NCHW with 3 channels/);
    } finally {
      await engine.dispose();
    }
  });
});
