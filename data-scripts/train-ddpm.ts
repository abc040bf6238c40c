/**
 * Train (or resume) a DDPM (guided-diffusion ADM U-Net, epsilon prediction) on Fashion-MNIST.
 *
 *   npx tsx data-scripts/train-ddpm.ts --out runs/fmnist-ddpm [options]
 *
 * Running the same command again resumes from the last checkpoint (every --checkpoint-every steps).
 * Ctrl-C (SIGINT) or SIGTERM stops after the current step and writes a checkpoint; a second Ctrl-C
 * exits at once (the last periodic checkpoint stays valid). See lib/train/trainer.ts for the files.
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
 *   --samples N             at the end, write N DDIM-50 samples of the EMA model to samples.png
 *   --backend NAME          default wasm (DIFFPROBE_BACKEND also works)
 *   --progress log|tty|silent
 */
import * as path from "path";
import { selectBackend, describeBackend } from "../lib/backend";
import { writeModelCard } from "../lib/train/model-card";
import { ProgressMode } from "../lib/progress";
import { DataSpec, DEFAULT_TRAIN_CONFIG, makeTrainData, TrainConfig, trainDdpm } from "../lib/train/trainer";

function parseArgs(argv: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--help" || a === "-h") out.set("help", "1");
    else if (a.startsWith("--")) {
      const [k, v] = a.includes("=") ? [a.slice(2, a.indexOf("=")), a.slice(a.indexOf("=") + 1)] : [a.slice(2), argv[++i]];
      if (v === undefined) throw new Error(`option --${k} needs a value`);
      out.set(k, v);
    } else throw new Error(`unexpected argument ${JSON.stringify(a)}`);
  }
  return out;
}

const KNOWN = new Set([
  "help", "out", "steps", "batch", "lr", "weight-decay", "ema", "seed", "checkpoint-every", "num-channels", "num-res-blocks",
  "channel-mult", "attention-resolutions", "channels", "limit", "data", "image-size", "max-steps", "samples", "backend", "progress", "workers",
]);

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.has("help")) {
    const doc = require("fs").readFileSync(__filename, "utf8").match(/\/\*\*([\s\S]*?)\*\//)![1];
    process.stdout.write(doc.replace(/^ \* ?/gm, "") + "\n");
    return;
  }
  const unknown = [...args.keys()].filter((k) => !KNOWN.has(k));
  if (unknown.length) throw new Error(`unknown option(s) ${unknown.map((k) => "--" + k).join(", ")} (see --help)`);
  const out = args.get("out");
  if (!out) throw new Error("--out DIR is required (see --help)");
  const num = (k: string) => {
    const v = args.get(k);
    if (v === undefined) return undefined;
    const x = Number(v);
    if (!Number.isFinite(x)) throw new Error(`--${k} must be a number, got ${JSON.stringify(v)}`);
    return x;
  };

  const choice = await selectBackend(args.get("backend") ?? process.env.DIFFPROBE_BACKEND ?? "wasm");
  const channels = (num("channels") ?? 1) as 1 | 3;
  const kind = args.get("data") ?? "fashion-mnist";
  let spec: DataSpec;
  if (kind === "synthetic") spec = { kind: "synthetic", n: 10, size: num("image-size") ?? 8, channels };
  else if (kind === "fashion-mnist") spec = { kind: "fashion-mnist", channels, limit: num("limit") };
  else throw new Error(`--data must be fashion-mnist or synthetic, got ${JSON.stringify(kind)}`);
  const data = makeTrainData(spec);

  const model = { ...DEFAULT_TRAIN_CONFIG.model, in_channels: channels, image_size: data.shape[0] };
  const setModel = (flag: string, key: string, asNumber: boolean) => {
    const v = args.get(flag);
    if (v !== undefined) (model as Record<string, unknown>)[key] = asNumber ? Number(v) : v;
  };
  setModel("num-channels", "num_channels", true);
  setModel("num-res-blocks", "num_res_blocks", true);
  setModel("channel-mult", "channel_mult", false);
  setModel("attention-resolutions", "attention_resolutions", false);
  const config: Partial<TrainConfig> = { model };
  const set = (flag: string, key: keyof TrainConfig) => {
    const v = num(flag);
    if (v !== undefined) (config as Record<string, unknown>)[key] = v;
  };
  set("steps", "steps");
  set("batch", "batchSize");
  set("lr", "lr");
  set("weight-decay", "weightDecay");
  set("ema", "emaRate");
  set("seed", "seed");
  set("checkpoint-every", "checkpointEvery");

  let stop = false;
  const onSignal = (sig: string) => {
    if (stop) {
      process.stderr.write(`\n${sig} again: exiting now (resume from the last checkpoint)\n`);
      process.exit(130);
    }
    stop = true;
    process.stderr.write(`\n${sig}: stopping after this step (a checkpoint will be written); ${sig} again to exit at once\n`);
  };
  process.on("SIGINT", () => onSignal("SIGINT"));
  process.on("SIGTERM", () => onSignal("SIGTERM"));

  process.stderr.write(`backend: ${describeBackend()} (${choice.forced ? "forced" : "automatic"}); data: ${data.description}; run folder: ${path.resolve(out)}\n`);
  const r = await trainDdpm({
    dir: out, data, config, maxStepsThisCall: num("max-steps"), shouldStop: () => stop, workers: num("workers") ?? 1,
    progress: (args.get("progress") as ProgressMode | undefined) ?? undefined,
  });
  process.stderr.write(`${r.finished ? "finished" : "stopped"} at step ${r.step}/${r.config.steps}; ${r.seconds.toFixed(0)} s of training; mean loss this call ${r.meanLoss.toPrecision(4)}\n`);

  const nSamples = num("samples");
  if (r.finished && nSamples) {
    const card = await writeModelCard(out, { samples: nSamples });
    process.stderr.write(`wrote ${card.samplesPng}${card.lossPng ? ` and ${card.lossPng}` : ""}\n`);
  }
}

main().catch((e) => {
  process.stderr.write(`train-ddpm: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
