/**
 * Getting a dataset onto disk from its source table (sources.ts): download (resumable, checksummed) and
 * extract what can be downloaded; for datasets behind a login or without a working official link (ImageNet,
 * NABirds, Stanford Cars) verify and extract the files placed by hand, or say exactly which files to put where.
 */
import * as fs from "fs";
import * as path from "path";
import { download, extractArchive, verifyFile } from "./download";
import { progress, ProgressMode } from "../display/progress";
import { DATASET_SOURCES, DatasetSource, SourceFile } from "./sources";
import { datasetName, DatasetError } from "./index";

export interface FetchOptions {
  progressMode?: ProgressMode;
  log?: (msg: string) => void;
  /** Extract archives (default true). */
  extract?: boolean;
  /** Delete an archive after extracting it (default false; ImageNet's inner per-class tars are always deleted). */
  deleteArchives?: boolean;
  /** Retries of a dropped download (default 5). */
  retries?: number;
  /** Use this source entry instead of the table's (tests, mirrors). */
  source?: DatasetSource;
}

/** Thrown when files must be placed by hand; the message lists them with where they go. */
export class ManualDownloadError extends DatasetError {}

/** The folder that holds (or will hold) the dataset under `root`. */
export function datasetFolder(src: DatasetSource, root: string): string {
  return src.folder ? path.join(root, src.folder) : root;
}

function exists(p: string): boolean {
  try {
    const st = fs.statSync(p);
    return st.isFile() || fs.readdirSync(p).length > 0;
  } catch {
    return false;
  }
}

/** The message for a dataset whose files must be placed by hand. */
export function manualInstructions(src: DatasetSource, root: string, missing: SourceFile[] = src.files): string {
  const dir = datasetFolder(src, root);
  const lines = missing.map((f) => `  ${path.join(dir, f.file)}${f.approxSize ? `  (${f.approxSize}${f.md5 ? `, md5 ${f.md5}` : ""})` : ""}`);
  return `${src.manual ?? `${src.title}: files must be placed by hand.`}\nPut these files in ${dir}:\n${lines.join("\n")}\nthen run this script again.`;
}

/** ILSVRC2012_img_train.tar holds one tar per class: extract each into train/<wnid>/ and delete it. */
async function extractImagenetInner(trainDir: string, opts: FetchOptions): Promise<void> {
  const inner = fs.readdirSync(trainDir).filter((f) => /^n\d{8}\.tar$/.test(f)).sort();
  if (!inner.length) return;
  const p = progress({ total: inner.length, label: "extract per-class tars", unit: "class", mode: opts.progressMode });
  for (const t of inner) {
    const file = path.join(trainDir, t);
    await extractArchive(file, path.join(trainDir, t.replace(/\.tar$/, "")), { progressMode: "silent", force: true });
    await fs.promises.rm(file);
    await fs.promises.rm(`${file}.extracted`, { force: true });
    p.tick();
  }
  p.done();
}

/**
 * Make `loadDataset(name, root)` work: download and extract what is missing (idempotent: present, verified
 * files and extracted archives are skipped). Throws ManualDownloadError listing the files to place by hand.
 */
export async function fetchDataset(name: string, root: string, opts: FetchOptions = {}): Promise<void> {
  const src = opts.source ?? DATASET_SOURCES[datasetName(name)];
  const dir = datasetFolder(src, root);
  const log = opts.log ?? ((m: string) => console.log(m));
  await fs.promises.mkdir(dir, { recursive: true });
  const missing: SourceFile[] = [];
  for (const f of src.files) {
    const file = path.join(dir, f.file);
    const target = path.join(dir, f.extract?.into ?? "");
    const imagenetTrain = src.name === "imagenet" && f.file === "ILSVRC2012_img_train.tar";
    if (!fs.existsSync(file) && exists(path.join(dir, f.produces))) {
      // Extracted earlier (the archive was deleted) or placed extracted by hand.
      log(`${f.file}: present as ${path.join(dir, f.produces)}`);
      if (imagenetTrain) await extractImagenetInner(target, opts);
      continue;
    }
    if (f.url) {
      // Downloads, or resumes a .part, or verifies an existing file (cheap once its .sha256 sidecar exists).
      if (!fs.existsSync(file)) log(`downloading ${f.url}`);
      await download({ url: f.url, dest: file, md5: f.md5, progressMode: opts.progressMode, retries: opts.retries, log });
    } else if (fs.existsSync(file)) {
      log(`checking ${file}${f.md5 ? ` (md5 ${f.md5})` : ""}`);
      await verifyFile(file, { md5: f.md5 }, { progressMode: opts.progressMode });
    } else {
      missing.push(f);
      continue;
    }
    if (f.extract && opts.extract !== false) {
      const r = await extractArchive(file, target, { strip: f.extract.strip, progressMode: opts.progressMode });
      log(`${f.file}: ${r.skipped ? "already extracted" : `extracted ${r.entries} entries`} into ${target}`);
      if (imagenetTrain) await extractImagenetInner(target, opts);
      if (opts.deleteArchives) await fs.promises.rm(file);
    }
  }
  if (missing.length) throw new ManualDownloadError(manualInstructions(src, root, missing));
}
