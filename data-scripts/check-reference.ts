/**
 * Compare the tfjs U-Net with a folder of PyTorch reference tensors.
 *
 *   npx tsx data-scripts/check-reference.ts <folder> [<folder> ...] [--backend wasm|cpu|...] [--tol 1e-5] [--schedule-tol 1e-12]
 *
 * The folder layout is that of ../shared/fixtures/guided-diffusion/<config>/ (manifest.json, model.pt,
 * x_t.npy, t.npy, [y.npy], activations as .npy). Prints one line per tensor with its error and
 * PASS/FAIL. Exit status: 0 all passed, 1 some tensor failed, 2 the comparison could not run (bad
 * arguments, missing manifest / checkpoint / input, checkpoint not matching the manifest's config).
 */
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../lib/backend";
import { checkReferenceFolder, formatLine } from "../lib/unet/reference";
import { parameterCount } from "../lib/unet/parameters";

interface Args { folders: string[]; backend?: string; tol?: number; scheduleTol?: number }

const USAGE = "usage: check-reference <folder> [<folder> ...] [--backend wasm|cpu|tensorflow] [--tol 1e-5] [--schedule-tol 1e-12]";

function parseArgs(argv: string[]): Args {
  const out: Args = { folders: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = a.includes("=") ? a.slice(a.indexOf("=") + 1) : argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value\n${USAGE}`);
      return v;
    };
    const num = (v: string) => {
      const n = Number(v);
      if (!(n > 0)) throw new Error(`${a}: ${JSON.stringify(v)} is not a positive number`);
      return n;
    };
    if (a === "--help" || a === "-h") {
      console.log(USAGE);
      process.exit(0);
    } else if (a.startsWith("--backend")) out.backend = value();
    else if (a.startsWith("--schedule-tol")) out.scheduleTol = num(value());
    else if (a.startsWith("--tol")) out.tol = num(value());
    else if (a.startsWith("--")) throw new Error(`unknown option ${a}\n${USAGE}`);
    else out.folders.push(a);
  }
  if (out.folders.length === 0) throw new Error(USAGE);
  return out;
}

async function main(): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error((e as Error).message);
    return 2;
  }
  const choice = await selectBackend(args.backend ?? "wasm");
  console.log(`backend: ${choice.name} (tfjs ${tf.version.tfjs})`);
  let status = 0;
  for (const folder of args.folders) {
    console.log(`\n== ${folder}`);
    try {
      const report = await checkReferenceFolder(folder, {
        tol: args.tol,
        scheduleTol: args.scheduleTol,
        onLine: (l) => console.log(formatLine(l)),
      });
      const c = report.config;
      const fails = report.lines.filter((l) => l.status === "FAIL").length;
      const passes = report.lines.filter((l) => l.status === "PASS").length;
      const worst = Math.max(...report.lines.filter((l) => l.rel !== undefined && l.name !== "alphas_cumprod").map((l) => l.rel!));
      console.log(
        `config: image ${c.imageSize}, channels ${c.modelChannels} x (${c.channelMult.join(",")}), ${c.numResBlocks} res blocks, ` +
          `attention ds ${c.attentionDs.join(",")}, ${c.numClasses === null ? "unconditional" : `${c.numClasses} classes`}, ` +
          `${c.useNewAttentionOrder ? "new" : "legacy"} attention order, resblock_updown ${c.resblockUpdown}, ${parameterCount(c).toLocaleString("en-US")} parameters`,
      );
      console.log(`load ${report.loadMs} ms, forward ${report.forwardMs} ms; worst float32 rel ${Number.isFinite(worst) ? worst.toExponential(2) : "n/a"}`);
      console.log(fails === 0 ? `ALL PASS (${passes} tensors)` : `${fails} FAILED, ${passes} passed`);
      if (fails) status = Math.max(status, 1);
    } catch (e) {
      console.error(`ERROR: ${(e as Error).message}`);
      status = 2;
    }
  }
  return status;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e);
    process.exit(2);
  },
);
