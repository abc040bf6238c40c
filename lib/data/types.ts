/**
 * What a dataset loader returns, and helpers shared by the loaders: locating the dataset folder inside a
 * root, reading the small text annotation files, and errors that name the missing file and the expected layout.
 */
import * as fs from "fs";
import * as path from "path";

/** One image and its class index (0-based, an index into `Dataset.classes`). */
export interface Sample {
  file: string;
  label: number;
}

export interface Dataset {
  /** Registry name ("cub", "imagenet", ...). */
  name: string;
  /** Human name ("CUB-200-2011"). */
  title: string;
  /** The folder the annotation files were read from. */
  root: string;
  /** Class names; label i is classes[i]. */
  classes: string[];
  /** The dataset's own class identifiers, same order (WordNet ids, "001.Black_footed_Albatross", NABirds ids...). */
  classIds: string[];
  /** Lists of samples per split name. */
  splits: Record<string, Sample[]>;
  /** The split used for training in the paper's protocol, and the one for testing. */
  trainSplit: string;
  testSplit: string;
  /** Protocol notes (which splits are used, label remapping). */
  notes: string[];
}

/** Error for a dataset whose files are missing or malformed; the message names the file. */
export class DatasetError extends Error {}

export const IMAGE_EXTENSIONS = /\.(jpe?g|png|ppm|bmp|pgm|tiff?|webp|gif)$/i;

/**
 * The dataset folder: `root` itself if it holds `marker`, else `root/<sub>` for the first of `subdirs` that does.
 * Throws a DatasetError naming `<root>/<marker>` and the expected layout.
 */
export function findRoot(title: string, root: string, marker: string, subdirs: string[], expected: string): string {
  const candidates = [root, ...subdirs.map((s) => path.join(root, s))];
  for (const c of candidates) if (fs.existsSync(path.join(c, marker))) return c;
  if (!fs.existsSync(root)) throw new DatasetError(`${title}: root folder ${root} does not exist; expected ${expected}`);
  throw new DatasetError(`${title}: ${path.join(root, marker)} not found; expected ${expected}`);
}

/** The first existing path among candidates (relative to dir), or a DatasetError naming the first one. */
export function findFile(title: string, dir: string, candidates: string[], expected: string): string {
  for (const c of candidates) {
    const p = path.join(dir, c);
    if (fs.existsSync(p)) return p;
  }
  throw new DatasetError(`${title}: ${path.join(dir, candidates[0])} not found; expected ${expected}`);
}

/** Non-empty lines (trimmed) with their 1-based line numbers; `#` comment lines skipped when `comments`. */
export function readLines(file: string, comments = false): { line: string; n: number }[] {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new DatasetError(`${file}: ${(e as Error).message}`);
  }
  const out: { line: string; n: number }[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line || (comments && line.startsWith("#"))) return;
    out.push({ line, n: i + 1 });
  });
  return out;
}

/** Lines of "<key> <rest>" as [key, rest] pairs, with errors naming file and line. */
export function readKeyValue(file: string): { key: string; value: string; n: number }[] {
  return readLines(file).map(({ line, n }) => {
    const m = /^(\S+)\s+(.+)$/.exec(line);
    if (!m) throw new DatasetError(`${file}:${n}: expected "<id> <value>", found ${JSON.stringify(line)}`);
    return { key: m[1], value: m[2], n };
  });
}

/** Sorted names of the entries of a folder, keeping folders or image files, skipping hidden entries. */
export async function listDir(dir: string, kind: "dirs" | "images"): Promise<string[]> {
  const entries = await fs.promises.readdir(dir, { withFileTypes: true });
  return entries
    .filter((e) => !e.name.startsWith(".") && (kind === "dirs" ? e.isDirectory() : e.isFile() && IMAGE_EXTENSIONS.test(e.name)))
    .map((e) => e.name)
    .sort();
}

/** Class counts of a split (index = label). */
export function countPerClass(samples: Sample[], numClasses: number): number[] {
  const c = new Array(numClasses).fill(0);
  for (const s of samples) c[s.label]++;
  return c;
}
