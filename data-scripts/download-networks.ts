/**
 * Download the published networks the paper's CKA figure compares against (lib/model/nets/published.ts),
 * resumably, checking the digest prefix where one is published, and check that each maps onto its
 * torchvision architecture.
 *
 *   npx tsx data-scripts/download-networks.ts [--root models/networks] [--list] [--all] [--no-check] [name ...]
 */
import * as path from "path";
import { fetchPublished, loadPublished } from "../lib/model/nets/fetch-published";
import { PUBLISHED_NETS, publishedNet } from "../lib/model/nets/published";
import { choiceOption, parseCommandLine, runCommand, UsageError } from "./cli";

const USAGE = `usage: download-networks [--root <dir>] [--list] [--all] [--no-check] [--progress tty|log|silent] [name ...]
  --root <dir>   where the files go (default ./models/networks)
  --list         list the published networks (URL, published checksum) and exit
  --all          every network in the list
  --no-check     do not load each file to check that its keys map onto the torchvision network
  names          e.g. resnet50-supervised dino-vit_b_16 (see --list)
Downloads resume after an interruption (rerun the command); a finished file gets a <file>.sha256 sidecar.
SimCLR is not listed: its authors publish TensorFlow checkpoints only.`;

async function run(): Promise<number> {
  const { values, positionals } = parseCommandLine({
    options: {
      root: { type: "string", default: "models/networks" },
      list: { type: "boolean", default: false },
      all: { type: "boolean", default: false },
      "no-check": { type: "boolean", default: false },
      progress: { type: "string" },
    },
    positionals: [0, Infinity],
  });
  const progressMode = choiceOption(values, "progress", ["tty", "log", "silent"] as const);
  if (values.list) {
    for (const p of PUBLISHED_NETS) {
      const sum = p.checksum ? `${p.checksum.algorithm} ${p.checksum.prefix}... (${p.checksum.source})` : "none published";
      console.log(`${p.name.padEnd(20)} ${p.preset.padEnd(9)} ${(p.approxSize ?? "size ?").padStart(8)}  ${p.title}\n${"".padEnd(21)}${p.url}\n${"".padEnd(21)}checksum: ${sum}`);
    }
    return 0;
  }
  if (!values.all && positionals.length === 0) throw new UsageError("name the networks to download (see --list), or --all");
  const chosen = values.all
    ? PUBLISHED_NETS
    : positionals.map((n) => {
        try {
          return publishedNet(n);
        } catch (e) {
          throw new UsageError((e as Error).message);
        }
      });
  const root = path.resolve(values.root as string);
  for (const p of chosen) {
    const r = await fetchPublished(p, root, { progressMode });
    console.log(`${p.name}: ${r.status}, ${r.bytes} bytes, sha256 ${r.sha256}${p.checksum ? `, ${p.checksum.algorithm} prefix ${p.checksum.prefix} verified` : " (no checksum published)"}`);
    if (!values["no-check"]) {
      const net = await loadPublished(p, r.file);
      console.log(`  keys map onto ${p.preset}${p.numClasses === null ? " (backbone, no classifier)" : ""}: ${net.layers().length} layer outputs`);
      net.dispose();
    }
  }
  return 0;
}

runCommand({ name: "download-networks", usage: USAGE }, run);
