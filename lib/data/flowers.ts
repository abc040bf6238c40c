/**
 * Oxford Flowers-102 (102flowers.tgz, imagelabels.mat, setid.mat from robots.ox.ac.uk/~vgg/data/flowers/102):
 *
 *   <root>/jpg/image_00001.jpg ... image_08189.jpg
 *   <root>/imagelabels.mat   labels: 1x8189, class 1..102 of image i
 *   <root>/setid.mat         trnid (1020), valid (1020), tstid (6149): 1-based image numbers
 * Splits: train, val, trainval (= trnid + valid, 2040) and test (6149). The paper and common practice
 * (e.g. the linear-probe protocols of CLIP/SimCLR) train on trainval and test on test.
 * The dataset ships no class names: we use "1".."102", or the names of an optional <root>/cat_to_name.json
 * ({"1": "pink primrose", ...}, a widely shared community file) when present.
 */
import * as fs from "fs";
import * as path from "path";
import { matNumbers, matVar, readMat } from "./mat";
import { Dataset, DatasetError, findFile, findRoot, Sample } from "./types";

const TITLE = "Oxford Flowers-102";
export const FLOWERS_LAYOUT = "<root>/jpg/ (102flowers.tgz), <root>/imagelabels.mat and <root>/setid.mat";

export async function loadFlowers(root: string): Promise<Dataset> {
  const base = findRoot(TITLE, root, "imagelabels.mat", ["flowers-102", "flowers102", "oxford-102-flowers"], FLOWERS_LAYOUT);
  const labelsFile = path.join(base, "imagelabels.mat");
  const setFile = findFile(TITLE, base, ["setid.mat"], FLOWERS_LAYOUT);
  const labels = matNumbers(matVar(await readMat(labelsFile), "labels", labelsFile), `${labelsFile}: labels`);
  const sets = await readMat(setFile);
  const numClasses = Math.max(...labels);
  const sample = (id: number, what: string): Sample => {
    if (!(Number.isInteger(id) && id >= 1 && id <= labels.length)) throw new DatasetError(`${setFile}: ${what} holds image ${id}, outside 1..${labels.length}`);
    return { file: path.join(base, "jpg", `image_${String(id).padStart(5, "0")}.jpg`), label: labels[id - 1] - 1 };
  };
  const read = (v: string) => matNumbers(matVar(sets, v, setFile), `${setFile}: ${v}`).map((id) => sample(id, v));
  const train = read("trnid");
  const val = read("valid");
  const test = read("tstid");
  let classes = Array.from({ length: numClasses }, (_, i) => String(i + 1));
  const namesFile = path.join(base, "cat_to_name.json");
  if (fs.existsSync(namesFile)) {
    const names = JSON.parse(fs.readFileSync(namesFile, "utf8")) as Record<string, string>;
    classes = classes.map((c) => names[c] ?? c);
  }
  return {
    name: "flowers", title: TITLE, root: base, classes, classIds: Array.from({ length: numClasses }, (_, i) => String(i + 1)),
    splits: { train, val, trainval: [...train, ...val], test }, trainSplit: "trainval", testSplit: "test",
    notes: ["train on trainval = trnid + valid (2040), test on tstid (6149)", "labels are imagelabels.mat's labels - 1"],
  };
}
