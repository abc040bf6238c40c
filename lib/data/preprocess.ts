/**
 * guided-diffusion's evaluation preprocessing (`center_crop_arr` in image_datasets.py), after PIL's
 * `convert("RGB")`:
 * 1. while the short side is >= 2 * target, halve both sides (integer division) with PIL's BOX filter;
 * 2. BICUBIC resize so that the short side is the target, each side `round(x * scale)` (Python's round:
 *    half to even);
 * 3. crop target x target at `(H - target) // 2`, `(W - target) // 2`.
 * The model input is `arr / 127.5 - 1` in [-1, 1], NHWC.
 */
import { decodeRgb, RgbImage } from "./image";
import { resize } from "./resample";

/** Python 3's `round(x)` for a float: nearest integer, ties to even. */
export function pyRound(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** Python's floor division for integers. */
const floorDiv = (a: number, b: number) => Math.floor(a / b);

/**
 * Steps 1-2 shared by the centre and random crops: BOX halvings while the short side >= 2 * shortSide,
 * then BICUBIC to make the short side exactly `shortSide`.
 */
export function resizeShortSide(img: RgbImage, shortSide: number): RgbImage {
  let cur = img;
  while (Math.min(cur.width, cur.height) >= 2 * shortSide) {
    cur = resize(cur, floorDiv(cur.width, 2), floorDiv(cur.height, 2), "box");
  }
  const scale = shortSide / Math.min(cur.width, cur.height);
  return resize(cur, pyRound(cur.width * scale), pyRound(cur.height * scale), "bicubic");
}

/** Crop a `size` x `size` window with top-left (x, y); throws if it does not fit. */
export function crop(img: RgbImage, x: number, y: number, w: number, h: number): RgbImage {
  if (x < 0 || y < 0 || x + w > img.width || y + h > img.height) {
    throw new Error(`crop ${w}x${h}+${x}+${y} outside a ${img.width}x${img.height} image`);
  }
  const out = new Uint8Array(w * h * 3);
  for (let r = 0; r < h; r++) {
    const s = ((y + r) * img.width + x) * 3;
    out.set(img.data.subarray(s, s + w * 3), r * w * 3);
  }
  return { width: w, height: h, channels: 3, data: out };
}

/** guided-diffusion `center_crop_arr` on a decoded RGB image: uint8 `size` x `size` x 3. */
export function centerCropArr(img: RgbImage, size: number): RgbImage {
  if (!(size > 0 && Number.isInteger(size))) throw new Error(`centerCropArr: bad size ${size}`);
  const r = resizeShortSide(img, size);
  return crop(r, floorDiv(r.width - size, 2), floorDiv(r.height - size, 2), size, size);
}

/** Decode a file like PIL and apply `center_crop_arr`. */
export async function preprocessFile(file: string | Buffer, size: number): Promise<RgbImage> {
  return centerCropArr(await decodeRgb(file), size);
}

/** uint8 HWC -> float32 in [-1, 1] (`arr / 127.5 - 1`), written into `out` at `offset` (for NHWC batches). */
export function toModelInput(img: RgbImage, out?: Float32Array, offset = 0): Float32Array {
  const n = img.data.length;
  const dst = out ?? new Float32Array(n);
  if (dst.length < offset + n) throw new Error(`toModelInput: output too small (${dst.length} < ${offset + n})`);
  for (let i = 0; i < n; i++) dst[offset + i] = img.data[i] / 127.5 - 1;
  return dst;
}

/** A batch in NHWC float32 [-1, 1]; all images must share one size. */
export function toModelBatch(imgs: RgbImage[]): { data: Float32Array; shape: [number, number, number, number] } {
  if (imgs.length === 0) throw new Error("toModelBatch: no images");
  const { width: w, height: h } = imgs[0];
  const per = w * h * 3;
  const data = new Float32Array(per * imgs.length);
  imgs.forEach((im, i) => {
    if (im.width !== w || im.height !== h) throw new Error(`toModelBatch: image ${i} is ${im.width}x${im.height}, expected ${w}x${h}`);
    toModelInput(im, data, i * per);
  });
  return { data, shape: [imgs.length, h, w, 3] };
}

/** Result of preprocessing many files: corrupt or unreadable files are skipped, never fatal. */
export interface PreprocessReport<T> {
  ok: { file: string; value: T }[];
  skipped: { file: string; error: string }[];
}

/**
 * Run `fn` (default: centre-crop preprocessing) over files; a file that fails to decode is skipped with a
 * warning naming it, and listed in `skipped`.
 */
export async function preprocessFiles(
  files: string[],
  size: number,
  opts: { warn?: (msg: string) => void; onItem?: (i: number) => void } = {},
): Promise<PreprocessReport<RgbImage>> {
  const warn = opts.warn ?? ((m: string) => console.warn(m));
  const report: PreprocessReport<RgbImage> = { ok: [], skipped: [] };
  for (let i = 0; i < files.length; i++) {
    const file = files[i];
    try {
      report.ok.push({ file, value: await preprocessFile(file, size) });
    } catch (e) {
      const error = (e as Error).message;
      warn(`warning: ${error.includes(file) ? error : `${file}: ${error}`} (skipped)`);
      report.skipped.push({ file, error });
    }
    opts.onItem?.(i);
  }
  return report;
}
