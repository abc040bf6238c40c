import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { randomCropArr, randomCropArrWith, shortSideRange } from "../lib/data/augment";
import { cmykToRgb, decodeRgb, RgbImage } from "../lib/data/image";
import { centerCropArr, preprocessFiles, pyRound, toModelBatch, toModelInput } from "../lib/data/preprocess";
import { compareReferenceFolder, DEFAULT_TOLERANCE, diffStats, formatResult, readNpyUint8 } from "../lib/data/reference";
import { resize } from "../lib/data/resample";
import { makeRng } from "../lib/rng";
import { sharedOrSkip } from "./helpers/shared";
import { tempDir, removeTempDir } from "./helpers/tmp";

const FIX = path.join(__dirname, "fixtures", "datasets");
const ROOT = path.resolve(__dirname, "..");

function solid(w: number, h: number, rgb: [number, number, number]): RgbImage {
  const data = new Uint8Array(w * h * 3);
  for (let i = 0; i < w * h; i++) data.set(rgb, i * 3);
  return { width: w, height: h, channels: 3, data };
}

async function checkFolder(folder: string, expectedItems: number) {
  const report = await compareReferenceFolder(folder, { warn: () => undefined });
  for (const r of report.results) console.log(`      ${formatResult(r)}`);
  assert.equal(report.skipped.length, 0, `undecodable: ${JSON.stringify(report.skipped)}`);
  assert.equal(report.results.length, expectedItems);
  for (const r of report.results) {
    assert.ok(!r.error, `${r.image}: ${r.error}`);
    assert.ok(r.mean <= DEFAULT_TOLERANCE.mean && r.max <= DEFAULT_TOLERANCE.max, `${formatResult(r)} (tolerance ${JSON.stringify(DEFAULT_TOLERANCE)})`);
  }
  assert.ok(report.pass);
}

describe("preprocessing: PIL-compatible center_crop_arr", function () {
  it("matches the shared PIL references (photos, grey, RGBA, CMYK, upscale, boundary, odd size)", async function () {
    const folder = sharedOrSkip(this, "fixtures", "preprocess");
    await checkFolder(folder, 22);
  });

  it("matches PIL on committed edge cases (16-bit, LA, palette, EXIF not applied, progressive, 1-bit, two halvings)", async function () {
    await checkFolder(path.join(FIX, "preprocess"), 9);
  });

  it("does not apply EXIF orientation, as PIL's open does not", async function () {
    const img = await decodeRgb(path.join(FIX, "preprocess", "images", "exif6_100x60.jpg"));
    assert.deepEqual([img.width, img.height], [100, 60]);
  });

  it("converts CMYK without colour management (PIL's formula)", function () {
    const cmyk = new Uint8Array([128, 0, 255, 64, 255, 255, 255, 0, 10, 20, 30, 255, 0, 0, 0, 0]);
    // Values from PIL 9.4: Image.fromarray(c, "CMYK").convert("RGB").
    assert.deepEqual(Array.from(cmykToRgb(cmyk, 4, 1).data), [95, 191, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255]);
  });

  it("rounds like Python's round (ties to even)", function () {
    assert.deepEqual([0.5, 1.5, 2.5, 3.49, 3.51, 320.5, -1.5].map(pyRound), [0, 2, 2, 3, 4, 320, -2]);
  });

  it("keeps a constant image constant and has the right geometry", function () {
    const img = solid(1001, 257, [10, 200, 255]);
    const out = centerCropArr(img, 64);
    assert.deepEqual([out.width, out.height], [64, 64]);
    assert.ok(out.data.every((v, i) => v === [10, 200, 255][i % 3]));
    const up = resize(solid(3, 2, [7, 8, 9]), 10, 7, "bicubic");
    assert.ok(up.data.every((v, i) => v === [7, 8, 9][i % 3]));
  });

  it("converts to model input in [-1, 1], NHWC", function () {
    const img: RgbImage = { width: 1, height: 2, channels: 3, data: new Uint8Array([0, 255, 51, 102, 153, 204]) };
    const f = toModelInput(img);
    assert.deepEqual(Array.from(f).map((v) => +v.toFixed(6)), [-1, 1, -0.6, -0.2, 0.2, 0.6]);
    const b = toModelBatch([img, img]);
    assert.deepEqual(b.shape, [2, 2, 1, 3]);
    assert.equal(b.data[6], -1);
    assert.throws(() => toModelBatch([img, solid(2, 2, [0, 0, 0])]), /image 1 is 2x2, expected 1x2/);
  });

  it("skips corrupt or truncated files with a warning naming them, and goes on", async function () {
    const dir = path.join(FIX, "corrupt");
    const files = ["truncated.jpg", "ok.jpg", "not-an-image.jpg"].map((f) => path.join(dir, f));
    const warnings: string[] = [];
    const report = await preprocessFiles(files, 32, { warn: (m) => warnings.push(m) });
    assert.deepEqual(report.ok.map((o) => path.basename(o.file)), ["ok.jpg"]);
    assert.deepEqual(report.skipped.map((s) => path.basename(s.file)), ["truncated.jpg", "not-an-image.jpg"]);
    assert.equal(warnings.length, 2);
    assert.match(warnings[0], /truncated\.jpg/);
    assert.match(report.skipped[1].error, /not-an-image\.jpg/);
  });
});

describe("augmentation: random_crop_arr + flip", function () {
  it("matches PIL for given draws (short side, crop offsets, flip)", async function () {
    const cases = JSON.parse(fs.readFileSync(path.join(FIX, "augment", "cases.json"), "utf8"));
    assert.equal(cases.length, 4);
    for (const c of cases) {
      const img = await decodeRgb(path.join(FIX, c.image));
      const out = randomCropArrWith(img, c.size, { shortSide: c.shortSide, cropX: c.cropX, cropY: c.cropY, flip: c.flip });
      const exp = readNpyUint8(path.join(FIX, c.expected));
      assert.deepEqual(exp.shape, [c.size, c.size, 3]);
      const d = diffStats(out.data, exp.data);
      assert.equal(d.max, 0, `${c.expected}: mean ${d.mean} max ${d.max}`);
    }
  });

  it("draws the short side in [size, ceil(1.25 size)], crops inside, flips about half the time, reproducibly", function () {
    assert.deepEqual(shortSideRange(256), [256, 320]);
    assert.deepEqual(shortSideRange(64), [64, 80]);
    const img = solid(40, 30, [1, 2, 3]);
    const run = (seed: number) => {
      const rng = makeRng(seed);
      return Array.from({ length: 200 }, () => randomCropArr(img, 16, rng).draw);
    };
    const a = run(7);
    assert.deepEqual(a, run(7));
    assert.notDeepEqual(a, run(8));
    const sides = new Set(a.map((d) => d.shortSide));
    assert.deepEqual([Math.min(...sides), Math.max(...sides)], [16, 20]);
    assert.equal(sides.size, 5);
    for (const d of a) {
      const w = pyRound((40 * d.shortSide) / 30);
      assert.ok(d.cropY >= 0 && d.cropY <= d.shortSide - 16 && d.cropX >= 0 && d.cropX <= w - 16, JSON.stringify(d));
    }
    const flips = a.filter((d) => d.flip).length;
    assert.ok(flips > 70 && flips < 130, `${flips} flips of 200`);
    const noFlip = randomCropArr(img, 16, makeRng(1), { randomFlip: false });
    assert.equal(noFlip.draw.flip, false);
  });
});

describe("data-scripts/check-preprocess.ts", function () {
  const tsx = path.join(ROOT, "node_modules", ".bin", "tsx");
  const script = path.join(ROOT, "data-scripts", "check-preprocess.ts");
  let tmp = "";
  before(function () {
    // A folder in the reference layout: one good item, one wrong expected array, one truncated image.
    tmp = tempDir("check-preprocess");
    const src = path.join(FIX, "preprocess");
    fs.mkdirSync(path.join(tmp, "images"));
    fs.mkdirSync(path.join(tmp, "expected"));
    fs.copyFileSync(path.join(src, "images", "tiny_7x5.png"), path.join(tmp, "images", "tiny_7x5.png"));
    fs.copyFileSync(path.join(src, "expected", "tiny_7x5_32.npy"), path.join(tmp, "expected", "tiny_7x5_32.npy"));
    const bad = fs.readFileSync(path.join(src, "expected", "la_90x70_32.npy"));
    const last = bad[bad.length - 1];
    bad[bad.length - 1] = last < 128 ? last + 100 : last - 100;
    fs.writeFileSync(path.join(tmp, "expected", "bad_32.npy"), bad);
    fs.copyFileSync(path.join(src, "images", "la_90x70.png"), path.join(tmp, "images", "la_90x70.png"));
    fs.copyFileSync(path.join(FIX, "corrupt", "truncated.jpg"), path.join(tmp, "images", "truncated.jpg"));
    const items = [
      { image: "images/tiny_7x5.png", target: 32, expected: "expected/tiny_7x5_32.npy" },
      { image: "images/la_90x70.png", target: 32, expected: "expected/bad_32.npy" },
      { image: "images/truncated.jpg", target: 32, expected: "expected/none.npy" },
    ];
    fs.writeFileSync(path.join(tmp, "manifest.json"), JSON.stringify({ items }));
  });
  after(() => removeTempDir(tmp));

  it("prints one line per image, FAILs past the tolerance, reports skipped files, exits non-zero", function () {
    const r = spawnSync(tsx, [script, tmp], { encoding: "utf8" });
    const out = r.stdout;
    assert.match(out, /^PASS images\/tiny_7x5\.png @32 mean 0\.0000 max 0$/m);
    // One byte off by 100: max 100 fails, mean 100 / (32*32*3) = 0.0326 alone would pass.
    assert.match(out, /^FAIL images\/la_90x70\.png @32 mean 0\.0326 max 100$/m);
    assert.match(out, /^SKIP .*truncated\.jpg/m);
    assert.match(out, /1 passed, 1 failed, 1 skipped/);
    assert.equal(r.status, 1);
  });

  it("passes with a looser tolerance and --allow-skipped; --help; bad usage exits 2", function () {
    const ok = spawnSync(tsx, [script, tmp, "--tol-mean", "0.1", "--tol-max", "100", "--allow-skipped"], { encoding: "utf8" });
    assert.match(ok.stdout, /2 passed, 0 failed, 1 skipped/);
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    const help = spawnSync(tsx, [script, "--help"], { encoding: "utf8" });
    assert.equal(help.status, 0);
    assert.match(help.stdout, /--tol-mean/);
    const bad = spawnSync(tsx, [script, tmp, "--tol-mean", "abc"], { encoding: "utf8" });
    assert.equal(bad.status, 2);
    const missing = spawnSync(tsx, [script, path.join(tmp, "nope")], { encoding: "utf8" });
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /manifest\.json not found/);
  });
});
