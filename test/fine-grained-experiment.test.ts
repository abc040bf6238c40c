import { strict as assert } from "assert";
import { storeBytes, bestByVal, SweepRow } from "../lib/experiments/fine-grained";

describe("notebook 06 helpers (lib/experiments/fine-grained.ts)", () => {
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
