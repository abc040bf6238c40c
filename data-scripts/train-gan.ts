/**
 * Train (or resume) the DCGAN baseline (lib/train/baselines/dcgan) on Fashion-MNIST's train split.
 *
 *   npm run train-gan -- --out runs/fmnist-gan [options]
 *
 * Running the same command again resumes from the last checkpoint (every --checkpoint-every steps).
 * Ctrl-C (SIGINT) or SIGTERM stops after the current step and writes a checkpoint; a second Ctrl-C (more
 * than a second later) exits at once (the last periodic checkpoint stays valid). Run with node (as `npm
 * run train-gan` does), not the tsx command, for the stop checkpoint (see data-scripts/train-ddpm.ts).
 *
 * Options (defaults: DEFAULT_GAN_CONFIG in lib/train/baselines/gan-trainer.ts: 1,200 steps of 64 images,
 * the 76,800 images the embedded DDPM saw):
 *   --steps N  --batch N  --lr X  --beta1 X  --seed N  --checkpoint-every N  --z-dim N  --width N
 *   --limit N               train on the first N images of a seeded shuffle of the train split
 *   --data fashion-mnist|synthetic   (synthetic: 10 tiny blobs at 32x32, for smoke tests)
 *   --max-steps N           stop (resumably) after N steps of this invocation
 *   --card                  at the end, write the model card pictures (samples.png, loss.png)
 *   --backend NAME          default wasm (DIFFPROBE_BACKEND also works)
 *   --progress log|tty|silent
 */
import * as path from "path";
import { selectBackend, describeBackend } from "../lib/model/backend";
import { makeTrainData } from "../lib/train/data-spec";
import { GanTrainConfig, trainGan } from "../lib/train/baselines/gan-trainer";
import { writeGanCard } from "../lib/train/baselines/model-cards";
import { stopOnSignals } from "../lib/train/baselines/train-loop";
import { choiceOption, headerComment, numberOption, parseCommandLine, runCommand, UsageError } from "./cli";

const OPTIONS = {
  out: { type: "string" }, steps: { type: "string" }, batch: { type: "string" }, lr: { type: "string" }, beta1: { type: "string" },
  seed: { type: "string" }, "checkpoint-every": { type: "string" }, "z-dim": { type: "string" }, width: { type: "string" },
  limit: { type: "string" }, data: { type: "string" }, "max-steps": { type: "string" }, card: { type: "boolean" },
  backend: { type: "string" }, progress: { type: "string" },
} as const;

async function main(): Promise<void> {
  const { values } = parseCommandLine({ options: OPTIONS });
  const out = values.out;
  if (!out) throw new UsageError("--out DIR is required");
  const int = (k: keyof typeof OPTIONS, min = 1) => numberOption(values, k, { integer: true, min });
  const num = (k: keyof typeof OPTIONS) => numberOption(values, k, { positive: true });
  const choice = await selectBackend(values.backend ?? process.env.DIFFPROBE_BACKEND ?? "wasm");
  const kind = choiceOption(values, "data", ["fashion-mnist", "synthetic"] as const) ?? "fashion-mnist";
  const data = makeTrainData(kind === "synthetic" ? { kind: "synthetic", n: 10, size: 32, channels: 1 } : { kind: "fashion-mnist", channels: 1, limit: int("limit") });
  const config: Partial<GanTrainConfig> = {};
  const set = (k: keyof GanTrainConfig, v: number | undefined) => v !== undefined && ((config as Record<string, unknown>)[k] = v);
  set("steps", int("steps", 0));
  set("batchSize", int("batch"));
  set("lr", num("lr"));
  set("beta1", numberOption(values, "beta1", { min: 0, max: 0.999 }));
  set("seed", int("seed", 0));
  set("checkpointEvery", int("checkpoint-every"));
  const zDim = int("z-dim");
  const width = int("width");
  if (zDim !== undefined || width !== undefined) config.model = { zDim: zDim ?? 64, width: width ?? 32, imageSize: 32, channels: 1 };
  const shouldStop = stopOnSignals();
  process.stderr.write(`backend: ${describeBackend()} (${choice.forced ? "forced" : "automatic"}); data: ${data.description}; run folder: ${path.resolve(out)}\n`);
  const r = await trainGan({
    dir: out, data, config, maxStepsThisCall: int("max-steps", 0), shouldStop,
    progress: choiceOption(values, "progress", ["tty", "log", "silent"] as const),
  });
  process.stderr.write(`${r.finished ? "finished" : "stopped"} at step ${r.step}/${r.config.steps} (${r.step * r.config.batchSize} images seen); ${r.seconds.toFixed(0)} s of training; mean D loss this call ${r.meanLoss.toPrecision(4)}\n`);
  if (r.finished && values.card) {
    const card = await writeGanCard(out);
    process.stderr.write(`wrote ${card.join(", ")}\n`);
  }
}

runCommand({ name: "train-gan", usage: () => headerComment(__filename) }, main, { exit: true });
