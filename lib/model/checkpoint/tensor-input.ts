/**
 * Tensors handed to the writers (safetensors, torch zip): float32 values with a name and shape.
 * The values may be given lazily (a function), so a writer can produce and write one tensor at a
 * time and never hold a whole multi-gigabyte checkpoint in memory.
 */
import { numelOf, shapeText } from "./dtype";

export type Float32Source = Float32Array | (() => Float32Array | Promise<Float32Array>);

export interface NamedFloat32Tensor {
  name: string;
  shape: number[];
  data: Float32Source;
}

export type Float32Tensors = NamedFloat32Tensor[] | Map<string, { shape: number[]; data: Float32Source }>;

/** The tensors as a list, checked for empty or duplicate names and invalid shapes. */
export function tensorList(tensors: Float32Tensors, file: string): NamedFloat32Tensor[] {
  const list = Array.isArray(tensors) ? tensors : [...tensors].map(([name, t]) => ({ name, shape: t.shape, data: t.data }));
  const seen = new Set<string>();
  for (const t of list) {
    if (typeof t.name !== "string" || t.name === "") throw new Error(`${file}: a tensor has an empty name`);
    if (seen.has(t.name)) throw new Error(`${file}: tensor "${t.name}" is given twice`);
    seen.add(t.name);
    if (!Array.isArray(t.shape) || t.shape.some((d) => !Number.isInteger(d) || d < 0)) {
      throw new Error(`${file}: tensor "${t.name}" has an invalid shape ${JSON.stringify(t.shape)}`);
    }
  }
  return list;
}

/** The values of `t`, produced now and checked against its shape. */
export async function valuesOf(t: NamedFloat32Tensor, file: string): Promise<Float32Array> {
  const data = typeof t.data === "function" ? await t.data() : t.data;
  if (!(data instanceof Float32Array)) throw new Error(`${file}: tensor "${t.name}": data is not a Float32Array`);
  const n = numelOf(t.shape);
  if (data.length !== n) {
    throw new Error(`${file}: tensor "${t.name}" has shape ${shapeText(t.shape)} (${n} values) but ${data.length} values were given`);
  }
  return data;
}

/** The bytes of a float32 array (no copy). */
export function bytesOf(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}
