/**
 * Decoding an image file to 8-bit RGB the way PIL does `Image.open(f).convert("RGB")` (PIL 9.4):
 * - no EXIF auto-rotation (PIL's `open` does not apply the orientation tag);
 * - no ICC colour management (an embedded profile is ignored);
 * - alpha is dropped, never composited (RGBA, LA, palette with transparency);
 * - greyscale is replicated to three channels;
 * - CMYK JPEG: the CMYK samples as PIL reads them (Adobe-inverted files already un-inverted, which is
 *   what libjpeg and libvips both hand out), then PIL's formula without colour management:
 *   `nk = 255 - K; R = clip(nk - muldiv255(C, nk))`, likewise G from M and B from Y;
 * - 16-bit RGB/RGBA/LA PNG: the high byte of each sample (PIL's "RGB;16B" raw modes);
 * - 16-bit greyscale PNG: PIL opens it as mode "I" (32-bit integer) and convert("RGB") clips the value
 *   to 0..255 (so most such images come out nearly white); we reproduce that.
 * Decoding itself is sharp/libvips. For baseline/progressive JPEG, sharp's libjpeg-turbo (mozjpeg build)
 * and PIL's libjpeg-turbo give bit-identical samples (measured on the reference photos).
 */
import sharp from "sharp";

/** An 8-bit image, interleaved, rows top to bottom: `data[(y * width + x) * channels + c]`. */
export interface RgbImage {
  width: number;
  height: number;
  /** Always 3 for RgbImage. */
  channels: 3;
  data: Uint8Array;
}

/** Make an RgbImage from raw pixels with 1..4 channels (1: grey, 2: grey+alpha, 3: RGB, 4: RGBA; alpha dropped). */
export function toRgb(data: Uint8Array, width: number, height: number, channels: number): RgbImage {
  const n = width * height;
  if (data.length < n * channels) throw new Error(`toRgb: ${data.length} bytes for ${width}x${height}x${channels}`);
  if (channels === 3) return { width, height, channels: 3, data: data.length === n * 3 ? data : data.subarray(0, n * 3) };
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    if (channels <= 2) {
      const g = data[i * channels];
      out[i * 3] = g;
      out[i * 3 + 1] = g;
      out[i * 3 + 2] = g;
    } else {
      const j = i * channels;
      out[i * 3] = data[j];
      out[i * 3 + 1] = data[j + 1];
      out[i * 3 + 2] = data[j + 2];
    }
  }
  return { width, height, channels: 3, data: out };
}

/** PIL's CMYK -> RGB (Convert.c `cmyk2rgb`, Pillow >= 8.3): no colour management. `stride` is 4 or 5 (extra alpha). */
export function cmykToRgb(data: Uint8Array, width: number, height: number, stride = 4): RgbImage {
  const n = width * height;
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const j = i * stride;
    const nk = 255 - data[j + 3];
    for (let c = 0; c < 3; c++) {
      // MULDIV255(a, b) = ((a * b + 128) + ((a * b + 128) >> 8)) >> 8
      const t = data[j + c] * nk + 128;
      const v = nk - ((t + (t >> 8)) >> 8);
      out[i * 3 + c] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return { width, height, channels: 3, data: out };
}

/** Options passed to every sharp instance: PIL neither rotates nor colour-manages, and a damaged file is an error. */
const SHARP_INPUT = { ignoreIcc: true, autoOrient: false, failOn: "error", limitInputPixels: 0x3fff * 0x3fff } as const;

/**
 * Decode a file (path or bytes) to 8-bit RGB like PIL's `Image.open(f).convert("RGB")`.
 * Throws (with the file named) on unreadable, truncated or unsupported input.
 */
export async function decodeRgb(input: string | Buffer): Promise<RgbImage> {
  const name = typeof input === "string" ? input : "<buffer>";
  try {
    const meta = await sharp(input, SHARP_INPUT).metadata();
    if (meta.space === "cmyk") {
      // Keep the samples in CMYK (no libvips/lcms conversion), then PIL's formula.
      const { data, info } = await sharp(input, SHARP_INPUT)
        .pipelineColourspace("cmyk")
        .toColourspace("cmyk")
        .raw()
        .toBuffer({ resolveWithObject: true });
      return cmykToRgb(new Uint8Array(data.buffer, data.byteOffset, data.length), info.width, info.height, info.channels);
    }
    if (meta.format === "png" && meta.space === "grey16" && meta.channels === 1) {
      // PIL: mode "I", and I -> RGB clips to 0..255.
      const { data, info } = await sharp(input, SHARP_INPUT).toColourspace("grey16").raw({ depth: "ushort" }).toBuffer({ resolveWithObject: true });
      const v16 = new Uint16Array(data.buffer, data.byteOffset, data.length / 2);
      const g = new Uint8Array(info.width * info.height);
      for (let i = 0; i < g.length; i++) g[i] = v16[i * info.channels] > 255 ? 255 : v16[i * info.channels];
      return toRgb(g, info.width, info.height, 1);
    }
    // 8-bit, palette, 1-bit, and 16-bit colour (libvips keeps the high byte, as PIL's ";16B" raw modes do).
    const { data, info } = await sharp(input, SHARP_INPUT).raw().toBuffer({ resolveWithObject: true });
    return toRgb(new Uint8Array(data.buffer, data.byteOffset, data.length), info.width, info.height, info.channels);
  } catch (e) {
    const msg = (e as Error).message ?? String(e);
    throw new Error(`cannot decode image ${name}: ${msg}`);
  }
}
