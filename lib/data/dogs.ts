/**
 * Stanford Dogs (images.tar, lists.tar from vision.stanford.edu/aditya86/ImageNetDogs):
 *
 *   <root>/Images/<wnid>-<breed>/<wnid>_<n>.jpg
 *   <root>/train_list.mat, <root>/test_list.mat   file_list (Nx1 cell, paths under Images/), labels (Nx1, 1..120)
 * `<root>` may be the folder or its parent "stanford_dogs". Labels are `labels - 1`; class names come from the
 * folder names ("n02085620-Chihuahua" -> "Chihuahua"). Train 12000, test 8580.
 */
import * as path from "path";
import { matNumbers, matStrings, matVar, readMat } from "./mat";
import { Dataset, DatasetError, findFile, findRoot, Sample } from "./types";

const TITLE = "Stanford Dogs";
export const DOGS_LAYOUT = "<root>/Images/ (images.tar) and <root>/{train_list.mat,test_list.mat} (lists.tar)";

export async function loadDogs(root: string): Promise<Dataset> {
  const base = findRoot(TITLE, root, "train_list.mat", ["stanford_dogs", "stanford-dogs"], DOGS_LAYOUT);
  const imagesDir = path.join(base, "Images");
  const folderOf: string[] = [];
  const splits: Record<string, Sample[]> = {};
  for (const split of ["train", "test"]) {
    const file = findFile(TITLE, base, [`${split}_list.mat`], DOGS_LAYOUT);
    const vars = await readMat(file);
    const files = matStrings(matVar(vars, "file_list", file), `${file}: file_list`);
    const labels = matNumbers(matVar(vars, "labels", file), `${file}: labels`);
    if (files.length !== labels.length) throw new DatasetError(`${file}: ${files.length} files but ${labels.length} labels`);
    splits[split] = files.map((f, i) => {
      const label = labels[i] - 1;
      if (!(Number.isInteger(label) && label >= 0)) throw new DatasetError(`${file}: labels(${i + 1}) = ${labels[i]}, expected 1..120`);
      const folder = f.split("/")[0];
      if (folderOf[label] === undefined) folderOf[label] = folder;
      else if (folderOf[label] !== folder) throw new DatasetError(`${file}: label ${labels[i]} is used by both ${folderOf[label]} and ${folder}`);
      return { file: path.join(imagesDir, f), label };
    });
  }
  for (let i = 0; i < folderOf.length; i++) if (folderOf[i] === undefined) throw new DatasetError(`${TITLE}: label ${i + 1} has no images in the lists`);
  return {
    name: "dogs", title: TITLE, root: base,
    classes: folderOf.map((f) => f.replace(/^n\d+-/, "").replace(/_/g, " ")),
    classIds: folderOf, splits, trainSplit: "train", testSplit: "test",
    notes: ["official lists (train_list.mat 100 per class, test_list.mat); whole images, boxes not used"],
  };
}
