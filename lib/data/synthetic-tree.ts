/**
 * Small synthetic stand-ins for the paper's inputs, so that the full-scale code path runs end to end in
 * seconds (smoke runs, tests): an ImageNet tree in a layout lib/data/imagenet.ts reads (real JPEG files,
 * train/<wnid>/<wnid>_<n>.JPEG, val/ in per-class folders or flat with Kaggle's LOC_val_solution.csv, and
 * LOC_synset_mapping.txt for names), and a random-weights U-Net checkpoint in the official torch zip
 * format (guided-diffusion's state-dict names) for a small configuration.
 *
 * Each class is a colour and stripe pattern plus seeded noise, so a probe can tell the classes apart.
 */
import * as fs from "fs";
import * as path from "path";
import sharp from "sharp";
import { makeRng } from "../rng";
import { writeTorchZip } from "../model/checkpoint/torch-writer";
import { createUNetConfig, UNetFlags } from "../model/unet/config";
import { parameterSpecs } from "../model/unet/parameters";
import { randomParam } from "../model/unet/weights";

/** A small ADM configuration (guided-diffusion flags; unconditional, learned sigma as ADM-256). */
export const TINY_ADM_FLAGS: Partial<UNetFlags> = {
  image_size: 32, num_channels: 32, num_res_blocks: 1, channel_mult: "1,2,2", attention_resolutions: "16,8",
  num_head_channels: 16, learn_sigma: true, resblock_updown: true, use_scale_shift_norm: true, class_cond: false,
};

export interface SyntheticImagenetOptions {
  /** WordNet ids of the classes (default: the first `numClasses` of a fixed list of real wnids). */
  wnids?: string[];
  numClasses?: number;
  trainPerClass: number;
  valPerClass: number;
  /** Side of the (square-ish) images written; 5:4 aspect so centre cropping is exercised. */
  size?: number;
  seed?: number;
  /** val/<wnid>/... folders (default) or flat val/ILSVRC2012_val_*.JPEG with LOC_val_solution.csv. */
  valLayout?: "folders" | "kaggle";
}

const SOME_WNIDS = ["n01440764", "n01443537", "n01484850", "n01491361", "n01494475", "n01496331", "n01498041", "n01514668", "n01514859", "n01518878"];

/** One image: class `label` as a hue and a stripe frequency, plus noise. */
async function classImage(label: number, k: number, w: number, h: number, seed: number): Promise<Buffer> {
  const rng = makeRng(seed * 100003 + label * 1009 + k);
  const px = Buffer.alloc(w * h * 3);
  const hue = (label * 0.37) % 1;
  const base = [0, 1, 2].map((c) => 128 + 100 * Math.cos(2 * Math.PI * (hue + c / 3)));
  const freq = 1 + (label % 4);
  const phase = rng.random() * 2 * Math.PI;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const s = 40 * Math.sin((2 * Math.PI * freq * (x + y)) / w + phase);
      for (let c = 0; c < 3; c++) px[(y * w + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(base[c] + s + 30 * (rng.random() - 0.5))));
    }
  }
  return sharp(px, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 92 }).toBuffer();
}

/** Write the tree under `root` (created; must be empty or absent). Returns the class wnids in sorted order. */
export async function writeSyntheticImagenet(root: string, opts: SyntheticImagenetOptions): Promise<string[]> {
  const wnids = (opts.wnids ?? SOME_WNIDS.slice(0, opts.numClasses ?? 3)).slice().sort();
  if (wnids.length < 2) throw new Error(`writeSyntheticImagenet: need at least 2 classes, got ${wnids.length}`);
  for (const w of wnids) if (!/^n\d{8}$/.test(w)) throw new Error(`writeSyntheticImagenet: ${JSON.stringify(w)} is not a WordNet id (n + 8 digits)`);
  if (fs.existsSync(root) && fs.readdirSync(root).length) throw new Error(`writeSyntheticImagenet: ${root} is not empty`);
  const size = opts.size ?? 40;
  const [w, h] = [Math.round((size * 5) / 4), size];
  const seed = opts.seed ?? 0;
  fs.mkdirSync(path.join(root, "val"), { recursive: true });
  fs.writeFileSync(path.join(root, "LOC_synset_mapping.txt"), wnids.map((id, i) => `${id} synthetic class ${i}\n`).join(""));
  const kaggle: string[] = ["ImageId,PredictionString"];
  let valNumber = 0;
  for (const [label, id] of wnids.entries()) {
    const dir = path.join(root, "train", id);
    fs.mkdirSync(dir, { recursive: true });
    for (let k = 0; k < opts.trainPerClass; k++) fs.writeFileSync(path.join(dir, `${id}_${1000 + k}.JPEG`), await classImage(label, k, w, h, seed));
    for (let k = 0; k < opts.valPerClass; k++) {
      const name = `ILSVRC2012_val_${String(++valNumber).padStart(8, "0")}.JPEG`;
      const img = await classImage(label, 100000 + k, w, h, seed);
      if (opts.valLayout === "kaggle") {
        fs.writeFileSync(path.join(root, "val", name), img);
        kaggle.push(`${name.replace(/\.JPEG$/, "")},${id} 0 0 ${w - 1} ${h - 1}`);
      } else {
        fs.mkdirSync(path.join(root, "val", id), { recursive: true });
        fs.writeFileSync(path.join(root, "val", id, name), img);
      }
    }
  }
  if (opts.valLayout === "kaggle") fs.writeFileSync(path.join(root, "LOC_val_solution.csv"), kaggle.join("\n") + "\n");
  return wnids;
}

/** A random-weights U-Net of `flags` as an official-format torch zip checkpoint (state-dict names of guided-diffusion). */
export async function writeRandomCheckpoint(file: string, flags: Partial<UNetFlags> = TINY_ADM_FLAGS, seed = 0): Promise<void> {
  const specs = parameterSpecs(createUNetConfig(flags));
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await writeTorchZip(file, specs.map((s, i) => ({ name: s.name, shape: s.shape, data: () => randomParam(s, seed, i) })), { archiveName: path.basename(file).replace(/\.pt$/, "") });
}
