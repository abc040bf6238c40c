/**
 * Fill the feature store: pooled U-Net features of a dataset split for several blocks x timesteps, written
 * part by part (one model pass per part serves every block and t). Parts already stored are skipped, so a
 * rerun, or a killed shard run again, continues where it stopped; Ctrl-C finishes the current part and stops
 * (a second Ctrl-C stops at once: a part is never half-written under its final name).
 *
 *   npm run extract -- --dataset fashion-mnist --split train --blocks 5,9 --t 25,100 --pool 4
 *   npm run extract -- --model adm-256-uncond --checkpoint ckpt/256x256_diffusion_uncond.pt \
 *       --dataset cub:/data/cub --split train --blocks 24 --t 90 --pool 2 --float16 --shard 3/8
 *   npm run extract -- ... --status        what is missing, per set and per shard (nothing is computed)
 *
 * Options:
 *   --model M          a trained model folder (model.json + weights; default: the embedded Fashion-MNIST
 *                      model), or a config (preset name such as adm-256-uncond, or a JSON file of
 *                      guided-diffusion flags) with --checkpoint FILE or --seed N (random weights)
 *   --checkpoint FILE  weights for a config given by --model
 *   --seed N           random weights from this seed (tests, baselines) instead of a checkpoint; with a
 *                      model folder (or none: the embedded model), that folder's architecture and schedule
 *                      with random weights (notebook 02's random-weights U-Net is --seed 1)
 *   --schedule S       linear or cosine (default: the model folder's, else linear), --steps N (default 1000)
 *   --dataset D        fashion-mnist | folder:<path> (class subfolders) | <name>:<root> with name one of
 *                      imagenet, aircraft, cars, cub, dogs, flowers, nabirds
 *   --split S          train (default) or test (or a dataset's own split name)
 *   --size N           side of file images after centre cropping (default: the model's image size)
 *   --limit N          only the first N images of the split
 *   --blocks B         block numbers or module names, comma-separated (required)
 *   --t T              timesteps, comma-separated (required)
 *   --pool P           N (adaptive N x N), global, or none (default global)
 *   --noise-seed N     seed of the noise (default 0); --ensemble K averages K draws
 *   --float16          store half-precision values (half the disk)
 *   --part-rows N      rows per part file (default 256)
 *   --store DIR        store root (default $DIFFPROBE_STORE or .cache/store)
 *   --shard i/N        fill only parts p with p mod N = i (N processes or Slurm array tasks share one store)
 *   --status           list missing parts per set (and per shard with --shard i/N); exit 0 if complete, 3 if not
 *   --verify           with --status: check every part's checksum too (reads the whole store)
 *   --engine E         auto (default: $DIFFPROBE_ENGINE, else ONNX Runtime where it loads), ort or tfjs
 *   --workers N        tfjs engine: feature worker threads (default: one per core; 0: in this thread)
 *   --batch-size N     images per model call (default: from the model's activation memory: the largest
 *                      power of two, at most 32, whose estimated float32 activations for a pass to the
 *                      deepest block asked fit in 2 GiB (lib/model/unet/activations.ts); 8 for the 256x256
 *                      ADM to block 24, 4 for its full pass, 32 for the Fashion-MNIST model)
 *   --backend B        tfjs backend (default wasm)
 */
import * as fs from "fs";
import * as path from "path";
import { choiceOption, headerComment, numberOption, parseCommandLine, runCommand, UsageError } from "./cli";
import { embeddedModel } from "../lib/model/embedded";
import { embeddedScaleModel, randomWeights } from "../lib/experiments/scale-model";
import { selectBackend } from "../lib/model/backend";
import { loadModel } from "../lib/model/load-model";
import { NoisePolicy } from "../lib/features/extract";
import type { PoolSpec } from "../lib/features/pooling";
import { ModelSource, sourceConfig, sourceDiffusion, modelIdOf, modelSchedule } from "../lib/model/model-source";
import { defaultBatchSize, engineExtractor, FeatureExtractor, modelExtractor, workerExtractor } from "../lib/features/store/extractor";
import { chooseEngine } from "../lib/model/engines/engine";
import { extractToStore, openJobSets, ExtractJob } from "../lib/features/store/extract";
import { openImageSource } from "../lib/features/store/images";
import { parseShard, storeStatus, formatStatus } from "../lib/features/store/shard";
import { defaultStoreRoot } from "../lib/features/store/store";

function list(text: string | undefined, name: string): string[] {
  if (!text) throw new UsageError(`--${name} is required (comma-separated)`);
  return text.split(",").map((s) => s.trim()).filter(Boolean);
}

function parsePool(text: string | undefined): PoolSpec {
  if (!text || text === "global") return { kind: "global" };
  if (text === "none") return { kind: "none" };
  const n = Number(text);
  if (!(Number.isInteger(n) && n > 0)) throw new UsageError(`--pool must be a positive integer, global or none, got ${JSON.stringify(text)}`);
  return { kind: "adaptive", size: n };
}

/** The model source and its default schedule name from --model / --checkpoint / --seed. */
function modelOf(values: Record<string, string | boolean | undefined>): { source: ModelSource; schedule: string; steps: number } {
  const m = values.model as string | undefined;
  const seed = numberOption(values, "seed", { integer: true, min: 0 });
  const checkpoint = values.checkpoint as string | undefined;
  if (!m || (fs.existsSync(m) && fs.statSync(m).isDirectory())) {
    if (checkpoint) throw new UsageError("--checkpoint goes with a config given by --model, not with a model folder (the folder names its weights)");
    const em = embeddedModel(m);
    const schedule = { schedule: em.manifest.diffusion?.noise_schedule ?? "linear", steps: em.manifest.diffusion?.diffusion_steps ?? 1000 };
    // --seed with a folder: the folder's architecture and schedule with seeded random weights (randomWeights)
    if (seed !== undefined) return { source: randomWeights(embeddedScaleModel(em), seed).source, ...schedule };
    return { source: em.source, ...schedule };
  }
  let config: ModelSource["config"] = m;
  if (m.endsWith(".json")) {
    if (!fs.existsSync(m)) throw new UsageError(`--model ${m}: file not found`);
    config = JSON.parse(fs.readFileSync(m, "utf8"));
  }
  if ((checkpoint === undefined) === (seed === undefined)) throw new UsageError(`--model ${m} is a config: give --checkpoint FILE or --seed N (random weights)`);
  const source: ModelSource = checkpoint !== undefined ? { config, checkpoint: path.resolve(checkpoint) } : { config, seed: seed! };
  sourceConfig(source); // a bad preset or flag fails here, naming it
  return { source, schedule: "linear", steps: 1000 };
}

async function main(): Promise<number> {
  const s = { type: "string" as const };
  const b = { type: "boolean" as const };
  const { values } = parseCommandLine({
    options: {
      model: s, checkpoint: s, seed: s, schedule: s, steps: s, dataset: s, split: s, size: s, limit: s, blocks: s, t: s, pool: s,
      "noise-seed": s, ensemble: s, float16: b, "part-rows": s, store: s, shard: s, status: b, verify: b, workers: s, "batch-size": s, backend: s, engine: s,
    },
  });
  if (!values.dataset) throw new UsageError("--dataset is required");
  const model = modelOf(values);
  const config = sourceConfig(model.source);
  const own = sourceDiffusion(model.source).spec;
  const scheduleName = choiceOption(values, "schedule", ["linear", "cosine"] as const) ?? own.noiseSchedule;
  const steps = numberOption(values, "steps", { integer: true, positive: true }) ?? own.steps;
  // The model travels with its schedule: --schedule/--steps describe the model, they do not override it.
  const source: ModelSource = { ...model.source, diffusion: { noiseSchedule: scheduleName, steps } };
  const noiseSeed = numberOption(values, "noise-seed", { integer: true, min: 0 }) ?? 0;
  const ensemble = numberOption(values, "ensemble", { integer: true, positive: true });
  const noise: NoisePolicy = ensemble && ensemble > 1 ? { policy: "ensemble", k: ensemble, seed: noiseSeed } : { policy: "seeded", seed: noiseSeed };
  const timesteps = list(values.t, "t").map((x) => {
    const t = Number(x);
    if (!(Number.isInteger(t) && t >= 0 && t < steps)) throw new UsageError(`--t: ${JSON.stringify(x)} is not an integer in [0, ${steps - 1}]`);
    return t;
  });
  const blocks = list(values.blocks, "blocks").map((x) => (/^\d+$/.test(x) ? Number(x) : x));
  let shard = null;
  try {
    shard = values.shard ? parseShard(values.shard) : null;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const workers = numberOption(values, "workers", { integer: true, min: 0 });
  const batchSize = numberOption(values, "batch-size", { integer: true, positive: true }) ?? defaultBatchSize(config, blocks);
  const images = await openImageSource(values.dataset, {
    split: values.split ?? "train",
    size: numberOption(values, "size", { integer: true, positive: true }) ?? config.imageSize,
    limit: numberOption(values, "limit", { integer: true, positive: true }),
  });
  if (images.imageShape[2] !== config.inChannels) throw new Error(`${images.dataset} images have ${images.imageShape[2]} channels, the model takes ${config.inChannels}`);

  let extractor: FeatureExtractor;
  const engine = chooseEngine(values.engine);
  for (const l of engine.log) console.error(`engine ${l}`);
  console.error(`batch: ${batchSize} image(s) per model call${values["batch-size"] === undefined ? " (default: from the model's activation memory; --batch-size N to change)" : ""}`);
  if (engine.name === "ort") {
    if (workers !== undefined) console.error("(--workers applies to --engine tfjs: ONNX Runtime runs one session with a thread per core)");
    extractor = engineExtractor(source, { engine: "ort", batchSize });
  } else if (workers === 0) {
    await selectBackend(values.backend ?? "wasm");
    extractor = modelExtractor(await loadModel(source), modelIdOf(source), { batchSize });
    (extractor as { schedule?: unknown }).schedule = modelSchedule(source);
  } else {
    extractor = workerExtractor(source, { workers, batchSize, backend: values.backend });
  }
  const job: ExtractJob = {
    root: values.store ?? defaultStoreRoot(),
    extractor, images, blocks, timesteps, pool: parsePool(values.pool), noise,
    dtype: values.float16 ? "float16" : "float32",
    partRows: numberOption(values, "part-rows", { integer: true, positive: true }),
    shard,
  };

  if (values.status) {
    const status = storeStatus(openJobSets(job), { shards: shard?.count, verify: values.verify });
    for (const line of formatStatus(status)) console.log(line);
    const missing = status.reduce((n, x) => n + x.missing.length, 0);
    console.log(missing ? `${missing} part(s) missing in ${status.filter((x) => x.missing.length).length} of ${status.length} set(s)` : `all ${status.length} set(s) complete`);
    await extractor.close();
    return missing ? 3 : 0;
  }

  let stopping = false;
  const onSigint = () => {
    if (stopping) process.exit(130);
    stopping = true;
    console.error("extract: stopping after the current part (Ctrl-C again to stop now; no part is left half-written)");
  };
  process.on("SIGINT", onSigint);
  process.on("SIGTERM", onSigint);
  try {
    const r = await extractToStore({ ...job, shouldStop: () => stopping });
    console.log(`${images.dataset}/${images.split}: ${r.sets.length} set(s), ${r.computed} part(s) computed, ${r.skipped} already stored${shard ? ` (shard ${shard.index}/${shard.count})` : ""}${r.stopped ? "; stopped on request" : ""}`);
    console.log(`store: ${path.resolve(job.root)}`);
    if (r.computed) console.log(`time: ${r.seconds.prepare.toFixed(1)} s preparing the engine, ${r.seconds.extract.toFixed(1)} s in the model, ${r.seconds.waitImages.toFixed(1)} s waiting for images (decoding not overlapped), ${r.seconds.write.toFixed(1)} s writing`);
    return r.stopped ? 130 : 0;
  } finally {
    process.off("SIGINT", onSigint);
    await extractor.close();
  }
}

runCommand({ name: "extract", usage: () => headerComment(__filename) }, main, { exit: true });
