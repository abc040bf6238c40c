import { strict as assert } from "assert";
import * as path from "path";
import * as fs from "fs";
import { adaptiveBins, poolNHWC, pooledDim, poolLabel, poolGrid, adaptiveAvgPool, globalAvgPool, flattenChannelMajor, PoolSpec } from "../lib/features/pooling";

interface Case {
  name: string;
  shapeNHWC: [number, number, number, number];
  size: [number, number];
  inputNHWC: number[];
  adaptive: number[];
  global: number[];
  none: number[];
}

const fixture = JSON.parse(fs.readFileSync(path.join(__dirname, "fixtures", "pooling", "cases.json"), "utf8")) as { cases: Case[] };

const f32 = (xs: number[]) => Float32Array.from(xs, Math.fround);

/** max |a - b| / max(1, max |b|), with a message naming the first bad index. */
function assertClose(actual: Float32Array, expected: number[], tol: number, what: string) {
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length} vs expected ${expected.length}`);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < expected.length; i++) {
    const e = Math.fround(expected[i]); // fixtures hold float32 values in shortest decimal form
    const d = Math.abs(actual[i] - e) / Math.max(1, Math.abs(e));
    if (!(d <= worst)) {
      worst = d;
      at = i;
    }
  }
  assert.ok(worst <= tol, `${what}: max rel diff ${worst} at index ${at} (got ${actual[at]}, torch ${expected[at]})`);
}

describe("pooling", () => {
  describe("adaptiveBins (PyTorch start/end indices)", () => {
    it("7 -> 3 overlaps: [0,3) [2,5) [4,7)", () => {
      const b = adaptiveBins(7, 3);
      assert.deepEqual(Array.from(b.start), [0, 2, 4]);
      assert.deepEqual(Array.from(b.end), [3, 5, 7]);
    });
    it("3 -> 5 repeats rows: [0,1) [0,2) [1,2) [1,3) [2,3)", () => {
      const b = adaptiveBins(3, 5);
      assert.deepEqual(Array.from(b.start), [0, 0, 1, 1, 2]);
      assert.deepEqual(Array.from(b.end), [1, 2, 2, 3, 3]);
    });
    it("8 -> 4 is plain 2x2 average pooling", () => {
      const b = adaptiveBins(8, 4);
      assert.deepEqual(Array.from(b.start), [0, 2, 4, 6]);
      assert.deepEqual(Array.from(b.end), [2, 4, 6, 8]);
    });
    it("rejects non-positive sizes", () => {
      assert.throws(() => adaptiveBins(0, 2), /input size/);
      assert.throws(() => adaptiveBins(4, 0), /output size/);
    });
  });

  describe("against torch fixtures", () => {
    assert.ok(fixture.cases.length >= 10);
    for (const c of fixture.cases) {
      const [n, h, w, ch] = c.shapeNHWC;
      it(`${c.name}: AdaptiveAvgPool2d(${c.size.join("x")}) on ${n}x${ch}x${h}x${w}`, () => {
        const x = f32(c.inputNHWC);
        const r = adaptiveAvgPool(x, c.shapeNHWC, c.size);
        assert.equal(r.n, n);
        assert.equal(r.dim, ch * c.size[0] * c.size[1]);
        assert.deepEqual(r.rowShape, [ch, c.size[0], c.size[1]]);
        assertClose(r.data, c.adaptive, 1e-6, `${c.name} adaptive`);
      });
      it(`${c.name}: global mean and flatten`, () => {
        const x = f32(c.inputNHWC);
        const g = globalAvgPool(x, c.shapeNHWC);
        assert.equal(g.dim, ch);
        assertClose(g.data, c.global, 1e-6, `${c.name} global`);
        const f = flattenChannelMajor(x, c.shapeNHWC);
        assert.equal(f.dim, ch * h * w);
        // A permutation: exact.
        assertClose(f.data, c.none, 0, `${c.name} none`);
      });
    }
  });

  it("writes into a caller's array at an offset", () => {
    const c = fixture.cases[0];
    const [n, , , ch] = c.shapeNHWC;
    const dim = ch * c.size[0] * c.size[1];
    const out = new Float32Array(5 + n * dim).fill(-7);
    poolNHWC(f32(c.inputNHWC), c.shapeNHWC, { kind: "adaptive", size: c.size }, out, 5);
    assert.deepEqual(Array.from(out.subarray(0, 5)), [-7, -7, -7, -7, -7]);
    assertClose(out.subarray(5), c.adaptive, 1e-6, "offset write");
    assert.throws(() => poolNHWC(f32(c.inputNHWC), c.shapeNHWC, { kind: "global" }, new Float32Array(3)), /output array has 3 values/);
  });

  it("channel-major order: a map whose value is its channel index pools to runs of c", () => {
    const [n, h, w, c] = [1, 4, 6, 3];
    const x = new Float32Array(n * h * w * c);
    for (let i = 0; i < x.length; i++) x[i] = i % c;
    const r = poolNHWC(x, [n, h, w, c], { kind: "adaptive", size: 2 });
    assert.deepEqual(Array.from(r.data), [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]);
  });

  it("dims, grids and labels", () => {
    const specs: [PoolSpec, number, string][] = [
      [{ kind: "adaptive", size: 2 }, 1024 * 4, "adaptive2x2"],
      [{ kind: "adaptive", size: [3, 1] }, 1024 * 3, "adaptive3x1"],
      [{ kind: "global" }, 1024, "global"],
      [{ kind: "none" }, 1024 * 16 * 16, "none"],
    ];
    for (const [spec, dim, label] of specs) {
      assert.equal(pooledDim(spec, [16, 16, 1024]), dim, label);
      assert.equal(poolLabel(spec), label);
    }
    assert.deepEqual(poolGrid({ kind: "none" }, 5, 7), [5, 7]);
  });

  it("errors name the shape at fault", () => {
    assert.throws(() => poolNHWC(new Float32Array(10), [1, 2, 2, 3], { kind: "global" }), /data has 10 values but shape \[1, 2, 2, 3\] needs 12/);
    assert.throws(() => poolNHWC(new Float32Array(12), [2, 2, 3], { kind: "global" }), /NHWC shape.*\[2, 2, 3\]/);
    assert.throws(() => poolNHWC(new Float32Array(12), [1, 2, 2, 3], { kind: "adaptive", size: 0 }), /adaptive size/);
    assert.throws(() => poolNHWC(new Float32Array(12), [1, 2, 2, 3], { kind: "max" } as unknown as PoolSpec), /unknown kind "max"/);
  });
});
