import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { MatValue, parseMat, readMat } from "../lib/data/mat";
import { encodeMat, matDouble, matStruct, writeMat } from "../lib/data/mat-writer";
import { MAT_WRITER_VARS } from "./fixtures/fine-grained/mat-writer/vars";
import { tempDir, removeTempDir } from "./helpers/tmp";

const FIX = path.join(__dirname, "fixtures", "fine-grained", "mat-writer");

const NUMPY: Record<string, string> = { double: "float64", single: "float32", uint8: "uint8", int8: "int8", int16: "int16", uint16: "uint16", int32: "int32", uint32: "uint32" };

/**
 * What lib/data/mat.ts returns, as comparable plain data. With `asScipy`, the numeric class as numpy names
 * it and no logical flag (scipy.io.loadmat returns MATLAB logical arrays as uint8).
 */
function normal(v: MatValue, asScipy = false): unknown {
  switch (v.type) {
    case "numeric": return asScipy ? { n: v.dims, data: Array.from(v.data), dtype: NUMPY[v.class] } : { n: v.dims, data: Array.from(v.data), logical: v.logical, cls: v.class };
    case "char": return { c: v.dims, rows: v.rows };
    case "cell": return { cell: v.dims, items: v.items.map((x) => normal(x, asScipy)) };
    case "struct": return { struct: v.dims, fields: v.fields, items: v.items.map((it) => Object.fromEntries(v.fields.map((f) => [f, normal(it[f], asScipy)]))) };
  }
}

/** scipy's reading (scipy.json, see make.py) in the same normal form. */
function fromScipy(s: any): unknown {
  if (s.struct) return { struct: s.shape, fields: s.struct, items: s.items.map((it: any) => Object.fromEntries(s.struct.map((f: string) => [f, fromScipy(it[f])]))) };
  if (s.cell) return { cell: s.shape, items: s.cell.map(fromScipy) };
  if (s.char) {
    // chars_as_strings=False: a [rows, cols] array of single characters (row-major here).
    const [nr, nc] = s.shape;
    const rows = Array.from({ length: nr }, (_, i) => s.char.slice(i * nc, (i + 1) * nc).join(""));
    return { c: s.shape, rows: nc === 0 && nr === 1 ? [""] : rows };
  }
  return { n: s.shape, data: s.values, dtype: s.dtype };
}

describe("MAT v5 writer (lib/data/mat-writer.ts)", function () {
  it("writes what lib/data/mat.ts reads back: numbers, logical, chars, char matrices, cells, structs, nesting", () => {
    const back = parseMat(encodeMat(MAT_WRITER_VARS), "written.mat");
    assert.deepEqual(Object.keys(back), Object.keys(MAT_WRITER_VARS));
    for (const [k, v] of Object.entries(MAT_WRITER_VARS)) assert.deepEqual(normal(back[k]), normal(v), k);
    const bytes = back.bytes;
    assert.ok(bytes.type === "numeric" && bytes.class === "uint8");
  });

  it("writes files that scipy.io.loadmat reads as the same values (scipy.json, made by make.py)", function () {
    const written = fs.readFileSync(path.join(FIX, "written.mat"));
    if (process.env.DIFFPROBE_WRITE_FIXTURES === "1") fs.writeFileSync(path.join(FIX, "written.mat"), encodeMat(MAT_WRITER_VARS));
    // The committed file is byte for byte what the writer makes now, so scipy's reading of it applies.
    assert.ok(encodeMat(MAT_WRITER_VARS).equals(written), "encodeMat output changed: rerun with DIFFPROBE_WRITE_FIXTURES=1, then make.py");
    const scipy = JSON.parse(fs.readFileSync(path.join(FIX, "scipy.json"), "utf8"));
    for (const [k, v] of Object.entries(MAT_WRITER_VARS)) {
      assert.deepEqual(fromScipy(scipy[k]), normal(v, true), k);
    }
    assert.match(scipy.__header__, /^MATLAB 5\.0 MAT-file/);
  });

  it("re-writes scipy's own fixture (every kind but complex) to the same values", async () => {
    const vars = await readMat(path.join(__dirname, "fixtures", "datasets", "mat", "plain.mat"));
    const kept = Object.fromEntries(Object.entries(vars).filter(([, v]) => !(v.type === "numeric" && v.imag)));
    assert.ok(Object.keys(kept).length >= 8);
    const back = parseMat(encodeMat(kept));
    for (const [k, v] of Object.entries(kept)) {
      const want = normal(v) as any;
      if (want.cls === "int64" || want.cls === "uint64") want.cls = "double"; // written as double (exact below 2^53)
      assert.deepEqual(normal(back[k]), want, k);
    }
  });

  it("refuses bad input, naming the variable and element at fault; writes atomically", async () => {
    assert.throws(() => encodeMat({ x: matDouble([1, 2, 3], [2, 2]) }), /writeMat x: dims 2x2 hold 4 elements, the value has 3/);
    assert.throws(() => encodeMat({ "2x": matDouble([1]) }), /variable name "2x" is not a MATLAB identifier/);
    assert.throws(() => encodeMat({ s: matStruct(["a", "b"], [{ a: matDouble([1]) } as Record<string, MatValue>]) }), /writeMat s\(1\): field "b" is missing/);
    assert.throws(() => encodeMat({ c: { type: "char", dims: [2, 2], rows: ["ab", "c"] } }), /writeMat c: a 2x2 char array needs 2 rows of 2/);
    const dir = tempDir("matw");
    try {
      const file = path.join(dir, "labels.mat");
      await writeMat(file, { labels: matDouble([1, 2]) });
      assert.deepEqual(Array.from((await readMat(file)).labels.type === "numeric" ? ((await readMat(file)).labels as any).data : []), [1, 2]);
      assert.deepEqual(fs.readdirSync(dir), ["labels.mat"]);
    } finally {
      removeTempDir(dir);
    }
  });
});
