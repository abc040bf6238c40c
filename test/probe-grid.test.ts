import { strict as assert } from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { selectBackend } from "../lib/backend";
import { imageBatches, pixelBaseline, probeGrid, bestRow, gridRowPredictions, pixelPredictions, LabelledImages } from "../lib/probe-grid";
import { accuracy } from "../lib/metrics";
import { FeatureCache } from "../lib/feature-cache";
import { Rng } from "../lib/diffusion/rng";

const TINY = {
  image_size: 16, in_channels: 1, num_channels: 32, num_res_blocks: 1, channel_mult: "1,2",
  attention_resolutions: "8", num_head_channels: 32, resblock_updown: true, use_scale_shift_norm: true, learn_sigma: false,
};

/** Two classes: horizontal vs vertical stripes, random phase and noise. */
function stripes(n: number, seed: number, offset: number): LabelledImages {
  const rng = new Rng(seed);
  const data = new Float32Array(n * 16 * 16);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = i % 2;
    const phase = rng.uint32() % 4;
    for (let y = 0; y < 16; y++) for (let x = 0; x < 16; x++) {
      const v = ((labels[i] ? x : y) + phase) % 4 < 2 ? 0.8 : -0.8;
      data[i * 256 + y * 16 + x] = Math.max(-1, Math.min(1, v + 0.1 * rng.normal()));
    }
  }
  return { images: { data, shape: [n, 16, 16, 1] }, labels, ids: Array.from({ length: n }, (_, i) => `img${offset + i}`) };
}

describe("probe grid", function () {
  before(async () => {
    await selectBackend("wasm");
  });

  it("cuts a labelled set into batches with their ids, and names a size mismatch", () => {
    const set = stripes(5, 1, 0);
    const batches = [...imageBatches(set, 2)];
    assert.deepEqual(batches.map((b) => (b.images as { shape: number[] }).shape[0]), [2, 2, 1]);
    assert.deepEqual(batches[2].ids, ["img4"]);
    assert.throws(() => [...imageBatches({ ...set, labels: set.labels.slice(1) }, 2)], /5 images but 4 labels and 5 ids/);
  });

  it("probes every (block, t) and reuses cached features on a rerun", async function () {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "probe-grid-"));
    try {
      const train = stripes(48, 1, 0);
      const test = stripes(24, 2, 1000);
      const spec = {
        name: "random init",
        model: { config: TINY, seed: 3 },
        blocks: [2, "middle_block"],
        timesteps: [0, 200],
        pool: { kind: "global" as const },
        batchSize: 16,
        workers: 1,
        cache: new FeatureCache(root),
        cacheTag: "stripes",
        probe: { epochs: 40, learningRate: 1e-2 },
      };
      const rows = await probeGrid(spec, train, test, 2);
      assert.deepEqual(rows.map((r) => `${r.block}/${r.module}@${r.t}`), ["2/input_blocks.1@0", "2/input_blocks.1@200", "5/middle_block@0", "5/middle_block@200"]);
      for (const r of rows) {
        assert.equal(r.features, "random init");
        assert.ok(r.dim === 32 || r.dim === 64, `dim ${r.dim}`);
        assert.ok(r.trainAcc >= 0 && r.trainAcc <= 1 && r.testAcc >= 0 && r.testAcc <= 1);
      }
      assert.ok(bestRow(rows).testAcc > 0.7, `best ${JSON.stringify(bestRow(rows))}`);
      const files = fs.readdirSync(root);
      assert.ok(files.length > 0, "nothing was cached");
      const again = await probeGrid(spec, train, test, 2);
      assert.deepEqual(again.map((r) => r.testAcc), rows.map((r) => r.testAcc));
      // The predictions behind a row: cached features, the same probe; a row they do not reproduce is caught.
      const best = bestRow(rows);
      const pred = await gridRowPredictions(spec, best, train, test, 2);
      assert.equal(pred.length, 24);
      assert.equal(accuracy(pred, test.labels), best.testAcc);
      await assert.rejects(gridRowPredictions(spec, { ...best, testAcc: best.testAcc - 0.25 }, train, test, 2), /gives test accuracy .* in the row/);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it("fits the raw-pixel baseline", async () => {
    // stripes of random phase are not linearly separable in pixel space; bright left vs right halves are
    const halves = (n: number, seed: number): LabelledImages => {
      const s = stripes(n, seed, 0);
      s.images.data.forEach((v, i) => {
        const x = i % 16;
        s.images.data[i] = 0.3 * v + ((x < 8) === (s.labels[Math.floor(i / 256)] === 0) ? 0.5 : -0.5);
      });
      return s;
    };
    const row = await pixelBaseline(halves(40, 1), halves(20, 2), 2, { epochs: 20 });
    assert.equal(row.dim, 256);
    assert.equal(row.features, "raw pixels");
    assert.ok(row.trainAcc > 0.9 && row.testAcc > 0.9, `accuracy ${row.trainAcc} / ${row.testAcc}`);
    const pred = await pixelPredictions(halves(40, 1), halves(20, 2), 2, { epochs: 20 });
    assert.equal(accuracy(pred, halves(20, 2).labels), row.testAcc);
  });
});
