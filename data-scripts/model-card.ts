/**
 * Write a trained run's samples.png (DDIM samples of its EMA model) and loss.png (loss curve); with --along,
 * also samples-along.png (the same noise denoised by every kept export: init, ema-<step>, the current one).
 *
 *   npx tsx data-scripts/model-card.ts <run-dir> [--samples 64] [--respacing ddim50] [--seed 0] [--along 12]
 */
import { selectBackend } from "../lib/model/backend";
import { writeModelCard } from "../lib/train/model-card";
import { writeSamplesAlong } from "../lib/train/samples-along";
import { numberOption, parseCommandLine, runCommand } from "./cli";

const USAGE = `usage: npx tsx data-scripts/model-card.ts <run-dir> [--samples 64] [--respacing ddim50] [--seed 0]
  <run-dir>          a training run (model.json, ema.safetensors, loss.csv)
  --samples N        number of samples in the grid (default 64)
  --respacing S      timestep respacing of the DDIM sampler, guided-diffusion style: ddim50, 100, ... (default ddim50)
  --seed N           noise seed (default 0)
  --along N          also samples-along.png: N samples (same seeds) from each kept export, one row per export`;

async function main(): Promise<number> {
  const { values, positionals } = parseCommandLine({
    options: { samples: { type: "string" }, respacing: { type: "string" }, seed: { type: "string" }, along: { type: "string" } },
    positionals: [1, 1],
  });
  const samples = numberOption(values, "samples", { integer: true, positive: true }) ?? 64;
  const seed = numberOption(values, "seed", { integer: true, min: 0 }) ?? 0;
  const along = numberOption(values, "along", { integer: true, positive: true });
  await selectBackend();
  const card = await writeModelCard(positionals[0], { samples, respacing: values.respacing ?? "ddim50", seed });
  console.log(`step ${card.step}: ${card.samplesPng}${card.lossPng ? `, ${card.lossPng} (final smoothed loss ${card.finalLoss!.toPrecision(4)})` : ""}`);
  if (along !== undefined) {
    const a = await writeSamplesAlong(positionals[0], { samples: along, respacing: values.respacing ?? "ddim50", seed });
    console.log(`${a.file}: rows top to bottom = steps ${a.steps.join(", ")}`);
  }
  return 0;
}

runCommand({ name: "model-card", usage: USAGE }, main);
