/**
 * Tiny synthetic trees in the real layouts of the six fine-grained datasets (FGVC-Aircraft, Stanford Cars,
 * CUB-200-2011, Stanford Dogs, Flowers-102, NABirds): real JPEG files written with sharp and the datasets'
 * own annotation files (text lists; MAT v5 files for Cars, Dogs and Flowers via ./mat-writer), so the
 * full-scale code path (loadDataset -> store -> heads) runs end to end in seconds (notebook 06 at smoke
 * scale, test/fine-grained-tree.test.ts).
 *
 * Class k's images are filled with a colour of its own (classColor) plus seeded noise, so a reader can check
 * from the pixels alone that a loader gave every file its right label.
 */
import * as fs from "fs";
import * as path from "path";
import sharp from "sharp";
import { Rng } from "../rng";
import { matCell, matChar, matDouble, matStruct, writeMat } from "./mat-writer";

export type FineGrainedName = "aircraft" | "cars" | "cub" | "dogs" | "flowers" | "nabirds";
export const FINE_GRAINED: readonly FineGrainedName[] = ["aircraft", "cars", "cub", "dogs", "flowers", "nabirds"];

export interface SyntheticTreeOptions {
  classes: number;
  /** Images per class in the training split (trainval where the dataset has one) and in the test split. */
  trainPerClass: number;
  testPerClass: number;
  /** Image width and height (not square by default, so centre cropping matters). */
  width?: number;
  height?: number;
  seed?: number;
}

export interface SyntheticTree {
  name: FineGrainedName;
  /** The root to hand to loadDataset (the parent of the dataset folder, as users usually give). */
  root: string;
  classes: number;
  train: number;
  test: number;
}

/** The fill colour of class k: well apart for up to ~10 classes. */
export function classColor(k: number): [number, number, number] {
  const hue = (k * 0.381966) % 1; // golden-ratio steps around the colour wheel
  const f = (n: number) => {
    const x = (n + hue * 6) % 6;
    return Math.round(255 * (0.15 + 0.7 * Math.max(0, Math.min(1, Math.abs(x - 3) - 1))));
  };
  return [f(0), f(4), f(2)];
}

/** The class whose colour is nearest to a mean RGB. */
export function nearestClass(rgb: [number, number, number], classes: number): number {
  let best = 0, dist = Infinity;
  for (let k = 0; k < classes; k++) {
    const c = classColor(k);
    const d = (c[0] - rgb[0]) ** 2 + (c[1] - rgb[1]) ** 2 + (c[2] - rgb[2]) ** 2;
    if (d < dist) [best, dist] = [k, d];
  }
  return best;
}

async function writeImage(file: string, k: number, w: number, h: number, rng: Rng): Promise<void> {
  const [r, g, b] = classColor(k);
  const px = Buffer.alloc(w * h * 3);
  for (let i = 0; i < w * h; i++) {
    const n = Math.round((rng.uniform() - 0.5) * 40);
    px[3 * i] = Math.max(0, Math.min(255, r + n));
    px[3 * i + 1] = Math.max(0, Math.min(255, g + n));
    px[3 * i + 2] = Math.max(0, Math.min(255, b + n));
  }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await sharp(px, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 92 }).toFile(file);
}

function writeLines(file: string, lines: string[]): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, lines.join("\n") + "\n");
}

/** One image per (class, index) of a split: [class, index within the class, is training]. */
function plan(o: SyntheticTreeOptions): { k: number; i: number; train: boolean }[] {
  const out: { k: number; i: number; train: boolean }[] = [];
  for (let k = 0; k < o.classes; k++) {
    for (let i = 0; i < o.trainPerClass; i++) out.push({ k, i, train: true });
    for (let i = 0; i < o.testPerClass; i++) out.push({ k, i: o.trainPerClass + i, train: false });
  }
  return out;
}

/**
 * Write a synthetic tree of `name` under `root` (created; an existing tree there is replaced). Returns the
 * root to give loadDataset and the split sizes it must find.
 */
export async function writeSyntheticTree(name: FineGrainedName, root: string, opts: SyntheticTreeOptions): Promise<SyntheticTree> {
  if (!(Number.isInteger(opts.classes) && opts.classes >= 2)) throw new Error(`synthetic ${name}: classes must be an integer >= 2, got ${opts.classes}`);
  if (!(opts.trainPerClass >= 2 && opts.testPerClass >= 1)) throw new Error(`synthetic ${name}: need at least 2 training and 1 test image per class`);
  const w = opts.width ?? 40, h = opts.height ?? 32;
  const rng = new Rng(opts.seed ?? 0, FINE_GRAINED.indexOf(name));
  const items = plan(opts);
  const img = (file: string, k: number) => writeImage(file, k, w, h, rng);
  const K = opts.classes;
  switch (name) {
    case "aircraft": {
      const data = path.join(root, "fgvc-aircraft-2013b", "data");
      const variants = Array.from({ length: K }, (_, k) => `Synthetic ${700 + k}${k % 2 ? "/B" : ""}`);
      writeLines(path.join(data, "variants.txt"), variants);
      const lists: Record<string, string[]> = { train: [], val: [], trainval: [], test: [] };
      for (const it of items) {
        const id = String(1000000 + it.k * 1000 + it.i);
        await img(path.join(data, "images", `${id}.jpg`), it.k);
        const line = `${id} ${variants[it.k]}`;
        if (it.train) {
          lists.trainval.push(line);
          lists[it.i % 2 === 0 ? "train" : "val"].push(line);
        } else lists.test.push(line);
      }
      for (const [s, lines] of Object.entries(lists)) writeLines(path.join(data, `images_variant_${s}.txt`), lines);
      break;
    }
    case "cars": {
      const base = path.join(root, "stanford_cars");
      const classNames = Array.from({ length: K }, (_, k) => `Synthetic Car ${k + 1} Sedan 2012`);
      fs.mkdirSync(path.join(base, "devkit"), { recursive: true });
      await writeMat(path.join(base, "devkit", "cars_meta.mat"), { class_names: matCell(classNames.map(matChar)) });
      const annos: Record<"train" | "test", Record<string, ReturnType<typeof matDouble> | ReturnType<typeof matChar>>[]> = { train: [], test: [] };
      let n = 0;
      for (const it of items) {
        const split = it.train ? "train" : "test";
        const fname = `${String(++n).padStart(5, "0")}.jpg`;
        await img(path.join(base, `cars_${split}`, fname), it.k);
        annos[split].push({ bbox_x1: matDouble([1]), bbox_y1: matDouble([1]), bbox_x2: matDouble([w]), bbox_y2: matDouble([h]), class: matDouble([it.k + 1]), fname: matChar(fname) });
      }
      const fields = ["bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname"];
      await writeMat(path.join(base, "devkit", "cars_train_annos.mat"), { annotations: matStruct(fields, annos.train) });
      await writeMat(path.join(base, "cars_test_annos_withlabels.mat"), { annotations: matStruct(fields, annos.test) });
      break;
    }
    case "cub":
    case "nabirds": {
      const base = path.join(root, name === "cub" ? "CUB_200_2011" : "nabirds");
      // NABirds: sparse class ids under a hierarchy (parents without images); CUB: 1..K with "001.Name" folders.
      const classId = (k: number) => (name === "cub" ? String(k + 1) : String(295 + 7 * k));
      const classFolder = (k: number) => (name === "cub" ? `${String(k + 1).padStart(3, "0")}.Synthetic_Bird_${k + 1}` : classId(k).padStart(4, "0"));
      const classes = Array.from({ length: K }, (_, k) => `${classId(k)} ${name === "cub" ? classFolder(k) : `Synthetic bird ${k + 1}`}`);
      if (name === "nabirds") classes.unshift("0 Birds", "1 Synthetic perching birds");
      const images: string[] = [], labels: string[] = [], split: string[] = [];
      let n = 0;
      for (const it of items) {
        n++;
        const id = name === "cub" ? String(n) : uuidLike(rng);
        const rel = `${classFolder(it.k)}/${name === "cub" ? `Synthetic_${n}` : id.replace(/-/g, "")}.jpg`;
        await img(path.join(base, "images", rel), it.k);
        images.push(`${id} ${rel}`);
        labels.push(`${id} ${classId(it.k)}`);
        split.push(`${id} ${it.train ? 1 : 0}`);
      }
      writeLines(path.join(base, "images.txt"), images);
      writeLines(path.join(base, "image_class_labels.txt"), labels);
      writeLines(path.join(base, "train_test_split.txt"), split);
      writeLines(path.join(base, "classes.txt"), classes);
      break;
    }
    case "dogs": {
      const base = path.join(root, "stanford_dogs");
      const folder = (k: number) => `n0${2085620 + k}-Synthetic_breed_${k + 1}`;
      const lists: Record<"train" | "test", { file: string; label: number }[]> = { train: [], test: [] };
      for (const it of items) {
        const rel = `${folder(it.k)}/n0${2085620 + it.k}_${1000 + it.i}.jpg`;
        await img(path.join(base, "Images", rel), it.k);
        lists[it.train ? "train" : "test"].push({ file: rel, label: it.k + 1 });
      }
      for (const s of ["train", "test"] as const) {
        const l = lists[s];
        await writeMat(path.join(base, `${s}_list.mat`), {
          file_list: matCell(l.map((x) => matCell([matChar(x.file)], [1, 1])), [l.length, 1]),
          annotation_list: matCell(l.map((x) => matCell([matChar(x.file.replace(/\.jpg$/, ""))], [1, 1])), [l.length, 1]),
          labels: matDouble(l.map((x) => x.label), [l.length, 1]),
        });
      }
      break;
    }
    case "flowers": {
      const base = path.join(root, "flowers-102");
      const labels: number[] = [];
      const ids: Record<"trnid" | "valid" | "tstid", number[]> = { trnid: [], valid: [], tstid: [] };
      for (const it of items) {
        labels.push(it.k + 1);
        const id = labels.length;
        await img(path.join(base, "jpg", `image_${String(id).padStart(5, "0")}.jpg`), it.k);
        ids[it.train ? (it.i % 2 === 0 ? "trnid" : "valid") : "tstid"].push(id);
      }
      fs.mkdirSync(base, { recursive: true });
      await writeMat(path.join(base, "imagelabels.mat"), { labels: matDouble(labels) });
      await writeMat(path.join(base, "setid.mat"), { trnid: matDouble(ids.trnid), valid: matDouble(ids.valid), tstid: matDouble(ids.tstid) });
      break;
    }
  }
  return { name, root, classes: K, train: K * opts.trainPerClass, test: K * opts.testPerClass };
}

function uuidLike(rng: Rng): string {
  const hex = Array.from({ length: 32 }, () => Math.floor(rng.uniform() * 16).toString(16)).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
