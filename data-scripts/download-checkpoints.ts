/**
 * Download the official guided-diffusion checkpoints (openaipublic.blob.core.windows.net/diffusion/jul-2021/),
 * resumably, with a sha256 sidecar for each (no checksums are published).
 *
 *   npx tsx data-scripts/download-checkpoints.ts [--root models] [--list] [--all] [name|file ...]
 * Without names: the paper's model, 256x256_diffusion_uncond.pt.
 */
import * as path from "path";
import { CHECKPOINT_SOURCES } from "../lib/data/sources";
import { download } from "../lib/data/download";
import { ProgressMode } from "../lib/display/progress";
import { choiceOption, parseCommandLine, runCommand, UsageError } from "./cli";

const USAGE = `usage: download-checkpoints [--root <dir>] [--list] [--all] [--progress tty|log|silent] [name|file ...]
  --root <dir>   where the .pt files go (default ./models)
  --list         list the published checkpoints and exit
  --all          every published checkpoint (tens of GB)
  names          e.g. 256-uncond lsun-cat, or file names like 64x64_diffusion.pt
Without names: ${CHECKPOINT_SOURCES.filter((c) => c.default).map((c) => c.file).join(", ")} (the model the paper probes).
Downloads resume after an interruption (rerun the command); a finished file gets a <file>.sha256 sidecar.`;

async function run(): Promise<number> {
  const { values, positionals } = parseCommandLine({
    options: {
      root: { type: "string", default: "models" },
      list: { type: "boolean", default: false },
      all: { type: "boolean", default: false },
      progress: { type: "string" },
    },
    positionals: [0, Infinity],
  });
  const progressMode = choiceOption(values, "progress", ["tty", "log", "silent"] as const);
  if (values.list) {
    for (const c of CHECKPOINT_SOURCES) console.log(`${c.name.padEnd(22)} ${c.file.padEnd(28)} ${c.description}${c.default ? " [default]" : ""}`);
    return 0;
  }
  const chosen = values.all
    ? CHECKPOINT_SOURCES
    : positionals.length
      ? positionals.map((n) => {
          const c = CHECKPOINT_SOURCES.find((s) => s.name === n || s.file === n);
          if (!c) throw new UsageError(`unknown checkpoint "${n}"; see --list`);
          return c;
        })
      : CHECKPOINT_SOURCES.filter((c) => c.default);
  const root = path.resolve(values.root as string);
  for (const c of chosen) {
    const r = await download({ url: c.url, dest: path.join(root, c.file), progressMode, label: c.file });
    console.log(`${c.file}: ${r.status}, ${r.bytes} bytes, sha256 ${r.sha256}`);
  }
  return 0;
}

runCommand({ name: "download-checkpoints", usage: USAGE }, run);
