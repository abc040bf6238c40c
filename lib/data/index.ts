/**
 * The dataset registry: `loadDataset("cub", root)` for every dataset of the paper, class subsets
 * (ImageNet-50: a class-list file and N images per class, seeded), and a check that listed files exist.
 */
import * as fs from "fs";
import { AIRCRAFT_LAYOUT, AircraftLevel, loadAircraft } from "./aircraft";
import { CARS_LAYOUT, loadCars } from "./cars";
import { CUB_LAYOUT, loadCub } from "./cub";
import { DOGS_LAYOUT, loadDogs } from "./dogs";
import { FLOWERS_LAYOUT, loadFlowers } from "./flowers";
import { IMAGENET_LAYOUT, loadImagenet } from "./imagenet";
import { loadNabirds, NABIRDS_LAYOUT } from "./nabirds";
import { makeRng } from "../rng";
import { Dataset, DatasetError, readLines, Sample } from "./types";

export * from "./types";
export * from "./image";
export * from "./resample";
export * from "./preprocess";
export * from "./augment";
export { makeRng } from "../rng";
export type { SeededRandom } from "../rng";
export { readMat, parseMat, MatValue, MatError } from "./mat";

export type DatasetName = "imagenet" | "aircraft" | "cars" | "cub" | "dogs" | "flowers" | "nabirds";

export interface DatasetInfo {
  name: DatasetName;
  title: string;
  numClasses: number;
  /** Sizes of the paper's train and test splits. */
  trainSize: number;
  testSize: number;
  /** What the root folder must hold. */
  layout: string;
  aliases: string[];
}

export const DATASETS: Record<DatasetName, DatasetInfo> = {
  imagenet: { name: "imagenet", title: "ImageNet ILSVRC-2012", numClasses: 1000, trainSize: 1281167, testSize: 50000, layout: IMAGENET_LAYOUT, aliases: ["imagenet-1k", "ilsvrc2012", "in1k"] },
  aircraft: { name: "aircraft", title: "FGVC-Aircraft", numClasses: 100, trainSize: 6667, testSize: 3333, layout: AIRCRAFT_LAYOUT, aliases: ["fgvc-aircraft", "fgvc_aircraft"] },
  cars: { name: "cars", title: "Stanford Cars", numClasses: 196, trainSize: 8144, testSize: 8041, layout: CARS_LAYOUT, aliases: ["stanford-cars", "stanford_cars"] },
  cub: { name: "cub", title: "CUB-200-2011", numClasses: 200, trainSize: 5994, testSize: 5794, layout: CUB_LAYOUT, aliases: ["cub-200-2011", "cub200", "cub_200_2011"] },
  dogs: { name: "dogs", title: "Stanford Dogs", numClasses: 120, trainSize: 12000, testSize: 8580, layout: DOGS_LAYOUT, aliases: ["stanford-dogs", "stanford_dogs"] },
  flowers: { name: "flowers", title: "Oxford Flowers-102", numClasses: 102, trainSize: 2040, testSize: 6149, layout: FLOWERS_LAYOUT, aliases: ["flowers102", "flowers-102", "oxford-flowers"] },
  nabirds: { name: "nabirds", title: "NABirds", numClasses: 555, trainSize: 23929, testSize: 24633, layout: NABIRDS_LAYOUT, aliases: ["na-birds"] },
};

/** The registry name for a name or alias (case-insensitive), or an error listing the known names. */
export function datasetName(name: string): DatasetName {
  const k = name.toLowerCase();
  for (const info of Object.values(DATASETS)) if (info.name === k || info.aliases.includes(k)) return info.name;
  throw new DatasetError(`unknown dataset "${name}"; known: ${Object.keys(DATASETS).join(", ")}`);
}

export interface LoadOptions {
  /** FGVC-Aircraft annotation level (default "variant", the paper's 100 classes). */
  aircraftLevel?: AircraftLevel;
}

/** Read a dataset's splits and classes from its own files under `root`. */
export async function loadDataset(name: string, root: string, opts: LoadOptions = {}): Promise<Dataset> {
  switch (datasetName(name)) {
    case "imagenet": return loadImagenet(root);
    case "aircraft": return loadAircraft(root, { level: opts.aircraftLevel });
    case "cars": return loadCars(root);
    case "cub": return loadCub(root);
    case "dogs": return loadDogs(root);
    case "flowers": return loadFlowers(root);
    case "nabirds": return loadNabirds(root);
  }
}

/** Class ids of a class-list file: one id per line ("n01440764"), `#` comments and blank lines ignored. */
export function readClassList(file: string): string[] {
  if (!fs.existsSync(file)) throw new DatasetError(`class-list file ${file} not found (one class id per line, e.g. a WordNet id)`);
  return readLines(file, true).map((l) => l.line.split(/\s+/)[0]);
}

export interface SubsetOptions {
  /** Keep these classes (ids as in `classIds`, or names); default all. */
  classes?: string[];
  /** At most this many images per class in each split (a number for all splits, or per split name). */
  perClass?: number | Record<string, number>;
  /** Seed of the per-class selection (default 0). */
  seed?: number;
  /** Name of the subset (default `<name>-<K>`). */
  name?: string;
}

/**
 * A class/size subset: the kept classes are relabelled 0..K-1 in the dataset's class order (so the subset's
 * order does not depend on the order of the list), and `perClass` images are drawn per class and split with a
 * seeded shuffle, then kept in the split's original order. The same seed gives the same subset.
 */
export function subsetDataset(ds: Dataset, opts: SubsetOptions): Dataset {
  let keep = ds.classIds.map((_, i) => i);
  if (opts.classes) {
    const byId = new Map(ds.classIds.map((c, i) => [c, i]));
    const byName = new Map(ds.classes.map((c, i) => [c, i]));
    const want = new Set<number>();
    for (const c of opts.classes) {
      const i = byId.get(c) ?? byName.get(c);
      if (i === undefined) throw new DatasetError(`${ds.title}: class "${c}" of the subset is not a class of the dataset`);
      want.add(i);
    }
    keep = keep.filter((i) => want.has(i));
  }
  const relabel = new Map(keep.map((old, i) => [old, i]));
  const splits: Record<string, Sample[]> = {};
  for (const [split, samples] of Object.entries(ds.splits)) {
    const limit = typeof opts.perClass === "number" ? opts.perClass : opts.perClass?.[split];
    const byClass = new Map<number, number[]>();
    samples.forEach((s, idx) => {
      if (!relabel.has(s.label)) return;
      const list = byClass.get(s.label) ?? [];
      list.push(idx);
      byClass.set(s.label, list);
    });
    const chosen: number[] = [];
    for (const old of keep) {
      const idxs = byClass.get(old) ?? [];
      if (limit === undefined || idxs.length <= limit) chosen.push(...idxs);
      else {
        // One generator per (seed, split, class): adding a class or split does not change the others.
        const rng = makeRng(((opts.seed ?? 0) * 1000003 + old) * 31 + hash(split));
        chosen.push(...rng.shuffle(idxs.slice()).slice(0, limit));
      }
    }
    chosen.sort((a, b) => a - b);
    splits[split] = chosen.map((i) => ({ file: samples[i].file, label: relabel.get(samples[i].label) as number }));
  }
  const per = opts.perClass === undefined ? "" : `, at most ${JSON.stringify(opts.perClass)} images per class (seed ${opts.seed ?? 0})`;
  return {
    ...ds,
    name: opts.name ?? `${ds.name}-${keep.length}`,
    classes: keep.map((i) => ds.classes[i]),
    classIds: keep.map((i) => ds.classIds[i]),
    splits,
    notes: [...ds.notes, `subset of ${keep.length} classes (relabelled 0..${keep.length - 1} in the dataset's order)${per}`],
  };
}

function hash(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (Math.imul(h, 31) + s.charCodeAt(i)) | 0;
  return h & 0xffff;
}

/** Files of a split (default: all splits) that do not exist; `limit` stops after that many. */
export async function missingFiles(ds: Dataset, split?: string, limit = Infinity): Promise<string[]> {
  const splits = split ? [split] : Object.keys(ds.splits);
  const missing: string[] = [];
  const seen = new Set<string>();
  for (const s of splits) {
    if (!ds.splits[s]) throw new DatasetError(`${ds.title}: no split "${s}" (has: ${Object.keys(ds.splits).join(", ")})`);
    for (const { file } of ds.splits[s]) {
      if (seen.has(file)) continue;
      seen.add(file);
      try {
        await fs.promises.access(file);
      } catch {
        missing.push(file);
        if (missing.length >= limit) return missing;
      }
    }
  }
  return missing;
}
