import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { mapPaperBlock } from "../lib/experiments/block-depth";
import { besidePaperSpec, compareRow, paperCurve } from "../lib/experiments/paper-compare";
import { findSet, StoredSet } from "../lib/experiments/extraction-plan";
import { writeSyntheticImagenet, writeRandomCheckpoint, TINY_ADM_FLAGS } from "../lib/data/synthetic-tree";
import { loadImagenet } from "../lib/data/imagenet";
import { loadStateDict } from "../lib/model/checkpoint/index";
import { parameterSpecs } from "../lib/model/unet/parameters";
import { createUNetConfig } from "../lib/model/unet/config";
import { randomParam } from "../lib/model/unet/weights";
import { renderSvg } from "../lib/display/charts";
import { paperPlan, studyJobs, studyTestJobs, linearRecipe } from "../lib/experiments/linear-study";
import { subsetFromEnv } from "../lib/experiments/imagenet-sources";
import { fashionMnistFirst } from "../lib/experiments/demo-sources";
import { fashionMnistSource } from "../lib/features/store/images";
import { paperSection } from "../lib/paper";
import { tempDir, removeTempDir } from "./helpers/tmp";

describe("experiments: paper block -> our block by relative depth", () => {
  it("maps ends to ends, the middle block to the middle, and is the identity on a 37-block model", () => {
    assert.equal(mapPaperBlock(1, 13), 1);
    assert.equal(mapPaperBlock(37, 13), 13);
    assert.equal(mapPaperBlock(19, 13), 7); // middle_block -> middle_block (1 + 6 + ... of 13)
    // 24 = output_blocks[4]: 23/36 of the way; 1 + 23/36 * 12 = 8.67 -> 9 (output_blocks[1] of the 13-block model)
    assert.equal(mapPaperBlock(24, 13), 9);
    for (let b = 1; b <= 37; b++) assert.equal(mapPaperBlock(b, 37), b);
    // the figure's blocks stay distinct and in order on 13 blocks
    const ours = [6, 9, 15, 19, 24, 30, 33].map((b) => mapPaperBlock(b, 13));
    assert.deepEqual(ours, [3, 4, 6, 7, 9, 11, 12]);
  });
  it("names a block outside the paper's range", () => {
    assert.throws(() => mapPaperBlock(38, 13), /paper block 38 is outside 1\.\.37/);
    assert.throws(() => mapPaperBlock(0, 13), /outside/);
  });
});

describe("experiments: ours beside the paper", () => {
  it("puts the Wilson 95% interval (independent formula) beside the paper's value and source", () => {
    const r = compareRow("GD linear pool 1", { acc: 0.6, n: 250 }, 61.95, "F");
    const z = 1.959963984540054, p = 0.6, n = 250;
    const c = (p + (z * z) / (2 * n)) / (1 + (z * z) / n);
    const h = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / (1 + (z * z) / n);
    assert.equal(r["ours %"], 60);
    assert.equal(r["ours 95% interval"], `${(100 * (c - h)).toFixed(2)}-${(100 * (c + h)).toFixed(2)}`);
    assert.equal(r["paper %"], 61.95);
    assert.equal(r["paper source"], "F");
    const none = compareRow("BigBiGAN", null, 60.8, "R");
    assert.equal(none["ours 95% interval"], "not run");
    assert.throws(() => compareRow("x", { acc: 1.2, n: 10 }, null, "-"), /accuracy 1.2/);
  });
  it("draws ours and the paper's curve in two panels (renders to SVG with both)", async () => {
    const paper = paperCurve([10, 90], { "t=90": [49.23, 55.09] });
    assert.deepEqual(paper, [{ x: 10, acc: 49.23, series: "t=90" }, { x: 90, acc: 55.09, series: "t=90" }]);
    assert.throws(() => paperCurve([1, 2], { a: [1] }), /1 values for 2/);
    const svg = await renderSvg(besidePaperSpec({ title: "T", xTitle: "t", ours: [{ x: 10, acc: 80, series: "ours", low: 78, high: 82 }], paper, oursTitle: "OURS-PANEL", paperTitle: "PAPER-PANEL" }));
    assert.match(svg, /OURS-PANEL/);
    assert.match(svg, /PAPER-PANEL/);
  });
  it("finds the stored set that re-pools exactly to a pooled size", () => {
    const b = (n: number) => ({ number: n, module: `m${n}` });
    const sets = [{ block: b(9), t: 90, side: 8 }, { block: b(9), t: 90, side: 1 }, { block: b(7), t: 90, side: 1 }] as unknown as StoredSet[];
    assert.equal(findSet(sets, 9, 90, 1).side, 1);
    assert.equal(findSet(sets, 9, 90, 2).side, 8);
    assert.throws(() => findSet(sets, 7, 90, 2), /block 7, t 90 .*stored sides: 1/);
  });
});

describe("experiments: the linear study's store jobs", () => {
  const sweeps = paperSection<any>("imagenet_sweeps");
  it("training jobs cover every sweep point; test jobs only the main setting, at the same stored sides", () => {
    // demo: sweeps stored at 8x8 (one job serves the pool sweep), t sweep's other t at 1x1
    const demo = paperPlan(sweeps, 8, [10, 90, 150, 500]);
    assert.deepEqual(studyJobs(demo, 13), [
      { blocks: [3, 4, 6, 7, 9, 11, 12], timesteps: [90, 150], pool: 8 },
      { blocks: [7], timesteps: [10, 500], pool: 1 },
    ]);
    assert.deepEqual(studyTestJobs(demo, 13), [{ blocks: [9], timesteps: [90], pool: 8 }]);
    // full: sweeps at 1x1, pool sweep at 8x8 for blocks 24 and 19; the paper's block numbers are our own
    const full = paperPlan(sweeps, 1);
    const jobs = studyJobs(full, 37);
    assert.deepEqual(jobs[1], { blocks: [24, 19], timesteps: [90, 150], pool: 8 });
    assert.deepEqual(studyTestJobs(full, 37), [{ blocks: [24], timesteps: [90], pool: 1 }, { blocks: [24], timesteps: [90], pool: 8 }]);
  });
  it("linearRecipe is the authors' recipe (SGD, step 7 x 0.1, 28 epochs) at the rate asked for", () => {
    const base = linearRecipe(3);
    assert.deepEqual(base.optimizer, { kind: "sgd", lr: 0.01, momentum: 0, weightDecay: 0 });
    assert.deepEqual(base.schedule, { stepEpochs: 7, gamma: 0.1 });
    assert.equal(base.epochs, 28);
    const r = linearRecipe(3, 0.1);
    assert.equal(r.optimizer.lr, 0.1);
    assert.deepEqual({ ...r, optimizer: { ...r.optimizer, lr: 0.01 } }, base);
    assert.throws(() => linearRecipe(0, 0), /learning rate 0 must be positive/);
  });
  it("DIFFPROBE_SUBSET: N images per class and split, unset = all, anything else a clear error", () => {
    assert.equal(subsetFromEnv({}), null);
    assert.equal(subsetFromEnv({ DIFFPROBE_SUBSET: "" }), null);
    assert.equal(subsetFromEnv({ DIFFPROBE_SUBSET: " 50 " }), 50);
    for (const bad of ["0", "-3", "2.5", "ten"]) assert.throws(() => subsetFromEnv({ DIFFPROBE_SUBSET: bad }), /DIFFPROBE_SUBSET=.*expected a positive integer/);
  });
  it("demo images carry their count in the store's dataset name (smoke and demo sets cannot collide)", () => {
    const a = fashionMnistFirst("test", 12);
    const b = fashionMnistSource("test", 12);
    assert.equal(a.dataset, "fashion-mnist-first12");
    assert.deepEqual(a.ids, b.ids);
    assert.deepEqual([...a.labels!], [...b.labels!]);
    assert.notEqual(fashionMnistFirst("test", 13).dataset, a.dataset);
    assert.throws(() => fashionMnistFirst("test", 0), /image count 0/);
  });
});

describe("experiments: synthetic ImageNet tree and official-format checkpoint", function () {
  this.timeout(60000);
  let dir: string;
  before(() => (dir = tempDir("synth-tree")));
  after(() => removeTempDir(dir));

  for (const layout of ["folders", "kaggle"] as const) {
    it(`lib/data reads the tree (val ${layout}): classes, splits, labels from the folders`, async () => {
      const root = path.join(dir, layout);
      const wnids = await writeSyntheticImagenet(root, { numClasses: 3, trainPerClass: 4, valPerClass: 2, valLayout: layout, seed: 1 });
      const ds = await loadImagenet(root);
      assert.deepEqual(ds.classIds, wnids);
      assert.equal(ds.classes[1], "synthetic class 1");
      assert.equal(ds.splits.train.length, 12);
      assert.equal(ds.splits.val.length, 6);
      for (const s of ds.splits.train) assert.equal(path.basename(path.dirname(s.file)), wnids[s.label]);
      // val labels: in the folder layout from the folder; in the Kaggle layout from the csv written beside it
      const byLabel = [0, 1, 2].map((c) => ds.splits.val.filter((s) => s.label === c).length);
      assert.deepEqual(byLabel, [2, 2, 2]);
    });
  }
  it("refuses a non-empty folder and a class id that is not a wnid", async () => {
    await assert.rejects(writeSyntheticImagenet(path.join(dir, "folders"), { trainPerClass: 1, valPerClass: 1 }), /not empty/);
    await assert.rejects(writeSyntheticImagenet(path.join(dir, "bad"), { wnids: ["n1", "n01440764"], trainPerClass: 1, valPerClass: 1 }), /"n1" is not a WordNet id/);
  });
  it("the checkpoint reads back through the torch zip loader with guided-diffusion's names, shapes and values", async () => {
    const file = path.join(dir, "tiny.pt");
    await writeRandomCheckpoint(file, TINY_ADM_FLAGS, 5);
    const sd = await loadStateDict(file);
    const specs = parameterSpecs(createUNetConfig(TINY_ADM_FLAGS));
    assert.deepEqual([...sd.keys()].sort(), specs.map((s) => s.name).sort());
    assert.ok(sd.has("input_blocks.0.0.weight") && sd.has("out.2.weight"));
    const k = specs.findIndex((s) => s.name === "middle_block.1.qkv.weight");
    assert.deepEqual(sd.get(specs[k].name)!.shape, specs[k].shape);
    assert.deepEqual(await sd.get(specs[k].name)!.readFloat32(), randomParam(specs[k], 5, k));
  });
});
