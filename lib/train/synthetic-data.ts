/**
 * A tiny deterministic image set for tests and smoke runs of the trainer: soft blobs at different
 * places, NHWC float32 in [-1, 1].
 */
import type { TrainData } from "./data-spec";

export function syntheticBlobs(n = 10, size = 8, channels = 1): TrainData {
  const per = size * size * channels;
  const all = new Float32Array(n * per);
  for (let i = 0; i < n; i++) {
    const cx = (i % 5) + 1.5 * (size / 8), cy = (i % 3) + 2.5 * (size / 8);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const v = Math.tanh(2 - ((x - cx) ** 2 + (y - cy) ** 2) / (3 * (size / 8) ** 2));
        for (let c = 0; c < channels; c++) all[i * per + (y * size + x) * channels + c] = v;
      }
    }
  }
  return {
    n,
    shape: [size, size, channels],
    description: `synthetic blobs (${n} images)`,
    batch: (idx) => {
      const out = new Float32Array(idx.length * per);
      Array.from(idx).forEach((k, j) => {
        if (!(k >= 0 && k < n)) throw new Error(`position ${k} is outside 0..${n - 1}`);
        out.set(all.subarray(k * per, (k + 1) * per), j * per);
      });
      return out;
    },
  };
}
