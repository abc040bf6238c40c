import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { readNpy, writeNpy, encodeNpy, parseNpy, npyToFloat32, NpyArray } from "../lib/model/npy";
import { sharedOrSkip } from "./helpers/shared";
import { tempDir, removeTempDir } from "./helpers/tmp";

const FIX = path.join(__dirname, "fixtures", "checkpoint");
const EXPECTED = JSON.parse(fs.readFileSync(path.join(FIX, "expected.json"), "utf8")).npy as Record<
  string,
  { descr: string; shape: number[]; values: number[] }
>;
const PYTHON = "/usr/bin/python3";
const DTYPE_OF_DESCR: Record<string, string> = {
  "<f4": "float32",
  ">f4": "float32",
  "<f8": "float64",
  "<f2": "float16",
  "<i4": "int32",
  "<i8": "int64",
  "|u1": "uint8",
};

let tmp: string;
before(() => {
  tmp = tempDir("npy");
});
after(() => removeTempDir(tmp));

/** The values as JS numbers (float16 decoded, int64 converted). */
function values(a: NpyArray): number[] {
  if (a.data instanceof BigInt64Array) return Array.from(a.data, Number);
  return Array.from(a.dtype === "float16" ? npyToFloat32(a) : (a.data as ArrayLike<number>));
}

describe("npy", () => {
  for (const [name, e] of Object.entries(EXPECTED)) {
    it(`reads ${name} written by numpy (${e.descr}, shape [${e.shape}])`, async () => {
      const a = await readNpy(path.join(FIX, name));
      assert.equal(a.dtype, DTYPE_OF_DESCR[e.descr]);
      assert.deepEqual(a.shape, e.shape);
      const got = values(a);
      assert.equal(got.length, e.values.length);
      for (let i = 0; i < got.length; i++) assert.ok(Object.is(got[i], e.values[i]), `${name}[${i}]: ${got[i]} vs ${e.values[i]}`);
    });
  }

  it("rejects Fortran order, naming the file", async () => {
    await assert.rejects(readNpy(path.join(FIX, "fortran.npy")), /fortran\.npy: Fortran-order \(column-major\) \.npy arrays are not supported/);
  });

  it("reports truncated data and bad magic", async () => {
    const b = fs.readFileSync(path.join(FIX, "f4.npy"));
    assert.throws(() => parseNpy(b.subarray(0, b.length - 1), "cut.npy"), /cut\.npy: truncated \.npy data: shape \(2, 3\) <f4 needs 24 bytes, the file has 23/);
    assert.throws(() => parseNpy(Buffer.from("PK\x03\x04 not numpy"), "x.npy"), /x\.npy: not a \.npy file/);
  });

  it("rejects unsupported dtypes clearly", () => {
    const b = encodeNpy({ shape: [1], data: new Float32Array([1]) });
    const s = Buffer.from(b).toString("latin1").replace("'<f4'", "'<c8'");
    assert.throws(() => parseNpy(Buffer.from(s, "latin1"), "c.npy"), /c\.npy: unsupported \.npy dtype '<c8'/);
  });

  const cases: { name: string; arr: { shape: number[]; data: NpyArray["data"] } }[] = [
    { name: "float32 2x3", arr: { shape: [2, 3], data: new Float32Array([1, -2, 3.5, 0, 1e-30, -0]) } },
    { name: "float64 vector", arr: { shape: [3], data: new Float64Array([0.1, 1e300, -5]) } },
    { name: "int32 scalar", arr: { shape: [], data: new Int32Array([-7]) } },
    { name: "int64", arr: { shape: [2], data: new BigInt64Array([-(2n ** 40n), 3n]) } },
    { name: "uint8 empty", arr: { shape: [0, 2], data: new Uint8Array(0) } },
  ];
  for (const c of cases) {
    it(`round-trips ${c.name} with a 64-byte aligned header`, async () => {
      const p = path.join(tmp, `${c.name.replace(/ /g, "_")}.npy`);
      await writeNpy(p, c.arr);
      const raw = fs.readFileSync(p);
      assert.equal((raw.readUInt16LE(8) + 10) % 64, 0);
      const back = await readNpy(p);
      assert.deepEqual(back.shape, c.arr.shape);
      assert.equal(back.data.constructor, c.arr.data.constructor);
      assert.deepEqual(Array.from(back.data as ArrayLike<number>), Array.from(c.arr.data as ArrayLike<number>));
    });
  }

  it("writes files numpy reads", async function () {
    if (spawnSync(PYTHON, ["-c", "import numpy"]).status !== 0) {
      console.log(`      (skipped: ${PYTHON} with numpy is not available)`);
      this.skip();
    }
    const files = cases.map((c) => path.join(tmp, `${c.name.replace(/ /g, "_")}.py.npy`));
    for (let i = 0; i < cases.length; i++) await writeNpy(files[i], cases[i].arr);
    const script =
      "import json, sys, numpy as np\n" +
      "print(json.dumps([[a.dtype.str, list(a.shape), a.reshape(-1).tolist()] for a in (np.load(f) for f in sys.argv[1:])]))";
    const r = spawnSync(PYTHON, ["-c", script, ...files], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as [string, number[], number[]][];
    assert.deepEqual(out.map((o) => o[0]), ["<f4", "<f8", "<i4", "<i8", "|u1"]);
    out.forEach(([, shape, vals], i) => {
      assert.deepEqual(shape, cases[i].arr.shape);
      assert.deepEqual(vals, Array.from(cases[i].arr.data as ArrayLike<number>, Number));
    });
  });

  it("reads every reference tensor of the shared tiny fixtures (shape, dtype, min, max)", async function () {
    const manifestPath = sharedOrSkip(this, "fixtures", "guided-diffusion", "tiny", "manifest.json");
    const manifest = JSON.parse(fs.readFileSync(manifestPath, "utf8"));
    for (const t of manifest.tensors as { file: string; shape: number[]; dtype: string; stats?: { min: number; max: number } }[]) {
      const a = await readNpy(path.join(path.dirname(manifestPath), t.file));
      assert.deepEqual(a.shape, t.shape, t.file);
      assert.equal(a.dtype, DTYPE_OF_DESCR[t.dtype], t.file);
      if (t.stats) {
        const v = values(a);
        assert.equal(v.reduce((m, x) => Math.min(m, x), Infinity), t.stats.min, `${t.file} min`);
        assert.equal(v.reduce((m, x) => Math.max(m, x), -Infinity), t.stats.max, `${t.file} max`);
      }
    }
  });
});
