import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import {
  allPairs, checkCkaFolder, CkaFixtureError, crossPairs, FeatureRows, hsicBiased, hsicUnbiased, hsicUnbiasedFull, linearCka, LinearCka,
  linearCkaBytes, linearGram, minibatchCka, MinibatchCka, pairValue, readCkaManifest,
} from "../lib/metrics/cka/index";
import {
  bestMatches, bestMatchLines, ckaHeatmapSpec, ckaPanelsSpec, ckaTable, CkaTable, PAPER_CKA, poolChannelMajorRows, sameBlockSpec, sameLabelDiagonal,
  tableCells, zipStreams,
} from "../lib/metrics/cka/index";
import { blockDepth, PAPER_CKA_BLOCKS, paperCkaBands, relativeDepth } from "../lib/metrics/cka/index";
import { poolNHWC } from "../lib/features/pooling";
import * as vl from "vega-lite";
import { sharedOrSkip } from "./helpers/shared";
import { tempDir, removeTempDir } from "./helpers/tmp";

const ROOT = path.resolve(__dirname, "..");
const UNEVEN = path.join(ROOT, "test", "fixtures", "cka-uneven");

// ---------------------------------------------------------------------------------------------
// Independent float64 references: explicit n x n matrices, written from the formulas.

/** Deterministic normals (mulberry32 + Box-Muller), float64. */
function normals(seed: number, count: number): Float64Array {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  };
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) out[i] = Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
  return out;
}

function randomRows(seed: number, n: number, dim: number, scale = 1, shift = 0): FeatureRows {
  const data = normals(seed, n * dim).map((v) => v * scale + shift);
  return { n, dim, data };
}

/** Rows r0 .. r1 - 1 of a matrix. */
function slice(m: FeatureRows, r0: number, r1: number): FeatureRows {
  return { n: r1 - r0, dim: m.dim, data: m.data.slice(r0 * m.dim, r1 * m.dim) };
}

type Mat = number[][];
const matmul = (a: Mat, b: Mat): Mat => a.map((row) => b[0].map((_, j) => row.reduce((s, v, k) => s + v * b[k][j], 0)));
const transpose = (a: Mat): Mat => a[0].map((_, j) => a.map((r) => r[j]));
const toMat = (m: FeatureRows): Mat => Array.from({ length: m.n }, (_, i) => Array.from(m.data.subarray(i * m.dim, (i + 1) * m.dim)));
const trace = (a: Mat) => a.reduce((s, r, i) => s + r[i], 0);

/** tr(K H L H) / (n-1)^2 with H = I - 11'/n built explicitly. */
function bruteHsicBiased(k: Mat, l: Mat): number {
  const n = k.length;
  const h = k.map((_, i) => k.map((__, j) => (i === j ? 1 : 0) - 1 / n));
  return trace(matmul(matmul(matmul(k, h), l), h)) / ((n - 1) * (n - 1));
}

/** Song et al. (2012), term by term with explicit matrix products. */
function bruteHsicUnbiased(k0: Mat, l0: Mat): number {
  const n = k0.length;
  const k = k0.map((r, i) => r.map((v, j) => (i === j ? 0 : v)));
  const l = l0.map((r, i) => r.map((v, j) => (i === j ? 0 : v)));
  const sum = (a: Mat) => a.reduce((s, r) => s + r.reduce((t, v) => t + v, 0), 0);
  const kl = matmul(k, l);
  return (trace(kl) + (sum(k) * sum(l)) / ((n - 1) * (n - 2)) - (2 / (n - 2)) * sum(kl)) / (n * (n - 3));
}

const gramOf = (m: FeatureRows): Mat => {
  const x = toMat(m);
  return matmul(x, transpose(x));
};

function bruteLinearCka(x: FeatureRows, y: FeatureRows): number {
  const k = gramOf(x);
  const l = gramOf(y);
  return bruteHsicBiased(k, l) / Math.sqrt(bruteHsicBiased(k, k) * bruteHsicBiased(l, l));
}

function bruteMinibatchCka(x: FeatureRows, y: FeatureRows, b: number): number {
  let kl = 0;
  let kk = 0;
  let ll = 0;
  let batches = 0;
  for (let s = 0; s < x.n; s += b) {
    const e = Math.min(x.n, s + b);
    const k = gramOf(slice(x, s, e));
    const l = gramOf(slice(y, s, e));
    kl += bruteHsicUnbiased(k, l);
    kk += bruteHsicUnbiased(k, k);
    ll += bruteHsicUnbiased(l, l);
    batches++;
  }
  return kl / batches / Math.sqrt((kk / batches) * (ll / batches));
}

/** A random orthogonal d x d matrix (Gram-Schmidt of normals). */
function orthogonal(seed: number, d: number): Mat {
  const v = toMat({ n: d, dim: d, data: normals(seed, d * d) });
  const q: Mat = [];
  for (const row of v) {
    const w = [...row];
    for (const u of q) {
      const dot = w.reduce((s, x, i) => s + x * u[i], 0);
      for (let i = 0; i < d; i++) w[i] -= dot * u[i];
    }
    const norm = Math.sqrt(w.reduce((s, x) => s + x * x, 0));
    q.push(w.map((x) => x / norm));
  }
  return q;
}

const close = (a: number, b: number, tol: number, what: string) => assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b} (tol ${tol})`);

// ---------------------------------------------------------------------------------------------

describe("CKA (lib/metrics/cka)", () => {
  describe("numpy reference values (make_cka_fixtures.py)", () => {
    it("../shared/fixtures/cka: linear CKA, unbiased HSIC and minibatch CKA (b = 16, 32, 48) of every case within 1e-6", async function () {
      const folder = sharedOrSkip(this, "fixtures", "cka");
      const report = await checkCkaFolder(folder, { tolerance: 1e-6 });
      const cases = readCkaManifest(folder);
      assert.equal(report.cases, cases.length);
      assert.equal(report.lines.length, cases.length * 5, "5 values per case");
      const bad = report.lines.filter((l) => !l.pass);
      assert.deepEqual(bad, []);
      // The fixture's point: biased CKA sees structure in independent features, the unbiased one ~0.
      const indep = report.lines.filter((l) => l.case === "independent");
      assert.ok(indep.find((l) => l.quantity === "linear_cka")!.ours > 0.15);
      for (const l of indep.filter((l) => l.quantity.startsWith("minibatch"))) assert.ok(Math.abs(l.ours) < 0.02, `${l.quantity} = ${l.ours}`);
    });

    it("test/fixtures/cka-uneven: batch sizes that do not divide n (last batches of 10, 15, 26 rows) within 1e-6", async () => {
      const report = await checkCkaFolder(UNEVEN);
      assert.equal(report.lines.length, 2 * 5);
      assert.deepEqual(report.lines.filter((l) => !l.pass), []);
    });

    it("a reference value moved by 1e-5 fails its line (the check can fail)", async () => {
      const tmp = tempDir("cka");
      try {
        for (const f of fs.readdirSync(UNEVEN)) fs.copyFileSync(path.join(UNEVEN, f), path.join(tmp, f));
        const m = JSON.parse(fs.readFileSync(path.join(tmp, "manifest.json"), "utf8"));
        m.cases[1].minibatch_cka["25"] += 1e-5;
        fs.writeFileSync(path.join(tmp, "manifest.json"), JSON.stringify(m));
        const report = await checkCkaFolder(tmp);
        assert.deepEqual(report.lines.filter((l) => !l.pass).map((l) => `${l.case} ${l.quantity}`), ["uneven-independent minibatch_cka[25]"]);
      } finally {
        removeTempDir(tmp);
      }
    });
  });

  describe("against a direct float64 computation with n x n matrices", () => {
    const x = randomRows(1, 37, 9, 2, 1.5);
    const y = { ...randomRows(2, 37, 14), data: randomRows(2, 37, 14).data.map((v, i) => v + 0.7 * x.data[Math.floor(i / 14) * 9 + (i % 9)] ** 2) };

    it("linear Gram, biased and unbiased HSIC on Grams", () => {
      const k = linearGram(x);
      const l = linearGram(y);
      const kb = gramOf(x);
      for (let i = 0; i < 37; i++) for (let j = 0; j < 37; j++) close(k[i * 37 + j], kb[i][j], 1e-13, `K[${i},${j}]`);
      close(hsicBiased(k, l, 37), bruteHsicBiased(gramOf(x), gramOf(y)), 1e-11, "biased HSIC");
      close(hsicUnbiased(k, l, 37), bruteHsicUnbiased(gramOf(x), gramOf(y)), 1e-11, "unbiased HSIC");
      close(hsicUnbiasedFull(x, y), bruteHsicUnbiased(gramOf(x), gramOf(y)), 1e-11, "hsicUnbiasedFull");
    });

    it("linear CKA (streaming cross-products) equals the n x n Gram form", () => {
      const v = linearCka(x, y);
      const want = bruteLinearCka(x, y);
      assert.ok(want > 0.1 && want < 0.99, `a non-trivial case: ${want}`);
      close(v.cka, want, 1e-12, "linear CKA");
      close(v.hsicXY, bruteHsicBiased(gramOf(x), gramOf(y)), 1e-11, "biased HSIC(K, L)");
    });

    it("minibatch CKA equals the mean over batches of the unbiased HSIC (b = 10: last batch of 7; b = 37: one batch)", () => {
      for (const b of [8, 10, 16, 37]) close(minibatchCka(x, y, b).cka, bruteMinibatchCka(x, y, b), 1e-12, `minibatch CKA b=${b}`);
    });
  });

  describe("invariances and streaming", () => {
    const x = randomRows(3, 60, 8, 1, 0);
    // y = 4.5 x Q + 2 (orthogonal Q, isotropic scale, shift)
    const q = orthogonal(4, 8);
    const xq = matmul(toMat(x), q);
    const y: FeatureRows = { n: 60, dim: 8, data: Float64Array.from(xq.flat().map((v) => 4.5 * v + 2)) };
    const z = randomRows(5, 60, 5, 3, -1);

    it("an orthogonal transform with isotropic scaling (and a shift) gives CKA 1; an unrelated matrix does not", () => {
      close(linearCka(x, y).cka, 1, 1e-12, "linear");
      for (const b of [12, 25]) close(minibatchCka(x, y, b).cka, 1, 1e-12, `minibatch b=${b}`);
      assert.ok(linearCka(x, z).cka < 0.5);
      // Anisotropic scaling breaks it.
      const w: FeatureRows = { n: 60, dim: 8, data: x.data.map((v, i) => v * (i % 8 === 0 ? 10 : 1)) };
      assert.ok(linearCka(x, w).cka < 0.9);
    });

    it("is symmetric: CKA(x, z) = CKA(z, x), both estimators", () => {
      close(linearCka(x, z).cka, linearCka(z, x).cka, 1e-14, "linear");
      close(minibatchCka(x, z, 16).cka, minibatchCka(z, x, 16).cka, 1e-14, "minibatch");
    });

    it("rows streamed in uneven chunks give the one-shot value (minibatch: regrouped into batches of b; linear: merged co-moments)", () => {
      const chunks = [1, 5, 13, 2, 9, 17, 4, 9]; // sums to 60; none aligned with b = 16
      assert.equal(chunks.reduce((a, b) => a + b, 0), 60);
      const layers = [{ name: "x", dim: 8 }, { name: "z", dim: 5 }];
      const mb = new MinibatchCka({ layers, pairs: [["x", "z"]], batchSize: 16 });
      const lin = new LinearCka({ layers, pairs: [["x", "z"]] });
      let r = 0;
      for (const c of chunks) {
        const batch = { x: slice(x, r, r + c), z: slice(z, r, r + c) };
        mb.add(batch);
        lin.add(batch);
        r += c;
      }
      const m = mb.result();
      assert.equal(m.batches, 4); // 16 + 16 + 16 + 12
      assert.equal(m.rows, 60);
      close(m.pairs[0].cka, minibatchCka(x, z, 16).cka, 1e-13, "minibatch streamed");
      close(m.pairs[0].cka, bruteMinibatchCka(x, z, 16), 1e-12, "minibatch streamed vs brute");
      close(lin.result().pairs[0].cka, linearCka(x, z).cka, 1e-13, "linear streamed");
      close(lin.result().pairs[0].cka, bruteLinearCka(x, z), 1e-12, "linear streamed vs brute");
    });

    it("float32 and float64 chunks mix (the row buffer widens)", () => {
      const mb = new MinibatchCka({ layers: [{ name: "x", dim: 8 }, { name: "z", dim: 5 }], batchSize: 16 });
      const x32 = Float32Array.from(x.data);
      const z32 = Float32Array.from(z.data);
      mb.add({ x: x32.subarray(0, 8 * 7), z: z32.subarray(0, 5 * 7) });
      mb.add({ x: Float64Array.from(x32.subarray(8 * 7)), z: Float64Array.from(z32.subarray(5 * 7)) });
      const want = minibatchCka({ n: 60, dim: 8, data: x32 }, { n: 60, dim: 5, data: z32 }, 16).cka;
      close(pairValue(mb.result(), "x", "z").cka, want, 1e-13, "mixed");
    });

    it("a last batch under 4 rows is dropped and reported; tail: 'drop' drops any last partial batch", () => {
      const layers = [{ name: "x", dim: 8 }, { name: "z", dim: 5 }];
      const first = (k: number) => ({ x: slice(x, 0, k), z: slice(z, 0, k) });
      const a = new MinibatchCka({ layers, batchSize: 19 });
      a.add(first(60)); // 19 + 19 + 19 + 3
      const ra = a.result();
      assert.equal(ra.batches, 3);
      assert.equal(ra.droppedRows, 3);
      close(pairValue(ra, "x", "z").cka, bruteMinibatchCka(slice(x, 0, 57), slice(z, 0, 57), 19), 1e-12, "3 full batches");
      const d = new MinibatchCka({ layers, batchSize: 16, tail: "drop" });
      d.add(first(60));
      assert.equal(d.result().droppedRows, 12);
      close(pairValue(d.result(), "z", "x").cka, bruteMinibatchCka(slice(x, 0, 48), slice(z, 0, 48), 16), 1e-12, "drop");
      // result() does not consume the buffered tail: adding more rows goes on from there.
      const c = new MinibatchCka({ layers, batchSize: 16 });
      c.add(first(30));
      c.result();
      c.add({ x: slice(x, 30, 60), z: slice(z, 30, 60) });
      close(pairValue(c.result(), "x", "z").cka, minibatchCka(x, z, 16).cka, 1e-13, "result() then add");
    });

    it("many pairs at once equal pair by pair; a layer with itself is 1", () => {
      const layers = [
        { name: "a", dim: 8, m: x },
        { name: "b", dim: 8, m: y },
        { name: "c", dim: 5, m: z },
        { name: "d", dim: 3, m: randomRows(6, 60, 3) },
      ];
      const batch = Object.fromEntries(layers.map((l) => [l.name, l.m.data as Float64Array]));
      const spec = layers.map((l) => ({ name: l.name, dim: l.dim }));
      const pairs = allPairs(layers.map((l) => l.name));
      assert.equal(pairs.length, 10);
      const mb = new MinibatchCka({ layers: spec, pairs, batchSize: 20 });
      const lin = new LinearCka({ layers: spec, pairs });
      mb.add(batch);
      lin.add(batch);
      for (const [p, q] of pairs) {
        const [lp, lq] = [layers.find((l) => l.name === p)!, layers.find((l) => l.name === q)!];
        close(pairValue(mb.result(), p, q).cka, minibatchCka(lp.m, lq.m, 20).cka, 1e-13, `minibatch ${p},${q}`);
        close(pairValue(lin.result(), p, q).cka, linearCka(lp.m, lq.m).cka, 1e-13, `linear ${p},${q}`);
        if (p === q) {
          close(pairValue(mb.result(), p, q).cka, 1, 1e-14, `minibatch ${p} with itself`);
          close(pairValue(lin.result(), p, q).cka, 1, 1e-14, `linear ${p} with itself`);
        }
      }
      const cross = crossPairs(["a", "b"], ["c", "d"]);
      assert.deepEqual(cross, [["a", "c"], ["a", "d"], ["b", "c"], ["b", "d"]]);
      const only = new MinibatchCka({ layers: spec, pairs: cross, batchSize: 20 });
      only.add(batch);
      assert.equal(only.result().pairs.length, 4);
      assert.throws(() => pairValue(only.result(), "a", "b"), /no CKA for \("a", "b"\)/);
    });
  });

  describe("bad input and memory", () => {
    const layers = [{ name: "gd:24", dim: 6 }, { name: "resnet:layer1", dim: 4 }];

    it("names the layer at fault: missing, wrong width, rows that differ, non-finite values", () => {
      const acc = new MinibatchCka({ layers, batchSize: 8 });
      assert.throws(() => acc.add({ "gd:24": new Float32Array(12) }), /no features for layer "resnet:layer1"/);
      assert.throws(() => acc.add({ "gd:24": new Float32Array(13), "resnet:layer1": new Float32Array(8) }), /layer "gd:24": 13 values are not whole rows of 6/);
      assert.throws(() => acc.add({ "gd:24": new Float32Array(12), "resnet:layer1": new Float32Array(12) }), /layer "resnet:layer1" has 3 rows but layer "gd:24" has 2/);
      assert.throws(() => acc.add({ "gd:24": { n: 2, dim: 4, data: new Float32Array(8) }, "resnet:layer1": new Float32Array(8) }), /rows have 4 values, the layer was declared with 6/);
      const nan = new Float32Array(12);
      nan[7] = NaN;
      assert.throws(() => acc.add({ "gd:24": nan, "resnet:layer1": new Float32Array(8) }), /layer "gd:24", row 1, column 1: value NaN is not finite/);
      assert.throws(() => new MinibatchCka({ layers, pairs: [["gd:24", "vit:3"]], batchSize: 8 }), /names layer "vit:3", which is not among the layers/);
      assert.throws(() => new MinibatchCka({ layers, batchSize: 3 }), /batchSize must be an integer >= 4/);
      assert.throws(() => new MinibatchCka({ layers: [...layers, { name: "gd:24", dim: 2 }], batchSize: 8 }), /"gd:24" appears twice/);
      assert.throws(() => new MinibatchCka({ layers, batchSize: 8 }).result(), /no batch to average/);
      assert.throws(() => linearCka({ n: 3, dim: 2, data: new Float64Array(6) }, { n: 4, dim: 2, data: new Float64Array(8) }), /x has 3 rows, y has 4/);
    });

    it("linear CKA states its memory and refuses past the budget, pointing at minibatch CKA", () => {
      const big = [{ name: "gd:24", dim: 4096 }, { name: "resnet:layer4", dim: 2048 }];
      // 8 x (4096 x 4098 + 2048 x 2050 + 4096 x 2048) bytes
      assert.equal(linearCkaBytes(big, [["gd:24", "resnet:layer4"]]), 8 * (4096 * 4098 + 2048 * 2050 + 4096 * 2048));
      assert.throws(
        () => new LinearCka({ layers: big, pairs: [["gd:24", "resnet:layer4"]], maxBytes: 100 * 2 ** 20 }),
        (e: Error) => /need 224 MiB/.test(e.message) && /budget of 100 MiB/.test(e.message) && /minibatch CKA \(MinibatchCka\)/.test(e.message) && /gd:24 \(4096\) x resnet:layer4 \(2048\): 64\.0 MiB/.test(e.message),
      );
    });

    it("fixture folders: a missing file or key is a CkaFixtureError naming it", async () => {
      const tmp = tempDir("cka");
      try {
        await assert.rejects(checkCkaFolder(tmp), (e: Error) => e instanceof CkaFixtureError && /manifest\.json: missing/.test(e.message));
        for (const f of fs.readdirSync(UNEVEN)) fs.copyFileSync(path.join(UNEVEN, f), path.join(tmp, f));
        fs.rmSync(path.join(tmp, "uneven-independent-y.npy"));
        await assert.rejects(checkCkaFolder(tmp), /uneven-independent-y\.npy: missing \(named by case "uneven-independent", key "y"/);
        const m = JSON.parse(fs.readFileSync(path.join(UNEVEN, "manifest.json"), "utf8"));
        delete m.cases[0].x;
        fs.writeFileSync(path.join(tmp, "manifest.json"), JSON.stringify(m));
        await assert.rejects(checkCkaFolder(tmp), /cases\[0\]: missing key "x"/);
        m.cases[0].x = "uneven-related-x.npy";
        m.cases[0].dx = 13;
        fs.writeFileSync(path.join(tmp, "manifest.json"), JSON.stringify(m));
        fs.copyFileSync(path.join(UNEVEN, "uneven-independent-y.npy"), path.join(tmp, "uneven-independent-y.npy"));
        await assert.rejects(checkCkaFolder(tmp), /uneven-related-x\.npy: 12 columns, but case "uneven-related" says "dx": 13/);
      } finally {
        removeTempDir(tmp);
      }
    });
  });

  describe("npm run check-cka", () => {
    const tsx = path.join(ROOT, "node_modules", ".bin", "tsx");
    const run = (...args: string[]) => spawnSync(tsx, [path.join(ROOT, "data-scripts", "check-cka.ts"), ...args], { encoding: "utf8" });

    it("prints one line per value and a summary; exits 0, 1 on a failed value, 2 when it cannot run", function () {
      this.timeout(60000);
      const ok = run(UNEVEN);
      assert.equal(ok.status, 0, ok.stderr);
      assert.equal(ok.stdout.split("\n").filter((l) => /^PASS /.test(l)).length, 10);
      assert.match(ok.stdout, /^PASS uneven-related\s+minibatch_cka\[25\]\s+ours\s+0\.7786096792/m);
      assert.match(ok.stdout, /check-cka: ALL PASS: 10 passed, 0 failed; worst error .* \(tolerance 1e-6\)/);
      const strict = run(UNEVEN, "--tol", "1e-13");
      assert.equal(strict.status, 1, strict.stdout);
      assert.match(strict.stdout, /^FAIL uneven-related\s+hsic_unbiased_full/m);
      const missing = run(path.join(UNEVEN, "nope"));
      assert.equal(missing.status, 2);
      assert.match(missing.stderr, /no such folder/);
      assert.equal(run().status, 2);
    });
  });

  describe("figure helpers", () => {
    const table: CkaTable = {
      title: "t = 25 vs t = 100", rowTitle: "block", colTitle: "block",
      rows: ["1", "2", "3"], cols: ["1", "2", "3", "4"],
      values: [[0.9, 0.2, 0.1, 0.95], [0.3, 0.7, NaN, 0.1], [NaN, NaN, NaN, NaN]],
    };

    it("best-matching column per row, its lines, and the same-label diagonal", () => {
      assert.deepEqual(bestMatches(table), [{ row: "1", col: "4", cka: 0.95, colIndex: 3 }, { row: "2", col: "2", cka: 0.7, colIndex: 1 }]);
      assert.deepEqual(bestMatchLines(table), ["block 1 -> block 4 (CKA 0.95)", "block 2 -> block 2 (CKA 0.70)"]);
      assert.deepEqual(sameLabelDiagonal(table).map((d) => d.row), ["1", "2", "3"]);
      assert.deepEqual(sameLabelDiagonal(table).slice(0, 2).map((d) => d.cka), [0.9, 0.7]);
      assert.equal(tableCells(table).length, 12);
    });

    it("ckaTable reads a result in rows x cols order", () => {
      const x = randomRows(7, 30, 4);
      const y = randomRows(8, 30, 6);
      const acc = new MinibatchCka({ layers: [{ name: "gd:1", dim: 4 }, { name: "net:a", dim: 6 }], pairs: crossPairs(["gd:1"], ["net:a", "gd:1"]), batchSize: 10 });
      acc.add({ "gd:1": x, "net:a": y });
      const t = ckaTable(acc.result(), { names: ["gd:1"], labels: ["1"], title: "GD block" }, { names: ["net:a", "gd:1"], labels: ["a", "gd1"], title: "layer" }, "demo");
      assert.deepEqual(t.cols, ["a", "gd1"]);
      close(t.values[0][0], minibatchCka(x, y, 10).cka, 1e-14, "cell");
      close(t.values[0][1], 1, 1e-14, "self");
    });

    it("heat-map specs compile with vega-lite: magma on [0, 1], the axes in table order, one ring per row's best", () => {
      const spec = ckaHeatmapSpec(table) as unknown as { layer: { mark: unknown; encoding: { color?: { scale: object }; x: { sort: string[] } } }[]; data: { values: { best: boolean }[] } };
      assert.deepEqual(spec.layer[0].encoding.color!.scale, { scheme: "magma", domain: [0, 1], clamp: true });
      assert.deepEqual(spec.layer[0].encoding.x.sort, ["1", "2", "3", "4"]);
      assert.equal(spec.data.values.filter((v) => v.best).length, 2);
      vl.compile(spec as never);
      const panels = ckaPanelsSpec([table, { ...table, title: "other" }], "panel a") as unknown as { hconcat: unknown[]; resolve: object };
      assert.equal(panels.hconcat.length, 2);
      assert.deepEqual(panels.resolve, { scale: { color: "shared" } });
      vl.compile(panels as never);
      vl.compile(sameBlockSpec([{ panel: "ours", series: "t = 10", block: 1, cka: 0.5 }, { panel: "paper", series: "t = 10", block: 0, cka: 0.9 }], "same block") as never);
      assert.throws(() => ckaPanelsSpec([], "x"), /no tables/);
    });

    describe("the paper's findings as bands at relative depth (panels c, d, s, g)", () => {
      const bands = paperCkaBands();
      const range = (i: number) => Array.from({ length: i }, (_, k) => k + 1);
      const within = (x: number) => bands.filter((b) => b.depthFrom <= x && x <= b.depthTo).map((b) => `${b.from}-${b.to}`);

      it("reads the block and CKA ranges of PAPER_CKA.findings and the panels each speaks of", () => {
        assert.equal(PAPER_CKA_BLOCKS, PAPER_CKA.sameBlockT90Vs.t10.length);
        assert.deepEqual(bands.map((b) => [b.from, b.to, b.lo, b.hi, b.panels.join("")]), [
          [0, 2, 0.78, 0.9, "cd"], [3, 9, 0.75, 0.89, "c"], [10, 16, 0.6, 0.84, "cd"], [17, 24, 0.57, 0.78, "cd"],
        ]);
        assert.deepEqual([bands[0].depthFrom, bands[0].depthTo], [-0.4 / 24, 2.4 / 24]);
        assert.deepEqual([bands[3].depthFrom, bands[3].depthTo], [16.6 / 24, 24.4 / 24]);
        assert.throws(() => paperCkaBands(["GD blocks 20-30 match x (0.1-0.2)"]), /blocks outside the figure's 0\.\.24/);
      });

      it("a model with the figure's 25 blocks lands each block in the band that names it", () => {
        const ours = Array.from({ length: 25 }, (_, i) => i);
        for (const i of ours) {
          const named = bands.filter((b) => b.from <= i && i <= b.to).map((b) => `${b.from}-${b.to}`);
          assert.deepEqual(within(blockDepth(i, ours)), named, `block ${i}`);
        }
      });

      it("the embedded U-Net (13 blocks) and ADM-256 (37): first, middle and last blocks fall in the first, middle and last bands", () => {
        for (const n of [13, 37]) {
          const ours = range(n); // block numbers 1..n, as blockTable numbers them
          assert.deepEqual(within(blockDepth(1, ours)), ["0-2"], `${n} blocks: first`);
          assert.deepEqual(within(blockDepth((n + 1) / 2, ours)), ["10-16"], `${n} blocks: middle`);
          assert.deepEqual(within(blockDepth(n, ours)), ["17-24"], `${n} blocks: last`);
        }
      });

      it("relative depth: 0 first, 1 last; errors name the block and the range", () => {
        assert.deepEqual([0, 3, 6].map((i) => relativeDepth(i, 7)), [0, 0.5, 1]);
        assert.equal(relativeDepth(0, 1), 0);
        assert.throws(() => relativeDepth(7, 7), /position 7 is outside 0\.\.6/);
        assert.throws(() => relativeDepth(0, 0), /count 0 must be a positive integer/);
        assert.throws(() => blockDepth(99, [1, 2, 3]), /block 99 is not one of the model's blocks \(1, 2, 3\)/);
      });
    });

    it("channel-major re-pooling equals pooling the NHWC map directly (PyTorch bins, float32)", () => {
      const [n, h, w, c] = [3, 7, 5, 4];
      const maps = Float32Array.from(normals(9, n * h * w * c));
      const full = poolNHWC(maps, [n, h, w, c], { kind: "none" });
      for (const size of [1, 3, [2, 4], [7, 5], [9, 6]] as (number | [number, number])[]) {
        const want = poolNHWC(maps, [n, h, w, c], { kind: "adaptive", size }).data;
        assert.deepEqual(Array.from(poolChannelMajorRows(full.data, n, [c, h, w], size)), Array.from(want), `size ${JSON.stringify(size)}`);
      }
      assert.throws(() => poolChannelMajorRows(full.data, 2, [c, h, w], 2), /not 2 rows of \[4, 7, 5\]/);
    });

    it("zipStreams walks streams in step and stops at the shortest", async () => {
      async function* count(k: number, tag: string) {
        for (let i = 0; i < k; i++) yield `${tag}${i}`;
      }
      const out: string[][] = [];
      for await (const pair of zipStreams([count(3, "a"), count(5, "b")])) out.push(pair);
      assert.deepEqual(out, [["a0", "b0"], ["a1", "b1"], ["a2", "b2"]]);
      async function* failing() {
        yield "x";
        throw new Error("batch 1 failed");
      }
      await assert.rejects(async () => {
        for await (const _ of zipStreams([count(5, "a"), failing()])) void _;
      }, /batch 1 failed/);
    });

    it("the paper's values are results.json's `cka` section, copied as is", function () {
      const file = sharedOrSkip(this, "paper", "results.json");
      const cka = JSON.parse(fs.readFileSync(file, "utf8")).cka;
      assert.deepEqual(PAPER_CKA.sameBlockT90Vs, cka.same_block_t90_vs);
      assert.deepEqual(PAPER_CKA.findings, cka.findings);
      assert.equal(PAPER_CKA.layout, cka.layout);
      assert.equal(PAPER_CKA.method, cka.method);
      assert.equal(PAPER_CKA.source, cka.source);
      for (const v of Object.values(PAPER_CKA.sameBlockT90Vs)) assert.equal(v.length, 25);
    });
  });
});
