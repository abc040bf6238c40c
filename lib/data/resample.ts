/**
 * PIL-compatible resampling of 8-bit images (Pillow 9.4 `libImaging/Resample.c`, `ImagingResample`),
 * reimplemented so that our preprocessing matches guided-diffusion's PIL pipeline to the level:
 * - separable, horizontal pass first, each pass rounded and clipped to 8 bits;
 * - antialiased: when shrinking, the filter is stretched by the scale (`support = filter.support * max(scale, 1)`);
 * - coefficients normalised to sum 1 in double precision, then converted to fixed point with
 *   22 fractional bits (`PRECISION_BITS = 32 - 8 - 2`), rounded half away from zero;
 * - accumulation starts at 1/2 (rounding), result `>> 22` and clipped to 0..255.
 * Only the BOX and BICUBIC (a = -0.5) filters are needed here; BILINEAR is included for completeness.
 */
import { RgbImage } from "./image";

export type ResampleFilter = "box" | "bilinear" | "bicubic";

interface Filter {
  support: number;
  f(x: number): number;
}

const FILTERS: Record<ResampleFilter, Filter> = {
  box: { support: 0.5, f: (x) => (x > -0.5 && x <= 0.5 ? 1.0 : 0.0) },
  bilinear: {
    support: 1.0,
    f: (x) => {
      if (x < 0) x = -x;
      return x < 1 ? 1 - x : 0;
    },
  },
  bicubic: {
    support: 2.0,
    f: (x) => {
      const a = -0.5;
      if (x < 0) x = -x;
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
      return 0;
    },
  },
};

const PRECISION_BITS = 32 - 8 - 2;
const ONE = 1 << PRECISION_BITS;
const HALF = 1 << (PRECISION_BITS - 1);
const MAX = ONE * 256; // (1 << PRECISION_BITS) << 8

/** Per output sample: first input index, count, and `ksize` fixed-point weights. */
interface Coeffs {
  ksize: number;
  bounds: Int32Array; // [xmin, count] per output
  kk: Int32Array; // outSize * ksize
}

/** `precompute_coeffs` + `normalize_coeffs_8bpc` for the span [in0, in1) of an axis of length inSize. */
function precompute(inSize: number, in0: number, in1: number, outSize: number, filter: Filter): Coeffs {
  const scale = (in1 - in0) / outSize;
  const filterscale = scale < 1 ? 1 : scale;
  const support = filter.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  const ss = 1 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = in0 + (xx + 0.5) * scale;
    let ww = 0;
    // C's (int) cast truncates toward zero.
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    for (let x = 0; x < xmax; x++) {
      const w = filter.f((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (let x = 0; x < ksize; x++) {
      let v = x < xmax ? (ww !== 0 ? k[x] / ww : k[x]) : 0;
      v = v < 0 ? Math.trunc(-0.5 + v * ONE) : Math.trunc(0.5 + v * ONE);
      kk[xx * ksize + x] = v;
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, kk };
}

function clip8(v: number): number {
  if (v >= MAX) return 255;
  if (v <= 0) return 0;
  return v >> PRECISION_BITS;
}

/** Horizontal pass over rows [yOffset, yOffset + outH) of the input. */
function horizontal(src: Uint8Array, inW: number, ch: number, yOffset: number, outW: number, outH: number, c: Coeffs): Uint8Array {
  const out = new Uint8Array(outW * outH * ch);
  const { ksize, bounds, kk } = c;
  for (let yy = 0; yy < outH; yy++) {
    const row = (yy + yOffset) * inW * ch;
    let o = yy * outW * ch;
    for (let xx = 0; xx < outW; xx++) {
      const xmin = bounds[xx * 2];
      const xmax = bounds[xx * 2 + 1];
      const kb = xx * ksize;
      if (ch === 3) {
        let s0 = HALF, s1 = HALF, s2 = HALF;
        let p = row + xmin * 3;
        for (let x = 0; x < xmax; x++, p += 3) {
          const k = kk[kb + x];
          s0 += src[p] * k;
          s1 += src[p + 1] * k;
          s2 += src[p + 2] * k;
        }
        out[o++] = clip8(s0);
        out[o++] = clip8(s1);
        out[o++] = clip8(s2);
      } else {
        for (let b = 0; b < ch; b++) {
          let ss = HALF;
          let p = row + xmin * ch + b;
          for (let x = 0; x < xmax; x++, p += ch) ss += src[p] * kk[kb + x];
          out[o++] = clip8(ss);
        }
      }
    }
  }
  return out;
}

/** Vertical pass; `c.bounds` already relative to the first row of `src` after subtracting yShift. Row-wise accumulation. */
function vertical(src: Uint8Array, w: number, ch: number, outH: number, c: Coeffs, yShift: number): Uint8Array {
  const out = new Uint8Array(w * outH * ch);
  const { ksize, bounds, kk } = c;
  const stride = w * ch;
  const acc = new Float64Array(stride); // exact: |sum| < 2^31 as in PIL's int32 accumulator
  for (let yy = 0; yy < outH; yy++) {
    const ymin = bounds[yy * 2] - yShift;
    const ymax = bounds[yy * 2 + 1];
    const kb = yy * ksize;
    acc.fill(HALF);
    for (let y = 0; y < ymax; y++) {
      const k = kk[kb + y];
      if (k === 0) continue;
      const r = (ymin + y) * stride;
      for (let i = 0; i < stride; i++) acc[i] += src[r + i] * k;
    }
    const o = yy * stride;
    for (let i = 0; i < stride; i++) out[o + i] = clip8(acc[i]);
  }
  return out;
}

/**
 * PIL `Image.resize((outW, outH), filter)` of an 8-bit interleaved image with `ch` channels
 * (the whole image as the source box).
 */
export function resampleRaw(src: Uint8Array, inW: number, inH: number, ch: number, outW: number, outH: number, filter: ResampleFilter): Uint8Array {
  if (!(outW > 0 && outH > 0 && Number.isInteger(outW) && Number.isInteger(outH))) throw new Error(`resample: bad output size ${outW}x${outH}`);
  if (outW === inW && outH === inH) return src.slice();
  const f = FILTERS[filter];
  const needH = outW !== inW;
  const needV = outH !== inH;
  const ch_ = precompute(inW, 0, inW, outW, f);
  const cv = precompute(inH, 0, inH, outH, f);
  let cur = src;
  let curW = inW;
  let yShift = 0;
  if (needH) {
    // Only the rows that the vertical pass reads.
    const yFirst = needV ? cv.bounds[0] : 0;
    const yLast = needV ? cv.bounds[outH * 2 - 2] + cv.bounds[outH * 2 - 1] : inH;
    cur = horizontal(src, inW, ch, yFirst, outW, yLast - yFirst, ch_);
    curW = outW;
    yShift = yFirst;
  }
  if (needV) cur = vertical(cur, curW, ch, outH, cv, yShift);
  return cur;
}

/** PIL-compatible resize of an RGB image. */
export function resize(img: RgbImage, outW: number, outH: number, filter: ResampleFilter): RgbImage {
  return { width: outW, height: outH, channels: 3, data: resampleRaw(img.data, img.width, img.height, 3, outW, outH, filter) };
}
