/**
 * Write a trained run's samples.png (DDIM samples of its EMA model) and loss.png (loss curve).
 *
 *   npx tsx data-scripts/model-card.ts <run-dir> [--samples 64] [--respacing ddim50] [--seed 0]
 */
import { parseArgs } from "util";
import { selectBackend } from "../lib/backend";
import { writeModelCard } from "../lib/train/model-card";

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      samples: { type: "string", default: "64" },
      respacing: { type: "string", default: "ddim50" },
      seed: { type: "string", default: "0" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help || positionals.length !== 1) {
    console.log("usage: npx tsx data-scripts/model-card.ts <run-dir> [--samples 64] [--respacing ddim50] [--seed 0]");
    return values.help ? 0 : 2;
  }
  await selectBackend();
  const card = await writeModelCard(positionals[0], { samples: Number(values.samples), respacing: values.respacing, seed: Number(values.seed) });
  console.log(`step ${card.step}: ${card.samplesPng}${card.lossPng ? `, ${card.lossPng} (final smoothed loss ${card.finalLoss!.toPrecision(4)})` : ""}`);
  return 0;
}

main().then((rc) => (process.exitCode = rc), (e) => {
  console.error(`model-card: ${(e as Error).message}`);
  process.exitCode = 1;
});
