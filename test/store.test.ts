import { strict as assert } from "assert";
import { spawn, spawnSync, ChildProcess } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { decodeHalf, encodeHalf, fromHalfBits, toHalfBits } from "../lib/features/store/float16";
import { FeatureSetKey, canonicalKey, featureSetDirName, featureSetId, imageListId } from "../lib/features/store/key";
import { FeatureSet } from "../lib/features/store/store";
import { parseShard, shardParts, storeStatus } from "../lib/features/store/shard";
import { extractToStore } from "../lib/features/store/extract";
import { FeatureExtractor } from "../lib/features/store/extractor";
import { memorySource } from "../lib/features/store/images";
import { checkpointId } from "../lib/model/model-source";
import { FeatureBatch } from "../lib/features/extract";
import { Rng } from "../lib/rng";
import { tempDir, removeTempDir } from "./helpers/tmp";

const ROOT = path.join(__dirname, "..");
const F16 = JSON.parse(fs.readFileSync(path.join(__dirname, "fixtures", "float16", "values.json"), "utf8"));

const KEY: FeatureSetKey = {
  model: "ckpt:0123456789abcdef01234567", schedule: "1000:abcdefabcdef", block: 9, module: "input_blocks.8", t: 100, pool: "adaptive4x4",
  noise: "seeded:0", preprocessing: "fmnist-pad32-c1", dataset: "fashion-mnist", split: "train", images: "n10:0000000000000000", dtype: "float32",
};

function randomRows(n: number, dim: number, seed: number): Float32Array {
  return new Rng(seed).fillNormal(new Float32Array(n * dim));
}

/** Fill every part of a set from a matrix. */
function fill(set: FeatureSet, m: Float32Array): void {
  for (let p = 0; p < set.parts; p++) {
    const [a, b] = set.partRange(p);
    set.writePart(p, m.slice(a * set.dim, b * set.dim));
  }
}

/** A model stand-in: row values depend only on (id, block, t), and every call is counted. */
class FakeExtractor implements FeatureExtractor {
  readonly modelId = "fake:1";
  calls: string[][] = [];
  engine() {
    return { name: "fake", version: "1" };
  }
  layout(req: { blocks: (number | string)[] }) {
    return req.blocks.map((b) => ({ block: `block.${b}`, number: Number(b), dim: 3, rowShape: [3, 1, 1] }));
  }
  async extract(images: { shape: number[] }, ids: string[], req: { blocks: (number | string)[]; timesteps: number[] }): Promise<FeatureBatch> {
    this.calls.push(ids);
    const matrices = [];
    for (const b of req.blocks) {
      for (const t of req.timesteps) {
        const data = new Float32Array(ids.length * 3);
        ids.forEach((id, i) => data.set([Number(id.slice(3)), Number(b), t], i * 3));
        matrices.push({ block: `block.${b}`, number: Number(b), t, n: ids.length, dim: 3, data, mapShape: [1, 1, 3] as [number, number, number], rowShape: [3, 1, 1] as [number, number, number] });
      }
    }
    return { n: ids.length, ids, matrices };
  }
  async close() {}
}

function fakeImages(n: number) {
  return memorySource({
    dataset: "fake", split: "train", preprocessing: "none",
    images: { data: new Float32Array(n * 4), shape: [n, 2, 2, 1] },
    ids: Array.from({ length: n }, (_, i) => `img${i}`),
    labels: Int32Array.from({ length: n }, (_, i) => i % 3),
  });
}

describe("feature store", function () {
  describe("float16", () => {
    it("encodes every value as numpy's astype(float16) does (round to nearest even, subnormals, overflow)", () => {
      const x = new Float32Array(new Uint32Array(F16.float32_bits).buffer);
      const bits = encodeHalf(x);
      assert.equal(x.length, F16.float16_bits.length);
      for (let i = 0; i < x.length; i++) assert.equal(bits[i], F16.float16_bits[i], `value ${x[i]} (#${i})`);
      const back = new Uint32Array(decodeHalf(bits).buffer);
      for (let i = 0; i < x.length; i++) assert.equal(back[i], F16.back_to_float32_bits[i] >>> 0, `decode of ${bits[i].toString(16)}`);
      assert.equal(toHalfBits(NaN), F16.nan_float16_bits);
      assert.ok(Number.isNaN(fromHalfBits(0x7e00)));
      // every one of the 65536 patterns survives decode -> encode (NaNs stay NaN)
      for (let h = 0; h < 65536; h++) {
        const v = fromHalfBits(h);
        if (Number.isNaN(v)) assert.ok(Number.isNaN(fromHalfBits(toHalfBits(v))));
        else assert.equal(toHalfBits(v), h, `pattern ${h.toString(16)}`);
      }
    });
  });

  describe("keys", () => {
    it("every field changes the id and the folder; property order does not", () => {
      const base = featureSetId(KEY);
      const changed: Partial<Record<keyof FeatureSetKey, string | number>> = {
        model: "ckpt:ffff", schedule: "1000:000000000000", block: 10, module: "input_blocks.9", t: 101, pool: "adaptive2x2",
        noise: "seeded:1", preprocessing: "fmnist-28", dataset: "cifar10", split: "test", images: "n10:1111111111111111", dtype: "float16",
      };
      const ids = new Set([base]);
      for (const [k, v] of Object.entries(changed)) {
        const other = { ...KEY, [k]: v } as FeatureSetKey;
        assert.notEqual(featureSetId(other), base, k);
        assert.notEqual(featureSetDirName(other), featureSetDirName(KEY), k);
        ids.add(featureSetId(other));
      }
      assert.equal(ids.size, 13);
      const reordered = Object.fromEntries(Object.entries(KEY).reverse()) as unknown as FeatureSetKey;
      assert.equal(canonicalKey(reordered), canonicalKey(KEY));
      assert.throws(() => featureSetId({ ...KEY, t: -1 }), /field "t" must be a non-negative integer/);
      assert.throws(() => featureSetId({ ...KEY, noise: "fresh" }), /"fresh" noise .* cannot be stored/);
      assert.throws(() => featureSetId({ ...KEY, extra: 1 } as FeatureSetKey), /unknown field "extra"/);
    });

    it("a checkpoint changed in the middle of the file is another model id, hence another set", () => {
      const dir = tempDir("store");
      try {
        const file = path.join(dir, "w.safetensors");
        const bytes = new Uint8Array(3 << 20).map((_, i) => (i * 7) & 0xff);
        fs.writeFileSync(file, bytes);
        const before = checkpointId(file);
        bytes[bytes.length >> 1] ^= 1; // one bit, far from the first and last MiB
        fs.writeFileSync(file, bytes);
        fs.utimesSync(file, new Date(), new Date(Date.now() + 5000));
        const after = checkpointId(file);
        assert.notEqual(after, before);
        assert.notEqual(featureSetId({ ...KEY, model: after }), featureSetId({ ...KEY, model: before }));
      } finally {
        removeTempDir(dir);
      }
    });
  });

  describe("sets on disk", () => {
    let dir: string;
    beforeEach(() => (dir = tempDir("store")));
    afterEach(() => removeTempDir(dir));
    const ids = Array.from({ length: 23 }, (_, i) => `im${i}`);

    for (const dtype of ["float32", "float16"] as const) {
      it(`${dtype}: round trip; readRows and batches equal the one-shot matrix`, () => {
        const m = randomRows(23, 5, 1);
        const set = FeatureSet.create(dir, { ...KEY, dtype }, { dim: 5, ids, labels: Int32Array.from(ids, (_, i) => i % 4), partRows: 4 });
        assert.equal(set.parts, 6);
        assert.deepEqual(set.missing(), [0, 1, 2, 3, 4, 5]);
        fill(set, m);
        const expect = dtype === "float32" ? m : decodeHalf(encodeHalf(m));
        const again = FeatureSet.open(set.dir);
        assert.ok(again.complete());
        assert.deepEqual(Array.from(again.matrix()), Array.from(expect));
        const fileBytes = fs.readdirSync(path.join(set.dir, "parts")).reduce((s, f) => s + fs.statSync(path.join(set.dir, "parts", f)).size, 0);
        assert.equal(fileBytes, 23 * 5 * (dtype === "float32" ? 4 : 2));
        const pick = [22, 0, 5, 5, 13, 4, 3];
        const rows = again.readRows(pick);
        pick.forEach((r, k) => assert.deepEqual(Array.from(rows.subarray(k * 5, k * 5 + 5)), Array.from(expect.subarray(r * 5, r * 5 + 5))));
        const order = Array.from({ length: 23 }, (_, i) => (i * 7) % 23);
        const seen: number[] = [];
        for (const b of again.batches(6, order)) {
          assert.ok(b.indices.length <= 6);
          b.indices.forEach((r, k) => {
            seen.push(r);
            assert.deepEqual(Array.from(b.data.subarray(k * 5, k * 5 + 5)), Array.from(expect.subarray(r * 5, r * 5 + 5)));
            assert.equal(b.labels![k], r % 4);
          });
        }
        assert.deepEqual(seen, order);
      });
    }

    it("the image list is part of the key: 10 and 12 images of one split are two sets, in one store", async () => {
      const root = tempDir("store-images");
      try {
        const job = (n: number) => ({ root, extractor: new FakeExtractor(), images: fakeImages(n), blocks: [3], timesteps: [5], pool: { kind: "global" as const }, noise: { policy: "seeded" as const, seed: 0 }, progress: false as const });
        const a = (await extractToStore(job(10))).sets[0];
        const b = (await extractToStore(job(12))).sets[0];
        assert.notEqual(a.dir, b.dir);
        assert.equal(a.rows, 10);
        assert.equal(b.rows, 12);
        assert.equal((await extractToStore(job(10))).computed, 0); // the 10-image set is still there, whole
        assert.equal(imageListId(["img0", "img1"]), imageListId(["img0", "img1"]));
        assert.notEqual(imageListId(["img0", "img1"]), imageListId(["img1", "img0"]));
      } finally {
        removeTempDir(root);
      }
    });

    it("a damaged or truncated part counts as missing, is never read, and extraction recomputes only it", async () => {
      const fake = new FakeExtractor();
      const job = { root: dir, extractor: fake, images: fakeImages(10), blocks: [3, 7], timesteps: [5], pool: { kind: "global" as const }, noise: { policy: "seeded" as const, seed: 0 }, partRows: 3, progress: false as const };
      const first = await extractToStore(job);
      assert.equal(first.computed, 4);
      assert.equal(fake.calls.length, 4);
      const [a, b] = first.sets;
      const ref = a.matrix();
      assert.deepEqual(Array.from(ref.subarray(3 * 7, 3 * 8)), [7, 3, 5]);
      const partFile = (s: FeatureSet, p: number) => path.join(s.dir, "parts", fs.readdirSync(path.join(s.dir, "parts")).find((f) => f.startsWith(String(p).padStart(6, "0")))!);
      // flip one byte of part 1 of set a (length intact: only the checksum sees it)
      const f1 = partFile(a, 1);
      const bytes = fs.readFileSync(f1);
      bytes[5] ^= 0x40;
      fs.writeFileSync(f1, bytes);
      // cut part 2 of set b short
      fs.truncateSync(partFile(b, 2), 10);
      const a2 = FeatureSet.open(a.dir);
      assert.equal(a2.has(1, { verify: false }), true);
      assert.equal(a2.has(1), false);
      assert.throws(() => a2.readRows([4]), /part 1 \(rows 3-6\) is missing or damaged; run extract/);
      assert.deepEqual(FeatureSet.open(b.dir).missing({ verify: false }), [2]);
      assert.deepEqual(storeStatus([a2, FeatureSet.open(b.dir)], { verify: true, shards: 2 }).map((s) => s.missingByShard), [[[], [1]], [[2], []]]);
      fake.calls = [];
      const second = await extractToStore(job);
      assert.equal(second.computed, 2);
      assert.equal(second.skipped, 2);
      assert.deepEqual(fake.calls, [["img3", "img4", "img5"], ["img6", "img7", "img8"]]);
      assert.deepEqual(Array.from(FeatureSet.open(a.dir).matrix()), Array.from(ref));
      assert.ok(FeatureSet.open(b.dir).complete());
      assert.equal(fs.readdirSync(path.join(a.dir, "parts")).length, 4, "the damaged file is replaced, not kept beside");
      // a complete store calls the model no more
      fake.calls = [];
      assert.equal((await extractToStore(job)).computed, 0);
      assert.equal(fake.calls.length, 0);
    });

    it("refuses a folder holding another layout, naming the difference", () => {
      FeatureSet.create(dir, KEY, { dim: 4, ids: ["a", "b"] });
      assert.throws(() => FeatureSet.create(dir, KEY, { dim: 4, ids: ["a", "c"] }), /exists with another layout \(image id of row 1: "b" vs "c"\)/);
      assert.throws(() => FeatureSet.create(dir, KEY, { dim: 5, ids: ["a", "b"] }), /row length 4 vs 5/);
      assert.throws(() => FeatureSet.create(dir, KEY, { dim: 4, ids: ["a", "a"] }), /image ids are not unique/);
    });

    it("shards split the parts by index, disjoint and complete", () => {
      assert.deepEqual(parseShard("1/3"), { index: 1, count: 3 });
      assert.throws(() => parseShard("3/3"), /need 0 <= i < N/);
      assert.throws(() => parseShard("1-3"), /expected i\/N/);
      const all = [0, 1, 2].flatMap((i) => shardParts(10, { index: i, count: 3 })).sort((x, y) => x - y);
      assert.deepEqual(all, shardParts(10));
      assert.deepEqual(shardParts(10, { index: 1, count: 3 }), [1, 4, 7]);
    });
  });

  describe("extract CLI, sharded", function () {
    this.timeout(240_000);
    let dir: string;
    before(function () {
      try {
        require.resolve("fashion-mnist/package.json");
      } catch {
        this.skip();
      }
      dir = tempDir("store");
      fs.writeFileSync(path.join(dir, "tiny.json"), JSON.stringify({
        image_size: 32, in_channels: 1, num_channels: 32, num_res_blocks: 1, channel_mult: "1,2", attention_resolutions: "16",
        num_head_channels: 32, resblock_updown: true, use_scale_shift_norm: true, learn_sigma: false,
      }));
    });
    after(() => dir && removeTempDir(dir));

    const args = (store: string, extra: string[] = []) => [
      "--require", "tsx/cjs", path.join(ROOT, "data-scripts", "extract.ts"),
      "--model", path.join(dir, "tiny.json"), "--seed", "1", "--dataset", "fashion-mnist", "--limit", "30",
      "--blocks", "2,5", "--t", "10,300", "--pool", "2", "--part-rows", "2", "--workers", "0", "--store", store, ...extra,
    ];
    const run = (store: string, extra: string[] = []): ChildProcess =>
      spawn(process.execPath, args(store, extra), { cwd: ROOT, env: { ...process.env, DIFFPROBE_PROGRESS: "silent" }, stdio: ["ignore", "pipe", "pipe"] });
    const done = (p: ChildProcess): Promise<{ code: number | null; signal: string | null; out: string }> =>
      new Promise((resolve) => {
        let out = "";
        p.stdout!.on("data", (d) => (out += d));
        p.stderr!.on("data", (d) => (out += d));
        p.on("close", (code, signal) => resolve({ code, signal, out }));
      });

    /** Every set folder: manifest without its timestamp, and part files by name with their bytes. */
    function snapshot(store: string) {
      const out: Record<string, unknown> = {};
      for (const set of fs.readdirSync(store).sort()) {
        const { created, ...manifest } = JSON.parse(fs.readFileSync(path.join(store, set, "manifest.json"), "utf8"));
        assert.ok(created);
        const parts = fs.readdirSync(path.join(store, set, "parts")).sort();
        out[set] = { manifest, parts: parts.map((f) => [f, fs.readFileSync(path.join(store, set, "parts", f)).toString("base64")]) };
      }
      return out;
    }

    it("three shard processes, one SIGKILLed mid-way and rerun, give the store of a one-process run", async () => {
      const one = path.join(dir, "one");
      const sharded = path.join(dir, "sharded");
      const single = await done(run(one));
      assert.equal(single.code, 0, single.out);
      assert.match(single.out, /4 set\(s\), 15 part\(s\) computed, 0 already stored/);

      const procs = [0, 1, 2].map((i) => run(sharded, ["--shard", `${i}/3`]));
      const results = procs.map(done);
      // kill shard 0 once it has begun writing its second part (3; parts 0, 3, 6, 9, 12 are its own): part 0 is then whole in every set
      const deadline = Date.now() + 120_000;
      const shard0Written = () =>
        fs.existsSync(sharded) && fs.readdirSync(sharded).some((s) => fs.existsSync(path.join(sharded, s, "parts")) && fs.readdirSync(path.join(sharded, s, "parts")).some((f) => /^000003-/.test(f)));
      while (!shard0Written() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      procs[0].kill("SIGKILL");
      const [r0, r1, r2] = await Promise.all(results);
      assert.equal(r0.signal, "SIGKILL");
      assert.equal(r1.code, 0, r1.out);
      assert.equal(r2.code, 0, r2.out);
      // a temporary file of a dead writer (as a kill between write and rename leaves) must not survive either
      const someSet = fs.readdirSync(sharded)[0];
      fs.writeFileSync(path.join(sharded, someSet, "parts", ".tmp-999999999-000003-deadbeefdeadbeef.f32-abc"), Buffer.alloc(7));

      const status = spawnSync(process.execPath, args(sharded, ["--status", "--shard", "0/3"]), { cwd: ROOT, encoding: "utf8", env: { ...process.env, DIFFPROBE_PROGRESS: "silent" } });
      assert.equal(status.status, 3, status.stdout + status.stderr);
      assert.match(status.stdout, /shard 0\/3: \d missing/);
      assert.doesNotMatch(status.stdout, /shard [12]\/3/);

      const rerun = await done(run(sharded, ["--shard", "0/3"]));
      assert.equal(rerun.code, 0, rerun.out);
      const m = /(\d+) part\(s\) computed, (\d+) already stored/.exec(rerun.out)!;
      assert.ok(Number(m[1]) >= 1 && Number(m[1]) + Number(m[2]) === 5 && Number(m[2]) >= 1, rerun.out);
      assert.deepEqual(snapshot(sharded), snapshot(one));
    });
  });
});
