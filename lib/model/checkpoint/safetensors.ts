/**
 * Safetensors files (https://github.com/huggingface/safetensors):
 *
 *   [8 bytes: header length N, unsigned little-endian]
 *   [N bytes: JSON header, UTF-8, padded with spaces]
 *   [data: the tensors' bytes, back to back]
 *
 * The header maps each tensor name to `{"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}`
 * (offsets relative to the start of the data section, little-endian C-order values), plus an
 * optional `"__metadata__": {string: string}`.
 */
import * as fs from "fs";
import { DType, DTYPE_SIZE, numelOf, shapeText } from "./dtype";
import { readExact, stampOf, FileStamp } from "./file";
import { StateDict, tensorEntry, contiguousStrides, StorageSource } from "./state-dict";
import { Float32Tensors, tensorList, valuesOf, bytesOf } from "./tensor-input";
import { writeAtomically } from "./atomic";

const DTYPES: Record<string, DType> = {
  F64: "float64",
  F32: "float32",
  F16: "float16",
  BF16: "bfloat16",
  I64: "int64",
  I32: "int32",
  I16: "int16",
  I8: "int8",
  U8: "uint8",
  BOOL: "bool",
};

/** Largest header accepted (the reference implementation's limit is 100 MB). */
const MAX_HEADER = 100_000_000;

export interface SafetensorsFile {
  tensors: StateDict;
  metadata: Record<string, string>;
}

/** True when `head` (the first bytes of a file of `fileSize` bytes) looks like safetensors. */
export function looksLikeSafetensors(head: Uint8Array, fileSize: number): boolean {
  if (head.length < 9) return false;
  const n = Buffer.from(head.buffer, head.byteOffset, 8).readBigUInt64LE(0);
  return n > BigInt(0) && n <= BigInt(fileSize - 8) && head[8] === 0x7b; // '{'
}

/** Read a safetensors file's header; tensor values are read lazily. */
export async function readSafetensors(file: string): Promise<SafetensorsFile> {
  const handle = await fs.promises.open(file, "r");
  let header: unknown;
  let dataStart: number;
  let stamp: FileStamp;
  try {
    stamp = await stampOf(handle);
    if (stamp.size < 8) throw new Error(`${file}: not a safetensors file / truncated: only ${stamp.size} bytes`);
    const n = Buffer.from(await readExact(handle, file, 0, 8)).readBigUInt64LE(0);
    if (n > BigInt(Math.min(MAX_HEADER, stamp.size - 8))) {
      throw new Error(`${file}: not a safetensors file / truncated: header length ${n} but the file has ${stamp.size} bytes`);
    }
    const text = Buffer.from(await readExact(handle, file, 8, Number(n))).toString("utf8");
    try {
      header = JSON.parse(text);
    } catch (err) {
      throw new Error(`${file}: corrupt safetensors header (not JSON): ${(err as Error).message}`);
    }
    dataStart = 8 + Number(n);
  } finally {
    await handle.close();
  }
  if (!header || typeof header !== "object" || Array.isArray(header)) {
    throw new Error(`${file}: corrupt safetensors header: not a JSON object`);
  }
  const dataBytes = stamp.size - dataStart;
  const tensors: StateDict = new Map();
  let metadata: Record<string, string> = {};
  for (const [name, info] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (!info || typeof info !== "object" || Object.values(info).some((v) => typeof v !== "string")) {
        throw new Error(`${file}: safetensors __metadata__ must map strings to strings`);
      }
      metadata = { ...(info as Record<string, string>) };
      continue;
    }
    const bad = (msg: string) => new Error(`${file}: safetensors tensor "${name}": ${msg}`);
    const t = info as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!t || typeof t !== "object") throw bad("header entry is not an object");
    const dtype = DTYPES[t.dtype as string];
    if (!dtype) throw bad(`unsupported dtype ${JSON.stringify(t.dtype)} (supported: ${Object.keys(DTYPES).join(", ")})`);
    const shape = t.shape as number[];
    if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < 0)) throw bad(`invalid shape ${JSON.stringify(t.shape)}`);
    const offs = t.data_offsets as number[];
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isInteger(o) && o >= 0) || offs[1] < offs[0]) {
      throw bad(`invalid data_offsets ${JSON.stringify(t.data_offsets)}`);
    }
    const want = numelOf(shape) * DTYPE_SIZE[dtype];
    if (offs[1] - offs[0] !== want) {
      throw bad(`shape ${shapeText(shape)} ${dtype} needs ${want} bytes but data_offsets [${offs.join(", ")}] hold ${offs[1] - offs[0]}`);
    }
    if (offs[1] > dataBytes) {
      throw bad(`truncated: data_offsets end at byte ${dataStart + offs[1]} but the file has ${stamp.size} bytes`);
    }
    const begin = dataStart + offs[0];
    const source: StorageSource = {
      file,
      stamp,
      label: `safetensors data of "${name}"`,
      byteLength: want,
      read: (h, start, length) => readExact(h, file, begin + start, length),
    };
    tensors.set(name, tensorEntry(name, dtype, shape, contiguousStrides(shape), 0, source));
  }
  return { tensors, metadata };
}

/**
 * Write float32 tensors as a safetensors file, atomically (temporary file, then rename). Tensors
 * are sorted by name; values given as functions are produced and written one at a time.
 */
export async function saveSafetensors(
  file: string,
  tensors: Float32Tensors,
  metadata?: Record<string, string>,
): Promise<void> {
  const list = tensorList(tensors, file).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  if (list.some((t) => t.name === "__metadata__")) throw new Error(`${file}: "__metadata__" cannot be a tensor name`);
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") throw new Error(`${file}: safetensors metadata "${k}" must be a string, got ${typeof v}`);
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const t of list) {
    const n = numelOf(t.shape) * 4;
    header[t.name] = { dtype: "F32", shape: t.shape, data_offsets: [offset, offset + n] };
    offset += n;
  }
  let json = Buffer.from(JSON.stringify(header), "utf8");
  const padded = Math.ceil(json.length / 8) * 8;
  json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);

  await writeAtomically(file, async (tmp) => {
    const h = await fs.promises.open(tmp, "w");
    try {
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(json.length), 0);
      let pos = 0;
      const write = async (b: Uint8Array) => {
        for (let done = 0; done < b.length; ) {
          const { bytesWritten } = await h.write(b, done, Math.min(b.length - done, 1 << 28), pos + done);
          done += bytesWritten;
        }
        pos += b.length;
      };
      await write(len);
      await write(json);
      for (const t of list) await write(bytesOf(await valuesOf(t, file)));
    } finally {
      await h.close();
    }
  });
}
