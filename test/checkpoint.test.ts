import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  loadStateDict,
  saveSafetensors,
  readSafetensors,
  validateStateDict,
  writeTorchZip,
  detectCheckpointFormat,
  StateDict,
  TensorEntry,
} from "../lib/model/checkpoint";
import { readZipDirectory, readEntry, entryDataOffset } from "../lib/model/checkpoint/zip";
import { ZipWriter } from "../lib/model/checkpoint/zip-writer";
import { crc32, crc32Portable } from "../lib/model/checkpoint/crc32";
import { unpickle, PickleTruncatedError } from "../lib/model/checkpoint/pickle";
import { torchGlobals } from "../lib/model/checkpoint/torch-pickle";
import { torchZipPrefix, loadTorchLegacy } from "../lib/model/checkpoint/torch";
import { sharedOrSkip } from "./helpers/shared";
import { tempDir, removeTempDir } from "./helpers/tmp";

const FIX = path.join(__dirname, "fixtures", "checkpoint");
const fix = (name: string) => path.join(FIX, name);
type Expected = Record<string, { dtype: string; shape: number[]; values: number[] }>;
const EXPECTED = JSON.parse(fs.readFileSync(fix("expected.json"), "utf8")) as Record<string, unknown>;
const PYTHON = "/usr/bin/python3";

let tmp: string;
before(() => {
  tmp = tempDir("ckpt");
});
after(() => removeTempDir(tmp));

/** Exact comparison (float32 values; -0 vs 0 and NaN distinguished). */
function assertValues(got: ArrayLike<number>, want: number[], what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    if (!Object.is(got[i], Math.fround(want[i]))) assert.fail(`${what}[${i}]: got ${got[i]}, want ${want[i]}`);
  }
}

async function assertMatches(sd: StateDict, expected: Expected, file: string): Promise<void> {
  assert.deepEqual([...sd.keys()], Object.keys(expected), `${file}: names in order`);
  for (const [name, e] of Object.entries(expected)) {
    const t = sd.get(name)!;
    assert.equal(t.dtype, e.dtype, `${file}:${name} dtype`);
    assert.deepEqual(t.shape, e.shape, `${file}:${name} shape`);
    assertValues(await t.readFloat32(), e.values, `${file}:${name}`);
  }
}

function pythonHasTorch(): boolean {
  if (!fs.existsSync(PYTHON)) return false;
  return spawnSync(PYTHON, ["-c", "import torch"], { encoding: "utf8" }).status === 0;
}

function copyFixture(name: string, as: string): string {
  const p = path.join(tmp, as);
  fs.copyFileSync(fix(name), p);
  return p;
}

function fakeEntry(name: string, shape: number[]): TensorEntry {
  return {
    name,
    dtype: "float32",
    shape,
    readFloat32: async () => new Float32Array(shape.reduce((a, b) => a * b, 1)),
    readRaw: async () => new Uint8Array(0),
  };
}

describe("checkpoint: crc32", () => {
  it("matches the standard check value and zlib, incrementally", () => {
    const data = Buffer.from("123456789");
    assert.equal(crc32Portable(data), 0xcbf43926);
    assert.equal(crc32(data), 0xcbf43926);
    const big = crypto.randomBytes(10000);
    assert.equal(crc32Portable(big.subarray(5000), crc32Portable(big.subarray(0, 5000))), crc32(big));
  });
});

describe("checkpoint: zip reader", () => {
  it("lists a torch archive and finds its top folder without assuming a name", async () => {
    const h = await fs.promises.open(fix("weird_name.pt"), "r");
    try {
      const z = await readZipDirectory(h, fix("weird_name.pt"));
      assert.deepEqual([...z.entries.keys()].sort(), ["weird_name/data.pkl", "weird_name/data/0", "weird_name/data/1", "weird_name/version"]);
      assert.equal(torchZipPrefix(z), "weird_name/");
      assert.equal(Buffer.from(await readEntry(h, z, z.entries.get("weird_name/version")!)).toString(), "3\n");
    } finally {
      await h.close();
    }
  });

  it("reads deflated entries with zip64 local headers (written by Python's zipfile)", async () => {
    const h = await fs.promises.open(fix("deflated.pt"), "r");
    const z = await readZipDirectory(h, fix("deflated.pt"));
    await h.close();
    assert.ok([...z.entries.values()].every((e) => e.method === 8), "the fixture is deflated");
    const sd = await loadStateDict(fix("deflated.pt"));
    await assertMatches(sd, EXPECTED["deflated.pt"] as Expected, "deflated.pt");
  });

  it("names the file when it is truncated (no end record)", async () => {
    const p = copyFixture("weird_name.pt", "cut.pt");
    fs.truncateSync(p, fs.statSync(p).size - 30);
    await assert.rejects(loadStateDict(p), /cut\.pt: not a zip file \/ truncated: no end-of-central-directory/);
  });

  it("reports a central directory beyond the end of the file", async () => {
    const p = copyFixture("weird_name.pt", "badcd.pt");
    const b = fs.readFileSync(p);
    // torch (miniz) writes zip64 end records too: move the directory in both.
    const eocd = b.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
    if (b.readUInt32LE(eocd + 16) !== 0xffffffff) b.writeUInt32LE(b.length + 1000, eocd + 16);
    const eocd64 = b.lastIndexOf(Buffer.from([0x50, 0x4b, 0x06, 0x06]));
    if (eocd64 >= 0) b.writeBigUInt64LE(BigInt(b.length + 1000), eocd64 + 48);
    fs.writeFileSync(p, b);
    await assert.rejects(loadStateDict(p), (err: Error) => {
      assert.match(err.message, /badcd\.pt: not a zip file \/ truncated: central directory at byte \d+ .* beyond file size \d+/);
      assert.ok(err.message.includes(`beyond file size ${b.length}`), err.message);
      return true;
    });
  });

  it("reports a storage entry too short for its tensor", async () => {
    const src = fix("weird_name.pt");
    const h = await fs.promises.open(src, "r");
    const z = await readZipDirectory(h, src);
    const pkl = await readEntry(h, z, z.entries.get("weird_name/data.pkl")!);
    await h.close();
    const p = path.join(tmp, "short.pt");
    const w = await ZipWriter.create(p);
    await w.addEntry("x/data.pkl", pkl.length, [pkl]);
    await w.addEntry("x/data/0", 8, [new Uint8Array(8)]);
    await w.addEntry("x/data/1", 16, [new Uint8Array(16)]);
    await w.finish();
    await assert.rejects(loadStateDict(p), /short\.pt: storage data\/0 needs 32 bytes \(8 x float32\) but the entry holds 8/);
  });

  it("reports a local header whose data runs past the end of the file", async () => {
    const p = copyFixture("weird_name.pt", "hole.pt");
    const b = fs.readFileSync(p);
    // Point the central directory entry of data/0 at a local header near the end of the file.
    const name = Buffer.from("weird_name/data/0");
    const cd = b.indexOf(Buffer.concat([Buffer.from([0x50, 0x4b, 0x01, 0x02])]));
    let at = cd;
    while (!b.subarray(at + 46, at + 46 + name.length).equals(name)) at = b.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]), at + 4);
    b.writeUInt32LE(b.length - 10, at + 42);
    fs.writeFileSync(p, b);
    await assert.rejects(loadStateDict(p), /hole\.pt: truncated: local header of "weird_name\/data\/0" at byte \d+ beyond file size/);
  });

  it("rejects files of an unknown format, naming the file", async () => {
    const p = path.join(tmp, "junk.bin");
    fs.writeFileSync(p, "hello world, not a checkpoint");
    await assert.rejects(loadStateDict(p), /junk\.bin: unrecognised checkpoint format .*68 65 6c 6c/);
  });
});

describe("checkpoint: pickle VM", () => {
  const opts = (part: string) => ({ file: "test", part, globals: torchGlobals() });

  for (const proto of [2, 4]) {
    it(`decodes plain values (protocol ${proto})`, () => {
      const bytes = fs.readFileSync(fix(`values${proto}.pkl`));
      const { value, end } = unpickle(bytes, opts("values"));
      assert.equal(end, bytes.length);
      const v = value as Map<string, unknown>;
      assert.ok(v instanceof Map);
      assert.deepEqual(v.get("ints"), [0, 255, 65535, -1, 2 ** 31 - 1, -(2 ** 31), 2 ** 40, -(2 ** 40), 2n ** 70n]);
      assert.equal(v.get("float"), 1.5e-7);
      assert.equal(v.get("s"), "h\u00e9llo \u2713");
      if (proto === 4) assert.deepEqual(v.get("b"), new Uint8Array([0, 1, 255]));
      assert.deepEqual(v.get("t"), [1, [2, 3], []]);
      assert.equal(v.get("shared"), v.get("t"), "memo returns the same object");
      assert.deepEqual(v.get("flags"), [true, false, null]);
    });
  }

  it("refuses a torch checkpoint whose pickle calls os.system, naming global and file", async () => {
    await assert.rejects(loadStateDict(fix("evil.pt")), (err: Error) => {
      assert.match(err.message, /unsupported pickle global "os\.system" in .*evil\.pt \(evil\/data\.pkl\)/);
      return true;
    });
  });

  for (const proto of [2, 4]) {
    it(`refuses a pickle.dump of an object reducing to os.system (protocol ${proto})`, () => {
      const bytes = fs.readFileSync(fix(`evil${proto}.pkl`));
      assert.throws(() => unpickle(bytes, opts(`evil${proto}.pkl`)), /unsupported pickle global "posix\.system" in test \(evil\d\.pkl\)/);
    });
  }

  it("refuses unknown opcodes by name and reports truncation", () => {
    assert.throws(() => unpickle(new Uint8Array([0x80, 2, 0x8f, 0x2e]), opts("x")), /unsupported pickle opcode EMPTY_SET \(0x8f\)/);
    assert.throws(() => unpickle(new Uint8Array([0x80, 2, 0x58, 5, 0, 0, 0, 0x61]), opts("x")), PickleTruncatedError);
  });

  it("refuses calling a value that is not an allowed callable", () => {
    // GLOBAL torch.FloatStorage, EMPTY_TUPLE, REDUCE
    const b = Buffer.concat([Buffer.from([0x80, 2]), Buffer.from("ctorch\nFloatStorage\n", "latin1"), Buffer.from([0x29, 0x52, 0x2e])]);
    assert.throws(() => unpickle(b, opts("x")), /REDUCE of "torch\.FloatStorage", which is not callable here/);
  });
});

describe("checkpoint: torch.save files", () => {
  it("reads every dtype of a zip checkpoint (float32/16, bfloat16, float64, int64/32, uint8, scalar, empty)", async () => {
    assert.equal(await detectCheckpointFormat(fix("dtypes.pt")), "torch-zip");
    const sd = await loadStateDict(fix("dtypes.pt"));
    await assertMatches(sd, EXPECTED["dtypes.pt"] as Expected, "dtypes.pt");
    // Raw bytes keep the stored dtype.
    const raw = await sd.get("f16")!.readRaw();
    assert.equal(raw.length, 12);
    assert.equal(Buffer.from(raw).readUInt16LE(4), 0x7bff); // 65504 in float16
  });

  it("reads tensors sharing one storage: offsets, strided and transposed views, parameters", async () => {
    const sd = await loadStateDict(fix("shared.pt"));
    await assertMatches(sd, EXPECTED["shared.pt"] as Expected, "shared.pt");
  });

  it("reads an archive whose top folder is named after the file", async () => {
    await assertMatches(await loadStateDict(fix("weird_name.pt")), EXPECTED["weird_name.pt"] as Expected, "weird_name.pt");
  });

  it("reads the legacy (pre-1.6) format", async () => {
    assert.equal(await detectCheckpointFormat(fix("legacy.pt")), "torch-legacy");
    await assertMatches(await loadStateDict(fix("legacy.pt")), EXPECTED["legacy.pt"] as Expected, "legacy.pt");
  });

  it("reads legacy pickles that do not fit the first read", async () => {
    await assertMatches(await loadTorchLegacy(fix("legacy.pt"), {}, 64), EXPECTED["legacy.pt"] as Expected, "legacy.pt");
  });

  it("reports a truncated legacy file, naming the storage", async () => {
    const p = copyFixture("legacy.pt", "legacy_cut.pt");
    fs.truncateSync(p, fs.statSync(p).size - 5);
    await assert.rejects(loadStateDict(p), /legacy_cut\.pt: truncated: storage \d+ needs \d+ bytes at byte \d+ but the file has \d+/);
  });

  it("finds the state dict under ema / state_dict, or says which keys exist", async () => {
    const want = EXPECTED["weird_name.pt"] as Expected;
    await assertMatches(await loadStateDict(fix("nested_ema.pt")), want, "nested_ema.pt");
    await assertMatches(await loadStateDict(fix("nested_state_dict.pt")), want, "nested_state_dict.pt");
    await assertMatches(await loadStateDict(fix("nested_ema.pt"), { key: "ema" }), want, "nested_ema.pt");
    await assert.rejects(loadStateDict(fix("no_state_dict.pt")), /no_state_dict\.pt: no state dict found: .*keys are: epoch, optimizer/);
    await assert.rejects(loadStateDict(fix("nested_ema.pt"), { key: "opt" }), /no state dict under key "opt"; .*keys are: epoch, ema, opt/);
  });

  it("refuses to read tensors after the file changed", async () => {
    const p = copyFixture("weird_name.pt", "changing.pt");
    const sd = await loadStateDict(p);
    fs.appendFileSync(p, "x");
    await assert.rejects(sd.get("w")!.readFloat32(), /changing\.pt: the file changed since it was loaded/);
  });

  for (const config of ["tiny", "small"]) {
    it(`loads the shared ${config} guided-diffusion model.pt: names, shapes, sha256 of the values`, async function () {
      const file = sharedOrSkip(this, "fixtures", "guided-diffusion", config, "model.pt");
      const manifest = JSON.parse(fs.readFileSync(path.join(path.dirname(file), "manifest.json"), "utf8"));
      const params = manifest.checkpoint.parameters as { name: string; shape: number[] }[];
      const sd = await loadStateDict(file);
      assert.equal(sd.size, manifest.checkpoint.num_tensors);
      assert.deepEqual([...sd.keys()], params.map((p) => p.name));
      for (const p of params) assert.deepEqual(sd.get(p.name)!.shape, p.shape, p.name);
      validateStateDict(new Map(params.map((p) => [p.name, p.shape])), sd, file); // does not throw
      const hash = crypto.createHash("sha256");
      let sum = 0;
      let count = 0;
      for (const [name, t] of sd) {
        const v = await t.readFloat32();
        hash.update(Buffer.from(name, "utf8"));
        hash.update(Buffer.from(v.buffer, v.byteOffset, v.byteLength));
        for (let i = 0; i < v.length; i++) sum += v[i];
        count += v.length;
      }
      assert.equal(count, manifest.checkpoint.num_parameters);
      assert.equal(hash.digest("hex"), manifest.checkpoint.values_sha256);
      assert.ok(Math.abs(sum - manifest.checkpoint.values_sum) < 1e-6 * Math.abs(manifest.checkpoint.values_sum), `sum ${sum}`);
    });
  }

  it("explains loading the tiny checkpoint for the small configuration", async function () {
    const tiny = sharedOrSkip(this, "fixtures", "guided-diffusion", "tiny", "model.pt");
    const smallManifest = sharedOrSkip(this, "fixtures", "guided-diffusion", "small", "manifest.json");
    const params = JSON.parse(fs.readFileSync(smallManifest, "utf8")).checkpoint.parameters as { name: string; shape: number[] }[];
    const sd = await loadStateDict(tiny);
    assert.throws(
      () => validateStateDict(new Map(params.map((p) => [p.name, p.shape])), sd, tiny),
      (err: Error) => {
        assert.match(err.message, /model\.pt: the checkpoint does not match the model/);
        assert.match(err.message, /different configuration: \d+ of 412 expected keys differ/);
        assert.match(err.message, /missing keys \(\d+\):/);
        return true;
      },
    );
  });
});

describe("checkpoint: validateStateDict", () => {
  const expected = new Map<string, number[]>([
    ["a.weight", [4, 3]],
    ["a.bias", [4]],
    ["b.weight", [2, 2]],
  ]);

  it("accepts a matching state dict", () => {
    const sd: StateDict = new Map([...expected].map(([k, s]) => [k, fakeEntry(k, s)]));
    validateStateDict(expected, sd, "ok.pt");
  });

  it("lists missing, unexpected and mismatched keys in one error", () => {
    const sd: StateDict = new Map([
      ["a.weight", fakeEntry("a.weight", [4, 5])],
      ["c.extra", fakeEntry("c.extra", [7])],
      ["b.weight", fakeEntry("b.weight", [2, 2])],
    ]);
    assert.throws(
      () => validateStateDict(expected, sd, "wrong.pt"),
      (err: Error) => {
        const m = err.message;
        assert.match(m, /^wrong\.pt: the checkpoint does not match the model: 1 missing, 1 unexpected, 1 with another shape/);
        assert.match(m, /missing keys \(1\):\n  a\.bias expected \[4\]/);
        assert.match(m, /unexpected keys \(1\):\n  c\.extra found \[7\]/);
        assert.match(m, /shape mismatches \(1\):\n  a\.weight: expected \[4, 3\], found \[4, 5\]/);
        assert.match(m, /different configuration: 2 of 3 expected keys differ/);
        return true;
      },
    );
  });

  it("caps long lists with a count and spots a key prefix", () => {
    const many = new Map<string, number[]>();
    for (let i = 0; i < 30; i++) many.set(`layer${i}.w`, [i + 1]);
    const sd: StateDict = new Map([...many].map(([k, s]) => [`module.${k}`, fakeEntry(`module.${k}`, s)]));
    assert.throws(
      () => validateStateDict(many, sd, "ddp.pt"),
      (err: Error) => {
        assert.match(err.message, /missing keys \(30\):/);
        assert.match(err.message, /  \.\.\. and 10 more/);
        assert.match(err.message, /prefix "module\."; strip it/);
        assert.ok(!err.message.includes("layer25.w expected"), "capped at 20 lines");
        return true;
      },
    );
  });
});

describe("checkpoint: safetensors", () => {
  it("reads a file written by Python (every dtype, metadata)", async () => {
    const p = fix("python.safetensors");
    assert.equal(await detectCheckpointFormat(p), "safetensors");
    const { tensors, metadata } = await readSafetensors(p);
    assert.deepEqual(metadata, EXPECTED["python.safetensors.metadata"]);
    await assertMatches(tensors, EXPECTED["python.safetensors"] as Expected, "python.safetensors");
  });

  it("round-trips through saveSafetensors (sorted, padded, lazy values, atomic)", async () => {
    const p = path.join(tmp, "rt.safetensors");
    const z = new Float32Array([1, -2, 3.5, 1e-20, 7, 8]);
    const calls: string[] = [];
    await saveSafetensors(
      p,
      new Map([
        ["zeta", { shape: [2, 3], data: () => (calls.push("zeta"), z) }],
        ["alpha", { shape: [1], data: new Float32Array([42]) }],
        ["mid.scalar", { shape: [], data: new Float32Array([0.5]) }],
      ]),
      { epoch: "3" },
    );
    assert.deepEqual(calls, ["zeta"]);
    assert.deepEqual(fs.readdirSync(tmp).filter((f) => f.includes("tmp")), [], "no temporary file left");
    const b = fs.readFileSync(p);
    const n = Number(b.readBigUInt64LE(0));
    assert.equal(n % 8, 0);
    const header = JSON.parse(b.toString("utf8", 8, 8 + n));
    assert.deepEqual(Object.keys(header), ["__metadata__", "alpha", "mid.scalar", "zeta"]);
    assert.deepEqual(header.zeta, { dtype: "F32", shape: [2, 3], data_offsets: [8, 32] });
    const { tensors, metadata } = await readSafetensors(p);
    assert.deepEqual(metadata, { epoch: "3" });
    assertValues(await tensors.get("zeta")!.readFloat32(), [...z], "zeta");
    assertValues(await tensors.get("alpha")!.readFloat32(), [42], "alpha");
    assert.deepEqual(tensors.get("mid.scalar")!.shape, []);
  });

  it("leaves no file when a tensor's data does not fit its shape", async () => {
    const p = path.join(tmp, "bad.safetensors");
    await assert.rejects(
      saveSafetensors(p, [{ name: "w", shape: [2, 2], data: new Float32Array(3) }]),
      /bad\.safetensors: tensor "w" has shape \[2, 2\] \(4 values\) but 3 values were given/,
    );
    assert.ok(!fs.existsSync(p));
  });

  it("reports corrupt headers and truncated data", async () => {
    const src = fs.readFileSync(fix("python.safetensors"));
    const cut = path.join(tmp, "cut.safetensors");
    fs.writeFileSync(cut, src.subarray(0, src.length - 4));
    await assert.rejects(readSafetensors(cut), /cut\.safetensors: safetensors tensor "[^"]+": truncated: data_offsets end at byte \d+ but the file has \d+ bytes/);
    const bad = Buffer.from(src);
    const n = Number(bad.readBigUInt64LE(0));
    bad.write("[", 8 + n - 1); // break the JSON
    const badp = path.join(tmp, "badjson.safetensors");
    fs.writeFileSync(badp, bad);
    await assert.rejects(readSafetensors(badp), /badjson\.safetensors: corrupt safetensors header \(not JSON\)/);
  });
});

describe("checkpoint: torch zip writer", () => {
  const tensors = () => [
    { name: "conv.weight", shape: [2, 3, 1, 1], data: Float32Array.from({ length: 6 }, (_, i) => i * 0.25 - 1) },
    { name: "conv.bias", shape: [2], data: new Float32Array([0.5, -0.5]) },
    { name: "scalar", shape: [], data: new Float32Array([3]) },
    { name: "nothing", shape: [0, 4], data: new Float32Array(0) },
  ];

  async function roundTrip(p: string, forceZip64: boolean): Promise<void> {
    const order: string[] = [];
    await writeTorchZip(
      p,
      tensors().map((t) => ({
        ...t,
        data: async () => {
          order.push(`start ${t.name}`);
          await new Promise((r) => setTimeout(r, 1));
          order.push(`end ${t.name}`);
          return t.data;
        },
      })),
      { forceZip64 },
    );
    // Values are produced one at a time, in order.
    assert.deepEqual(order, tensors().flatMap((t) => [`start ${t.name}`, `end ${t.name}`]));
    const sd = await loadStateDict(p);
    assert.deepEqual([...sd.keys()], tensors().map((t) => t.name));
    for (const t of tensors()) {
      assert.deepEqual(sd.get(t.name)!.shape, t.shape);
      assertValues(await sd.get(t.name)!.readFloat32(), [...t.data], t.name);
    }
    const b = fs.readFileSync(p);
    assert.equal(b.includes(Buffer.from([0x50, 0x4b, 0x06, 0x06])), forceZip64, "zip64 end record");
  }

  it("writes a checkpoint that loadStateDict reads back", async () => {
    await roundTrip(path.join(tmp, "w.pt"), false);
  });

  it("writes zip64 records that loadStateDict reads back", async () => {
    await roundTrip(path.join(tmp, "w64.pt"), true);
  });

  it("aligns tensor data to 64 bytes", async () => {
    const p = path.join(tmp, "aligned.pt");
    await writeTorchZip(p, tensors(), { archiveName: "mymodel" });
    const h = await fs.promises.open(p, "r");
    try {
      const z = await readZipDirectory(h, p);
      assert.equal(torchZipPrefix(z), "mymodel/");
      for (const e of z.entries.values()) if (e.name.includes("/data/")) assert.equal((await entryDataOffset(h, z, e)) % 64, 0, e.name);
    } finally {
      await h.close();
    }
  });

  it("writes files that PyTorch's torch.load and Python's zipfile (CRC check) read", async function () {
    if (!pythonHasTorch()) {
      console.log(`      (skipped: ${PYTHON} with torch is not available)`);
      this.skip();
    }
    const files = [path.join(tmp, "py.pt"), path.join(tmp, "py64.pt")];
    await writeTorchZip(files[0], tensors());
    await writeTorchZip(files[1], tensors(), { forceZip64: true });
    const script = [
      "import json, sys, zipfile, torch",
      "out = []",
      "for f in sys.argv[1:]:",
      "    assert zipfile.ZipFile(f).testzip() is None",
      "    sd = torch.load(f)",
      "    out.append({k: [list(v.shape), str(v.dtype), v.reshape(-1).tolist()] for k, v in sd.items()})",
      "print(json.dumps(out))",
    ].join("\n");
    const r = spawnSync(PYTHON, ["-c", script, ...files], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as Record<string, [number[], string, number[]]>[];
    for (const got of out) {
      assert.deepEqual(Object.keys(got), tensors().map((t) => t.name));
      for (const t of tensors()) {
        assert.deepEqual(got[t.name][0], t.shape);
        assert.equal(got[t.name][1], "torch.float32");
        assertValues(Float32Array.from(got[t.name][2]), [...t.data], t.name);
      }
    }
  });
});
