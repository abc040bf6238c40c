import { strict as assert } from "assert";
import { stratifiedHoldout, storeBytes, bestByVal, SweepRow } from "../lib/experiments/fine-grained";

describe("notebook 06 helpers (lib/experiments/fine-grained.ts)", () => {
  it("stratifiedHoldout: per class round(f*n) to validation (>= 1 when n >= 2), disjoint, complete, seeded", () => {
    const labels = [...Array(10).fill(0), ...Array(3).fill(1), 2, ...Array(7).fill(3)];
    const h = stratifiedHoldout(labels, 0.25, 4);
    assert.equal(h.fit.length + h.val.length, labels.length);
    assert.equal(new Set([...h.fit, ...h.val]).size, labels.length);
    const count = (idx: Int32Array, k: number) => Array.from(idx).filter((i) => labels[i] === k).length;
    assert.deepEqual([0, 1, 2, 3].map((k) => count(h.val, k)), [3, 1, 0, 2]); // round(2.5)=3, max(1, round(.75))=1, single image stays in fit, round(1.75)=2
    assert.deepEqual(stratifiedHoldout(labels, 0.25, 4), h);
    assert.notDeepEqual(stratifiedHoldout(labels, 0.25, 5).val, h.val);
    assert.throws(() => stratifiedHoldout(labels, 1, 0), /fraction 1 must be in \(0, 1\)/);
  });

  it("storeBytes: images x sum over blocks of C*s*s x t x bytes", () => {
    // ADM-256 blocks 15/19/24 (1024 channels each), 4 timesteps, 8x8, float16, CUB's 11,788 images.
    assert.equal(storeBytes(11788, [1024, 1024, 1024], 4, 8, "float16"), 11788 * 3 * 1024 * 64 * 4 * 2);
    assert.equal(storeBytes(1, [64], 1, 2), 64 * 4 * 4);
  });

  it("bestByVal keeps the first of equal rows", () => {
    const r = (block: number, valAcc: number): SweepRow => ({ block, module: "m", t: 50, pool: 1, dim: 1, valAcc, valN: 1, fitN: 1 });
    assert.equal(bestByVal([r(1, 0.5), r(2, 0.7), r(3, 0.7)]).block, 2);
    assert.throws(() => bestByVal([]), /no rows/);
  });
});
