/**
 * A checkpoint with random weights in guided-diffusion's layout (every state_dict name and shape of a
 * config), written with lib/model/checkpoint's torch-zip writer, for load-time benchmarks. Values are
 * uniform with the variance of N(0, 1/fan_in) for matrices, 1 for norm weights, 0 for biases; they are
 * produced one tensor at a time, so writing a 2.2 GB file needs little memory.
 */
import { writeTorchZip } from "../lib/model/checkpoint";
import { Rng } from "../lib/rng";
import type { UNetConfig } from "../lib/model/unet/config";
import { parameterSpecs } from "../lib/model/unet/parameters";

function randomValues(shape: number[], name: string, seed: number, index: number): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  if (shape.length === 1) {
    if (/(norm|in_layers\.0|out_layers\.0|^out\.0)\.weight$/.test(name)) out.fill(1);
    return out; // biases 0
  }
  const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
  const scale = Math.sqrt(3 / fanIn) / 2 ** 31; // uniform(-a, a) with a^2 / 3 = 1 / fan_in
  const rng = new Rng(seed, index);
  for (let i = 0; i < n; i++) out[i] = ((rng.uint32() | 0) + 0.5) * scale;
  return out;
}

/** Write a random-weight checkpoint of `config` to `file`; returns the number of tensors and bytes of values. */
export async function writeRandomCheckpoint(config: UNetConfig, file: string, seed = 0): Promise<{ tensors: number; valueBytes: number }> {
  const specs = parameterSpecs(config);
  let valueBytes = 0;
  await writeTorchZip(
    file,
    specs.map((s, i) => {
      valueBytes += 4 * s.shape.reduce((a, b) => a * b, 1);
      return { name: s.name, shape: [...s.shape], data: () => randomValues(s.shape, s.name, seed, i) };
    }),
  );
  return { tensors: specs.length, valueBytes };
}
