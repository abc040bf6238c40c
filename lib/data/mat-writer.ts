/**
 * A minimal writer of MATLAB Level 5 MAT-files (uncompressed, little-endian), the inverse of mat.ts for
 * the values it returns: numeric arrays in their class (int64/uint64 as double), logical, char (UTF-16 code
 * units, column-major for a char matrix), cell and struct arrays. Enough to write the
 * annotation files of Stanford Cars, Stanford Dogs and Flowers-102 for synthetic test trees
 * (lib/data/synthetic-fine-grained.ts). Not written: complex parts, compression, sparse arrays.
 */
import * as fs from "fs";
import { writeAtomically } from "../model/checkpoint/atomic";
import { MatCell, MatChar, MatNumeric, MatStruct, MatValue } from "./mat";

const mi = { INT8: 1, UINT8: 2, INT16: 3, UINT16: 4, INT32: 5, UINT32: 6, SINGLE: 7, DOUBLE: 9, MATRIX: 14, UTF16: 17 } as const;
const MX: Record<string, number> = {
  cell: 1, struct: 2, char: 4, double: 6, single: 7, int8: 8, uint8: 9, int16: 10, uint16: 11, int32: 12, uint32: 13,
};
/** Storage type and byte size of each numeric class written. */
const STORE: Record<string, [number, number]> = {
  double: [mi.DOUBLE, 8], single: [mi.SINGLE, 4], int8: [mi.INT8, 1], uint8: [mi.UINT8, 1], int16: [mi.INT16, 2],
  uint16: [mi.UINT16, 2], int32: [mi.INT32, 4], uint32: [mi.UINT32, 4],
};
/** Field names are written padded to this many bytes (MATLAB's usual 32; names up to 31 characters). */
const FIELD_BYTES = 32;

/** One data element: tag (type, byte count) and data padded to 8 bytes. */
function element(type: number, data: Buffer): Buffer {
  const tag = Buffer.alloc(8);
  tag.writeUInt32LE(type, 0);
  tag.writeUInt32LE(data.length, 4);
  const pad = Buffer.alloc((8 - (data.length % 8)) % 8);
  return Buffer.concat([tag, data, pad]);
}

function int32s(values: number[]): Buffer {
  const b = Buffer.alloc(4 * values.length);
  values.forEach((v, i) => b.writeInt32LE(v, 4 * i));
  return b;
}

function count(dims: number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

function checkDims(v: MatValue, n: number, what: string): void {
  if (v.dims.length < 2 || !v.dims.every((d) => Number.isInteger(d) && d >= 0)) throw new Error(`writeMat ${what}: dims ${JSON.stringify(v.dims)} must be at least 2 non-negative integers`);
  if (count(v.dims) !== n) throw new Error(`writeMat ${what}: dims ${v.dims.join("x")} hold ${count(v.dims)} elements, the value has ${n}`);
}

function numericData(v: MatNumeric, what: string): Buffer {
  const cls = v.class === "int64" || v.class === "uint64" ? "double" : v.class;
  const [type, size] = STORE[cls] ?? STORE.double;
  const b = Buffer.alloc(size * v.data.length);
  v.data.forEach((x, i) => {
    const p = size * i;
    switch (type) {
      case mi.DOUBLE: b.writeDoubleLE(x, p); break;
      case mi.SINGLE: b.writeFloatLE(x, p); break;
      case mi.INT8: b.writeInt8(x, p); break;
      case mi.UINT8: b.writeUInt8(x, p); break;
      case mi.INT16: b.writeInt16LE(x, p); break;
      case mi.UINT16: b.writeUInt16LE(x, p); break;
      case mi.INT32: b.writeInt32LE(x, p); break;
      case mi.UINT32: b.writeUInt32LE(x, p); break;
    }
  });
  if (v.imag) throw new Error(`writeMat ${what}: complex values are not supported by this writer`);
  return element(type, b);
}

function charData(v: MatChar, what: string): Buffer {
  const [nr, nc] = [v.dims[0], count(v.dims) / Math.max(v.dims[0], 1)];
  if (v.rows.length !== nr || v.rows.some((r) => r.length !== nc)) {
    throw new Error(`writeMat ${what}: a ${v.dims.join("x")} char array needs ${nr} rows of ${nc} UTF-16 code units`);
  }
  const b = Buffer.alloc(2 * nr * nc);
  for (let i = 0; i < nr; i++) for (let j = 0; j < nc; j++) b.writeUInt16LE(v.rows[i].charCodeAt(j), 2 * (i + j * nr));
  // ASCII as miUINT16 (as MATLAB writes it); other text as miUTF16, which scipy.io.loadmat decodes as UTF-16
  // (it decodes miUINT16 with a byte codec and would garble it).
  return element(v.rows.some((r) => /[^\x00-\x7f]/.test(r)) ? mi.UTF16 : mi.UINT16, b);
}

/** One miMATRIX element holding `v` under `name` ("" inside cells and structs). */
function matrix(name: string, v: MatValue, what: string): Buffer {
  const cls = v.type === "numeric" ? (v.class === "int64" || v.class === "uint64" ? "double" : v.class) : v.type;
  const flags = Buffer.alloc(8);
  flags.writeUInt32LE(MX[cls] | (v.type === "numeric" && v.logical ? 0x0200 : 0), 0);
  const parts = [element(mi.UINT32, flags), element(mi.INT32, int32s(v.dims)), element(mi.INT8, Buffer.from(name, "latin1"))];
  switch (v.type) {
    case "numeric":
      checkDims(v, v.data.length, what);
      parts.push(numericData(v, what));
      break;
    case "char":
      checkDims(v, count(v.dims), what);
      parts.push(charData(v, what));
      break;
    case "cell":
      checkDims(v, v.items.length, what);
      v.items.forEach((x, i) => parts.push(matrix("", x, `${what}{${i + 1}}`)));
      break;
    case "struct": {
      checkDims(v, v.items.length, what);
      const names = Buffer.alloc(FIELD_BYTES * v.fields.length);
      v.fields.forEach((f, i) => {
        if (!/^[A-Za-z]\w*$/.test(f) || f.length >= FIELD_BYTES) throw new Error(`writeMat ${what}: field name ${JSON.stringify(f)} must be an identifier of at most ${FIELD_BYTES - 1} characters`);
        names.write(f, FIELD_BYTES * i, "latin1");
      });
      parts.push(element(mi.INT32, int32s([FIELD_BYTES])), element(mi.INT8, names));
      v.items.forEach((item, i) => {
        for (const f of v.fields) {
          if (!item[f]) throw new Error(`writeMat ${what}(${i + 1}): field "${f}" is missing`);
          parts.push(matrix("", item[f], `${what}(${i + 1}).${f}`));
        }
      });
      break;
    }
  }
  return element(mi.MATRIX, Buffer.concat(parts));
}

/** The bytes of a MAT-file holding `vars` (variable names: MATLAB identifiers). */
export function encodeMat(vars: Record<string, MatValue>): Buffer {
  const header = Buffer.alloc(128, 0x20);
  header.write("MATLAB 5.0 MAT-file, written by diffprobe lib/data/mat-writer.ts", 0, "latin1");
  header.fill(0, 116, 124);
  header.writeUInt16LE(0x0100, 124);
  header.write("IM", 126, "latin1");
  const body = Object.entries(vars).map(([name, v]) => {
    if (!/^[A-Za-z]\w*$/.test(name)) throw new Error(`writeMat: variable name ${JSON.stringify(name)} is not a MATLAB identifier`);
    return matrix(name, v, name);
  });
  return Buffer.concat([header, ...body]);
}

/** Write a MAT-file atomically. */
export async function writeMat(file: string, vars: Record<string, MatValue>): Promise<void> {
  const bytes = encodeMat(vars);
  await writeAtomically(file, (tmp) => fs.promises.writeFile(tmp, bytes));
}

// Constructors for the values the dataset annotation files hold.

/** A double array, column-major `values`; dims default to a 1xN row. */
export function matDouble(values: ArrayLike<number>, dims?: number[]): MatNumeric {
  return { type: "numeric", class: "double", dims: dims ?? [1, values.length], data: Float64Array.from(values as ArrayLike<number>), logical: false };
}

/** A 1xN char array. */
export function matChar(s: string): MatChar {
  return { type: "char", dims: [1, s.length], rows: [s] };
}

/** A cell array of `items` (column-major); dims default to a 1xN row. */
export function matCell(items: MatValue[], dims?: number[]): MatCell {
  return { type: "cell", dims: dims ?? [1, items.length], items };
}

/** A struct array with `fields`, one record per element (column-major); dims default to a 1xN row. */
export function matStruct(fields: string[], items: Record<string, MatValue>[], dims?: number[]): MatStruct {
  return { type: "struct", dims: dims ?? [1, items.length], fields, items };
}
