import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { DATASETS, loadDataset, missingFiles } from "../lib/data/index";
import { decodeRgb } from "../lib/data/image";
import { classColor, FINE_GRAINED, nearestClass, writeSyntheticTree } from "../lib/data/synthetic-fine-grained";
import { tempDir, removeTempDir } from "./helpers/tmp";

describe("synthetic fine-grained trees in the six real layouts", function () {
  this.timeout(60000);
  let dir: string;
  before(() => {
    dir = tempDir("fg-tree");
  });
  after(() => removeTempDir(dir));

  it("gives every class its own colour", () => {
    const cs = Array.from({ length: 8 }, (_, k) => classColor(k));
    for (let a = 0; a < 8; a++) for (let b = a + 1; b < 8; b++) {
      const d = Math.hypot(cs[a][0] - cs[b][0], cs[a][1] - cs[b][1], cs[a][2] - cs[b][2]);
      assert.ok(d > 40, `classes ${a} and ${b} are only ${d.toFixed(0)} apart`);
    }
  });

  for (const name of FINE_GRAINED) {
    it(`${name}: loadDataset reads the tree; split sizes, class count, and each label matches its image's colour`, async () => {
      const K = 3;
      const tree = await writeSyntheticTree(name, path.join(dir, name), { classes: K, trainPerClass: 4, testPerClass: 2, seed: 5 });
      const ds = await loadDataset(name, tree.root);
      assert.equal(ds.name, name);
      assert.equal(ds.classes.length, K);
      assert.equal(ds.splits[ds.trainSplit].length, tree.train);
      assert.equal(ds.splits[ds.testSplit].length, tree.test);
      assert.deepEqual(await missingFiles(ds), []);
      for (const split of [ds.trainSplit, ds.testSplit]) {
        for (const s of ds.splits[split]) {
          const img = await decodeRgb(s.file);
          const mean: [number, number, number] = [0, 0, 0];
          for (let i = 0; i < img.width * img.height; i++) for (let c = 0; c < 3; c++) mean[c] += img.data[3 * i + c] / (img.width * img.height);
          assert.equal(nearestClass(mean, K), s.label, `${s.file}: colour says class ${nearestClass(mean, K)}, the loader ${s.label}`);
        }
      }
      assert.ok(DATASETS[name].numClasses > K);
    });
  }

  it("refuses a tree with fewer than 2 classes", async () => {
    await assert.rejects(writeSyntheticTree("cub", path.join(dir, "bad"), { classes: 1, trainPerClass: 2, testPerClass: 1 }), /synthetic cub: classes must be an integer >= 2/);
  });
});
