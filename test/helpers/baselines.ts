/** The tiny baseline networks and seeded weights the baseline tests share. */
import { Rng } from "../../lib/rng";

/** A U-Net encoder small enough for a test (8x8 images, two levels). */
export const TINY_UNET = {
  image_size: 8, in_channels: 1, num_channels: 32, num_res_blocks: 1, channel_mult: "1,2", attention_resolutions: "4",
  num_head_channels: 32, resblock_updown: true, use_scale_shift_norm: true, learn_sigma: false,
};

/** A DCGAN small enough for a test. */
export const TINY_GAN = { zDim: 8, width: 4, imageSize: 32 as const, channels: 1 as const };

/** n seeded Gaussian values times `scale`. */
export function randomArray(n: number, seed: number, scale = 0.2): Float32Array {
  return new Rng(seed, 7).fillNormal(new Float32Array(n)).map((v) => v * scale);
}
