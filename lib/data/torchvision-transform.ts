/**
 * torchvision's ImageNet evaluation transform on a PIL image (torchvision 0.14, Pillow 9.4):
 *
 *   transforms.Compose([Resize(256), CenterCrop(224), ToTensor(), Normalize(IMAGENET_MEAN, IMAGENET_STD)])
 *
 * after `Image.open(f).convert("RGB")` (lib/data/image's decodeRgb).
 * - Resize(256): the short side becomes 256 and the long side `int(256 * long / short)` (truncated), with
 *   PIL's BILINEAR resample, antialiased when shrinking (lib/data/resample reproduces PIL's 8-bit result);
 * - CenterCrop(224): top `int(round((H - 224) / 2))`, left likewise (Python's round: half to even); a
 *   crop larger than the image is zero-padded first as torchvision does (only for `crop > resize`);
 * - ToTensor: uint8 / 255 in float32, CHW; Normalize: (x - mean) / std in float32.
 */
import { decodeRgb, RgbImage } from "./image";
import { crop, pyRound } from "./preprocess";
import { resize } from "./resample";

export const IMAGENET_MEAN: readonly number[] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: readonly number[] = [0.229, 0.224, 0.225];

export interface TorchvisionTransformOptions {
  /** Short side after Resize (default 256). */
  resize?: number;
  /** CenterCrop size (default 224). */
  crop?: number;
  mean?: readonly number[];
  std?: readonly number[];
}

/** torchvision's `Resize(size)` output size (width, height) for a `w` x `h` image. */
export function resizedSize(w: number, h: number, size: number): { width: number; height: number } {
  const [short, long] = w <= h ? [w, h] : [h, w];
  const newLong = Math.trunc((size * long) / short);
  return w <= h ? { width: size, height: newLong } : { width: newLong, height: size };
}

/** `Resize(size)` on a PIL image: BILINEAR with PIL's antialiasing. */
export function resizeShort(img: RgbImage, size: number): RgbImage {
  if (!(size > 0 && Number.isInteger(size))) throw new Error(`Resize: bad size ${size}`);
  const { width, height } = resizedSize(img.width, img.height, size);
  return width === img.width && height === img.height ? img : resize(img, width, height, "bilinear");
}

/** `CenterCrop(size)` on a PIL image (zero padding first where the image is smaller, as torchvision does). */
export function centerCrop(img: RgbImage, size: number): RgbImage {
  if (!(size > 0 && Number.isInteger(size))) throw new Error(`CenterCrop: bad size ${size}`);
  let cur = img;
  if (size > img.width || size > img.height) {
    // torchvision pads [left, top, right, bottom] = [(s - w) // 2, (s - h) // 2, (s - w + 1) // 2, (s - h + 1) // 2] with zeros.
    const padL = size > img.width ? Math.floor((size - img.width) / 2) : 0;
    const padT = size > img.height ? Math.floor((size - img.height) / 2) : 0;
    const padR = size > img.width ? Math.floor((size - img.width + 1) / 2) : 0;
    const padB = size > img.height ? Math.floor((size - img.height + 1) / 2) : 0;
    const w = img.width + padL + padR;
    const h = img.height + padT + padB;
    const data = new Uint8Array(w * h * 3);
    for (let r = 0; r < img.height; r++) data.set(img.data.subarray(r * img.width * 3, (r + 1) * img.width * 3), ((r + padT) * w + padL) * 3);
    cur = { width: w, height: h, channels: 3, data };
    if (w === size && h === size) return cur;
  }
  const top = pyRound((cur.height - size) / 2);
  const left = pyRound((cur.width - size) / 2);
  return crop(cur, left, top, size, size);
}

/** Resize + CenterCrop: the uint8 image the network sees before ToTensor / Normalize. */
export function torchvisionCrop(img: RgbImage, opts: TorchvisionTransformOptions = {}): RgbImage {
  return centerCrop(resizeShort(img, opts.resize ?? 256), opts.crop ?? 224);
}

/**
 * ToTensor + Normalize of a uint8 HWC image into CHW float32, written into `out` at `offset` (for NCHW batches).
 * Same float32 arithmetic as torchvision: v = u8 / 255, then (v - mean) / std.
 */
export function normalizeToCHW(img: RgbImage, opts: TorchvisionTransformOptions = {}, out?: Float32Array, offset = 0): Float32Array {
  const mean = opts.mean ?? IMAGENET_MEAN;
  const std = opts.std ?? IMAGENET_STD;
  const plane = img.width * img.height;
  const dst = out ?? new Float32Array(3 * plane);
  if (dst.length < offset + 3 * plane) throw new Error(`normalizeToCHW: output too small (${dst.length} < ${offset + 3 * plane})`);
  const f = Math.fround;
  for (let c = 0; c < 3; c++) {
    const m = f(mean[c]);
    const s = f(std[c]);
    for (let i = 0; i < plane; i++) dst[offset + c * plane + i] = f(f(f(img.data[i * 3 + c] / 255) - m) / s);
  }
  return dst;
}

/** The whole evaluation transform of one decoded image: CHW float32 [3, crop, crop]. */
export function torchvisionTransform(img: RgbImage, opts: TorchvisionTransformOptions = {}): Float32Array {
  return normalizeToCHW(torchvisionCrop(img, opts), opts);
}

/** Decode files like PIL and transform them into one NCHW float32 batch [N, 3, crop, crop]. */
export async function torchvisionBatch(files: (string | Buffer)[], opts: TorchvisionTransformOptions = {}): Promise<{ data: Float32Array; shape: [number, number, number, number] }> {
  const size = opts.crop ?? 224;
  const per = 3 * size * size;
  const data = new Float32Array(per * files.length);
  for (let i = 0; i < files.length; i++) normalizeToCHW(torchvisionCrop(await decodeRgb(files[i]), opts), opts, data, i * per);
  return { data, shape: [files.length, 3, size, size] };
}
