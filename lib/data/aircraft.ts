/**
 * FGVC-Aircraft 2013b (fgvc-aircraft-2013b.tar.gz):
 *
 *   <root>/data/variants.txt                     100 variant names, one per line (class order)
 *   <root>/data/images_variant_<split>.txt       "<image id> <variant name>" for train, val, trainval, test
 *   <root>/data/images/<image id>.jpg
 * `<root>` may be the fgvc-aircraft-2013b folder or its parent. Variant names contain spaces and slashes
 * ("Cessna 172", "F-16A/B"): everything after the first space is the name. The images keep their 20-pixel
 * copyright banner (as torchvision does). The paper's protocol: train on trainval (6667), test on test (3333).
 */
import * as path from "path";
import { Dataset, DatasetError, findFile, findRoot, readKeyValue, readLines, Sample } from "./types";

const TITLE = "FGVC-Aircraft";
export const AIRCRAFT_LAYOUT = "the extracted fgvc-aircraft-2013b.tar.gz: <root>/data/variants.txt, data/images_variant_{train,val,trainval,test}.txt, data/images/";

export type AircraftLevel = "variant" | "family" | "manufacturer";

export async function loadAircraft(root: string, opts: { level?: AircraftLevel } = {}): Promise<Dataset> {
  const level = opts.level ?? "variant";
  const base = findRoot(TITLE, root, path.join("data", `${level === "family" ? "families" : level + "s"}.txt`), ["fgvc-aircraft-2013b"], AIRCRAFT_LAYOUT);
  const data = path.join(base, "data");
  const classesFile = path.join(data, `${level === "family" ? "families" : level + "s"}.txt`);
  const classes = readLines(classesFile).map((l) => l.line);
  const index = new Map(classes.map((c, i) => [c, i]));
  const splits: Record<string, Sample[]> = {};
  for (const split of ["train", "val", "trainval", "test"]) {
    const file = findFile(TITLE, data, [`images_${level}_${split}.txt`], AIRCRAFT_LAYOUT);
    splits[split] = readKeyValue(file).map(({ key, value, n }) => {
      const label = index.get(value);
      if (label === undefined) throw new DatasetError(`${file}:${n}: ${JSON.stringify(value)} is not listed in ${classesFile}`);
      return { file: path.join(data, "images", `${key}.jpg`), label };
    });
  }
  return {
    name: "aircraft", title: TITLE, root: base, classes, classIds: classes, splits, trainSplit: "trainval", testSplit: "test",
    notes: [`${level} level (${classes.length} classes); train on trainval, test on test`],
  };
}
