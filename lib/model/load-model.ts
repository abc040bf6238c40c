/**
 * Build the model a {@link ModelSource} describes, in the current thread (a worker, or the main
 * thread of a single-instance run). Kept apart from ./model-source so that code which only needs a
 * source's config or id does not load the U-Net.
 */
import * as fs from "fs";
import { ModelSource, sourceConfig } from "./model-source";
import { UNet } from "./unet/model";

/** Build the model of a source in the current thread. */
export async function loadModel(src: ModelSource): Promise<UNet> {
  const config = sourceConfig(src);
  if ("checkpoint" in src && src.checkpoint !== undefined) {
    if (!fs.existsSync(src.checkpoint)) throw new Error(`checkpoint ${src.checkpoint} does not exist`);
    return UNet.fromCheckpoint(config, src.checkpoint, src.weights);
  }
  if (!("seed" in src) || !Number.isSafeInteger(src.seed)) throw new Error("model source needs `checkpoint` (a file) or `seed` (random weights)");
  return UNet.random(config, src.seed, src.weights);
}
