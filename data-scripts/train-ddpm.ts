/**
 * Train (or resume) a DDPM (guided-diffusion ADM U-Net, epsilon prediction) on Fashion-MNIST.
 *
 *   npm run train -- --out runs/fmnist-ddpm [options]
 *
 * Running the same command again resumes from the last checkpoint (every --checkpoint-every steps).
 * Ctrl-C (SIGINT) or SIGTERM stops after the current step and writes a checkpoint; a second Ctrl-C (more
 * than a second later) exits at once (the last periodic checkpoint stays valid). See lib/train/trainer.ts.
 * `npm run train` is `node --require tsx/cjs data-scripts/train-ddpm.ts`: the `tsx` command would also
 * work, but it SIGKILLs a child that takes over 60 ms to answer Ctrl-C (a training step in this thread
 * does), so the stop checkpoint would be lost.
 *
 * Options (defaults: DEFAULT_TRAIN_CONFIG in lib/train/trainer.ts):
 *   --steps N  --batch N  --lr X  --weight-decay X  --ema X  --seed N  --checkpoint-every N
 *   --num-channels N  --num-res-blocks N  --channel-mult 1,2,2  --attention-resolutions 8
 *   --channels 1|3          grey (1, default) or grey replicated to RGB (3); sets in_channels
 *   --limit N               train on the first N images of a seeded shuffle of the train split
 *   --data fashion-mnist|synthetic   (synthetic: 10 tiny blobs, for smoke tests; with --image-size)
 *   --image-size N          synthetic data only (Fashion-MNIST is 32)
 *   --workers K             split each batch over K worker threads (one core each; default 1)
 *   --max-steps N           stop (resumably) after N steps of this invocation
 *   --keep-ema 6000,8000    keep the EMA export of these steps as ema-<step>.safetensors (notebook 08 probes each)
 *   --samples N             at the end, write N DDIM-50 samples of the EMA model to samples.png
 *   --backend NAME          default wasm (DIFFPROBE_BACKEND also works)
 *   --progress log|tty|silent
 */
import * as path from "path";
import { selectBackend, describeBackend } from "../lib/model/backend";
import { writeModelCard } from "../lib/train/model-card";
import { DataSpec, DEFAULT_TRAIN_CONFIG, makeTrainData, TrainConfig, trainDdpm } from "../lib/train/trainer";
import { choiceOption, headerComment, numberOption, parseCommandLine, runCommand, UsageError } from "./cli";

/** Every option takes a value. */
const OPTIONS = {
  out: { type: "string" },
  steps: { type: "string" },
  batch: { type: "string" },
  lr: { type: "string" },
  "weight-decay": { type: "string" },
  ema: { type: "string" },
  seed: { type: "string" },
  "checkpoint-every": { type: "string" },
  "num-channels": { type: "string" },
  "num-res-blocks": { type: "string" },
  "channel-mult": { type: "string" },
  "attention-resolutions": { type: "string" },
  channels: { type: "string" },
  limit: { type: "string" },
  data: { type: "string" },
  "image-size": { type: "string" },
  "max-steps": { type: "string" },
  samples: { type: "string" },
  backend: { type: "string" },
  progress: { type: "string" },
  workers: { type: "string" },
  "keep-ema": { type: "string" },
} as const;

async function main(): Promise<void> {
  const { values } = parseCommandLine({ options: OPTIONS });
  const out = values.out;
  if (!out) throw new UsageError("--out DIR is required");
  const num = (k: keyof typeof OPTIONS, rule: Parameters<typeof numberOption>[2] = { min: 0 }) => numberOption(values, k, rule);

  const int = (k: keyof typeof OPTIONS, min = 1) => num(k, { integer: true, min });
  const choice = await selectBackend(values.backend ?? process.env.DIFFPROBE_BACKEND ?? "wasm");
  const channels = Number(choiceOption(values, "channels", ["1", "3"] as const) ?? 1) as 1 | 3;
  const kind = choiceOption(values, "data", ["fashion-mnist", "synthetic"] as const) ?? "fashion-mnist";
  const spec: DataSpec = kind === "synthetic"
    ? { kind: "synthetic", n: 10, size: int("image-size") ?? 8, channels }
    : { kind: "fashion-mnist", channels, limit: int("limit") };
  const data = makeTrainData(spec);

  const model = { ...DEFAULT_TRAIN_CONFIG.model, in_channels: channels, image_size: data.shape[0] };
  const numChannels = int("num-channels");
  const numResBlocks = int("num-res-blocks");
  if (numChannels !== undefined) model.num_channels = numChannels;
  if (numResBlocks !== undefined) model.num_res_blocks = numResBlocks;
  if (values["channel-mult"] !== undefined) model.channel_mult = values["channel-mult"];
  if (values["attention-resolutions"] !== undefined) model.attention_resolutions = values["attention-resolutions"];
  const config: Partial<TrainConfig> = { model };
  const set = (key: keyof TrainConfig, v: number | undefined) => {
    if (v !== undefined) (config as Record<string, unknown>)[key] = v;
  };
  set("steps", int("steps", 0));
  set("batchSize", int("batch"));
  set("lr", num("lr", { positive: true }));
  set("weightDecay", num("weight-decay"));
  set("emaRate", num("ema", { min: 0, max: 1 }));
  set("seed", int("seed", 0));
  set("checkpointEvery", int("checkpoint-every"));
  const maxSteps = int("max-steps", 0);
  const workers = int("workers") ?? 1;
  const progressMode = choiceOption(values, "progress", ["tty", "log", "silent"] as const);
  const nSamples = int("samples", 0);
  const keepExportsAt = (values["keep-ema"] ?? "").split(",").filter((x) => x.trim() !== "").map((x) => {
    const n = Number(x);
    if (!Number.isInteger(n) || n <= 0) throw new UsageError(`--keep-ema: ${JSON.stringify(x)} is not a positive step number`);
    return n;
  });

  let stop = false;
  let stopAt = 0;
  const onSignal = (sig: string) => {
    if (stop) {
      // Ctrl-C reaches the whole process group, and tsx/npx relay it to this process too: a repeat within
      // a second is that same request, not the user's second Ctrl-C.
      if (Date.now() - stopAt < 1000) return;
      process.stderr.write(`\n${sig} again: exiting now (resume from the last checkpoint)\n`);
      process.exit(130);
    }
    stop = true;
    stopAt = Date.now();
    process.stderr.write(`\n${sig}: stopping after this step (a checkpoint will be written); ${sig} again to exit at once\n`);
  };
  process.on("SIGINT", () => onSignal("SIGINT"));
  process.on("SIGTERM", () => onSignal("SIGTERM"));

  process.stderr.write(`backend: ${describeBackend()} (${choice.forced ? "forced" : "automatic"}); data: ${data.description}; run folder: ${path.resolve(out)}\n`);
  const r = await trainDdpm({
    dir: out, data, config, maxStepsThisCall: maxSteps, shouldStop: () => stop, workers, progress: progressMode, keepExportsAt,
  });
  process.stderr.write(`${r.finished ? "finished" : "stopped"} at step ${r.step}/${r.config.steps}; ${r.seconds.toFixed(0)} s of training; mean loss this call ${r.meanLoss.toPrecision(4)}\n`);

  if (r.finished && nSamples) {
    const card = await writeModelCard(out, { samples: nSamples });
    process.stderr.write(`wrote ${card.samplesPng}${card.lossPng ? ` and ${card.lossPng}` : ""}\n`);
  }
}

runCommand({ name: "train-ddpm", usage: () => headerComment(__filename) }, main, { exit: true });
