/**
 * NABirds (terms of use required; download by hand from the Cornell Lab, extract nabirds.tar.gz):
 *
 *   <root>/images.txt, image_class_labels.txt, train_test_split.txt, classes.txt   (CUB format, ids are UUIDs)
 *   <root>/images/<4-digit class>/<uuid without dashes>.jpg
 * classes.txt lists the whole hierarchy (1011 ids, e.g. "0 Birds"); only the 555 leaf ids that have images
 * are classes. Their ids are sparse: we map the ids that have images, sorted numerically, to 0..554 (the common
 * practice). Train 23929, test 24633.
 */
import { readCubStyle } from "./cub";
import { Dataset, findRoot, Sample } from "./types";

const TITLE = "NABirds";
export const NABIRDS_LAYOUT = "the extracted nabirds.tar.gz (login and terms required): <root>/images.txt, image_class_labels.txt, train_test_split.txt, classes.txt, images/";

export async function loadNabirds(root: string): Promise<Dataset> {
  const base = findRoot(TITLE, root, "images.txt", ["nabirds"], NABIRDS_LAYOUT);
  const { images, classNames } = readCubStyle(TITLE, base, NABIRDS_LAYOUT);
  const used = [...new Set(images.map((i) => i.classId))].sort((a, b) => Number(a) - Number(b));
  const index = new Map(used.map((c, i) => [c, i]));
  const splits: Record<string, Sample[]> = { train: [], test: [] };
  for (const im of images) splits[im.train ? "train" : "test"].push({ file: im.file, label: index.get(im.classId) as number });
  return {
    name: "nabirds", title: TITLE, root: base,
    classes: used.map((c) => classNames.get(c) as string), classIds: used, splits, trainSplit: "train", testSplit: "test",
    notes: [`${used.length} classes: the sparse class ids that have images, sorted numerically, mapped to 0..${used.length - 1}`],
  };
}
