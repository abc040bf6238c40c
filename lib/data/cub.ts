/**
 * CUB-200-2011 (CUB_200_2011.tgz) and the files it shares in format with NABirds:
 *
 *   <root>/images.txt              "<image id> <relative path under images/>"
 *   <root>/image_class_labels.txt  "<image id> <class id>"
 *   <root>/train_test_split.txt    "<image id> <1 = train, 0 = test>"
 *   <root>/classes.txt             "<class id> <class name>"
 *   <root>/images/...
 * `<root>` may be the CUB_200_2011 folder or its parent. CUB class ids are 1..200 -> labels 0..199;
 * names drop the "001." prefix and use spaces ("Black footed Albatross"). Train 5994, test 5794.
 */
import * as path from "path";
import { Dataset, DatasetError, findFile, findRoot, readKeyValue, Sample } from "./types";

const TITLE = "CUB-200-2011";
export const CUB_LAYOUT = "the extracted CUB_200_2011.tgz: <root>/images.txt, image_class_labels.txt, train_test_split.txt, classes.txt, images/";

/** The four CUB-style annotation files, joined on image id. */
export interface CubStyle {
  /** Per image id, in images.txt order: relative path, class id (string), is training. */
  images: { id: string; file: string; classId: string; train: boolean }[];
  /** Class id -> name, in classes.txt order. */
  classNames: Map<string, string>;
}

export function readCubStyle(title: string, base: string, layout: string): CubStyle {
  const f = (name: string) => findFile(title, base, [name], layout);
  const imagesFile = f("images.txt");
  const labelsFile = f("image_class_labels.txt");
  const splitFile = f("train_test_split.txt");
  const classesFile = f("classes.txt");
  const labels = new Map(readKeyValue(labelsFile).map((kv) => [kv.key, kv.value]));
  const split = new Map(readKeyValue(splitFile).map((kv) => [kv.key, kv.value]));
  const classNames = new Map(readKeyValue(classesFile).map((kv) => [kv.key, kv.value]));
  const images = readKeyValue(imagesFile).map(({ key, value, n }) => {
    const classId = labels.get(key);
    if (classId === undefined) throw new DatasetError(`${imagesFile}:${n}: image ${key} has no line in ${labelsFile}`);
    const t = split.get(key);
    if (t !== "0" && t !== "1") throw new DatasetError(`${imagesFile}:${n}: image ${key} has ${t === undefined ? "no line" : `"${t}"`} in ${splitFile} (expected 0 or 1)`);
    if (!classNames.has(classId)) throw new DatasetError(`${labelsFile}: class ${classId} of image ${key} is not in ${classesFile}`);
    return { id: key, file: path.join(base, "images", value), classId, train: t === "1" };
  });
  return { images, classNames };
}

export async function loadCub(root: string): Promise<Dataset> {
  const base = findRoot(TITLE, root, "images.txt", ["CUB_200_2011"], CUB_LAYOUT);
  const { images, classNames } = readCubStyle(TITLE, base, CUB_LAYOUT);
  const classIds = [...classNames.keys()].sort((a, b) => Number(a) - Number(b));
  const index = new Map(classIds.map((c, i) => [c, i]));
  const raw = classIds.map((c) => classNames.get(c) as string);
  const splits: Record<string, Sample[]> = { train: [], test: [] };
  for (const im of images) splits[im.train ? "train" : "test"].push({ file: im.file, label: index.get(im.classId) as number });
  return {
    name: "cub", title: TITLE, root: base,
    classes: raw.map((n) => n.replace(/^\d+\./, "").replace(/_/g, " ")),
    classIds: raw, splits, trainSplit: "train", testSplit: "test",
    notes: ["official train/test split (train_test_split.txt); whole images, bounding boxes not used"],
  };
}
