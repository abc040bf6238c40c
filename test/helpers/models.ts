/** Small models and inputs shared by several test files. */

/** The `tiny` reference configuration (../shared/fixtures/guided-diffusion/README.md). */
export const TINY_FLAGS = {
  image_size: 32, num_channels: 32, num_res_blocks: 1, channel_mult: "1,2,2", attention_resolutions: "16,8",
  num_head_channels: 16, learn_sigma: true, resblock_updown: true, use_scale_shift_norm: true,
};

/** Deterministic RGB images in [-1, 1], NHWC. */
export function testImages(n: number, size: number, salt = 0): { data: Float32Array; shape: [number, number, number, number] } {
  const data = new Float32Array(n * size * size * 3);
  for (let i = 0; i < data.length; i++) data[i] = Math.fround(0.9 * Math.sin(0.37 * i + 1.3 * salt + Math.floor(i / (size * size * 3))));
  return { data, shape: [n, size, size, 3] };
}
