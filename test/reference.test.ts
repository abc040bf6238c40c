/**
 * Parity with the PyTorch guided-diffusion reference activations (../shared/fixtures/guided-diffusion).
 * Every saved tensor (emb, each input block, the middle block, each output block, out), plus
 * alphas_cumprod and q_sample's x_t, must satisfy rel = max|ours - ref| / max|ref| <= 1e-5.
 *
 * Backends: wasm and cpu, both configurations (small on cpu is the slowest test here: ~30 s of pure-JS
 * convolutions; DIFFPROBE_SKIP_SLOW=1 skips it).
 */
import { strict as assert } from "assert";
import { execFile } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { selectBackend } from "../lib/model/backend";
import { readNpy, writeNpy } from "../lib/model/npy";
import { checkReferenceFolder, formatLine, ReferenceReport } from "../lib/model/unet/reference";
import { sharedOrSkip } from "./helpers/shared";
import { tempDir, removeTempDir } from "./helpers/tmp";

const TOL = 1e-5;
const SKIP_SLOW = process.env.DIFFPROBE_SKIP_SLOW === "1";
/** Built ONNX models go to a temporary folder (not the project's .cache). */
const onnxCache = tempDir("onnx");
after(() => removeTempDir(onnxCache));

function summarize(r: ReferenceReport): string {
  const worst = r.lines.filter((l) => l.rel !== undefined && l.name !== "alphas_cumprod").reduce((a, l) => (l.rel! > a.rel! ? l : a));
  return `${path.basename(r.folder)} on ${r.backend}: worst rel ${worst.rel!.toExponential(2)} (${worst.name}), forward ${r.forwardMs} ms`;
}

function assertAllPass(r: ReferenceReport, manifest: { tensors: { name: string; kind: string }[] }) {
  const bad = r.lines.filter((l) => l.status === "FAIL" || l.status === "SKIP");
  assert.equal(bad.length, 0, bad.map(formatLine).join("\n"));
  assert.ok(r.ok);
  const compared = new Set(r.lines.filter((l) => l.status === "PASS").map((l) => l.name));
  // Every activation, the output, the schedule and x_t were compared.
  for (const t of manifest.tensors) {
    if (t.kind !== "input" || t.name === "x_t") assert.ok(compared.has(t.name), `${t.name} was not compared`);
  }
  for (const l of r.lines.filter((x) => x.status === "PASS")) {
    assert.ok(l.rel! <= (l.name === "alphas_cumprod" ? 0 : TOL), formatLine(l));
  }
}

/** Engines: ONNX Runtime, and tfjs on its wasm and cpu backends. lite256 (256x256) on tfjs cpu takes minutes: skipped there. */
const ENGINES: { engine: "ort" | "tfjs"; backend: string; fixtures: string[] }[] = [
  { engine: "ort", backend: "wasm", fixtures: ["tiny", "small", "lite256"] },
  { engine: "tfjs", backend: "wasm", fixtures: ["tiny", "small", "lite256"] },
  { engine: "tfjs", backend: "cpu", fixtures: ["tiny", "small"] },
];

for (const { engine, backend, fixtures } of ENGINES) {
  const label = engine === "ort" ? "ONNX Runtime" : `tfjs ${backend}`;
  describe(`reference parity on ${label}`, function () {
    this.timeout(600000);
    before(async () => {
      await selectBackend(backend);
    });
    after(async () => {
      await selectBackend("wasm");
    });

    for (const name of fixtures) {
      it(`${name}: emb, every block and out within ${TOL}; alphas_cumprod and x_t exact`, async function () {
        const dir = sharedOrSkip(this, "fixtures", "guided-diffusion", name);
        if (backend === "cpu" && name === "small" && SKIP_SLOW) {
          console.log("      (skipped: DIFFPROBE_SKIP_SLOW=1)");
          this.skip();
        }
        const manifest = JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8"));
        const report = await checkReferenceFolder(dir, { tol: TOL, engine, onnxCacheRoot: onnxCache });
        console.log(`      ${summarize(report)}`);
        assert.equal(report.engine, engine);
        assertAllPass(report, manifest);
        assert.equal(report.lines.filter((l) => l.status === "PASS").length, manifest.tensors.filter((t: { kind: string }) => t.kind !== "input").length + 1);
      });
    }
  });
}

describe("reference comparison: failures are reported per tensor", function () {
  this.timeout(600000);
  let tmp: string;
  before(async () => {
    await selectBackend("wasm");
    tmp = tempDir("ref");
  });
  after(() => {
    if (tmp) removeTempDir(tmp);
  });

  function copyFixture(src: string, name: string): string {
    const dst = path.join(tmp, name);
    fs.mkdirSync(dst);
    for (const f of fs.readdirSync(src)) fs.copyFileSync(path.join(src, f), path.join(dst, f));
    for (const f of fs.readdirSync(dst)) fs.chmodSync(path.join(dst, f), 0o644);
    return dst;
  }

  it("a perturbed block fails, a missing file fails, the rest still passes; the script exits 1", async function () {
    const src = sharedOrSkip(this, "fixtures", "guided-diffusion", "tiny");
    const dir = copyFixture(src, "perturbed");
    const ob3 = await readNpy(path.join(dir, "output_blocks_03.npy"));
    const data = ob3.data as Float32Array;
    data[123] += 1e-3 * 8.97; // 1e-3 of max|ref|
    await writeNpy(path.join(dir, "output_blocks_03.npy"), ob3);
    fs.unlinkSync(path.join(dir, "output_blocks_05.npy"));

    const report = await checkReferenceFolder(dir, { onnxCacheRoot: onnxCache });
    const byName = new Map(report.lines.map((l) => [l.name, l]));
    assert.equal(report.ok, false);
    assert.equal(byName.get("output_blocks.3")!.status, "FAIL");
    assert.ok(Math.abs(byName.get("output_blocks.3")!.rel! - 1e-3) < 1e-4);
    assert.equal(byName.get("output_blocks.5")!.status, "FAIL");
    assert.match(byName.get("output_blocks.5")!.note!, /file output_blocks_05\.npy is missing/);
    assert.equal(byName.get("output_blocks.4")!.status, "PASS");
    assert.equal(byName.get("out")!.status, "PASS");

    const { code, stdout } = await runScript([dir]);
    assert.equal(code, 1, stdout);
    assert.match(stdout, /^FAIL  output_blocks\.3 +2x64x32x32 +rel 1\.00e-3/m);
    assert.match(stdout, /^PASS  output_blocks\.4 /m);
    assert.match(stdout, /2 FAILED, 15 passed/);
  });

  it("a manifest whose configuration does not fit the checkpoint is refused with the key list", async function () {
    const src = sharedOrSkip(this, "fixtures", "guided-diffusion", "tiny");
    const dir = copyFixture(src, "wrong-config");
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8"));
    manifest.flags.num_res_blocks = 2;
    manifest.unet_kwargs.num_res_blocks = 2;
    fs.writeFileSync(path.join(dir, "manifest.json"), JSON.stringify(manifest));
    await assert.rejects(checkReferenceFolder(dir, { onnxCacheRoot: onnxCache }), /model\.pt: the checkpoint does not match the model: \d+ missing/);
    manifest.flags.num_res_blocks = 1; // flags and kwargs now disagree
    fs.writeFileSync(path.join(dir, "manifest.json"), JSON.stringify(manifest));
    await assert.rejects(checkReferenceFolder(dir, { onnxCacheRoot: onnxCache }), /flags and unet_kwargs describe different networks: numResBlocks: 2 vs 1/);
  });

  it("the script exits 2 with a message for a folder without a manifest", async () => {
    const empty = path.join(tmp, "empty");
    fs.mkdirSync(empty, { recursive: true });
    const { code, stdout, stderr } = await runScript([empty]);
    assert.equal(code, 2, stdout + stderr);
    assert.match(stderr, /no manifest\.json/);
  });
});

function runScript(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const root = path.resolve(__dirname, "..");
  const tsx = path.join(root, "node_modules", ".bin", "tsx");
  return new Promise((resolve) => {
    execFile(tsx, [path.join(root, "data-scripts", "check-reference.ts"), ...args, "--backend", "wasm"], { cwd: root, maxBuffer: 1 << 24, env: { ...process.env, DIFFPROBE_ONNX_CACHE: onnxCache } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr });
    });
  });
}
