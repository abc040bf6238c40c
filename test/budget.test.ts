import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { trainingBudget } from "../lib/train/budget";
import { LossLog } from "../lib/train/loss-log";
import { projectRoot } from "../lib/paths";
import { tempDir, removeTempDir } from "./helpers/tmp";

const assets = path.join(projectRoot(), "assets");
const manifest = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, "model.json"), "utf8"));

describe("training budget (steps, images seen, wall time of a run folder)", () => {
  it("agrees with the baselines' own record of images seen and with the last loss.csv row", () => {
    for (const name of ["fashion-mnist-gan", "fashion-mnist-supervised"]) {
      const dir = path.join(assets, name);
      const b = trainingBudget(dir);
      assert.equal(b.imagesSeen, manifest(dir).train.images_seen, name);
      const rows = new LossLog(path.join(dir, "loss.csv")).read();
      assert.equal(rows[rows.length - 1].step, b.step, `${name}: loss.csv ends at the exported step`);
      assert.equal(b.seconds, rows[rows.length - 1].seconds, name);
      assert.ok(b.seconds! > 60, `${name}: ${b.seconds} s`);
    }
  });

  it("reads the DDPM's cost at an earlier kept step from its cumulative loss log", () => {
    const dir = path.join(assets, "fashion-mnist-ddpm");
    const b = trainingBudget(dir, 1294);
    assert.deepEqual([b.batchSize, b.imagesSeen], [16, 20704]);
    const rows = new LossLog(path.join(dir, "loss.csv")).read();
    const before = rows.find((r) => r.step === 1293)!.seconds;
    const after = rows.find((r) => r.step === 1295)!.seconds;
    assert.ok(b.seconds! > before && b.seconds! < after, `${before} < ${b.seconds} < ${after}`);
    assert.equal(trainingBudget(dir).step, manifest(dir).step);
  });

  it("step 0 costs nothing; a step without a log row has unknown time; a bad manifest names the file and key", () => {
    const dir = tempDir("budget");
    try {
      fs.writeFileSync(path.join(dir, "model.json"), JSON.stringify({ step: 7, train: { batch_size: 4 } }));
      const log = new LossLog(path.join(dir, "loss.csv"));
      log.reset();
      for (let s = 1; s <= 5; s++) log.append({ step: s, loss: 1 / s, seconds: 2 * s });
      assert.deepEqual(trainingBudget(dir, 0), { step: 0, batchSize: 4, imagesSeen: 0, seconds: 0 });
      assert.deepEqual(trainingBudget(dir, 5), { step: 5, batchSize: 4, imagesSeen: 20, seconds: 10 });
      assert.deepEqual(trainingBudget(dir), { step: 7, batchSize: 4, imagesSeen: 28, seconds: null });
      fs.writeFileSync(path.join(dir, "model.json"), JSON.stringify({ step: 7, train: {} }));
      assert.throws(() => trainingBudget(dir), (e: Error) => e.message.includes(path.join(dir, "model.json")) && e.message.includes("train.batch_size"));
      assert.throws(() => trainingBudget(tempDir("budget")), /model\.json: not found/);
    } finally {
      removeTempDir(dir);
    }
  });
});
