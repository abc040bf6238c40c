import { strict as assert } from "assert";
import sharp from "sharp";
import { featureMapImages, gridPng } from "../lib/display/images";

describe("images", () => {
  it("normalises each feature-map channel to [-1, 1] on its own", () => {
    // 2x2 map, 3 channels: ramp, scaled ramp, constant
    const map = Float32Array.from([0, 0, 5, 1, 10, 5, 2, 20, 5, 3, 30, 5]);
    const { data, shape } = featureMapImages(map, [2, 2, 3], 3);
    assert.deepEqual(shape, [3, 2, 2, 1]);
    const ch = (j: number) => Array.from(data.subarray(j * 4, j * 4 + 4)).map((v) => +v.toFixed(4));
    assert.deepEqual(ch(0), [-1, -0.3333, 0.3333, 1]);
    assert.deepEqual(ch(1), ch(0));
    assert.deepEqual(ch(2), [0, 0, 0, 0]);
    assert.deepEqual(featureMapImages(map, [2, 2, 3], 2).shape, [2, 2, 2, 1]);
    assert.throws(() => featureMapImages(map, [2, 2, 4], 1), /holds 12 values, shape says 2x2x4/);
  });

  it("writes a grey PNG grid of the right size with the right pixels", async () => {
    const imgs = Float32Array.from([-1, 1, 1, -1, /**/ 0, 0, 0, 0]); // two 2x2 images
    const png = await gridPng(imgs, [2, 2, 2, 1], { cols: 2, padding: 1, padValue: 1, scale: 1 });
    assert.equal((await sharp(png).metadata()).channels, 1, "not a greyscale PNG");
    const { data, info } = await sharp(png).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([info.width, info.height], [7, 4]);
    const px = (x: number, y: number) => data[y * info.width + x];
    assert.deepEqual([px(1, 1), px(2, 1), px(1, 2), px(2, 2)], [0, 255, 255, 0]);
    assert.equal(px(4, 1), 128); // 0 -> round(127.5) = 128
    assert.equal(px(0, 0), 255); // padding
  });
});
