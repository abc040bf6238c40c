/**
 * Compare our preprocessing (PIL-compatible decode + guided-diffusion center_crop_arr) with reference
 * outputs of the PIL pipeline, for any folder in the layout of the shared fixtures:
 *
 *   npx tsx data-scripts/check-preprocess.ts <folder> [--tol-mean 0.05] [--tol-max 2] [--allow-skipped]
 *
 * <folder>/manifest.json lists { image, target, expected } items; expected/*.npy are uint8 (H, W, 3).
 * Prints one line per image and size (mean/max absolute difference, PASS/FAIL), then a summary.
 * Exit status: 0 all within tolerance; 1 a FAIL (or an undecodable image, unless --allow-skipped); 2 bad usage.
 */
import { numberOption, parseCommandLine, runCommand } from "./cli";
import { compareReferenceFolder, DEFAULT_TOLERANCE, formatResult } from "../lib/data/reference";

const USAGE = `usage: check-preprocess <folder> [--tol-mean X] [--tol-max Y] [--allow-skipped]
  <folder>          holds manifest.json, images/ and expected/<stem>_<size>.npy
  --tol-mean X      largest mean absolute difference in uint8 levels (default ${DEFAULT_TOLERANCE.mean})
  --tol-max Y       largest single absolute difference (default ${DEFAULT_TOLERANCE.max})
  --allow-skipped   undecodable images are reported but do not fail the check`;

async function main(): Promise<number> {
  const { values, positionals } = parseCommandLine({
    options: {
      "tol-mean": { type: "string" },
      "tol-max": { type: "string" },
      "allow-skipped": { type: "boolean", default: false },
    },
    positionals: [1, 1],
  });
  const tolerance = {
    mean: numberOption(values, "tol-mean", { min: 0 }) ?? DEFAULT_TOLERANCE.mean,
    max: numberOption(values, "tol-max", { min: 0 }) ?? DEFAULT_TOLERANCE.max,
  };
  const folder = positionals[0];
  const report = await compareReferenceFolder(folder, {
    tolerance,
    onResult: (r) => console.log(formatResult(r)),
    warn: (m) => console.log(`SKIP ${m.replace(/^warning: /, "").replace(/ \(skipped\)$/, "")}`),
  });
  const failed = report.results.filter((r) => !r.pass).length;
  const compared = report.results.filter((r) => !r.error);
  const worstMean = Math.max(0, ...compared.map((r) => r.mean));
  const worstMax = Math.max(0, ...compared.map((r) => r.max));
  console.log(
    `${report.results.length - failed} passed, ${failed} failed, ${report.skipped.length} skipped (undecodable); ` +
      `worst mean ${worstMean.toFixed(4)}, worst max ${worstMax} (tolerance mean ${tolerance.mean}, max ${tolerance.max})`,
  );
  if (failed) return 1;
  if (report.skipped.length && !values["allow-skipped"]) return 1;
  return 0;
}

runCommand({ name: "check-preprocess", usage: USAGE, errorStatus: 2 }, main);
