/**
 * ImageNet ILSVRC-2012, in the layouts the official archives and torchvision produce:
 *
 *   <root>/train/<wnid>/<wnid>_<n>.JPEG            (ILSVRC2012_img_train.tar: one inner tar per class)
 *   <root>/val/ILSVRC2012_val_<8 digits>.JPEG      (ILSVRC2012_img_val.tar, flat) with the devkit:
 *   <root>/ILSVRC2012_devkit_t12/data/meta.mat     synsets: ILSVRC2012_ID, WNID, words (leaves: num_children 0)
 *   <root>/ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt   one ILSVRC2012_ID per val image
 * or val/ already split in per-class folders (val/<wnid>/...), or Kaggle's LOC_val_solution.csv.
 * Class order is torchvision's: sorted WordNet ids (NOT the ILSVRC2012_ID order). Names come from meta.mat
 * ("words") or a LOC_synset_mapping.txt ("<wnid> <words>" per line), else the wnid.
 */
import * as fs from "fs";
import * as path from "path";
import { matNumbers, matScalar, matString, matStructs, matVar, readMat } from "./mat";
import { Dataset, DatasetError, listDir, readKeyValue, readLines, Sample } from "./types";

const TITLE = "ImageNet ILSVRC-2012";
export const IMAGENET_LAYOUT =
  "<root>/train/<wnid>/*.JPEG (extracted ILSVRC2012_img_train.tar and its per-class tars), <root>/val/ (ILSVRC2012_img_val.tar: " +
  "flat ILSVRC2012_val_*.JPEG with <root>/ILSVRC2012_devkit_t12/ from ILSVRC2012_devkit_t12.tar.gz, or per-class folders)";

const DEVKIT_DIRS = ["ILSVRC2012_devkit_t12/data", "ILSVRC2012_devkit_t12", "devkit/data", "devkit", "."];

export interface ImagenetMeta {
  /** ILSVRC2012_ID (1..1000) -> wnid. */
  idToWnid: Map<number, string>;
  /** wnid -> words ("tench, Tinca tinca"). */
  words: Map<string, string>;
}

/** Read the devkit's meta.mat (`synsets`), keeping the 1000 leaf classes (num_children == 0). */
export async function readImagenetMeta(file: string): Promise<ImagenetMeta> {
  const vars = await readMat(file);
  const syn = matStructs(matVar(vars, "synsets", file), `${file}: synsets`, ["ILSVRC2012_ID", "WNID", "words", "num_children"]);
  const idToWnid = new Map<number, string>();
  const words = new Map<string, string>();
  syn.forEach((s, i) => {
    const what = `${file}: synsets(${i + 1})`;
    if (matNumbers(s.num_children, `${what}.num_children`)[0] !== 0) return;
    const id = matScalar(s.ILSVRC2012_ID, `${what}.ILSVRC2012_ID`);
    const wnid = matString(s.WNID, `${what}.WNID`);
    idToWnid.set(id, wnid);
    words.set(wnid, matString(s.words, `${what}.words`));
  });
  return { idToWnid, words };
}

function findDevkitFile(root: string, name: string): string | null {
  for (const d of DEVKIT_DIRS) {
    const p = path.join(root, d, name);
    if (fs.existsSync(p)) return p;
  }
  return null;
}

/** Number of a validation file name "ILSVRC2012_val_00000293.JPEG" -> 293. */
function valNumber(file: string): number | null {
  const m = /ILSVRC2012_val_(\d+)\./.exec(file);
  return m ? Number(m[1]) : null;
}

export async function loadImagenet(root: string): Promise<Dataset> {
  if (!fs.existsSync(root)) throw new DatasetError(`${TITLE}: root folder ${root} does not exist; expected ${IMAGENET_LAYOUT}`);
  const trainDir = path.join(root, "train");
  const valDir = path.join(root, "val");
  const hasTrain = fs.existsSync(trainDir);
  const hasVal = fs.existsSync(valDir);
  if (!hasTrain && !hasVal) throw new DatasetError(`${TITLE}: neither ${trainDir} nor ${valDir} found; expected ${IMAGENET_LAYOUT}`);

  const metaFile = findDevkitFile(root, "meta.mat");
  const meta = metaFile ? await readImagenetMeta(metaFile) : null;
  const mappingFile = ["LOC_synset_mapping.txt", "synset_words.txt"].map((f) => path.join(root, f)).find((f) => fs.existsSync(f));
  const mapping = mappingFile ? new Map(readKeyValue(mappingFile).map((kv) => [kv.key, kv.value])) : null;

  // Class list: train folders (as torchvision's ImageFolder), else the devkit's leaves, else val folders.
  let wnids: string[];
  const valDirs = hasVal ? await listDir(valDir, "dirs") : [];
  if (hasTrain) wnids = await listDir(trainDir, "dirs");
  else if (meta) wnids = [...meta.words.keys()].sort();
  else if (valDirs.length) wnids = valDirs;
  else if (mapping) wnids = [...mapping.keys()].sort();
  else throw new DatasetError(`${TITLE}: no ${trainDir} and no devkit meta.mat; cannot tell the classes`);
  if (!wnids.length) throw new DatasetError(`${TITLE}: ${hasTrain ? trainDir : valDir} holds no class folders; expected ${IMAGENET_LAYOUT}`);
  const index = new Map(wnids.map((w, i) => [w, i]));
  const names = wnids.map((w) => meta?.words.get(w) ?? mapping?.get(w) ?? w);

  const splits: Record<string, Sample[]> = {};
  const listFolders = async (dir: string, classDirs: string[]) => {
    const out: Sample[] = [];
    for (const w of classDirs) {
      const label = index.get(w);
      if (label === undefined) throw new DatasetError(`${TITLE}: ${path.join(dir, w)} is not one of the ${wnids.length} classes`);
      for (const f of await listDir(path.join(dir, w), "images")) out.push({ file: path.join(dir, w, f), label });
    }
    return out;
  };
  if (hasTrain) splits.train = await listFolders(trainDir, wnids);
  if (hasVal) {
    if (valDirs.length) {
      splits.val = await listFolders(valDir, valDirs);
    } else {
      splits.val = await flatVal(root, valDir, meta, metaFile, index);
    }
  }
  const notes = [
    "class order: sorted WordNet ids (torchvision ImageFolder), not the devkit's ILSVRC2012_ID order",
    "the paper's protocol: train on train, report accuracy on val (50 per class)",
  ];
  return { name: "imagenet", title: TITLE, root, classes: names, classIds: wnids, splits, trainSplit: "train", testSplit: "val", notes };
}

/** Flat val/ labelled by the devkit ground truth (or Kaggle's LOC_val_solution.csv). */
async function flatVal(root: string, valDir: string, meta: ImagenetMeta | null, metaFile: string | null, index: Map<string, number>): Promise<Sample[]> {
  const files = await listDir(valDir, "images");
  const gtFile = findDevkitFile(root, "ILSVRC2012_validation_ground_truth.txt");
  const kaggle = path.join(root, "LOC_val_solution.csv");
  const byNumber = new Map<number, string>(); // val image number -> wnid
  const byStem = new Map<string, string>();
  if (gtFile) {
    if (!meta) throw new DatasetError(`${TITLE}: ${gtFile} needs the devkit's meta.mat beside it (ILSVRC2012_ID -> wnid); not found`);
    readLines(gtFile).forEach(({ line, n }) => {
      const id = Number(line);
      const wnid = meta.idToWnid.get(id);
      if (!wnid) throw new DatasetError(`${gtFile}:${n}: ILSVRC2012_ID ${JSON.stringify(line)} is not a leaf class of ${metaFile}`);
      byNumber.set(n, wnid);
    });
  } else if (fs.existsSync(kaggle)) {
    readLines(kaggle).forEach(({ line, n }) => {
      if (n === 1 && line.startsWith("ImageId")) return;
      const m = /^([^,]+),\s*(n\d{8})/.exec(line);
      if (!m) throw new DatasetError(`${kaggle}:${n}: expected "ImageId,<wnid> ...", found ${JSON.stringify(line)}`);
      byStem.set(m[1], m[2]);
    });
  } else {
    throw new DatasetError(
      `${TITLE}: ${valDir} is flat but ${path.join(root, "ILSVRC2012_devkit_t12", "data", "ILSVRC2012_validation_ground_truth.txt")} ` +
        "not found; extract ILSVRC2012_devkit_t12.tar.gz into the root (or put val/ in per-class folders)",
    );
  }
  const out: Sample[] = [];
  for (const f of files) {
    let wnid: string | undefined;
    if (gtFile) {
      const num = valNumber(f);
      if (num === null) throw new DatasetError(`${TITLE}: ${path.join(valDir, f)} is not named ILSVRC2012_val_<number>.JPEG`);
      wnid = byNumber.get(num);
      if (!wnid) throw new DatasetError(`${TITLE}: ${path.join(valDir, f)} has no line ${num} in ${gtFile}`);
    } else {
      wnid = byStem.get(f.replace(/\.[^.]+$/, ""));
      if (!wnid) throw new DatasetError(`${TITLE}: ${path.join(valDir, f)} is not listed in ${kaggle}`);
    }
    const label = index.get(wnid);
    if (label === undefined) throw new DatasetError(`${TITLE}: ${path.join(valDir, f)} has class ${wnid}, which has no train folder`);
    out.push({ file: path.join(valDir, f), label });
  }
  return out;
}
