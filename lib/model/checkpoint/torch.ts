/**
 * Readers for the two `torch.save` formats.
 *
 * Zip format (PyTorch >= 1.6), an uncompressed zip archive whose entries share one top folder
 * (named after the file at save time, or "archive"; never assumed):
 *   <top>/data.pkl    pickle of the object; tensors refer to storages by key (persistent ids)
 *   <top>/data/<key>  raw little-endian bytes of storage <key>
 *   <top>/version     format version ("3\n"); newer torch adds <top>/byteorder, <top>/.data/...
 *
 * Legacy format (PyTorch < 1.6, or `_use_new_zipfile_serialization=False`), five pickles back to
 * back followed by raw storages:
 *   magic number 0x1950a86a20f9469cfc6c | protocol version 1001 | sys_info dict (endianness,
 *   type sizes) | the object | list of storage keys;
 *   then, for each key in that list: int64 element count, then count x element-size bytes.
 */
import * as fs from "fs";
import { DTYPE_SIZE } from "./dtype";
import { readExact, stampOf, FileStamp } from "./file";
import { unpickle, PickleTruncatedError } from "./pickle";
import { StateDict, StorageSource, tensorEntry } from "./state-dict";
import { StorageRef, StorageType, TensorRef, torchGlobals } from "./torch-pickle";
import { readZipDirectory, entryDataOffset, readEntry, readEntryRange, ZipArchive } from "./zip";

export interface LoadOptions {
  /**
   * Key of the state dict inside a checkpoint dict (e.g. "ema"). Default: the top-level dict when
   * it holds tensors, else the first of "state_dict", "model", "ema" that does.
   */
  key?: string;
}

const CONTAINER_KEYS = ["state_dict", "model", "ema"];

function holdsTensors(v: unknown): v is Map<unknown, unknown> {
  return v instanceof Map && [...v.values()].some((x) => x instanceof TensorRef);
}

function describeValue(v: unknown): string {
  if (v instanceof Map) return "dict";
  if (Array.isArray(v)) return "tuple/list";
  if (v === null) return "None";
  return typeof v === "object" ? (v as object).constructor.name : typeof v;
}

/** The state dict inside the unpickled object: name -> tensor view. */
export function selectStateDict(top: unknown, file: string, key?: string): Map<string, TensorRef> {
  if (!(top instanceof Map)) throw new Error(`${file}: the checkpoint holds a ${describeValue(top)}, expected a dict of tensors`);
  const keys = [...top.keys()].map(String);
  let sd: Map<unknown, unknown> | null = null;
  let where = "the top-level dict";
  if (key !== undefined) {
    const v = top.get(key);
    if (!holdsTensors(v)) {
      throw new Error(`${file}: no state dict under key "${key}"; the checkpoint's top-level keys are: ${keys.join(", ")}`);
    }
    sd = v;
    where = `"${key}"`;
  } else if (holdsTensors(top)) {
    sd = top;
  } else {
    for (const k of CONTAINER_KEYS) {
      if (holdsTensors(top.get(k))) {
        sd = top.get(k) as Map<unknown, unknown>;
        where = `"${k}"`;
        break;
      }
    }
    if (!sd) {
      throw new Error(
        `${file}: no state dict found: the top-level dict has no tensors and none of ` +
          `${CONTAINER_KEYS.map((k) => `"${k}"`).join(", ")} holds them; its keys are: ${keys.slice(0, 30).join(", ")}` +
          (keys.length > 30 ? ` ... (${keys.length} in all)` : ""),
      );
    }
  }
  const out = new Map<string, TensorRef>();
  const others: string[] = [];
  for (const [k, v] of sd) {
    if (v instanceof TensorRef) out.set(String(k), v);
    else others.push(`${String(k)} (${describeValue(v)})`);
  }
  if (others.length) {
    throw new Error(`${file}: ${where} mixes tensors with other values: ${others.slice(0, 10).join(", ")}${others.length > 10 ? " ..." : ""}`);
  }
  return out;
}

function entriesOf(refs: Map<string, TensorRef>): StateDict {
  const sd: StateDict = new Map();
  for (const [name, t] of refs) {
    const s = t.storage;
    sd.set(name, tensorEntry(name, s.dtype, t.shape, t.stride, s.elementOffset + t.storageOffset, s.source));
  }
  return sd;
}

function parsePid(pid: unknown, file: string, legacy: boolean): { type: StorageType; key: string; numel: number; view: unknown } {
  const ok =
    Array.isArray(pid) &&
    pid.length >= 5 &&
    pid[0] === "storage" &&
    pid[1] instanceof StorageType &&
    typeof pid[2] === "string" &&
    typeof pid[4] === "number";
  if (!ok) {
    throw new Error(`${file}: unsupported persistent id ${JSON.stringify(pid, (_k, v) => (v instanceof StorageType ? v.qualname : v))}`);
  }
  const a = pid as unknown[];
  return { type: a[1] as StorageType, key: a[2] as string, numel: a[4] as number, view: legacy ? a[5] ?? null : null };
}

/** The top folder of a torch zip archive: the prefix of its single `*\/data.pkl` entry. */
export function torchZipPrefix(archive: ZipArchive): string {
  const pkls = [...archive.entries.keys()].filter((n) => /^([^/]*\/)?data\.pkl$/.test(n));
  if (pkls.length === 0) {
    const some = [...archive.entries.keys()].slice(0, 8).join(", ");
    throw new Error(`${archive.file}: not a torch checkpoint: the zip has no <folder>/data.pkl (entries: ${some || "none"})`);
  }
  if (pkls.length > 1) throw new Error(`${archive.file}: ambiguous torch checkpoint: several data.pkl entries (${pkls.join(", ")})`);
  return pkls[0].slice(0, pkls[0].length - "data.pkl".length);
}

/** Load a zip-format torch.save checkpoint; tensor values are read lazily. */
export async function loadTorchZip(file: string, options: LoadOptions = {}): Promise<StateDict> {
  const handle = await fs.promises.open(file, "r");
  try {
    const archive = await readZipDirectory(handle, file);
    const prefix = torchZipPrefix(archive);
    const byteorder = archive.entries.get(`${prefix}byteorder`);
    if (byteorder) {
      const order = Buffer.from(await readEntry(handle, archive, byteorder)).toString("latin1").trim();
      if (order !== "little") throw new Error(`${file}: the checkpoint is ${order}-endian; only little-endian is supported`);
    }
    const pkl = await readEntry(handle, archive, archive.entries.get(`${prefix}data.pkl`)!);
    const storages = new Map<string, StorageRef>();
    const offsets = new Map<string, number>();
    const persistentLoad = (pid: unknown): StorageRef => {
      const { type, key, numel } = parsePid(pid, file, false);
      const known = storages.get(key);
      if (known) return known;
      const name = `${prefix}data/${key}`;
      const entry = archive.entries.get(name);
      if (!entry) throw new Error(`${file}: storage data/${key} is missing from the archive (no entry "${name}")`);
      const need = numel * DTYPE_SIZE[type.dtype];
      if (entry.size < need) {
        throw new Error(`${file}: storage data/${key} needs ${need} bytes (${numel} x ${type.dtype}) but the entry holds ${entry.size}`);
      }
      const source: StorageSource = {
        file,
        stamp: archive.stamp,
        label: `storage data/${key}`,
        byteLength: entry.size,
        read: (h, start, length) => readEntryRange(h, archive, entry, start, length, offsets.get(key)),
      };
      const ref = new StorageRef(key, type.dtype, numel, source);
      storages.set(key, ref);
      return ref;
    };
    const { value } = unpickle(pkl, { file, part: `${prefix}data.pkl`, globals: torchGlobals(), persistentLoad });
    const refs = selectStateDict(value, file, options.key);
    // Resolve (and check against the file size) the data offset of every storage in use.
    for (const t of refs.values()) {
      const key = t.storage.key;
      if (!offsets.has(key)) offsets.set(key, await entryDataOffset(handle, archive, archive.entries.get(`${prefix}data/${key}`)!));
    }
    return entriesOf(refs);
  } finally {
    await handle.close();
  }
}

/** The magic number that starts a legacy torch.save file. */
export const LEGACY_MAGIC = BigInt("0x1950a86a20f9469cfc6c");

/** True when the first bytes are a pickle of the legacy magic number (PROTO 2, LONG1 10 bytes). */
export function looksLikeLegacyTorch(head: Uint8Array): boolean {
  return head.length >= 4 && head[0] === 0x80 && head[1] === 0x02 && head[2] === 0x8a && head[3] === 0x0a;
}

/**
 * Load a legacy-format torch.save checkpoint; tensor values are read lazily. The pickles are
 * parsed from the first `firstRead` bytes, read again 4x larger until they fit.
 */
export async function loadTorchLegacy(file: string, options: LoadOptions = {}, firstRead = 1 << 20): Promise<StateDict> {
  const handle = await fs.promises.open(file, "r");
  try {
    const stamp = await stampOf(handle);
    // The pickles come first and their total length is unknown: parse from a prefix of the file,
    // growing it until they all fit.
    let chunk = Math.min(stamp.size, firstRead);
    for (;;) {
      const head = await readExact(handle, file, 0, chunk);
      try {
        return await parseLegacy(handle, file, stamp, head, options);
      } catch (err) {
        if (!(err instanceof PickleTruncatedError)) throw err;
        if (chunk >= stamp.size) throw new Error(`${file}: truncated legacy torch file: ${err.message}`);
        chunk = Math.min(stamp.size, chunk * 4);
      }
    }
  } finally {
    await handle.close();
  }
}

async function parseLegacy(
  handle: fs.promises.FileHandle,
  file: string,
  stamp: FileStamp,
  head: Uint8Array,
  options: LoadOptions,
): Promise<StateDict> {
  const plain = { file, globals: new Map<string, unknown>() };
  const magic = unpickle(head, { ...plain, part: "magic number" });
  if (magic.value !== LEGACY_MAGIC) throw new Error(`${file}: not a torch checkpoint (bad legacy magic number)`);
  const proto = unpickle(head, { ...plain, part: "protocol version" }, magic.end);
  if (proto.value !== 1001) throw new Error(`${file}: unsupported legacy torch protocol version ${String(proto.value)}`);
  const sys = unpickle(head, { ...plain, part: "sys_info" }, proto.end);
  if (sys.value instanceof Map && sys.value.get("little_endian") === false) {
    throw new Error(`${file}: the checkpoint was saved on a big-endian machine; not supported`);
  }

  // Storages are only known by key while unpickling; their bytes come after the key list.
  const pending = new Map<string, { type: StorageType; numel: number; byteLength: number; start: number }>();
  const views = new Map<string, StorageRef>();
  const sources = new Map<string, StorageSource>();
  const sourceOf = (key: string, type: StorageType, numel: number): StorageSource => {
    let s = sources.get(key);
    if (!s) {
      const info = { type, numel, byteLength: numel * DTYPE_SIZE[type.dtype], start: -1 };
      pending.set(key, info);
      s = {
        file,
        stamp,
        label: `storage ${key}`,
        get byteLength() {
          return info.byteLength;
        },
        read: (h, start, length) => readExact(h, file, info.start + start, length),
      };
      sources.set(key, s);
    }
    return s;
  };
  const persistentLoad = (pid: unknown): StorageRef => {
    const { type, key, numel, view } = parsePid(pid, file, true);
    const source = sourceOf(key, type, numel);
    // view_metadata = (view_key, offset, view_size) makes this a view into storage `key`.
    const [refKey, offset, size] = view === null ? [key, 0, numel] : (view as [string, number, number]);
    let ref = views.get(refKey);
    if (!ref) {
      ref = new StorageRef(refKey, type.dtype, size, source, offset);
      views.set(refKey, ref);
    }
    return ref;
  };
  const main = unpickle(head, { file, part: "object pickle", globals: torchGlobals(), persistentLoad }, sys.end);
  const keysPickle = unpickle(head, { ...plain, part: "storage key list" }, main.end);
  const keys = keysPickle.value;
  if (!Array.isArray(keys) || keys.some((k) => typeof k !== "string")) throw new Error(`${file}: corrupt legacy torch file: bad storage key list`);

  let pos = keysPickle.end;
  for (const key of keys as string[]) {
    const info = pending.get(key);
    if (!info) throw new Error(`${file}: corrupt legacy torch file: storage ${key} is listed but never used`);
    if (pos + 8 > stamp.size) throw new Error(`${file}: truncated: storage ${key} starts at byte ${pos} but the file has ${stamp.size}`);
    const count = Buffer.from(await readExact(handle, file, pos, 8)).readBigInt64LE(0);
    const bytes = Number(count) * DTYPE_SIZE[info.type.dtype];
    info.start = pos + 8;
    info.byteLength = bytes;
    if (info.start + bytes > stamp.size) {
      throw new Error(`${file}: truncated: storage ${key} needs ${bytes} bytes at byte ${info.start} but the file has ${stamp.size}`);
    }
    pos = info.start + bytes;
  }
  for (const [key, info] of pending) {
    if (info.start < 0) throw new Error(`${file}: corrupt legacy torch file: storage ${key} is used but not in the key list`);
  }
  return entriesOf(selectStateDict(main.value, file, options.key));
}
