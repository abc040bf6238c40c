/**
 * NumPy `.npy` files (format versions 1.0, 2.0, 3.0).
 *
 *   "\x93NUMPY" | major | minor | header length (uint16 LE in v1, uint32 LE in v2/v3)
 *   | header: a Python dict literal, e.g. {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 *     (latin-1 in v1/v2, UTF-8 in v3), padded with spaces and ended by "\n" so that the data
 *     starts at a multiple of 64 bytes
 *   | data: the values, C order unless fortran_order
 *
 * Supported dtypes: <f4 <f8 <f2 <i4 <i8 |u1 (and their big-endian forms, byte-swapped on read).
 * float16 values are returned as their raw 16 bits (Uint16Array); `npyToFloat32` decodes them.
 */
import * as fs from "fs";
import { writeAtomically } from "./checkpoint/atomic";
import { float16BitsToNumber } from "./checkpoint/dtype";

export type NpyDType = "float32" | "float64" | "float16" | "int32" | "int64" | "uint8";

export type NpyData = Float32Array | Float64Array | Uint16Array | Int32Array | BigInt64Array | Uint8Array;

export interface NpyArray {
  dtype: NpyDType;
  shape: number[];
  /** Float32Array, Float64Array, Uint16Array (float16 bits), Int32Array, BigInt64Array or Uint8Array. */
  data: NpyData;
}

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY

const DESCR: Record<string, { dtype: NpyDType; size: number }> = {
  f4: { dtype: "float32", size: 4 },
  f8: { dtype: "float64", size: 8 },
  f2: { dtype: "float16", size: 2 },
  i4: { dtype: "int32", size: 4 },
  i8: { dtype: "int64", size: 8 },
  u1: { dtype: "uint8", size: 1 },
};

const WRITE_DESCR: Record<NpyDType, string> = {
  float32: "<f4",
  float64: "<f8",
  float16: "<f2",
  int32: "<i4",
  int64: "<i8",
  uint8: "|u1",
};

function typedArray(dtype: NpyDType, buf: ArrayBuffer, offset: number, n: number): NpyData {
  switch (dtype) {
    case "float32":
      return new Float32Array(buf, offset, n);
    case "float64":
      return new Float64Array(buf, offset, n);
    case "float16":
      return new Uint16Array(buf, offset, n);
    case "int32":
      return new Int32Array(buf, offset, n);
    case "int64":
      return new BigInt64Array(buf, offset, n);
    case "uint8":
      return new Uint8Array(buf, offset, n);
  }
}

/** Parse the bytes of a `.npy` file. `name` is used in error messages. */
export function parseNpy(bytes: Uint8Array, name = "<npy>"): NpyArray {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length < 10 || !b.subarray(0, 6).equals(MAGIC)) throw new Error(`${name}: not a .npy file (bad magic string)`);
  const major = b[6];
  let headerLen: number;
  let headerStart: number;
  if (major === 1) {
    headerLen = b.readUInt16LE(8);
    headerStart = 10;
  } else if (major === 2 || major === 3) {
    if (b.length < 12) throw new Error(`${name}: truncated .npy header`);
    headerLen = b.readUInt32LE(8);
    headerStart = 12;
  } else {
    throw new Error(`${name}: unsupported .npy format version ${major}.${b[7]}`);
  }
  if (headerStart + headerLen > b.length) throw new Error(`${name}: truncated .npy header (${headerLen} bytes announced, file has ${b.length})`);
  const header = b.toString(major === 3 ? "utf8" : "latin1", headerStart, headerStart + headerLen);

  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new Error(`${name}: malformed .npy header: ${header.trim()}`);
  }
  if (fortran === "True") {
    throw new Error(`${name}: Fortran-order (column-major) .npy arrays are not supported; save it with numpy.ascontiguousarray`);
  }
  const m = /^([<>|=])([a-z]\d+)$/.exec(descr);
  const kind = m ? DESCR[m[2]] : undefined;
  if (!m || !kind) {
    throw new Error(`${name}: unsupported .npy dtype '${descr}' (supported: <f4 <f8 <f2 <i4 <i8 |u1)`);
  }
  const shape = shapeText
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "")
    .map((s) => {
      const v = Number(s.replace(/L$/, ""));
      if (!Number.isInteger(v) || v < 0) throw new Error(`${name}: bad .npy shape (${shapeText})`);
      return v;
    });
  const n = shape.reduce((a, d) => a * d, 1);
  const dataStart = headerStart + headerLen;
  const need = n * kind.size;
  if (b.length - dataStart < need) {
    throw new Error(`${name}: truncated .npy data: shape (${shape.join(", ")}) ${descr} needs ${need} bytes, the file has ${b.length - dataStart}`);
  }
  // Copy into a fresh buffer: aligned, independent of the input, byte-swapped if big-endian.
  const copy = new Uint8Array(need);
  copy.set(b.subarray(dataStart, dataStart + need));
  if (m[1] === ">" && kind.size > 1) {
    for (let i = 0; i < need; i += kind.size) copy.subarray(i, i + kind.size).reverse();
  }
  return { dtype: kind.dtype, shape, data: typedArray(kind.dtype, copy.buffer, 0, n) };
}

/** Read a `.npy` file. */
export async function readNpy(file: string): Promise<NpyArray> {
  return parseNpy(await fs.promises.readFile(file), file);
}

function dtypeOf(data: NpyData): NpyDType {
  if (data instanceof Float32Array) return "float32";
  if (data instanceof Float64Array) return "float64";
  if (data instanceof Int32Array) return "int32";
  if (data instanceof BigInt64Array) return "int64";
  if (data instanceof Uint8Array) return "uint8";
  return "float16";
}

/**
 * Encode an array as `.npy` bytes (version 1.0, or 2.0 if the header is too long). `dtype`
 * defaults to the one matching `data`; a Uint16Array is written as float16 bits.
 */
export function encodeNpy(array: { shape: number[]; data: NpyData; dtype?: NpyDType }): Buffer {
  const dtype = array.dtype ?? dtypeOf(array.data);
  if (dtype !== dtypeOf(array.data)) throw new Error(`encodeNpy: dtype ${dtype} does not match a ${array.data.constructor.name}`);
  const n = array.shape.reduce((a, d) => a * d, 1);
  if (array.shape.some((d) => !Number.isInteger(d) || d < 0) || n !== array.data.length) {
    throw new Error(`encodeNpy: shape (${array.shape.join(", ")}) holds ${n} values but data has ${array.data.length}`);
  }
  const shape = array.shape.length === 1 ? `(${array.shape[0]},)` : `(${array.shape.join(", ")})`;
  const dict = `{'descr': '${WRITE_DESCR[dtype]}', 'fortran_order': False, 'shape': ${shape}, }`;
  let version = 1;
  let prefix = 10;
  let total = Math.ceil((prefix + dict.length + 1) / 64) * 64;
  if (total - prefix > 0xffff) {
    version = 2;
    prefix = 12;
    total = Math.ceil((prefix + dict.length + 1) / 64) * 64;
  }
  const header = Buffer.alloc(total, 0x20);
  MAGIC.copy(header, 0);
  header[6] = version;
  header[7] = 0;
  if (version === 1) header.writeUInt16LE(total - prefix, 8);
  else header.writeUInt32LE(total - prefix, 8);
  header.write(dict, prefix, "latin1");
  header[total - 1] = 0x0a;
  const d = array.data;
  return Buffer.concat([header, Buffer.from(d.buffer, d.byteOffset, d.byteLength)]);
}

/** Write a `.npy` file (atomically). */
export async function writeNpy(file: string, array: { shape: number[]; data: NpyData; dtype?: NpyDType }): Promise<void> {
  const bytes = encodeNpy(array);
  await writeAtomically(file, (tmp) => fs.promises.writeFile(tmp, bytes));
}

/** The values as float32 (float16 bits decoded, int64 converted). */
export function npyToFloat32(array: NpyArray): Float32Array {
  const d = array.data;
  if (d instanceof Float32Array) return d;
  if (d instanceof Uint16Array) return Float32Array.from(d, float16BitsToNumber);
  if (d instanceof BigInt64Array) return Float32Array.from(d, (v) => Number(v));
  return Float32Array.from(d as ArrayLike<number>);
}
