import { strict as assert } from "assert";
import * as path from "path";
import * as zlib from "zlib";
import { matNumbers, matScalar, matString, matStrings, matStructs, matVar, MatValue, parseMat, readMat } from "../lib/data/mat";

const DIR = path.join(__dirname, "fixtures", "datasets", "mat");

function num(v: MatValue) {
  assert.equal(v.type, "numeric");
  return v as Extract<MatValue, { type: "numeric" }>;
}

/** What scipy.io.savemat wrote in make.py (same content compressed and not). */
function checkScipyFile(vars: Record<string, MatValue>) {
  const dbl = num(vars.dbl);
  assert.equal(dbl.class, "double");
  assert.deepEqual(dbl.dims, [2, 3]);
  // np.arange(6).reshape(2, 3) / 4, column-major: (0,0) (1,0) (0,1) (1,1) (0,2) (1,2)
  assert.deepEqual(Array.from(dbl.data), [0, 0.75, 0.25, 1, 0.5, 1.25]);
  assert.deepEqual(matNumbers(vars.i8), [-128, 0, 127]);
  assert.equal(num(vars.i8).class, "int8");
  assert.deepEqual(matNumbers(vars.u16), [0, 65535]);
  assert.deepEqual(matNumbers(vars.i64), [-(2 ** 40), 2 ** 40]);
  assert.equal(num(vars.i64).class, "int64");
  assert.deepEqual(matNumbers(vars.sgl), [0.25, -1.5]);
  assert.equal(num(vars.sgl).class, "single");
  assert.equal(num(vars.flag).logical, true);
  assert.deepEqual(matNumbers(vars.flag), [1, 0, 1]);
  const c = num(vars.cplx);
  assert.deepEqual(Array.from(c.data, (v) => v + 0), [1, 0]); // the real part of -3.5j is -0
  assert.deepEqual(Array.from(c.imag!), [2, -3.5]);
  assert.equal(matString(vars.str), "hello world");
  assert.equal(matString(vars.ustr), "café ünïcode");
  assert.equal(matString(vars.empty_str), "");
  assert.deepEqual(matStrings(vars.chars2), ["ab", "cd"]);
  const cells = vars.cells;
  assert.equal(cells.type, "cell");
  if (cells.type === "cell") {
    assert.deepEqual(cells.dims, [1, 3]);
    assert.equal(matString(cells.items[0]), "x");
    assert.deepEqual(matNumbers(cells.items[1]), [1, 2]);
    assert.deepEqual(matStrings(cells.items[2]), ["deep"]);
  }
  assert.deepEqual(matStrings(vars.column_cells), ["r1", "r2", "r3"]);
  assert.deepEqual(num(vars.empty).dims, [0, 0]);
  const st = matStructs(vars.st, "st", ["name", "id", "box", "tags"]);
  assert.equal(st.length, 3);
  assert.deepEqual(st.map((s) => matString(s.name)), ["item1", "item2", "item3"]);
  assert.deepEqual(st.map((s) => matScalar(s.id)), [1, 2, 3]);
  assert.deepEqual(matNumbers(st[2].box), [2, 2.5, 20, -2]);
  assert.deepEqual(matStrings(st[0].tags), ["a", "b"]);
  assert.deepEqual(matStrings(st[1].tags), []);
  assert.deepEqual(matStrings(st[2].tags), ["aaa", "b"]);
  const nested = matStructs(vars.nested)[0];
  assert.equal(matString(nested.label), "outer");
  const inner = matStructs(nested.inner);
  assert.equal(inner.length, 2);
  assert.equal(matScalar(inner[0].v), 1.5);
  assert.equal(matString(inner[1].v), "x");
}

// ---- A tiny MAT writer, to build MATLAB-style files scipy does not write (big-endian, miUINT16 chars,
// doubles stored in smaller integer types, small data elements).
type Endian = "le" | "be";
function el(type: number, payload: Buffer, e: Endian, small = true): Buffer {
  if (small && payload.length <= 4 && type !== 14 && type !== 15) {
    const b = Buffer.alloc(8);
    if (e === "le") {
      b.writeUInt16LE(type, 0);
      b.writeUInt16LE(payload.length, 2);
    } else {
      b.writeUInt16BE(payload.length, 0);
      b.writeUInt16BE(type, 2);
    }
    payload.copy(b, 4);
    return b;
  }
  const pad = type === 15 ? 0 : (8 - (payload.length % 8)) % 8;
  const h = Buffer.alloc(8);
  if (e === "le") {
    h.writeUInt32LE(type, 0);
    h.writeUInt32LE(payload.length, 4);
  } else {
    h.writeUInt32BE(type, 0);
    h.writeUInt32BE(payload.length, 4);
  }
  return Buffer.concat([h, payload, Buffer.alloc(pad)]);
}
function u32s(vals: number[], e: Endian, signed = false) {
  const b = Buffer.alloc(vals.length * 4);
  vals.forEach((v, i) => (e === "le" ? (signed ? b.writeInt32LE(v, i * 4) : b.writeUInt32LE(v, i * 4)) : signed ? b.writeInt32BE(v, i * 4) : b.writeUInt32BE(v, i * 4)));
  return b;
}
function matrix(name: string, cls: number, dims: number[], body: Buffer[], e: Endian): Buffer {
  const flags = el(6, u32s([cls, 0], e), e, false);
  const d = el(5, u32s(dims, e, true), e, false);
  const n = el(1, Buffer.from(name, "latin1"), e);
  return el(14, Buffer.concat([flags, d, n, ...body]), e);
}
function header(e: Endian): Buffer {
  const h = Buffer.alloc(128, 0x20);
  h.write("MATLAB 5.0 MAT-file, hand-made", 0, "latin1");
  h.fill(0, 116, 124);
  if (e === "le") {
    h.writeUInt16LE(0x0100, 124);
    h.write("IM", 126, "latin1");
  } else {
    h.writeUInt16BE(0x0100, 124);
    h.write("MI", 126, "latin1");
  }
  return h;
}
function matlabStyle(e: Endian, compress: boolean): Buffer {
  const utf16 = (s: string) => {
    const b = Buffer.alloc(s.length * 2);
    for (let i = 0; i < s.length; i++) e === "le" ? b.writeUInt16LE(s.charCodeAt(i), i * 2) : b.writeUInt16BE(s.charCodeAt(i), i * 2);
    return b;
  };
  // synsets-like 2x1 struct: ILSVRC2012_ID stored as miUINT8 (small element), WNID as miUINT16 chars.
  const fieldNames = Buffer.alloc(64);
  fieldNames.write("ILSVRC2012_ID", 0, "latin1");
  fieldNames.write("WNID", 32, "latin1");
  const rows = [
    [7, "n01440764"],
    [300, "n02119789"],
  ] as const;
  const body: Buffer[] = [el(5, u32s([32], e, true), e), el(1, fieldNames, e, false)];
  for (const [id, wnid] of rows) {
    const idPayload = id < 256 ? el(2, Buffer.from([id]), e) : el(4, e === "le" ? Buffer.from([id & 255, id >> 8]) : Buffer.from([id >> 8, id & 255]), e);
    body.push(matrix("", 6, [1, 1], [idPayload], e));
    body.push(matrix("", 4, [1, wnid.length], [el(4, utf16(wnid), e, false)], e));
  }
  const v = matrix("synsets", 2, [2, 1], body, e);
  const word = matrix("word", 4, [1, 5], [el(4, utf16("Grüße"), e, false)], e);
  const elements = Buffer.concat([v, word]);
  return Buffer.concat([header(e), compress ? el(15, zlib.deflateSync(elements), e) : elements]);
}

describe("MAT-file reader (Level 5)", function () {
  it("reads what scipy.io.savemat wrote, compressed and not, identically", async function () {
    const a = await readMat(path.join(DIR, "compressed.mat"));
    const b = await readMat(path.join(DIR, "plain.mat"));
    checkScipyFile(a);
    checkScipyFile(b);
    assert.deepEqual(Object.keys(a).sort(), Object.keys(b).sort());
  });

  for (const e of ["le", "be"] as Endian[]) {
    for (const compress of [false, true]) {
      it(`reads MATLAB-style elements (${e === "le" ? "little" : "big"}-endian, ${compress ? "compressed" : "plain"}): miUINT16 chars, narrow storage, small elements`, function () {
        const vars = parseMat(matlabStyle(e, compress), "handmade.mat");
        const syn = matStructs(matVar(vars, "synsets", "handmade.mat"), "synsets", ["ILSVRC2012_ID", "WNID"]);
        assert.deepEqual(syn.map((s) => matScalar(s.ILSVRC2012_ID)), [7, 300]);
        assert.deepEqual(syn.map((s) => matString(s.WNID)), ["n01440764", "n02119789"]);
        assert.equal(matString(vars.word), "Grüße");
      });
    }
  }

  it("refuses v7.3 (HDF5) files with a clear error naming the file", async function () {
    await assert.rejects(readMat(path.join(DIR, "v73.mat")), /v73\.mat: MATLAB v7\.3 \(HDF5\) MAT-files are not supported/);
  });

  it("reports truncated files, non-MAT files and missing variables with the file named", async function () {
    await assert.rejects(readMat(path.join(DIR, "truncated.mat")), /truncated\.mat: .*(truncated|past the end)/);
    assert.throws(() => parseMat(Buffer.from("hello"), "x.mat"), /x\.mat: not a MAT-file/);
    assert.throws(() => parseMat(Buffer.alloc(200), "zeros.mat"), /zeros\.mat: not a Level 5 MAT-file/);
    const vars = parseMat(matlabStyle("le", false), "h.mat");
    assert.throws(() => matVar(vars, "labels", "h.mat"), /h\.mat: no variable "labels" \(has: synsets, word\)/);
    assert.throws(() => matStructs(vars.synsets, "synsets", ["words"]), /struct has no field "words"/);
    assert.throws(() => matScalar(vars.word, "word"), /word: expected a numeric scalar, found char 1x5/);
  });
});
