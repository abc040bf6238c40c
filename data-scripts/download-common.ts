/**
 * The command line shared by data-scripts/download-<dataset>.ts: fetch (download + verify + extract, or
 * explain what to place by hand), then load the dataset with lib/data and check its split sizes against the
 * paper's numbers.
 *
 *   npx tsx data-scripts/download-<dataset>.ts --root <dir> [--no-extract] [--delete-archives] [--check-files]
 *        [--progress tty|log|silent]
 */
import * as path from "path";
import { DATASETS, DatasetName, loadDataset, missingFiles } from "../lib/data";
import { datasetFolder, fetchDataset, ManualDownloadError } from "../lib/data/fetch";
import { DATASET_SOURCES } from "../lib/data/sources";
import { choiceOption, parseCommandLine, runCommand } from "./cli";

function usage(name: DatasetName): string {
  const src = DATASET_SOURCES[name];
  const info = DATASETS[name];
  const files = src.files.map((f) => `    ${f.file}${f.url ? `  <- ${f.url}` : "  (place by hand)"}${f.md5 ? `  md5 ${f.md5}` : ""}`).join("\n");
  return `usage: download-${name} --root <dir> [--no-extract] [--delete-archives] [--check-files] [--progress tty|log|silent]

${info.title}: ${src.manual ? "files placed by hand are verified and extracted" : "downloads, verifies and extracts"} into <root>${src.folder ? `/${src.folder}` : ""}:
${files}
${src.manual ? `\n${src.manual}\n` : ""}
After that it loads the dataset (expects ${info.layout}) and checks the split sizes
(${info.numClasses} classes, ${info.trainSize} train, ${info.testSize} test).
  --root <dir>         where the dataset goes (default ./data)
  --no-extract         download/verify only
  --delete-archives    delete each archive once extracted
  --check-files        also check that every listed image exists (slow for ImageNet)
  --progress <mode>    progress display: tty, log or silent (default: automatic)`;
}

/** Fetch, load and check one dataset; returns the exit status. */
async function fetchAndCheck(name: DatasetName, argv: string[]): Promise<number> {
  const { values } = parseCommandLine({
    args: argv,
    options: {
      root: { type: "string", default: "data" },
      "no-extract": { type: "boolean", default: false },
      "delete-archives": { type: "boolean", default: false },
      "check-files": { type: "boolean", default: false },
      progress: { type: "string" },
    },
  });
  const progressMode = choiceOption(values, "progress", ["tty", "log", "silent"] as const);
  const root = path.resolve(values.root as string);
  const src = DATASET_SOURCES[name];
  try {
    await fetchDataset(name, root, { progressMode, extract: !values["no-extract"], deleteArchives: values["delete-archives"] as boolean });
  } catch (e) {
    if (!(e instanceof ManualDownloadError)) throw e;
    console.error(e.message); // what to place by hand, and where
    return 1;
  }
  if (values["no-extract"]) return 0;
  const info = DATASETS[name];
  const ds = await loadDataset(name, datasetFolder(src, root));
  const train = ds.splits[ds.trainSplit].length;
  const test = ds.splits[ds.testSplit].length;
  console.log(`${ds.title} in ${ds.root}: ${ds.classes.length} classes; ` + Object.entries(ds.splits).map(([k, v]) => `${k} ${v.length}`).join(", "));
  let ok = true;
  if (ds.classes.length !== info.numClasses || train !== info.trainSize || test !== info.testSize) {
    console.error(`warning: expected ${info.numClasses} classes, ${ds.trainSplit} ${info.trainSize}, ${ds.testSplit} ${info.testSize}; found ${ds.classes.length}, ${train}, ${test}`);
    ok = false;
  }
  if (values["check-files"]) {
    const missing = await missingFiles(ds, undefined, 10);
    if (missing.length) {
      console.error(`missing files (first ${missing.length}):\n  ${missing.join("\n  ")}`);
      ok = false;
    } else console.log("every listed image exists");
  }
  return ok ? 0 : 1;
}

/** Entry point of the per-dataset scripts. */
export function main(name: DatasetName): void {
  runCommand({ name: `download-${name}`, usage: () => usage(name) }, () => fetchAndCheck(name, process.argv.slice(2)));
}
