import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { selectBackend } from "../lib/model/backend";
import { pixelBaseline, probeGrid, pixelPredictions, LabelledImages, ProbeGridSpec } from "../lib/experiments/probe-grid";
import { accuracy } from "../lib/metrics/classification";
import { FeatureSet } from "../lib/features/store/store";
import { Rng } from "../lib/rng";
import { tempDir, removeTempDir } from "./helpers/tmp";

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

  it("probes every (block, t) from the store; a rerun reads the stored features instead of recomputing them", async function () {
    const root = tempDir("probe-grid");
    try {
      const train = stripes(48, 1, 0);
      const test = stripes(24, 2, 1000);
      const spec: ProbeGridSpec = {
        name: "random init",
        model: { config: TINY, seed: 3 },
        blocks: [2, "middle_block"],
        timesteps: [0, 200],
        pool: { kind: "global" as const },
        batchSize: 16,
        workers: 1,
        store: root,
        dataset: "stripes",
        preprocessing: "synthetic-16",
        partRows: 20,
        probe: { epochs: 40, learningRate: 1e-2 },
      };
      await assert.rejects(probeGrid(spec, { ...train, labels: train.labels.slice(1) }, test, 2), /train: 48 images but 47 labels and 48 ids/);
      // heads read the store through sources: matrix() is never called
      const matrix = FeatureSet.prototype.matrix;
      FeatureSet.prototype.matrix = () => {
        throw new Error("matrix() called");
      };
      let rows;
      try {
        rows = await probeGrid(spec, train, test, 2);
        // beyond the memory budget the probes stream from the store, with the same result
        const streamed = await probeGrid({ ...spec, memoryBudgetBytes: 0 }, train, test, 2);
        assert.deepEqual(streamed.map((r) => r.testAcc), rows.map((r) => r.testAcc));
      } finally {
        FeatureSet.prototype.matrix = matrix;
      }
      assert.deepEqual(rows.map((r) => `${r.block!.number}/${r.block!.name}@${r.t}`), ["2/input_blocks.1@0", "2/input_blocks.1@200", "5/middle_block@0", "5/middle_block@200"]);
      for (const r of rows) {
        assert.equal(r.features, "random init");
        assert.ok(r.dim === 32 || r.dim === 64, `dim ${r.dim}`);
        assert.ok(r.trainAcc >= 0 && r.trainAcc <= 1 && r.testAcc >= 0 && r.testAcc <= 1);
        // the row keeps its probe's test predictions; CSV/JSON see only the plain columns
        assert.equal(r.testPred.length, 24);
        assert.equal(accuracy(r.testPred, test.labels), r.testAcc);
        assert.ok(!("testPred" in JSON.parse(JSON.stringify(r))));
        // the block is one value: {number, name} in JSON, "number (name)" in a CSV cell
        assert.deepEqual(JSON.parse(JSON.stringify(r)).block, { number: r.block!.number, name: r.block!.name });
        assert.equal(String(r.block), `${r.block!.number} (${r.block!.name})`);
      }
      assert.ok(Math.max(...rows.map((r) => r.testAcc)) > 0.7, `rows ${JSON.stringify(rows)}`);
      // 2 blocks x 2 timesteps x 2 splits, complete: 48 train rows in 3 parts, 24 test rows in 2
      const sets = fs.readdirSync(root).map((d) => FeatureSet.open(path.join(root, d)));
      assert.equal(sets.length, 8);
      for (const s of sets) {
        assert.ok(s.complete());
        assert.equal(s.parts, s.key.split === "train" ? 3 : 2);
      }
      // Overwrite every stored training row with the same values (valid parts): a grid that reads the
      // store now sees features that cannot separate anything (train accuracy 0.5 on balanced labels);
      // one that recomputed, or kept features elsewhere, would still score as before.
      for (const s of sets.filter((x) => x.key.split === "train")) {
        for (let p = 0; p < s.parts; p++) {
          const [a, b] = s.partRange(p);
          s.writePart(p, new Float32Array((b - a) * s.dim).fill(0.25));
        }
      }
      const again = await probeGrid(spec, train, test, 2);
      assert.deepEqual(again.map((r) => r.trainAcc), [0.5, 0.5, 0.5, 0.5]);
      assert.ok(rows.some((r) => r.trainAcc > 0.9), "the first run separated the training set");
    } finally {
      removeTempDir(root);
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
