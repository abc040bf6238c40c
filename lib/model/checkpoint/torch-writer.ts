/**
 * Write float32 tensors as a zip-format torch.save checkpoint that `torch.load` reads as an
 * OrderedDict of tensors (see torch.ts for the layout). Entries are stored uncompressed and
 * aligned to 64 bytes; zip64 is used when offsets or sizes pass 4 GiB. Tensor values are
 * produced and streamed to disk one at a time (give them as functions to keep memory ~ one
 * tensor), and the file appears under its name only when complete.
 */
import { numelOf } from "./dtype";
import { ZipWriter } from "./zip-writer";
import { writeAtomically } from "./atomic";
import { Float32Tensors, NamedFloat32Tensor, tensorList, valuesOf, bytesOf } from "./tensor-input";

export interface TorchZipOptions {
  /** Top folder inside the archive (torch uses the file's base name or "archive"). Default "archive". */
  archiveName?: string;
  /** Use zip64 records even for a small file (for tests). */
  forceZip64?: boolean;
}

/** Emits protocol-2 pickle opcodes. */
class PickleWriter {
  private parts: Buffer[] = [];
  op(...bytes: number[]): this {
    this.parts.push(Buffer.from(bytes));
    return this;
  }
  str(s: string): this {
    const b = Buffer.from(s, "utf8");
    const h = Buffer.alloc(5);
    h[0] = 0x58; // BINUNICODE
    h.writeUInt32LE(b.length, 1);
    this.parts.push(h, b);
    return this;
  }
  int(v: number): this {
    if (!Number.isInteger(v)) throw new Error(`pickle writer: ${v} is not an integer`);
    if (v >= 0 && v < 0x100) return this.op(0x4b, v); // BININT1
    if (v >= 0 && v < 0x10000) return this.op(0x4d, v & 0xff, v >> 8); // BININT2
    if (v >= -0x80000000 && v <= 0x7fffffff) {
      const b = Buffer.alloc(5);
      b[0] = 0x4a; // BININT
      b.writeInt32LE(v, 1);
      this.parts.push(b);
      return this;
    }
    const b = Buffer.alloc(10);
    b[0] = 0x8a; // LONG1, 8 bytes two's complement
    b[1] = 8;
    b.writeBigInt64LE(BigInt(v), 2);
    this.parts.push(b);
    return this;
  }
  global(module: string, name: string): this {
    this.parts.push(Buffer.from(`c${module}\n${name}\n`, "latin1")); // GLOBAL
    return this;
  }
  tuple(values: number[]): this {
    if (values.length === 0) return this.op(0x29); // EMPTY_TUPLE
    this.op(0x28); // MARK
    for (const v of values) this.int(v);
    return this.op(0x74); // TUPLE
  }
  bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

const MARK = 0x28;
const TUPLE = 0x74;
const REDUCE = 0x52;
const SETITEMS = 0x75;
const EMPTY_TUPLE = 0x29;

/** The data.pkl of an OrderedDict {name: tensor over storage "<index>"}. */
export function stateDictPickle(list: NamedFloat32Tensor[]): Buffer {
  const w = new PickleWriter();
  w.op(0x80, 2); // PROTO 2
  w.global("collections", "OrderedDict").op(EMPTY_TUPLE, REDUCE);
  for (let start = 0; start < list.length; start += 1000) {
    w.op(MARK);
    list.slice(start, start + 1000).forEach((t, j) => {
      const key = String(start + j);
      const strides: number[] = [];
      let acc = 1;
      for (let d = t.shape.length - 1; d >= 0; d--) {
        strides.unshift(acc);
        acc *= t.shape[d];
      }
      w.str(t.name);
      w.global("torch._utils", "_rebuild_tensor_v2").op(MARK);
      // persistent id ('storage', torch.FloatStorage, key, 'cpu', numel)
      w.op(MARK).str("storage").global("torch", "FloatStorage").str(key).str("cpu").int(numelOf(t.shape)).op(TUPLE);
      w.op(0x51); // BINPERSID
      w.int(0).tuple(t.shape).tuple(strides);
      w.op(0x89); // NEWFALSE: requires_grad
      w.global("collections", "OrderedDict").op(EMPTY_TUPLE, REDUCE); // backward_hooks
      w.op(TUPLE, REDUCE);
    });
    w.op(SETITEMS);
  }
  w.op(0x2e); // STOP
  return w.bytes();
}

/** Write `tensors` (float32) to `file` as a torch.save zip checkpoint. */
export async function writeTorchZip(file: string, tensors: Float32Tensors, options: TorchZipOptions = {}): Promise<void> {
  const list = tensorList(tensors, file);
  const top = options.archiveName ?? "archive";
  if (!/^[A-Za-z0-9_.-]+$/.test(top)) throw new Error(`${file}: archive name "${top}" must be letters, digits, "_", "." or "-"`);
  const pkl = stateDictPickle(list);
  await writeAtomically(file, async (tmp) => {
    const zip = await ZipWriter.create(tmp, { forceZip64: options.forceZip64 });
    try {
      await zip.addEntry(`${top}/data.pkl`, pkl.length, [pkl]);
      for (let i = 0; i < list.length; i++) {
        const t = list[i];
        const values = await valuesOf(t, file);
        await zip.addEntry(`${top}/data/${i}`, values.byteLength, [bytesOf(values)]);
      }
      const version = Buffer.from("3\n");
      await zip.addEntry(`${top}/version`, version.length, [version]);
    } catch (err) {
      await zip.abort();
      throw err;
    }
    await zip.finish();
  });
}
