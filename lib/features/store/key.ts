/**
 * The key of a feature set: everything that changes its numbers. Two extractions with equal keys give
 * equal rows; any difference (another checkpoint, even one byte in the middle; another schedule, block,
 * timestep, pooling, noise seed, preprocessing, dataset, split, image list or storage dtype) is another set,
 * in another folder. A set holds one row per image of its image list (`images`: the count and a hash of the
 * ids in order), so a 200-image smoke run and a 1,500-image demo run of the same split are two sets.
 */
import { createHash } from "crypto";

export type StoreDtype = "float32" | "float16";

export interface FeatureSetKey {
  /** Content identity of the weights: modelIdOf (SHA-256 of the whole checkpoint file, or config + seed). */
  model: string;
  /** scheduleId: length and hash of alphas_cumprod (and the respacing map). */
  schedule: string;
  /** Paper block number and its module name ("output_blocks.4"). */
  block: number;
  module: string;
  /** Timestep (schedule step). */
  t: number;
  /** poolLabel ("adaptive4x4", "global"). */
  pool: string;
  /** noiseLabel of a deterministic policy ("seeded:0", "ensemble:4:0"); "fresh" noise is never stored. */
  noise: string;
  /** How pixels became model input ("fmnist-pad32-c1", "center-crop-256"). */
  preprocessing: string;
  dataset: string;
  split: string;
  /** imageListId of the set's image ids, in row order ("n1500:1a2b3c4d5e6f7a8b"). */
  images: string;
  dtype: StoreDtype;
  /** "labels:<hash of the labels>": a class-conditional model was given each image's label (absent: unconditional). */
  conditioning?: string;
}

/** Version of the key scheme and on-disk layout (part of every set id). */
export const STORE_FORMAT = "diffprobe-feature-set/2";

/** Identity of the labels a class-conditional model was given: "labels:" and 16 hex digits of their SHA-256. */
export function labelsId(labels: ArrayLike<number>): string {
  return `labels:${createHash("sha256").update(Array.from(labels).join(",")).digest("hex").slice(0, 16)}`;
}

/** Identity of an image list: its length and 16 hex digits of a SHA-256 of the ids in order. */
export function imageListId(ids: readonly string[]): string {
  const h = createHash("sha256");
  for (const id of ids) h.update(id).update("\u0000");
  return `n${ids.length}:${h.digest("hex").slice(0, 16)}`;
}

const FIELDS: { [K in Exclude<keyof FeatureSetKey, "conditioning">]: "string" | "integer" } = {
  model: "string", schedule: "string", block: "integer", module: "string", t: "integer", pool: "string",
  noise: "string", preprocessing: "string", dataset: "string", split: "string", images: "string", dtype: "string",
};

/** Check a key: every field present with the right type, nothing else; throws naming the field. */
export function checkKey(key: FeatureSetKey): FeatureSetKey {
  if (typeof key !== "object" || key === null) throw new Error(`feature-set key must be an object, got ${JSON.stringify(key)}`);
  for (const [name, kind] of Object.entries(FIELDS)) {
    const v = (key as unknown as Record<string, unknown>)[name];
    const ok = kind === "integer" ? Number.isSafeInteger(v) && (v as number) >= 0 : typeof v === "string" && v.length > 0;
    if (!ok) throw new Error(`feature-set key: field "${name}" must be ${kind === "integer" ? "a non-negative integer" : "a non-empty string"}, got ${JSON.stringify(v)}`);
  }
  for (const name of Object.keys(key)) if (!(name in FIELDS) && name !== "conditioning") throw new Error(`feature-set key: unknown field "${name}" (fields: ${Object.keys(FIELDS).join(", ")}, conditioning)`);
  if (key.conditioning !== undefined && !/^labels:[0-9a-f]{16}$/.test(key.conditioning)) throw new Error(`feature-set key: conditioning must be "labels:<16 hex digits>" or absent, got ${JSON.stringify(key.conditioning)}`);
  if (key.dtype !== "float32" && key.dtype !== "float16") throw new Error(`feature-set key: dtype must be "float32" or "float16", got ${JSON.stringify(key.dtype)}`);
  if (key.noise === "fresh") throw new Error('feature-set key: "fresh" noise gives new numbers on every run and cannot be stored (use seeded or ensemble noise)');
  return key;
}

/** The key as JSON with its fields in a fixed order (the same text whatever the property order). */
export function canonicalKey(key: FeatureSetKey): string {
  checkKey(key);
  // an unconditional key has no "conditioning" field, so its id is the one it always had
  const names = [...Object.keys(FIELDS), ...(key.conditioning ? ["conditioning"] : [])];
  return JSON.stringify(Object.fromEntries(names.map((k) => [k, key[k as keyof FeatureSetKey]])));
}

/** The set's id: SHA-256 (hex) of the format tag and the canonical key. */
export function featureSetId(key: FeatureSetKey): string {
  return createHash("sha256").update(`${STORE_FORMAT}\n${canonicalKey(key)}`).digest("hex");
}

/** Folder name of a set: readable fields, then 16 hex digits of its id ("fashion-mnist-train-b9-t100-adaptive4x4-f32-1a2b..."). */
export function featureSetDirName(key: FeatureSetKey): string {
  const readable = [key.dataset, key.split, `b${key.block}`, `t${key.t}`, key.pool, key.dtype === "float16" ? "f16" : "f32"]
    .join("-")
    .replace(/[^A-Za-z0-9_.=-]+/g, "_")
    .slice(0, 100);
  return `${readable}-${featureSetId(key).slice(0, 16)}`;
}
