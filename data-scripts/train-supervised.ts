/**
 * Train (or resume) the supervised reference (lib/train/baselines/encoder-classifier: the embedded DDPM's
 * encoder half + a classification head) on Fashion-MNIST's train split.
 *
 *   npm run train-supervised -- --out runs/fmnist-supervised [options]
 *
 * Running the same command again resumes from the last checkpoint (every --checkpoint-every steps).
 * Ctrl-C (SIGINT) or SIGTERM stops after the current step and writes a checkpoint; a second Ctrl-C (more
 * than a second later) exits at once. Run with node (as `npm run train-supervised` does), not tsx.
 *
 * Options (defaults: DEFAULT_SUPERVISED_CONFIG in lib/train/baselines/supervised-trainer.ts):
 *   --steps N  --batch N  --lr X  --weight-decay X  --seed N  --checkpoint-every N  --eval-every N
 *   --val-per-class N       holdout images per class (validation curve; never trained on)
 *   --num-channels N  --num-res-blocks N  --channel-mult 1,2,2  --attention-resolutions 8
 *   --limit N               the first N images of a seeded shuffle of the train split
 *   --max-steps N           stop (resumably) after N steps of this invocation
 *   --card                  at the end, write the model card picture (loss.png)
 *   --backend NAME          default wasm (DIFFPROBE_BACKEND also works)
 *   --progress log|tty|silent
 */
import * as path from "path";
import { selectBackend, describeBackend } from "../lib/model/backend";
import { loadFashionMnist } from "../lib/data/fashion-mnist";
import { SupervisedTrainConfig, trainSupervised, DEFAULT_SUPERVISED_CONFIG } from "../lib/train/baselines/supervised-trainer";
import { writeSupervisedCard } from "../lib/train/baselines/model-cards";
import { stopOnSignals } from "../lib/train/baselines/train-loop";
import { choiceOption, headerComment, numberOption, parseCommandLine, runCommand, UsageError } from "./cli";

const OPTIONS = {
  out: { type: "string" }, steps: { type: "string" }, batch: { type: "string" }, lr: { type: "string" }, "weight-decay": { type: "string" },
  seed: { type: "string" }, "checkpoint-every": { type: "string" }, "eval-every": { type: "string" }, "val-per-class": { type: "string" },
  "num-channels": { type: "string" }, "num-res-blocks": { type: "string" }, "channel-mult": { type: "string" }, "attention-resolutions": { type: "string" },
  limit: { type: "string" }, "max-steps": { type: "string" }, card: { type: "boolean" }, backend: { type: "string" }, progress: { type: "string" },
} as const;

async function main(): Promise<void> {
  const { values } = parseCommandLine({ options: OPTIONS });
  const out = values.out;
  if (!out) throw new UsageError("--out DIR is required");
  const int = (k: keyof typeof OPTIONS, min = 1) => numberOption(values, k, { integer: true, min });
  const choice = await selectBackend(values.backend ?? process.env.DIFFPROBE_BACKEND ?? "wasm");
  const set = loadFashionMnist({ split: "train", channels: 1, limit: int("limit") });
  const data = {
    n: set.ids.length, shape: [set.size, set.size, set.channels] as [number, number, number], labels: set.labels,
    batch: (idx: ArrayLike<number>) => set.batch(idx), description: `Fashion-MNIST train split (${set.ids.length} images, 1 channel, padded to 32)`,
  };
  const config: Partial<SupervisedTrainConfig> = {};
  const put = (k: keyof SupervisedTrainConfig, v: number | undefined) => v !== undefined && ((config as Record<string, unknown>)[k] = v);
  put("steps", int("steps", 0));
  put("batchSize", int("batch"));
  put("lr", numberOption(values, "lr", { positive: true }));
  put("weightDecay", numberOption(values, "weight-decay", { min: 0 }));
  put("seed", int("seed", 0));
  put("checkpointEvery", int("checkpoint-every"));
  put("evalEvery", int("eval-every", 0));
  put("valPerClass", int("val-per-class", 0));
  const model = { ...DEFAULT_SUPERVISED_CONFIG.model };
  if (int("num-channels") !== undefined) model.num_channels = int("num-channels");
  if (int("num-res-blocks") !== undefined) model.num_res_blocks = int("num-res-blocks");
  if (values["channel-mult"] !== undefined) model.channel_mult = values["channel-mult"];
  if (values["attention-resolutions"] !== undefined) model.attention_resolutions = values["attention-resolutions"];
  config.model = model;
  const shouldStop = stopOnSignals();
  process.stderr.write(`backend: ${describeBackend()} (${choice.forced ? "forced" : "automatic"}); data: ${data.description}; run folder: ${path.resolve(out)}\n`);
  const r = await trainSupervised({
    dir: out, data, config, maxStepsThisCall: int("max-steps", 0), shouldStop,
    progress: choiceOption(values, "progress", ["tty", "log", "silent"] as const),
  });
  process.stderr.write(`${r.finished ? "finished" : "stopped"} at step ${r.step}/${r.config.steps} (${r.step * r.config.batchSize} images seen); ${r.seconds.toFixed(0)} s of training; mean loss this call ${r.meanLoss.toPrecision(4)}\n`);
  if (r.finished && values.card) process.stderr.write(`wrote ${(await writeSupervisedCard(out)).join(", ")}\n`);
}

runCommand({ name: "train-supervised", usage: () => headerComment(__filename) }, main, { exit: true });
