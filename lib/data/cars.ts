/**
 * Stanford Cars (196 classes). The original archives (car_devkit.tgz, cars_train.tgz, cars_test.tgz,
 * cars_test_annos_withlabels.mat) are no longer served by ai.stanford.edu; place them by hand:
 *
 *   <root>/devkit/cars_meta.mat                     class_names: 1x196 cell of strings
 *   <root>/devkit/cars_train_annos.mat              annotations: struct array (bbox_x1, bbox_y1, bbox_x2, bbox_y2, class, fname)
 *   <root>/cars_test_annos_withlabels.mat           the same for the test set, with class (also looked for in devkit/)
 *   <root>/cars_train/<fname>, <root>/cars_test/<fname>   (also cars_train/cars_train/, as some mirrors nest them)
 * `<root>` may be the stanford_cars folder or its parent. Labels are `class - 1`. Train 8144, test 8041.
 */
import * as fs from "fs";
import * as path from "path";
import { matScalar, matString, matStrings, matStructs, matVar, readMat } from "./mat";
import { Dataset, DatasetError, findFile, findRoot, Sample } from "./types";

const TITLE = "Stanford Cars";
export const CARS_LAYOUT =
  "<root>/devkit/{cars_meta.mat,cars_train_annos.mat} (car_devkit.tgz), <root>/cars_test_annos_withlabels.mat, " +
  "<root>/cars_train/ and <root>/cars_test/ (cars_train.tgz, cars_test.tgz)";

function imageDir(base: string, name: string): string {
  const nested = path.join(base, name, name);
  return fs.existsSync(nested) ? nested : path.join(base, name);
}

async function readAnnotations(file: string, images: string, numClasses: number): Promise<Sample[]> {
  const vars = await readMat(file);
  const annos = matStructs(matVar(vars, "annotations", file), `${file}: annotations`, ["fname"]);
  return annos.map((a, i) => {
    const what = `${file}: annotations(${i + 1})`;
    if (!a.class) throw new DatasetError(`${what} has no "class" field: the test annotations must be cars_test_annos_withlabels.mat`);
    const cls = matScalar(a.class, `${what}.class`);
    if (!(cls >= 1 && cls <= numClasses)) throw new DatasetError(`${what}.class = ${cls}, outside 1..${numClasses}`);
    return { file: path.join(images, matString(a.fname, `${what}.fname`)), label: cls - 1 };
  });
}

export async function loadCars(root: string): Promise<Dataset> {
  const base = findRoot(TITLE, root, path.join("devkit", "cars_meta.mat"), ["stanford_cars", "stanford-cars", "cars"], CARS_LAYOUT);
  const metaFile = path.join(base, "devkit", "cars_meta.mat");
  const classes = matStrings(matVar(await readMat(metaFile), "class_names", metaFile), `${metaFile}: class_names`);
  const trainFile = findFile(TITLE, base, ["devkit/cars_train_annos.mat", "cars_train_annos.mat"], CARS_LAYOUT);
  const testFile = findFile(TITLE, base, ["cars_test_annos_withlabels.mat", "devkit/cars_test_annos_withlabels.mat"], CARS_LAYOUT + " (the test labels: cars_test_annos_withlabels.mat, not cars_test_annos.mat)");
  const splits = {
    train: await readAnnotations(trainFile, imageDir(base, "cars_train"), classes.length),
    test: await readAnnotations(testFile, imageDir(base, "cars_test"), classes.length),
  };
  return {
    name: "cars", title: TITLE, root: base, classes, classIds: classes, splits, trainSplit: "train", testSplit: "test",
    notes: ["labels are the devkit's class - 1; bounding boxes are not used (whole images, as the paper)"],
  };
}
