/**
 * A small reader of MATLAB Level 5 MAT-files (the format of `save -v6`/`-v7` and of scipy.io.savemat),
 * enough for the annotation files of ImageNet's devkit, Stanford Cars, Stanford Dogs and Flowers-102:
 * - 128-byte header, little- or big-endian ("IM"/"MI");
 * - miCOMPRESSED elements (zlib), the small data element format, 8-byte padding;
 * - miMATRIX of numeric classes (stored in any numeric type, returned as float64; int64 beyond 2^53
 *   loses precision), logical, complex (imaginary part kept), char (miUTF8, miUINT8, miUINT16/miUTF16,
 *   miUTF32; a char matrix is read row by row), cell arrays and struct arrays (column-major order).
 * Not supported, with a clear error: v7.3 files (HDF5), v4 files, sparse arrays, objects, function handles.
 */
import * as fs from "fs";
import * as zlib from "zlib";

export type MatNumericClass = "double" | "single" | "int8" | "uint8" | "int16" | "uint16" | "int32" | "uint32" | "int64" | "uint64";

export interface MatNumeric {
  type: "numeric";
  class: MatNumericClass;
  dims: number[];
  /** Column-major values. */
  data: Float64Array;
  imag?: Float64Array;
  logical: boolean;
}
export interface MatChar {
  type: "char";
  dims: number[];
  /** The rows of the char matrix (one string for the usual 1xN char array). */
  rows: string[];
}
export interface MatCell {
  type: "cell";
  dims: number[];
  /** Column-major elements. */
  items: MatValue[];
}
export interface MatStruct {
  type: "struct";
  dims: number[];
  fields: string[];
  /** Column-major elements, each mapping field name to value. */
  items: Record<string, MatValue>[];
}
export type MatValue = MatNumeric | MatChar | MatCell | MatStruct;

const mi = {
  INT8: 1, UINT8: 2, INT16: 3, UINT16: 4, INT32: 5, UINT32: 6, SINGLE: 7, DOUBLE: 9, INT64: 12, UINT64: 13,
  MATRIX: 14, COMPRESSED: 15, UTF8: 16, UTF16: 17, UTF32: 18,
} as const;

const MX_CLASSES: Record<number, string> = {
  1: "cell", 2: "struct", 3: "object", 4: "char", 5: "sparse", 6: "double", 7: "single", 8: "int8", 9: "uint8",
  10: "int16", 11: "uint16", 12: "int32", 13: "uint32", 14: "int64", 15: "uint64", 16: "function", 17: "opaque",
};

/** Error with the file (and variable) named. */
export class MatError extends Error {}

class Reader {
  readonly view: DataView;
  constructor(readonly buf: Buffer, readonly le: boolean, readonly file: string) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  fail(msg: string): never {
    throw new MatError(`${this.file}: ${msg}`);
  }
  u32(p: number): number {
    if (p + 4 > this.buf.length) this.fail(`truncated at byte ${p}`);
    return this.view.getUint32(p, this.le);
  }
  /** Read a data element tag at p: type, byte count, start of the data and the offset of the next element. */
  tag(p: number): { type: number; n: number; data: number; next: number } {
    const first = this.u32(p);
    if (first >>> 16 !== 0) {
      // Small data element: 2 bytes count, 2 bytes type, 4 bytes data.
      const n = first >>> 16;
      const type = first & 0xffff;
      if (n > 4) this.fail(`bad small element (${n} bytes) at byte ${p}`);
      return { type, n, data: p + 4, next: p + 8 };
    }
    const n = this.u32(p + 4);
    const data = p + 8;
    if (data + n > this.buf.length) this.fail(`element at byte ${p} (${n} bytes) runs past the end of the file (${this.buf.length} bytes): truncated file?`);
    // miCOMPRESSED is not padded; everything else is padded to 8 bytes.
    const next = first === mi.COMPRESSED ? data + n : data + Math.ceil(n / 8) * 8;
    return { type: first, n, data, next };
  }
  /** Numbers of a stored type as float64. */
  numbers(type: number, at: number, n: number): Float64Array {
    const v = this.view;
    const le = this.le;
    const size: Record<number, number> = { 1: 1, 2: 1, 3: 2, 4: 2, 5: 4, 6: 4, 7: 4, 9: 8, 12: 8, 13: 8 };
    const s = size[type];
    if (!s) this.fail(`unsupported numeric storage type ${type} at byte ${at}`);
    const count = Math.floor(n / s);
    const out = new Float64Array(count);
    for (let i = 0; i < count; i++) {
      const p = at + i * s;
      switch (type) {
        case mi.INT8: out[i] = v.getInt8(p); break;
        case mi.UINT8: out[i] = v.getUint8(p); break;
        case mi.INT16: out[i] = v.getInt16(p, le); break;
        case mi.UINT16: out[i] = v.getUint16(p, le); break;
        case mi.INT32: out[i] = v.getInt32(p, le); break;
        case mi.UINT32: out[i] = v.getUint32(p, le); break;
        case mi.SINGLE: out[i] = v.getFloat32(p, le); break;
        case mi.DOUBLE: out[i] = v.getFloat64(p, le); break;
        case mi.INT64: out[i] = Number(v.getBigInt64(p, le)); break;
        case mi.UINT64: out[i] = Number(v.getBigUint64(p, le)); break;
      }
    }
    return out;
  }
  /** Character codes of a char array's data element. */
  chars(type: number, at: number, n: number): number[] {
    const b = this.buf.subarray(at, at + n);
    if (type === mi.UTF8) return Array.from(b.toString("utf8"), (c) => c.codePointAt(0) as number);
    if (type === mi.UINT8 || type === mi.INT8) return Array.from(b);
    if (type === mi.UINT16 || type === mi.UTF16) {
      const out: number[] = [];
      for (let i = 0; i + 1 < n; i += 2) out.push(this.view.getUint16(at + i, this.le));
      return out;
    }
    if (type === mi.UTF32 || type === mi.INT32 || type === mi.UINT32) {
      const out: number[] = [];
      for (let i = 0; i + 3 < n; i += 4) out.push(this.view.getUint32(at + i, this.le));
      return out;
    }
    return this.fail(`unsupported char storage type ${type} at byte ${at}`);
  }
}

/** Parse one miMATRIX element's body (data at [start, end)). Returns the name and value. */
function parseMatrix(r: Reader, start: number, end: number, where: string): { name: string; value: MatValue } {
  if (start === end) return { name: "", value: { type: "numeric", class: "double", dims: [0, 0], data: new Float64Array(0), logical: false } };
  let p = start;
  const flagsTag = r.tag(p);
  const flags = r.u32(flagsTag.data);
  const mxClass = flags & 0xff;
  const complex = (flags & 0x0800) !== 0;
  const logical = (flags & 0x0200) !== 0;
  p = flagsTag.next;
  const dimsTag = r.tag(p);
  const dims = Array.from(r.numbers(dimsTag.type, dimsTag.data, dimsTag.n));
  p = dimsTag.next;
  const nameTag = r.tag(p);
  const name = r.buf.subarray(nameTag.data, nameTag.data + nameTag.n).toString("latin1");
  p = nameTag.next;
  const label = name ? `${where}${where ? "." : ""}${name}` : where;
  const count = dims.reduce((a, b) => a * b, 1);
  const cls = MX_CLASSES[mxClass] ?? `class ${mxClass}`;

  switch (cls) {
    case "double": case "single": case "int8": case "uint8": case "int16": case "uint16":
    case "int32": case "uint32": case "int64": case "uint64": {
      const re = r.tag(p);
      const data = r.numbers(re.type, re.data, re.n);
      let imag: Float64Array | undefined;
      if (complex) {
        const im = r.tag(re.next);
        imag = r.numbers(im.type, im.data, im.n);
      }
      if (data.length !== count) r.fail(`${label}: ${data.length} values for dimensions ${dims.join("x")}`);
      return { name, value: { type: "numeric", class: cls as MatNumericClass, dims, data, imag, logical } };
    }
    case "char": {
      const t = r.tag(p);
      const codes = count === 0 ? [] : r.chars(t.type, t.data, t.n);
      const nr = dims[0] ?? 0;
      const nc = dims.length ? count / Math.max(nr, 1) : 0;
      const rows: string[] = [];
      if (codes.length === count) {
        for (let i = 0; i < nr; i++) {
          let s = "";
          for (let j = 0; j < nc; j++) s += String.fromCodePoint(codes[i + j * nr]);
          rows.push(s);
        }
      } else {
        // UTF-8 storage of non-ASCII text can have fewer code points than bytes; keep a single row.
        rows.push(String.fromCodePoint(...codes));
      }
      return { name, value: { type: "char", dims, rows } };
    }
    case "cell": {
      const items: MatValue[] = [];
      for (let i = 0; i < count; i++) {
        const t = r.tag(p);
        if (t.type !== mi.MATRIX) r.fail(`${label}{${i + 1}}: expected miMATRIX, found type ${t.type}`);
        items.push(parseMatrix(r, t.data, t.data + t.n, `${label}{${i + 1}}`).value);
        p = t.next;
      }
      return { name, value: { type: "cell", dims, items } };
    }
    case "struct": {
      const lenTag = r.tag(p);
      const fieldLen = r.numbers(lenTag.type, lenTag.data, lenTag.n)[0];
      p = lenTag.next;
      const namesTag = r.tag(p);
      p = namesTag.next;
      const fields: string[] = [];
      for (let o = 0; fieldLen > 0 && o + fieldLen <= namesTag.n; o += fieldLen) {
        const raw = r.buf.subarray(namesTag.data + o, namesTag.data + o + fieldLen);
        const z = raw.indexOf(0);
        fields.push(raw.subarray(0, z < 0 ? raw.length : z).toString("latin1"));
      }
      const items: Record<string, MatValue>[] = [];
      for (let i = 0; i < count; i++) {
        const item: Record<string, MatValue> = {};
        for (const f of fields) {
          const t = r.tag(p);
          if (t.type !== mi.MATRIX) r.fail(`${label}(${i + 1}).${f}: expected miMATRIX, found type ${t.type}`);
          item[f] = parseMatrix(r, t.data, t.data + t.n, `${label}(${i + 1}).${f}`).value;
          p = t.next;
        }
        items.push(item);
      }
      return { name, value: { type: "struct", dims, fields, items } };
    }
    default:
      return r.fail(`${label || "variable"}: MATLAB ${cls} arrays are not supported`);
  }
}

/** Parse the elements of a buffer (the file body or an inflated miCOMPRESSED element). */
function parseElements(r: Reader, start: number, end: number, out: Record<string, MatValue>): void {
  let p = start;
  while (p + 8 <= end) {
    const t = r.tag(p);
    if (t.type === mi.COMPRESSED) {
      let inflated: Buffer;
      try {
        inflated = zlib.inflateSync(r.buf.subarray(t.data, t.data + t.n));
      } catch (e) {
        r.fail(`cannot inflate compressed element at byte ${p}: ${(e as Error).message}`);
      }
      const inner = new Reader(inflated, r.le, r.file);
      parseElements(inner, 0, inflated.length, out);
    } else if (t.type === mi.MATRIX) {
      const { name, value } = parseMatrix(r, t.data, t.data + t.n, "");
      out[name] = value;
    } else {
      r.fail(`unexpected top-level element type ${t.type} at byte ${p}`);
    }
    p = t.next;
  }
}

/** Parse a Level 5 MAT-file held in memory; `file` names it in errors. Returns variables by name. */
export function parseMat(buf: Buffer, file = "<buffer>"): Record<string, MatValue> {
  if (buf.length >= 4 && buf.subarray(512, 516).toString("latin1") === "\x89HDF") {
    throw new MatError(`${file}: MATLAB v7.3 (HDF5) MAT-files are not supported; re-save it with save(..., '-v7') or use an HDF5 reader`);
  }
  if (buf.length < 128) throw new MatError(`${file}: not a MAT-file (only ${buf.length} bytes)`);
  const text = buf.subarray(0, 116).toString("latin1");
  if (text.includes("MATLAB 7.3")) throw new MatError(`${file}: MATLAB v7.3 (HDF5) MAT-files are not supported; re-save it with save(..., '-v7')`);
  const endian = buf.subarray(126, 128).toString("latin1");
  if (!text.startsWith("MATLAB 5.0") && endian !== "IM" && endian !== "MI") {
    throw new MatError(`${file}: not a Level 5 MAT-file (no "MATLAB 5.0" header; v4 files are not supported)`);
  }
  if (endian !== "IM" && endian !== "MI") throw new MatError(`${file}: bad endian indicator ${JSON.stringify(endian)}`);
  const r = new Reader(buf, endian === "IM", file);
  const out: Record<string, MatValue> = {};
  parseElements(r, 128, buf.length, out);
  return out;
}

/** Read a Level 5 MAT-file. */
export async function readMat(file: string): Promise<Record<string, MatValue>> {
  return parseMat(await fs.promises.readFile(file), file);
}

// ---------------------------------------------------------------------------------------------------
// Accessors that turn MAT values into plain JS values, with errors naming what is wrong.

/** A variable of a parsed file, or an error naming the file and the variables it does hold. */
export function matVar(vars: Record<string, MatValue>, name: string, file = "MAT-file"): MatValue {
  const v = vars[name];
  if (!v) throw new MatError(`${file}: no variable "${name}" (has: ${Object.keys(vars).join(", ") || "none"})`);
  return v;
}

/** Numbers of a numeric/logical array (column-major), or of a cell of numeric scalars. */
export function matNumbers(v: MatValue, what = "value"): number[] {
  if (v.type === "numeric") return Array.from(v.data);
  if (v.type === "cell") return v.items.map((x, i) => matScalar(x, `${what}{${i + 1}}`));
  throw new MatError(`${what}: expected numbers, found ${v.type}`);
}

/** A numeric scalar. */
export function matScalar(v: MatValue, what = "value"): number {
  if (v.type !== "numeric" || v.data.length !== 1) throw new MatError(`${what}: expected a numeric scalar, found ${describe(v)}`);
  return v.data[0];
}

/** A string: a 1xN char array (or a 1x1 cell holding one). */
export function matString(v: MatValue, what = "value"): string {
  if (v.type === "char") {
    if (v.rows.length === 0) return "";
    if (v.rows.length === 1) return v.rows[0];
    throw new MatError(`${what}: expected one string, found a char matrix ${v.dims.join("x")}`);
  }
  if (v.type === "cell" && v.items.length === 1) return matString(v.items[0], what);
  throw new MatError(`${what}: expected a string, found ${describe(v)}`);
}

/** Strings of a cell array of strings, or the rows of a char matrix (trailing blanks removed). */
export function matStrings(v: MatValue, what = "value"): string[] {
  if (v.type === "cell") return v.items.map((x, i) => matString(x, `${what}{${i + 1}}`));
  if (v.type === "char") return v.dims[0] === 1 ? v.rows : v.rows.map((s) => s.replace(/\s+$/, ""));
  throw new MatError(`${what}: expected strings, found ${describe(v)}`);
}

/** The elements of a struct array as records (column-major). */
export function matStructs(v: MatValue, what = "value", required: string[] = []): Record<string, MatValue>[] {
  if (v.type !== "struct") throw new MatError(`${what}: expected a struct array, found ${describe(v)}`);
  for (const f of required) {
    if (!v.fields.includes(f)) throw new MatError(`${what}: struct has no field "${f}" (fields: ${v.fields.join(", ")})`);
  }
  return v.items;
}

function describe(v: MatValue): string {
  return `${v.type === "numeric" ? v.class : v.type} ${v.dims.join("x")}`;
}
