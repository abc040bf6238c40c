/**
 * The streaming state-dict model: tensor entries know their name, dtype and shape, and read their
 * values from the checkpoint file only when asked. Every format loader (torch zip, legacy torch,
 * safetensors) describes its tensors as a view into a byte range of the file (`StorageSource`),
 * and `tensorEntry` turns such a view into a `TensorEntry`.
 */
import * as fs from "fs";
import { DType, DTYPE_SIZE, numelOf, shapeText, toFloat32 } from "./dtype";
import { withFile, FileStamp } from "./file";

export interface TensorEntry {
  name: string;
  dtype: DType;
  shape: number[];
  /** Values converted to float32 (float16/bfloat16/float64/int -> float32), read from disk now. */
  readFloat32(): Promise<Float32Array>;
  /** The values as stored (little-endian `dtype` elements, C order), read from disk now. */
  readRaw(): Promise<Uint8Array>;
}

export type StateDict = Map<string, TensorEntry>;

/** A run of bytes in a file holding one storage (torch) or one tensor (safetensors). */
export interface StorageSource {
  file: string;
  stamp: FileStamp | null;
  /** For messages, e.g. `storage "archive/data/3"`. */
  label: string;
  byteLength: number;
  /** Read `length` bytes starting `start` bytes into the storage. */
  read(handle: fs.promises.FileHandle, start: number, length: number): Promise<Uint8Array>;
}

/** C-order (row-major) strides of a shape, in elements. */
export function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

function isContiguous(shape: readonly number[], stride: readonly number[]): boolean {
  const c = contiguousStrides(shape);
  return shape.every((d, i) => d <= 1 || stride[i] === c[i]);
}

/**
 * A lazily read tensor: `shape`/`stride` (elements) view into `source` starting at element
 * `offset`. Checks now that the view fits in the storage; non-contiguous views are materialised
 * in C order when read.
 */
export function tensorEntry(
  name: string,
  dtype: DType,
  shape: number[],
  stride: number[],
  offset: number,
  source: StorageSource,
): TensorEntry {
  const esize = DTYPE_SIZE[dtype];
  const numel = numelOf(shape);
  const bad = (msg: string) => new Error(`${source.file}: tensor "${name}" ${shapeText(shape)}: ${msg}`);
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) throw bad("invalid shape");
  if (stride.length !== shape.length || stride.some((s) => !Number.isInteger(s) || s < 0)) {
    throw bad(`invalid stride ${shapeText(stride)}`);
  }
  if (!Number.isInteger(offset) || offset < 0) throw bad(`invalid storage offset ${offset}`);
  // Elements [offset, last] of the storage are touched.
  let last = offset;
  for (let i = 0; i < shape.length; i++) last += (shape[i] - 1) * stride[i];
  const spanStart = offset * esize;
  const spanBytes = numel === 0 ? 0 : (last - offset + 1) * esize;
  if (numel > 0 && spanStart + spanBytes > source.byteLength) {
    throw new Error(
      `${source.file}: ${source.label} needs ${spanStart + spanBytes} bytes for tensor "${name}" ` +
        `${shapeText(shape)} (${dtype}, offset ${offset}, stride ${shapeText(stride)}) but the entry holds ${source.byteLength}`,
    );
  }
  const contiguous = isContiguous(shape, stride);

  const readRaw = async (): Promise<Uint8Array> => {
    if (numel === 0) return new Uint8Array(0);
    const span = await withFile(source.file, source.stamp, (h) => source.read(h, spanStart, spanBytes));
    if (contiguous) return span;
    // Gather a strided view into C order.
    const out = new Uint8Array(numel * esize);
    const idx = new Array<number>(shape.length).fill(0);
    const nd = shape.length;
    let src = 0; // element index relative to `offset`
    for (let k = 0; k < numel; k++) {
      out.set(span.subarray(src * esize, src * esize + esize), k * esize);
      for (let d = nd - 1; d >= 0; d--) {
        idx[d]++;
        src += stride[d];
        if (idx[d] < shape[d]) break;
        src -= stride[d] * shape[d];
        idx[d] = 0;
      }
    }
    return out;
  };
  return {
    name,
    dtype,
    shape,
    readRaw,
    readFloat32: async () => toFloat32(await readRaw(), dtype),
  };
}
