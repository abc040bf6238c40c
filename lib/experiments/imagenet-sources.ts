/**
 * The full-scale image sources: ImageNet (lib/data) as store ImageSources for its train split (the heads'
 * fit and validation rows) and its val split (the paper's test set), optionally reduced to a class list
 * (ImageNet-50) and to `subset` images per class and split (seeded), centre-cropped to the model's size.
 */
import { loadDataset, subsetDataset } from "../data/index";
import { fileSource, ImageSource } from "../features/store/images";

export interface ImagenetSourceOptions {
  /** Keep these WordNet ids (ImageNet-50); default all classes. */
  classes?: string[];
  /** Name of the class subset in store keys ("imagenet-50"). */
  classSetName?: string;
  /** At most this many images per class in each split (seeded); null or undefined: all. */
  subset?: number | null;
  seed?: number;
  /** Image side the model takes (ADM-256: 256). */
  size: number;
}

export interface ImagenetSources {
  train: ImageSource;
  test: ImageSource;
  numClasses: number;
  classIds: string[];
  /** Name of the image set in store keys (class set, subset size and seed). */
  name: string;
  notes: string[];
}

export async function imagenetSources(root: string, opts: ImagenetSourceOptions): Promise<ImagenetSources> {
  let ds = await loadDataset("imagenet", root);
  const reduced = opts.classes !== undefined || (opts.subset !== undefined && opts.subset !== null);
  if (reduced) {
    ds = subsetDataset(ds, { classes: opts.classes, perClass: opts.subset ?? undefined, seed: opts.seed ?? 0, name: opts.classSetName ?? (opts.classes ? `imagenet-${opts.classes.length}` : "imagenet") });
  }
  const name = opts.subset ? `${ds.name}-sub${opts.subset}-seed${opts.seed ?? 0}` : ds.name;
  const source = (split: string) => {
    const samples = ds.splits[split];
    if (!samples || samples.length === 0) throw new Error(`${ds.title} at ${root}: the ${split} split is empty or missing`);
    return fileSource(name, split, ds.root, samples, opts.size);
  };
  return { train: source(ds.trainSplit), test: source(ds.testSplit), numClasses: ds.classes.length, classIds: ds.classIds, name, notes: ds.notes };
}

/** The variable that reduces a full-scale run to N images per class and split (seeded). */
export const SUBSET_ENV = "DIFFPROBE_SUBSET";

/**
 * N images per class and split from $DIFFPROBE_SUBSET (null when unset or empty: all images); an error
 * naming the variable when it is not a positive integer.
 */
export function subsetFromEnv(env: Record<string, string | undefined> = process.env): number | null {
  const raw = env[SUBSET_ENV];
  if (raw === undefined || raw.trim() === "") return null;
  const n = Number(raw.trim());
  if (!(Number.isInteger(n) && n > 0)) throw new Error(`${SUBSET_ENV}=${JSON.stringify(raw)}: expected a positive integer (images per class and split), or unset for all images`);
  return n;
}
