/**
 * Resumable training checkpoints in a run folder:
 *
 *   state-<step>.safetensors   every tensor of the run, tfjs layout, float32: groups "param/", "ema/",
 *                              "adam_m/", "adam_v/" + the guided-diffusion parameter name
 *   checkpoint.json            the rest (step, cumulative seconds, configs, RNG description) and the
 *                              name of its tensor file
 *
 * Both files are written atomically (temporary file + rename) and checkpoint.json last, so it always
 * names a complete tensor file: a run killed at any moment resumes from the last completed checkpoint.
 * Older tensor files beyond `keep` are removed after the new checkpoint is committed.
 */
import * as fs from "fs";
import * as path from "path";
import * as tf from "@tensorflow/tfjs";
import { readSafetensors, saveSafetensors } from "../model/checkpoint/index";
import { writeAtomically } from "../model/checkpoint/atomic";

export const CHECKPOINT_JSON = "checkpoint.json";
export const STATE_FORMAT = "diffprobe-train-state";
export const STATE_VERSION = 1;

export type TensorGroups = Record<string, Map<string, tf.Tensor>>;

/** The JSON part of a checkpoint. `extra` carries the trainer's own fields. */
export interface CheckpointInfo<E = Record<string, unknown>> {
  format: typeof STATE_FORMAT;
  version: number;
  /** Optimizer steps completed. */
  step: number;
  /** Tensor file, relative to the run folder. */
  tensors: string;
  savedAt: string;
  extra: E;
}

const stateFile = (step: number) => `state-${String(step).padStart(7, "0")}.safetensors`;

/** Save a checkpoint of `groups` at `step`; keeps the newest `keep` tensor files. */
export async function saveCheckpoint<E>(dir: string, step: number, groups: TensorGroups, extra: E, keep = 2): Promise<CheckpointInfo<E>> {
  fs.mkdirSync(dir, { recursive: true });
  const file = stateFile(step);
  const tensors: { name: string; shape: number[]; data: () => Float32Array }[] = [];
  for (const [g, m] of Object.entries(groups)) {
    for (const [name, t] of m) tensors.push({ name: `${g}/${name}`, shape: t.shape, data: () => t.dataSync() as Float32Array });
  }
  const info: CheckpointInfo<E> = { format: STATE_FORMAT, version: STATE_VERSION, step, tensors: file, savedAt: new Date().toISOString(), extra };
  await saveSafetensors(path.join(dir, file), tensors, { format: STATE_FORMAT, step: String(step) });
  await writeAtomically(path.join(dir, CHECKPOINT_JSON), async (tmp) => fs.promises.writeFile(tmp, JSON.stringify(info, null, 2) + "\n"));
  const old = fs.readdirSync(dir).filter((f) => /^state-\d+\.safetensors$/.test(f) && f !== file).sort();
  for (const f of old.slice(0, Math.max(0, old.length - (keep - 1)))) fs.rmSync(path.join(dir, f), { force: true });
  return info;
}

/** The run folder's last checkpoint, or null when there is none. */
export function readCheckpointInfo<E>(dir: string): CheckpointInfo<E> | null {
  const f = path.join(dir, CHECKPOINT_JSON);
  if (!fs.existsSync(f)) return null;
  const info = JSON.parse(fs.readFileSync(f, "utf8")) as CheckpointInfo<E>;
  if (info.format !== STATE_FORMAT) throw new Error(`${f}: not a training checkpoint (format ${JSON.stringify(info.format)})`);
  if (info.version !== STATE_VERSION) throw new Error(`${f}: checkpoint version ${info.version}, this code reads ${STATE_VERSION}`);
  return info;
}

/**
 * Restore `groups` (existing variables, keyed like when saved) from the checkpoint's tensor file.
 * Every variable must be present with the same shape; nothing else may be in the file.
 */
export async function restoreCheckpoint(dir: string, info: CheckpointInfo<unknown>, groups: Record<string, Map<string, tf.Variable>>): Promise<void> {
  const file = path.join(dir, info.tensors);
  const { tensors } = await readSafetensors(file);
  const expected = new Set<string>();
  for (const [g, m] of Object.entries(groups)) {
    for (const [name, v] of m) {
      const key = `${g}/${name}`;
      expected.add(key);
      const e = tensors.get(key);
      if (!e) throw new Error(`${file}: lacks ${key}`);
      if (e.shape.join(",") !== v.shape.join(",")) throw new Error(`${file}: ${key} has shape [${e.shape}], the model [${v.shape}]`);
      const data = await e.readFloat32();
      tf.tidy(() => v.assign(tf.tensor(data, v.shape, "float32")));
    }
  }
  const extra = [...tensors.keys()].filter((k) => !expected.has(k));
  if (extra.length) throw new Error(`${file}: unexpected tensors ${extra.slice(0, 5).join(", ")}${extra.length > 5 ? ", ..." : ""}`);
}
