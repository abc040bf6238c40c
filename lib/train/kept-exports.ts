/**
 * The weights a training run keeps along the way: `init.safetensors` (step 0, the random initialisation),
 * `ema-<step>.safetensors` (EMA exports kept at chosen steps) and the current export named by `model.json`
 * (`weights`, at its `step`). Notebook 08 probes each; the model card samples each.
 */
import * as fs from "fs";
import * as path from "path";

export interface KeptExport {
  step: number;
  file: string;
}

const EMA_EXPORT = /^ema-(\d+)\.safetensors$/;

/** The file name an EMA export kept at `step` gets (seven digits, as the training state files). */
export function emaExportName(step: number): string {
  if (!Number.isInteger(step) || step < 0) throw new Error(`emaExportName: step ${step} is not a non-negative integer`);
  return `ema-${String(step).padStart(7, "0")}.safetensors`;
}

/** Every kept export of the run in `dir`, by step; where two files claim a step, model.json's export wins. */
export function keptExports(dir: string): KeptExport[] {
  const manifestFile = path.join(dir, "model.json");
  if (!fs.existsSync(manifestFile)) throw new Error(`${manifestFile}: not found (a training run folder has model.json)`);
  const manifest = JSON.parse(fs.readFileSync(manifestFile, "utf8"));
  if (typeof manifest.weights !== "string" || !Number.isInteger(manifest.step)) throw new Error(`${manifestFile}: needs "weights" (a file name) and "step" (an integer)`);
  const found = new Map<number, string>();
  if (fs.existsSync(path.join(dir, "init.safetensors"))) found.set(0, path.join(dir, "init.safetensors"));
  for (const f of fs.readdirSync(dir)) {
    const m = EMA_EXPORT.exec(f);
    if (m) found.set(Number(m[1]), path.join(dir, f));
  }
  const current = path.join(dir, manifest.weights);
  if (!fs.existsSync(current)) throw new Error(`${manifestFile}: its weights ${manifest.weights} are missing`);
  found.set(manifest.step, current);
  return [...found].sort((a, b) => a[0] - b[0]).map(([step, file]) => ({ step, file }));
}
