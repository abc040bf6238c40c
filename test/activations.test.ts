import { strict as assert } from "assert";
import { peakActivationBytes } from "../lib/model/unet/activations";
import { defaultBatchSize } from "../lib/features/store/extractor";
import { createUNetConfig } from "../lib/model/unet/config";
import { TINY_ADM_FLAGS } from "../lib/data/synthetic-tree";

const MiB = 2 ** 20;

describe("activation memory and the default batch", () => {
  it("the 256x256 ADM: 3 maps of 256 channels at 256x256 to block 24; the full pass adds the held skips", () => {
    const c = createUNetConfig("adm-256-uncond");
    // To block 24 (output_blocks.4) the widest block is a ResBlock at 256x256 with 256 channels
    // (input_blocks.1): input, hidden and output, 4 bytes each; the skips block 24 needs are 16x16 and 8x8
    // maps that are not held yet then.
    assert.equal(peakActivationBytes(c, [24]), 3 * 256 * 256 * 256 * 4);
    assert.equal(peakActivationBytes(c, ["output_blocks.4"]), 192 * MiB);
    // Full pass: output_blocks.15 takes h (256 ch) ++ skip (256 ch) at 256x256 -> 3 maps of 512 channels,
    // while the skips of input_blocks.1 and .0 (256 ch at 256x256 each) wait for output_blocks.16 and .17.
    assert.equal(peakActivationBytes(c), (3 * 512 + 2 * 256) * 256 * 256 * 4);
    assert.equal(peakActivationBytes(c, [37]), peakActivationBytes(c, ["out"]));
    assert.throws(() => peakActivationBytes(c, [99]), /block 99 does not exist/);
  });

  it("the default batch is the largest power of two <= 32 whose estimate fits 2 GiB", () => {
    const c256 = createUNetConfig("adm-256-uncond");
    assert.equal(defaultBatchSize(c256, [24]), 8); // 8 x 192 MiB = 1.5 GiB; 16 would be 3 GiB
    assert.equal(defaultBatchSize(c256, [24, 12]), 8);
    assert.equal(defaultBatchSize(c256, ["out"]), 4); // 4 x 512 MiB = 2 GiB exactly: fits; 8 would not
  });

  it("small models keep 32; a 512x512 model gets fewer", () => {
    const tiny = createUNetConfig(TINY_ADM_FLAGS);
    // 32 channels at 32x32: 3 maps = 384 KiB per image
    assert.equal(peakActivationBytes(tiny, [2]), 3 * 32 * 32 * 32 * 4);
    assert.equal(defaultBatchSize(tiny, [2]), 32);
    // adm-512-cond: 128 channels (0.5 x 256) at 512x512 in its first blocks: 3 x 128 x 512^2 x 4 B = 384 MiB -> 4
    const c512 = createUNetConfig("adm-512-cond");
    assert.equal(peakActivationBytes(c512, [10]), 384 * MiB);
    assert.equal(defaultBatchSize(c512, [10]), 4);
  });
});
