/**
 * Named weights of the baseline models (lib/train/baselines), kept like lib/model/unet's: PyTorch names, shapes and
 * layout in files (conv OIHW, linear [out, in]), tfjs layout in memory (conv HWIO, linear [in, out]).
 * The conversions are lib/model/unet's `toTfLayout` and lib/train's `toTorchLayout`, so a file written here
 * loads in lib/model/unet (the encoder-classifier's blocks) and in PyTorch.
 */
import * as tf from "@tensorflow/tfjs";
import { loadStateDict, saveSafetensors } from "../../model/checkpoint/index";
import { toTorchLayout } from "../model-params";
import type { ParamSpec } from "../../model/unet/parameters";
import { toTfLayout } from "../../model/unet/weights";
import type { WeightSource } from "../../model/unet/layers";

export type { ParamSpec };
/** Named trainable weights (tfjs layout), in spec order. */
export type NamedVariables = Map<string, tf.Variable>;

/** PyTorch-layout tensors (the init or a file) to tfjs variables, checked against `specs`. */
export function variablesFrom(specs: ParamSpec[], tensors: Map<string, Float32Array>, what: string): NamedVariables {
  const out: NamedVariables = new Map();
  const known = new Set(specs.map((s) => s.name));
  const extra = [...tensors.keys()].filter((k) => !known.has(k));
  if (extra.length) throw new Error(`${what}: unexpected tensors ${extra.slice(0, 5).join(", ")}`);
  for (const spec of specs) {
    const data = tensors.get(spec.name);
    if (!data) throw new Error(`${what}: lacks ${spec.name} [${spec.shape.join(", ")}]`);
    const t = toTfLayout(spec, data);
    const init = tf.tensor(t.data, t.shape, "float32");
    out.set(spec.name, tf.variable(init, true));
    init.dispose();
  }
  return out;
}

/** Read a safetensors file written by `saveNamed`, shapes checked (the error names file and key). */
export async function readNamed(file: string, specs: ParamSpec[]): Promise<Map<string, Float32Array>> {
  const sd = await loadStateDict(file);
  const out = new Map<string, Float32Array>();
  for (const spec of specs) {
    const e = sd.get(spec.name);
    if (!e) throw new Error(`${file}: lacks ${spec.name} [${spec.shape.join(", ")}]`);
    if (e.shape.join(",") !== spec.shape.join(",")) throw new Error(`${file}: ${spec.name} has shape [${e.shape.join(", ")}], expected [${spec.shape.join(", ")}]`);
    out.set(spec.name, await e.readFloat32());
  }
  const extra = [...sd.keys()].filter((k) => !out.has(k));
  if (extra.length) throw new Error(`${file}: unexpected tensors ${extra.slice(0, 5).join(", ")}`);
  return out;
}

/** Write tfjs-layout tensors keyed by spec name as a PyTorch-layout safetensors file (atomic). */
export async function saveNamed(file: string, specs: ParamSpec[], tensors: Map<string, tf.Tensor>, metadata: Record<string, string>): Promise<void> {
  await saveSafetensors(file, specs.map((spec) => {
    const t = tensors.get(spec.name);
    if (!t) throw new Error(`saveNamed ${file}: no tensor for ${spec.name}`);
    return { name: spec.name, shape: spec.shape, data: () => toTorchLayout(spec, t.dataSync() as Float32Array) };
  }), { format: "pt", ...metadata });
}

/** A WeightSource over named tensors (lib/model/unet's layers read weights through it). */
export function weightSource(tensors: Map<string, tf.Tensor>): WeightSource {
  return {
    get(name: string): tf.Tensor {
      const t = tensors.get(name);
      if (!t) throw new Error(`no weight named ${name}`);
      return t;
    },
  };
}

export function disposeAll(m: Map<string, tf.Tensor>): void {
  for (const t of m.values()) t.dispose();
  m.clear();
}
