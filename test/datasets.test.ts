import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { countPerClass, Dataset, DATASETS, datasetName, loadDataset, missingFiles, preprocessFiles, readClassList, subsetDataset } from "../lib/data";
import { tempDir, removeTempDir } from "./helpers/tmp";

const FIX = path.join(__dirname, "fixtures", "datasets");

/** Split -> [basename, label] pairs, for compact assertions. */
function pairs(ds: Dataset, split: string): [string, number][] {
  return ds.splits[split].map((s) => [path.basename(s.file), s.label]);
}

/** Copy a fixture tree into a temp dir (to delete files from it). */
function copyTree(name: string): string {
  const tmp = tempDir("ds");
  fs.cpSync(path.join(FIX, name), path.join(tmp, name), { recursive: true });
  return tmp;
}

describe("datasets", function () {
  describe("ImageNet", function () {
    it("train from class folders, flat val labelled by the devkit ground truth via meta.mat, torchvision class order", async function () {
      const ds = await loadDataset("imagenet", path.join(FIX, "imagenet"));
      // Sorted wnids, not the ILSVRC2012_ID order (n02119789 has ID 1).
      assert.deepEqual(ds.classIds, ["n01440764", "n02100735", "n02119789", "n04592741"]);
      assert.deepEqual(ds.classes, ["tench, Tinca tinca", "English setter", "kit fox, Vulpes macrotis", "wing"]);
      assert.deepEqual(countPerClass(ds.splits.train, 4), [4, 3, 5, 6]); // .DS_Store ignored
      assert.ok(ds.splits.train.every((s) => s.file.includes(path.join("train", ds.classIds[s.label]))));
      // Ground truth 3 1 1 4 2 3 4 1 2 4 (ILSVRC2012_IDs): 3 = n01440764 (0), 1 = n02119789 (2), 4 = n04592741 (3), 2 = n02100735 (1).
      assert.deepEqual(ds.splits.val.map((s) => s.label), [0, 2, 2, 3, 1, 0, 3, 2, 1, 3]);
      assert.equal(path.basename(ds.splits.val[9].file), "ILSVRC2012_val_00000010.JPEG");
      assert.deepEqual([ds.trainSplit, ds.testSplit], ["train", "val"]);
    });

    it("val in per-class folders, names from LOC_synset_mapping.txt", async function () {
      const ds = await loadDataset("ilsvrc2012", path.join(FIX, "imagenet-valfolders"));
      assert.deepEqual(ds.classes[2], "kit fox, Vulpes macrotis");
      assert.equal(ds.splits.val.length, 8);
      assert.deepEqual(countPerClass(ds.splits.val, 4), [2, 2, 2, 2]);
      assert.ok(ds.splits.val.every((s) => path.basename(s.file).includes(ds.classIds[s.label])));
    });

    it("ImageNet-50-style subset: class-list file + N per class, seeded and reproducible", async function () {
      const ds = await loadDataset("imagenet", path.join(FIX, "imagenet"));
      const classes = readClassList(path.join(FIX, "imagenet", "imagenet50-classes.txt"));
      assert.deepEqual(classes, ["n04592741", "n01440764"]);
      const sub = subsetDataset(ds, { classes, perClass: { train: 2 }, seed: 3, name: "imagenet-2" });
      assert.equal(sub.name, "imagenet-2");
      assert.deepEqual(sub.classIds, ["n01440764", "n04592741"]); // dataset order, not list order
      assert.deepEqual(countPerClass(sub.splits.train, 2), [2, 2]);
      assert.deepEqual(countPerClass(sub.splits.val, 2), [2, 3]); // no limit for val
      assert.ok(sub.splits.train.every((s) => s.file.includes(sub.classIds[s.label])));
      const again = subsetDataset(ds, { classes, perClass: { train: 2 }, seed: 3 });
      assert.deepEqual(again.splits.train, sub.splits.train);
      const seeds = new Set([0, 1, 2, 3, 4, 5, 6, 7].map((seed) => JSON.stringify(subsetDataset(ds, { classes, perClass: 2, seed }).splits.train)));
      assert.ok(seeds.size > 1, "different seeds should give different subsets");
      assert.throws(() => subsetDataset(ds, { classes: ["n99999999"] }), /class "n99999999" of the subset is not a class/);
    });

    it("says which devkit file is missing", async function () {
      const tmp = copyTree("imagenet");
      try {
        fs.rmSync(path.join(tmp, "imagenet", "ILSVRC2012_devkit_t12"), { recursive: true });
        await assert.rejects(loadDataset("imagenet", path.join(tmp, "imagenet")), /ILSVRC2012_validation_ground_truth\.txt not found; extract ILSVRC2012_devkit_t12\.tar\.gz/);
      } finally {
        removeTempDir(tmp);
      }
    });
  });

  it("FGVC-Aircraft: variants with spaces and slashes, train/val/trainval/test, protocol trainval -> test", async function () {
    for (const root of [path.join(FIX, "fgvc-aircraft-2013b"), FIX]) {
      const ds = await loadDataset("fgvc-aircraft", root);
      assert.deepEqual(ds.classes, ["707-320", "A300B4", "Cessna 172", "F-16A/B"]);
      assert.deepEqual(pairs(ds, "train"), [["1025794.jpg", 0], ["1340192.jpg", 2], ["0056978.jpg", 3]]);
      assert.deepEqual([ds.splits.val.length, ds.splits.trainval.length, ds.splits.test.length], [2, 5, 4]);
      assert.deepEqual(ds.splits.test.map((s) => s.label), [3, 0, 1, 2]);
      assert.deepEqual([ds.trainSplit, ds.testSplit], ["trainval", "test"]);
      assert.equal(ds.splits.test[0].file, path.join(FIX, "fgvc-aircraft-2013b", "data", "images", "1155335.jpg"));
    }
  });

  it("Stanford Cars: struct-array annotations (.mat), class - 1, test labels from cars_test_annos_withlabels.mat", async function () {
    const ds = await loadDataset("cars", path.join(FIX, "stanford_cars"));
    assert.deepEqual(ds.classes, ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Audi R8 Coupe 2012"]);
    assert.deepEqual(pairs(ds, "train"), [["00001.jpg", 2], ["00002.jpg", 0], ["00003.jpg", 1], ["00004.jpg", 2], ["00005.jpg", 2]]);
    assert.deepEqual(pairs(ds, "test"), [["00001.jpg", 1], ["00002.jpg", 0], ["00003.jpg", 2]]);
    assert.ok(ds.splits.test[0].file.endsWith(path.join("cars_test", "00001.jpg")));
    assert.deepEqual(await missingFiles(ds), []);
  });

  it("CUB-200-2011: joins images/labels/split files; names without the number prefix", async function () {
    const ds = await loadDataset("cub", FIX); // the parent of CUB_200_2011 works too
    assert.deepEqual(ds.classes, ["Black footed Albatross", "Laysan Albatross", "Sooty Albatross"]);
    assert.deepEqual(ds.classIds[0], "001.Black_footed_Albatross");
    assert.deepEqual(ds.splits.train.map((s) => s.label), [0, 1, 2, 2]);
    assert.deepEqual(ds.splits.test.map((s) => s.label), [0, 1, 2]);
    assert.equal(path.basename(ds.splits.train[0].file), "Black_Footed_Albatross_0009_34.jpg");
  });

  it("CUB end to end: load -> preprocess, the truncated image is skipped and reported", async function () {
    const ds = await loadDataset("cub", path.join(FIX, "CUB_200_2011"));
    const files = [...ds.splits.train, ...ds.splits.test].map((s) => s.file);
    const report = await preprocessFiles(files, 16, { warn: () => undefined });
    assert.equal(report.ok.length, 6);
    assert.deepEqual(report.skipped.map((s) => path.basename(s.file)), ["Sooty_Albatross_0033_796086.jpg"]);
    assert.ok(report.ok.every((o) => o.value.width === 16 && o.value.height === 16));
  });

  it("Stanford Dogs: file_list/labels cell arrays, names from the folders", async function () {
    const ds = await loadDataset("dogs", path.join(FIX, "stanford_dogs"));
    assert.deepEqual(ds.classes, ["Chihuahua", "Japanese spaniel", "Shih-Tzu"]);
    assert.deepEqual(ds.classIds[1], "n02085782-Japanese_spaniel");
    assert.deepEqual(pairs(ds, "train"), [["n02085620_5927.jpg", 0], ["n02085620_4441.jpg", 0], ["n02085782_626.jpg", 1], ["n02086240_6793.jpg", 2]]);
    assert.deepEqual(ds.splits.test.map((s) => s.label), [0, 1, 2, 2]);
    assert.deepEqual(await missingFiles(ds), []);
  });

  it("Flowers-102: imagelabels.mat + setid.mat; trainval = trnid + valid", async function () {
    const ds = await loadDataset("flowers102", path.join(FIX, "flowers-102"));
    assert.deepEqual(ds.classes, ["1", "2", "3"]);
    assert.deepEqual(pairs(ds, "train"), [["image_00001.jpg", 0], ["image_00003.jpg", 1], ["image_00004.jpg", 2]]);
    assert.deepEqual(pairs(ds, "val"), [["image_00002.jpg", 0], ["image_00005.jpg", 1], ["image_00006.jpg", 2]]);
    assert.equal(ds.splits.trainval.length, 6);
    assert.deepEqual(ds.splits.test.map((s) => s.label), [0, 1, 2, 2, 0, 1]);
    assert.deepEqual([ds.trainSplit, ds.testSplit], ["trainval", "test"]);
  });

  it("NABirds: sparse class ids with images mapped to 0..K-1 in numeric order", async function () {
    const ds = await loadDataset("nabirds", path.join(FIX, "nabirds"));
    assert.deepEqual(ds.classIds, ["295", "313", "817", "1000"]);
    assert.deepEqual(ds.classes, ["Oak Titmouse", "Common Loon", "Oak Titmouse (Juvenile)", "Mallard (Female/juvenile)"]);
    assert.deepEqual(ds.splits.train.map((s) => s.label), [3, 1, 0]);
    assert.deepEqual(ds.splits.test.map((s) => s.label), [2, 1, 3]);
    assert.equal(path.relative(FIX, ds.splits.test[0].file), path.join("nabirds", "images", "0817", "0000139e21dc4d0cbfe14cae3c85c829.jpg"));
  });

  it("errors name the missing file and what the root should hold", async function () {
    const empty = tempDir("ds-empty");
    try {
      await assert.rejects(loadDataset("cub", empty), (e: Error) => {
        assert.match(e.message, /^CUB-200-2011: .*images\.txt not found; expected the extracted CUB_200_2011\.tgz/);
        assert.ok(e.message.includes(path.join(empty, "images.txt")));
        return true;
      });
      await assert.rejects(loadDataset("cars", empty), /Stanford Cars: .*devkit\/cars_meta\.mat not found/);
      await assert.rejects(loadDataset("nabirds", empty), /NABirds: .*images\.txt not found; expected .*login and terms required/);
      await assert.rejects(loadDataset("imagenet", path.join(empty, "nope")), /ImageNet ILSVRC-2012: root folder .*nope does not exist/);
      await assert.rejects(loadDataset("mnist", empty), /unknown dataset "mnist"; known: imagenet, aircraft, cars, cub, dogs, flowers, nabirds/);
    } finally {
      removeTempDir(empty);
    }
    const tmp = copyTree("CUB_200_2011");
    try {
      fs.rmSync(path.join(tmp, "CUB_200_2011", "train_test_split.txt"));
      await assert.rejects(loadDataset("cub", tmp), /CUB_200_2011\/train_test_split\.txt not found/);
    } finally {
      removeTempDir(tmp);
    }
    const tmp2 = copyTree("stanford_cars");
    try {
      fs.rmSync(path.join(tmp2, "stanford_cars", "cars_train", "00002.jpg"));
      const ds = await loadDataset("cars", tmp2);
      assert.deepEqual((await missingFiles(ds, "train")).map((f) => path.basename(f)), ["00002.jpg"]);
    } finally {
      removeTempDir(tmp2);
    }
  });

  it("registry: names, aliases and the paper's split sizes", function () {
    assert.equal(datasetName("CUB-200-2011"), "cub");
    assert.equal(datasetName("Stanford_Cars"), "cars");
    assert.deepEqual(Object.values(DATASETS).map((d) => d.numClasses), [1000, 100, 196, 200, 120, 102, 555]);
  });
});
