/**
 * Streaming zip writer: stored (uncompressed) entries only, zip64 where needed, data aligned to
 * 64 bytes (as torch.save does, so readers may mmap tensors). See zip.ts for the layout.
 *
 * Each entry's size is declared up front and its bytes are streamed to disk chunk by chunk; the
 * CRC-32 is computed on the way and patched into the local header afterwards, so no entry is ever
 * held whole in memory and no data descriptor is needed.
 */
import * as fs from "fs";
import { crc32 } from "./crc32";

const ALIGN = 64;
const MAX32 = 0xffffffff;
const MAX_WRITE = 1 << 28;

interface Written {
  name: Buffer;
  crc: number;
  size: number;
  localHeaderOffset: number;
}

export interface ZipWriterOptions {
  /** Write zip64 structures even when nothing overflows (lets tests exercise zip64 on small files). */
  forceZip64?: boolean;
}

export class ZipWriter {
  private pos = 0;
  private written: Written[] = [];
  private names = new Set<string>();

  private constructor(
    private readonly handle: fs.promises.FileHandle,
    readonly file: string,
    private readonly force: boolean,
  ) {}

  /** Create (truncate) `file` and start an archive in it. */
  static async create(file: string, options: ZipWriterOptions = {}): Promise<ZipWriter> {
    const handle = await fs.promises.open(file, "w");
    return new ZipWriter(handle, file, !!options.forceZip64);
  }

  private async writeAt(data: Uint8Array, position: number): Promise<void> {
    for (let done = 0; done < data.length; ) {
      const n = Math.min(data.length - done, MAX_WRITE);
      const { bytesWritten } = await this.handle.write(data, done, n, position + done);
      done += bytesWritten;
    }
  }

  private async write(data: Uint8Array): Promise<void> {
    await this.writeAt(data, this.pos);
    this.pos += data.length;
  }

  /**
   * Add an entry of exactly `size` bytes whose content is produced by `chunks` (an array or an
   * (async) iterable of byte arrays). Throws when the chunks add up to another size.
   */
  async addEntry(name: string, size: number, chunks: Iterable<Uint8Array> | AsyncIterable<Uint8Array>): Promise<void> {
    if (this.names.has(name)) throw new Error(`${this.file}: duplicate zip entry "${name}"`);
    this.names.add(name);
    const nameBuf = Buffer.from(name, "utf8");
    const zip64 = this.force || size >= MAX32;
    const localHeaderOffset = this.pos;
    const fixedExtra = zip64 ? 20 : 0; // zip64 extra: id, len, size, compressed size
    const headerLen = 30 + nameBuf.length + fixedExtra;
    // Pad with an extra field (id 0x4246 "FB", like torch) so the data starts on a 64-byte boundary.
    let pad = (ALIGN - ((localHeaderOffset + headerLen) % ALIGN)) % ALIGN;
    if (pad > 0 && pad < 4) pad += ALIGN; // an extra field needs at least its 4-byte header
    const h = Buffer.alloc(headerLen + pad);
    h.writeUInt32LE(0x04034b50, 0);
    h.writeUInt16LE(zip64 ? 45 : 20, 4); // version needed
    h.writeUInt16LE(/[^\x00-\x7f]/.test(name) ? 0x800 : 0, 6); // bit 11: UTF-8 name
    h.writeUInt16LE(0, 8); // stored
    h.writeUInt16LE(0, 10); // time
    h.writeUInt16LE(33, 12); // date 1980-01-01
    h.writeUInt32LE(0, 14); // CRC, patched below
    h.writeUInt32LE(zip64 ? MAX32 : size, 18);
    h.writeUInt32LE(zip64 ? MAX32 : size, 22);
    h.writeUInt16LE(nameBuf.length, 26);
    h.writeUInt16LE(fixedExtra + pad, 28);
    nameBuf.copy(h, 30);
    let e = 30 + nameBuf.length;
    if (zip64) {
      h.writeUInt16LE(1, e);
      h.writeUInt16LE(16, e + 2);
      h.writeBigUInt64LE(BigInt(size), e + 4);
      h.writeBigUInt64LE(BigInt(size), e + 12);
      e += 20;
    }
    if (pad) {
      h.writeUInt16LE(0x4246, e);
      h.writeUInt16LE(pad - 4, e + 2);
    }
    await this.write(h);

    let crc = 0;
    let total = 0;
    for await (const chunk of chunks as AsyncIterable<Uint8Array>) {
      total += chunk.length;
      if (total > size) throw new Error(`${this.file}: zip entry "${name}" was declared as ${size} bytes but got more`);
      crc = crc32(chunk, crc);
      await this.write(chunk);
    }
    if (total !== size) throw new Error(`${this.file}: zip entry "${name}" was declared as ${size} bytes but got ${total}`);
    const crcBuf = Buffer.alloc(4);
    crcBuf.writeUInt32LE(crc, 0);
    await this.writeAt(crcBuf, localHeaderOffset + 14);
    this.written.push({ name: nameBuf, crc, size, localHeaderOffset });
  }

  /** Write the central directory and the end records, and close the file. */
  async finish(): Promise<void> {
    try {
      const cdOffset = this.pos;
      const parts: Buffer[] = [];
      for (const w of this.written) {
        const bigSize = this.force || w.size >= MAX32;
        const bigOffset = this.force || w.localHeaderOffset >= MAX32;
        const extraLen = bigSize || bigOffset ? 4 + (bigSize ? 16 : 0) + (bigOffset ? 8 : 0) : 0;
        const c = Buffer.alloc(46 + w.name.length + extraLen);
        c.writeUInt32LE(0x02014b50, 0);
        c.writeUInt16LE(extraLen ? 45 : 20, 4); // version made by
        c.writeUInt16LE(extraLen ? 45 : 20, 6); // version needed
        c.writeUInt16LE(/[^\x00-\x7f]/.test(w.name.toString("utf8")) ? 0x800 : 0, 8);
        c.writeUInt16LE(0, 10);
        c.writeUInt16LE(0, 12);
        c.writeUInt16LE(33, 14);
        c.writeUInt32LE(w.crc, 16);
        c.writeUInt32LE(bigSize ? MAX32 : w.size, 20);
        c.writeUInt32LE(bigSize ? MAX32 : w.size, 24);
        c.writeUInt16LE(w.name.length, 28);
        c.writeUInt16LE(extraLen, 30);
        c.writeUInt32LE(bigOffset ? MAX32 : w.localHeaderOffset, 42);
        w.name.copy(c, 46);
        let e = 46 + w.name.length;
        if (extraLen) {
          c.writeUInt16LE(1, e);
          c.writeUInt16LE(extraLen - 4, e + 2);
          e += 4;
          if (bigSize) {
            c.writeBigUInt64LE(BigInt(w.size), e);
            c.writeBigUInt64LE(BigInt(w.size), e + 8);
            e += 16;
          }
          if (bigOffset) c.writeBigUInt64LE(BigInt(w.localHeaderOffset), e);
        }
        parts.push(c);
      }
      const cd = Buffer.concat(parts);
      await this.write(cd);
      const count = this.written.length;
      const zip64 = this.force || count >= 0xffff || cdOffset >= MAX32 || cd.length >= MAX32;
      if (zip64) {
        const recOffset = this.pos;
        const r = Buffer.alloc(56 + 20);
        r.writeUInt32LE(0x06064b50, 0);
        r.writeBigUInt64LE(BigInt(44), 4); // size of the rest of the record
        r.writeUInt16LE(45, 12);
        r.writeUInt16LE(45, 14);
        r.writeBigUInt64LE(BigInt(count), 24);
        r.writeBigUInt64LE(BigInt(count), 32);
        r.writeBigUInt64LE(BigInt(cd.length), 40);
        r.writeBigUInt64LE(BigInt(cdOffset), 48);
        r.writeUInt32LE(0x07064b50, 56); // locator
        r.writeBigUInt64LE(BigInt(recOffset), 64);
        r.writeUInt32LE(1, 72); // total number of disks
        await this.write(r);
      }
      const end = Buffer.alloc(22);
      end.writeUInt32LE(0x06054b50, 0);
      end.writeUInt16LE(zip64 ? 0xffff : count, 8);
      end.writeUInt16LE(zip64 ? 0xffff : count, 10);
      end.writeUInt32LE(zip64 ? MAX32 : cd.length, 12);
      end.writeUInt32LE(zip64 ? MAX32 : cdOffset, 16);
      await this.write(end);
    } finally {
      await this.handle.close();
    }
  }

  /** Close without finishing (after an error); the caller removes the file. */
  async abort(): Promise<void> {
    await this.handle.close().catch(() => undefined);
  }
}
