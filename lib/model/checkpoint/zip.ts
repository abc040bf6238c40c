/**
 * Minimal zip reader with random access (what torch.save's zip checkpoints need).
 *
 * Layout of a zip file, end first:
 * - End of central directory (EOCD, signature PK\5\6, 22 bytes + comment of up to 65535 bytes) at
 *   the very end: number of entries, size and offset of the central directory.
 * - Zip64: when a count or offset does not fit its 16/32-bit EOCD field, the field holds 0xFFFF /
 *   0xFFFFFFFF, a zip64 EOCD locator (PK\6\7, 20 bytes) sits just before the EOCD and points at a
 *   zip64 EOCD record (PK\6\6) with 64-bit values.
 * - Central directory: one header (PK\1\2) per entry with method, CRC, sizes, name and the offset
 *   of the entry's local header; 0xFFFFFFFF sizes/offsets are found in the zip64 extra field (id 1),
 *   which lists, in this order, only the overflowing fields: size, compressed size, offset.
 * - Local header (PK\3\4, 30 bytes + name + extra) precedes each entry's data; its own name/extra
 *   lengths may differ from the central copy (torch pads the local extra field to align data), so
 *   the data offset is only known after reading it.
 *
 * Only the central directory is held in memory; entry data is read on demand. Stored entries
 * (method 0) can be read in any sub-range; deflated entries (method 8) are inflated whole.
 */
import * as fs from "fs";
import * as zlib from "zlib";
import { readExact, stampOf, FileStamp } from "./file";

export interface ZipEntry {
  name: string;
  /** 0 = stored, 8 = deflate. */
  method: number;
  crc32: number;
  compressedSize: number;
  /** Uncompressed size in bytes. */
  size: number;
  localHeaderOffset: number;
}

export interface ZipArchive {
  file: string;
  fileSize: number;
  stamp: FileStamp;
  entries: Map<string, ZipEntry>;
}

const SIG_EOCD = 0x06054b50;
const SIG_EOCD64_LOCATOR = 0x07064b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_LOCAL = 0x04034b50;
const EOCD_MIN = 22;
const MAX_COMMENT = 0xffff;

/** True when the bytes start like a zip file (a local header, or an empty archive's EOCD). */
export function looksLikeZip(head: Uint8Array): boolean {
  if (head.length < 4) return false;
  const sig = Buffer.from(head.buffer, head.byteOffset, 4).readUInt32LE(0);
  return sig === SIG_LOCAL || sig === SIG_EOCD;
}

function u64(b: Buffer, at: number, file: string, what: string): number {
  const v = b.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`${file}: corrupt zip: ${what} ${v} is out of range`);
  return Number(v);
}

function buf(u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

/** Read the central directory of the zip file open in `handle`. */
export async function readZipDirectory(handle: fs.promises.FileHandle, file: string): Promise<ZipArchive> {
  const stamp = await stampOf(handle);
  const fileSize = stamp.size;
  if (fileSize < EOCD_MIN) throw new Error(`${file}: not a zip file / truncated: only ${fileSize} bytes`);

  // 1. Find the EOCD: scan backwards for its signature, accepting a hit whose comment length
  //    reaches exactly to the end of the file.
  const tailLen = Math.min(fileSize, EOCD_MIN + MAX_COMMENT + 20);
  const tailStart = fileSize - tailLen;
  const tail = buf(await readExact(handle, file, tailStart, tailLen));
  let eocd = -1;
  for (let i = tailLen - EOCD_MIN; i >= 0; i--) {
    if (tail.readUInt32LE(i) === SIG_EOCD && i + EOCD_MIN + tail.readUInt16LE(i + 20) === tailLen) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) {
    throw new Error(`${file}: not a zip file / truncated: no end-of-central-directory record in the last ${tailLen} bytes`);
  }
  let count = tail.readUInt16LE(eocd + 10);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);

  // 2. Zip64: the locator sits right before the EOCD.
  const loc = eocd - 20;
  if (loc >= 0 && tail.readUInt32LE(loc) === SIG_EOCD64_LOCATOR) {
    const recOffset = u64(tail, loc + 8, file, "zip64 end-of-central-directory offset");
    if (recOffset + 56 > fileSize) {
      throw new Error(`${file}: truncated: zip64 end-of-central-directory record at byte ${recOffset} beyond file size ${fileSize}`);
    }
    const rec = buf(await readExact(handle, file, recOffset, 56));
    if (rec.readUInt32LE(0) !== SIG_EOCD64) {
      throw new Error(`${file}: corrupt zip: no zip64 end-of-central-directory record at byte ${recOffset}`);
    }
    count = u64(rec, 32, file, "entry count");
    cdSize = u64(rec, 40, file, "central directory size");
    cdOffset = u64(rec, 48, file, "central directory offset");
  } else if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    throw new Error(`${file}: corrupt zip: end-of-central-directory says zip64 but there is no zip64 locator`);
  }
  if (cdOffset + cdSize > fileSize) {
    throw new Error(
      `${file}: not a zip file / truncated: central directory at byte ${cdOffset} (+${cdSize} bytes) beyond file size ${fileSize}`,
    );
  }

  // 3. Central directory headers.
  const cd = buf(await readExact(handle, file, cdOffset, cdSize));
  const entries = new Map<string, ZipEntry>();
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cdSize || cd.readUInt32LE(p) !== SIG_CENTRAL) {
      throw new Error(`${file}: corrupt zip: central directory entry ${i} of ${count} is missing at byte ${cdOffset + p}`);
    }
    const flags = cd.readUInt16LE(p + 8);
    const method = cd.readUInt16LE(p + 10);
    const crc32 = cd.readUInt32LE(p + 16);
    let compressedSize = cd.readUInt32LE(p + 20);
    let size = cd.readUInt32LE(p + 24);
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const commentLen = cd.readUInt16LE(p + 32);
    let localHeaderOffset = cd.readUInt32LE(p + 42);
    if (p + 46 + nameLen + extraLen + commentLen > cdSize) {
      throw new Error(`${file}: corrupt zip: central directory entry ${i} runs past the directory`);
    }
    const name = cd.toString("utf8", p + 46, p + 46 + nameLen);
    // Zip64 extra field: only the fields that overflowed, in a fixed order.
    let e = p + 46 + nameLen;
    const extraEnd = e + extraLen;
    while (e + 4 <= extraEnd) {
      const id = cd.readUInt16LE(e);
      const len = cd.readUInt16LE(e + 2);
      if (id === 0x0001) {
        let q = e + 4;
        const need = (cond: boolean, what: string): number | null => {
          if (!cond) return null;
          if (q + 8 > e + 4 + len) throw new Error(`${file}: corrupt zip: zip64 extra field of "${name}" lacks the ${what}`);
          const v = u64(cd, q, file, `${what} of "${name}"`);
          q += 8;
          return v;
        };
        size = need(size === 0xffffffff, "size") ?? size;
        compressedSize = need(compressedSize === 0xffffffff, "compressed size") ?? compressedSize;
        localHeaderOffset = need(localHeaderOffset === 0xffffffff, "local header offset") ?? localHeaderOffset;
      }
      e += 4 + len;
    }
    if (flags & 1) throw new Error(`${file}: zip entry "${name}" is encrypted; not supported`);
    entries.set(name, { name, method, crc32, compressedSize, size, localHeaderOffset });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return { file, fileSize, stamp, entries };
}

/** Byte offset of an entry's data (reads its local header), checked against the file size. */
export async function entryDataOffset(handle: fs.promises.FileHandle, archive: ZipArchive, entry: ZipEntry): Promise<number> {
  const { file, fileSize } = archive;
  if (entry.localHeaderOffset + 30 > fileSize) {
    throw new Error(`${file}: truncated: local header of "${entry.name}" at byte ${entry.localHeaderOffset} beyond file size ${fileSize}`);
  }
  const h = buf(await readExact(handle, file, entry.localHeaderOffset, 30));
  if (h.readUInt32LE(0) !== SIG_LOCAL) {
    throw new Error(`${file}: corrupt zip: no local header for "${entry.name}" at byte ${entry.localHeaderOffset}`);
  }
  const dataOffset = entry.localHeaderOffset + 30 + h.readUInt16LE(26) + h.readUInt16LE(28);
  if (dataOffset + entry.compressedSize > fileSize) {
    throw new Error(
      `${file}: truncated: entry "${entry.name}" needs bytes ${dataOffset}..${dataOffset + entry.compressedSize} but the file has ${fileSize}`,
    );
  }
  return dataOffset;
}

/**
 * Read `length` bytes from position `start` of an entry's uncompressed content. `dataOffset` is
 * the value of `entryDataOffset` (pass it when already known).
 */
export async function readEntryRange(
  handle: fs.promises.FileHandle,
  archive: ZipArchive,
  entry: ZipEntry,
  start: number,
  length: number,
  dataOffset?: number,
): Promise<Uint8Array> {
  const { file } = archive;
  if (start < 0 || start + length > entry.size) {
    throw new Error(`${file}: read of bytes ${start}..${start + length} of "${entry.name}" but the entry holds ${entry.size}`);
  }
  const at = dataOffset ?? (await entryDataOffset(handle, archive, entry));
  if (entry.method === 0) return readExact(handle, file, at + start, length);
  if (entry.method === 8) {
    const raw = await readExact(handle, file, at, entry.compressedSize);
    let full: Buffer;
    try {
      full = zlib.inflateRawSync(raw);
    } catch (err) {
      throw new Error(`${file}: corrupt deflate data in "${entry.name}": ${(err as Error).message}`);
    }
    if (full.length !== entry.size) {
      throw new Error(`${file}: "${entry.name}" inflated to ${full.length} bytes, the directory says ${entry.size}`);
    }
    return new Uint8Array(full.subarray(start, start + length)); // copy: fresh, aligned
  }
  throw new Error(`${file}: zip entry "${entry.name}" uses compression method ${entry.method}; only stored (0) and deflate (8) are supported`);
}

/** The whole uncompressed content of an entry. */
export function readEntry(handle: fs.promises.FileHandle, archive: ZipArchive, entry: ZipEntry): Promise<Uint8Array> {
  return readEntryRange(handle, archive, entry, 0, entry.size);
}
