/**
 * Compare the U-Net, on ONNX Runtime or TensorFlow.js, with a folder of PyTorch reference tensors.
 *
 *   npm run check-reference -- <folder> [<folder> ...] [--engine auto|ort|tfjs] [--backend wasm|cpu|...] [--tol 1e-5] [--schedule-tol 1e-12]
 *
 * The folder layout is that of ../shared/fixtures/guided-diffusion/<config>/ (manifest.json, model.pt,
 * x_t.npy, t.npy, [y.npy], activations as .npy), or ../shared/fixtures/torchvision/<config>/ (manifest
 * "family": "torchvision"), or ../shared/fixtures/diffssl/<folder>/ (manifest "family": "diffssl": the
 * official attention head, DifFormer and DifFeed, always on tfjs; lib/diffssl/reference.ts). Prints one
 * line per tensor with its error and PASS/FAIL. Exit status: 0 all passed, 1 some tensor failed, 2 the comparison could not run (bad
 * arguments, missing manifest / checkpoint / input, checkpoint not matching the manifest's config).
 */
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../lib/model/backend";
import { chooseEngine } from "../lib/model/engines/engine";
import { checkReferenceFolder, formatLine } from "../lib/model/unet/reference";
import { isTorchvisionFolder, runTorchvisionCheck } from "../lib/model/nets/reference";
import { isDiffsslFolder, runDiffsslCheck } from "../lib/diffssl/reference";
import { parameterCount } from "../lib/model/unet/parameters";
import { numberOption, parseCommandLine, runCommand } from "./cli";

const USAGE = `usage: check-reference <folder> [<folder> ...] [--engine auto|ort|tfjs] [--backend wasm|cpu|tensorflow] [--tol 1e-5] [--schedule-tol 1e-12]
  <folder>            manifest.json, model.pt, x_t.npy, t.npy, [y.npy] and one .npy per tensor to compare
  --engine NAME       ort (ONNX Runtime), tfjs, or auto (default: $DIFFPROBE_ENGINE, else ort where it loads)
  --backend NAME      tfjs backend, for --engine tfjs (default wasm)
  --tol X             largest relative error of a float32 tensor (default 1e-5)
  --schedule-tol X    largest error of alphas_cumprod (float64; default 1e-12)
Exit status: 0 all passed, 1 some tensor failed, 2 the comparison could not run.`;

async function main(): Promise<number> {
  const { values, positionals: folders } = parseCommandLine({
    options: { engine: { type: "string" }, backend: { type: "string" }, tol: { type: "string" }, "schedule-tol": { type: "string" } },
    positionals: [1, Infinity],
  });
  const tol = numberOption(values, "tol", { positive: true });
  const scheduleTol = numberOption(values, "schedule-tol", { positive: true });
  const engineChoice = chooseEngine(values.engine);
  for (const l of engineChoice.log) console.log(`engine ${l}`);
  if (engineChoice.name === "tfjs") {
    const choice = await selectBackend(values.backend ?? "wasm");
    console.log(`backend: ${choice.name} (tfjs ${tf.version.tfjs})`);
  } else if (values.backend) {
    console.log(`(--backend ${values.backend} applies to --engine tfjs only)`);
  }
  let status = 0;
  for (const folder of folders) {
    console.log(`\n== ${folder}`);
    if (isTorchvisionFolder(folder)) {
      // manifest "family": "torchvision" (ResNet / VisionTransformer, ../shared/fixtures/torchvision), on the
      // engine chosen above (tfjs: the backend selected above): 0, 1 or 2 as below.
      status = Math.max(status, await runTorchvisionCheck(folder, { tol, engine: engineChoice.name }));
      continue;
    }
    if (isDiffsslFolder(folder)) {
      // manifest "family": "diffssl" (../shared/fixtures/diffssl): on tfjs (--backend, default wasm), 0, 1 or 2 as below.
      status = Math.max(status, await runDiffsslCheck(folder, { tol, scheduleTol, backend: values.backend ?? "wasm" }));
      continue;
    }
    try {
      const report = await checkReferenceFolder(folder, {
        tol,
        scheduleTol,
        engine: engineChoice.name,
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
      console.log(`engine: ${report.backend}`);
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

runCommand({ name: "check-reference", usage: USAGE, errorStatus: 2 }, main, { exit: true });
