/**
 * Pictures of images and feature maps: NHWC arrays in [-1, 1] → a grid of 8-bit pixels → PNG
 * (sharp), shown in a notebook as a PNG bundle (survives nbconvert's HTML export) or written to a file.
 */
import * as fs from "fs";
import * as path from "path";
import sharp from "sharp";
import { displayBundle } from "./notebook";
import { escapeHtml } from "./progress";

export interface GridOptions {
  /** Columns (default: ceil(sqrt(n))). */
  cols?: number;
  /** Pixels between images (default 2), filled with `padValue` (default 1 = white, in [-1, 1] units). */
  padding?: number;
  padValue?: number;
  /** Nearest-neighbour enlargement (default 1). */
  scale?: number;
}

/**
 * Arrange NHWC images in [-1, 1] ([n, h, w, c], c = 1 or 3) in a grid as 8-bit pixels:
 * round((x + 1) · 127.5) clamped to 0..255. Returns the raw pixels and their size.
 */
export function imageGrid(images: Float32Array, shape: [number, number, number, number], opts: GridOptions = {}): { data: Uint8Array; width: number; height: number; channels: number } {
  const [n, h, w, c] = shape;
  if (c !== 1 && c !== 3) throw new Error(`images must have 1 or 3 channels, got ${c}`);
  if (images.length !== n * h * w * c) throw new Error(`${images.length} values for [${shape}]`);
  const cols = opts.cols ?? Math.ceil(Math.sqrt(n));
  const rows = Math.ceil(n / cols);
  const pad = opts.padding ?? 2;
  const s = opts.scale ?? 1;
  const toByte = (v: number) => Math.max(0, Math.min(255, Math.round((v + 1) * 127.5)));
  const width = (cols * (w + pad) + pad) * s;
  const height = (rows * (h + pad) + pad) * s;
  const data = new Uint8Array(width * height * c).fill(toByte(opts.padValue ?? 1));
  for (let k = 0; k < n; k++) {
    const gx = pad + (k % cols) * (w + pad);
    const gy = pad + Math.floor(k / cols) * (h + pad);
    for (let y = 0; y < h * s; y++) {
      for (let x = 0; x < w * s; x++) {
        const src = ((k * h + Math.floor(y / s)) * w + Math.floor(x / s)) * c;
        const dst = ((gy * s + y) * width + gx * s + x) * c;
        for (let j = 0; j < c; j++) data[dst + j] = toByte(images[src + j]);
      }
    }
  }
  return { data, width, height, channels: c };
}

/** Write images (NHWC in [-1, 1]) as a PNG grid; returns the file's width and height. */
export async function saveImageGrid(file: string, images: Float32Array, shape: [number, number, number, number], opts: GridOptions = {}): Promise<{ width: number; height: number }> {
  const png = await gridPng(images, shape, opts);
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  fs.writeFileSync(file, png);
  const meta = await sharp(png).metadata();
  return { width: meta.width ?? 0, height: meta.height ?? 0 };
}

/** PNG bytes of an image grid (true greyscale for 1 channel). */
export async function gridPng(images: Float32Array, shape: [number, number, number, number], opts: GridOptions = {}): Promise<Buffer> {
  const g = imageGrid(images, shape, opts);
  let img = sharp(Buffer.from(g.data.buffer, g.data.byteOffset, g.data.byteLength), { raw: { width: g.width, height: g.height, channels: g.channels as 1 | 3 } });
  if (g.channels === 1) img = img.toColourspace("b-w");
  return img.png().toBuffer();
}

/** Show an image grid in the notebook with a caption (outside a notebook: print the caption). */
export async function showImages(images: Float32Array, shape: [number, number, number, number], opts: GridOptions & { caption?: string } = {}): Promise<void> {
  const png = await gridPng(images, shape, opts);
  const caption = opts.caption ?? `${shape[0]} images ${shape[1]}x${shape[2]}`;
  const b64 = png.toString("base64");
  const meta = await sharp(png).metadata();
  const html = `<figure style="margin:0"><img src="data:image/png;base64,${b64}" width="${meta.width}" height="${meta.height}" alt="${escapeHtml(caption)}">` +
    `<figcaption style="font-size:90%;color:#555">${escapeHtml(caption)}</figcaption></figure>`;
  const ok = displayBundle({ "text/html": html, "image/png": b64, "text/plain": `[image grid] ${caption}` });
  if (!ok) console.log(`[image grid] ${caption}`);
}

/**
 * The first `count` channels of one feature map [H, W, C] as grey images [count, H, W, 1] in [-1, 1],
 * each channel min-max normalised on its own (a constant channel becomes mid-grey).
 */
export function featureMapImages(map: Float32Array, mapShape: [number, number, number], count: number): { data: Float32Array; shape: [number, number, number, number] } {
  const [h, w, c] = mapShape;
  if (map.length !== h * w * c) throw new Error(`feature map holds ${map.length} values, shape says ${mapShape.join("x")}`);
  const k = Math.min(count, c);
  const out = new Float32Array(k * h * w);
  for (let j = 0; j < k; j++) {
    let lo = Infinity;
    let hi = -Infinity;
    for (let p = 0; p < h * w; p++) {
      const v = map[p * c + j];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    const span = hi - lo;
    for (let p = 0; p < h * w; p++) out[j * h * w + p] = span > 0 ? ((map[p * c + j] - lo) / span) * 2 - 1 : 0;
  }
  return { data: out, shape: [k, h, w, 1] };
}
