/**
 * Checkpoint I/O: load a state dict from a torch.save file (zip or legacy format) or a
 * safetensors file with lazily read tensors, check it against a model's expected shapes, and
 * write float32 checkpoints as safetensors or torch zip files.
 */
import * as fs from "fs";
import { readExact } from "./file";
import { looksLikeZip } from "./zip";
import { loadTorchZip, loadTorchLegacy, looksLikeLegacyTorch, LoadOptions } from "./torch";
import { looksLikeSafetensors, readSafetensors } from "./safetensors";
import type { StateDict } from "./state-dict";

export type { DType } from "./dtype";
export { DTYPE_SIZE, numelOf, toFloat32, float16BitsToNumber } from "./dtype";
export type { TensorEntry, StateDict } from "./state-dict";
export { validateStateDict } from "./validate";
export { saveSafetensors, readSafetensors } from "./safetensors";
export type { SafetensorsFile } from "./safetensors";
export { writeTorchZip } from "./torch-writer";
export type { TorchZipOptions } from "./torch-writer";
export { loadTorchZip, loadTorchLegacy } from "./torch";
export type { LoadOptions } from "./torch";
export type { Float32Tensors, Float32Source, NamedFloat32Tensor } from "./tensor-input";

export type CheckpointFormat = "torch-zip" | "torch-legacy" | "safetensors";

/** Which checkpoint format `file` holds, from its first bytes. */
export async function detectCheckpointFormat(file: string): Promise<CheckpointFormat> {
  const h = await fs.promises.open(file, "r");
  let head: Uint8Array;
  let size: number;
  try {
    size = (await h.stat()).size;
    head = await readExact(h, file, 0, Math.min(size, 16));
  } finally {
    await h.close();
  }
  if (looksLikeZip(head)) return "torch-zip";
  if (looksLikeLegacyTorch(head)) return "torch-legacy";
  if (looksLikeSafetensors(head, size)) return "safetensors";
  const hex = Buffer.from(head.subarray(0, 8)).toString("hex").replace(/(..)(?!$)/g, "$1 ");
  throw new Error(
    `${file}: unrecognised checkpoint format (${size} bytes, starting ${hex || "<empty>"}); ` +
      "expected a torch.save zip file, a legacy torch.save file or a .safetensors file",
  );
}

/**
 * Load the state dict in `file` (torch zip, legacy torch or safetensors, told apart by content).
 * Only names, dtypes and shapes are read now; each entry reads its values when asked.
 */
export async function loadStateDict(file: string, options: LoadOptions = {}): Promise<StateDict> {
  switch (await detectCheckpointFormat(file)) {
    case "torch-zip":
      return loadTorchZip(file, options);
    case "torch-legacy":
      return loadTorchLegacy(file, options);
    case "safetensors":
      return (await readSafetensors(file)).tensors;
  }
}
