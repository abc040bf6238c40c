/**
 * Gradients of a 2-D convolution (NHWC, dilation 1) built from forward ops only.
 *
 * Why: tfjs-backend-wasm 4.22 has no `Conv2DBackpropFilter` kernel (so `tf.conv2d` cannot be trained
 * there at all), and its `Conv2DBackpropInput` is a plain loop 5–25x slower than its XNNPACK forward
 * conv. Both gradients are therefore expressed as forward convolutions:
 *
 * - filter: swap the roles of batch and channels. With xpad the zero-padded input,
 *     dW[kh, kw, ci, co] = Σ_{n,oh,ow} xpad[n, oh·s + kh, ow·s + kw, ci] · dy[n, oh, ow, co]
 *   is a "valid" conv of xpadᵀ [Ci, H', W', N] (channels = batch) with the filter dyᵀ [OH, OW, N, Co]
 *   dilated by the stride s; its output [Ci, KH, KW, Co] is transposed to [KH, KW, Ci, Co].
 *   (A 1x1 conv with stride 1 and no padding: one matMul xᵀ·dy.)
 * - input: dy zero-upsampled by the stride, convolved (stride 1) with the kernel rotated by 180° and
 *   its channel axes swapped, after padding by KH-1-top / KW-1-left.
 *
 * The algorithms are written once against {@link ConvOps}: `tfOps` (ordinary tf ops, used by
 * `conv2dFilterGrad`, `conv2dInputGrad`, `conv2dTrainable`) and the kernel-level ops of ./wasm-kernels
 * (which registers them as wasm's Conv2DBackpropFilter / Conv2DBackpropInput kernels).
 * Checked against the cpu backend's native kernels in test/conv-grad.test.ts.
 */
import * as tf from "@tensorflow/tfjs";

/** Padding as tfjs accepts it for conv2d: "same", "valid", n on every side, or explicit NHWC pairs. */
export type ConvPad = "same" | "valid" | number | [[number, number], [number, number], [number, number], [number, number]];

/** Resolved geometry of one convolution. */
export interface ConvGeometry {
  strides: [number, number];
  /** Zero padding [top, bottom, left, right]. */
  pad: [number, number, number, number];
  outHeight: number;
  outWidth: number;
}

export function pair(s: number | [number, number]): [number, number] {
  return typeof s === "number" ? [s, s] : s;
}

/**
 * Output size and explicit padding of a conv, following TensorFlow's rules ("same": total padding
 * max((ceil(H/s)-1)·s + K - H, 0), the odd pixel at the bottom/right; a number: that many on every side).
 */
export function convGeometry(inH: number, inW: number, kH: number, kW: number, strides: number | [number, number], pad: ConvPad): ConvGeometry {
  const [sH, sW] = pair(strides);
  let p: [number, number, number, number];
  if (pad === "valid") p = [0, 0, 0, 0];
  else if (pad === "same") {
    const tH = Math.max((Math.ceil(inH / sH) - 1) * sH + kH - inH, 0);
    const tW = Math.max((Math.ceil(inW / sW) - 1) * sW + kW - inW, 0);
    p = [Math.floor(tH / 2), tH - Math.floor(tH / 2), Math.floor(tW / 2), tW - Math.floor(tW / 2)];
  } else if (typeof pad === "number") p = [pad, pad, pad, pad];
  else {
    if (pad[0][0] || pad[0][1] || pad[3][0] || pad[3][1]) throw new Error("conv padding of the batch or channel axis is not supported");
    p = [pad[1][0], pad[1][1], pad[2][0], pad[2][1]];
  }
  const outHeight = Math.floor((inH + p[0] + p[1] - kH) / sH) + 1;
  const outWidth = Math.floor((inW + p[2] + p[3] - kW) / sW) + 1;
  if (outHeight < 1 || outWidth < 1) throw new Error(`conv of a ${inH}x${inW} input with a ${kH}x${kW} kernel gives an empty output`);
  return { strides: [sH, sW], pad: p, outHeight, outWidth };
}

/** The few forward ops the gradient algorithms need, over some tensor handle type T. */
export interface ConvOps<T> {
  shape(t: T): number[];
  reshape(t: T, shape: number[]): T;
  transpose(t: T, perm: number[]): T;
  /** Zero padding, one [before, after] pair per axis. */
  pad(t: T, paddings: [number, number][]): T;
  slice(t: T, begin: number[], size: number[]): T;
  reverse(t: T, axes: number[]): T;
  /** "valid" conv2d, NHWC, with the given strides and dilations. */
  conv2d(x: T, w: T, strides: [number, number], dilations: [number, number]): T;
  /** Plain 2-D matMul, no transposes. */
  matMul(a: T, b: T): T;
}

/** ConvOps on ordinary tf ops (call inside tf.tidy). */
export const tfOps: ConvOps<tf.Tensor> = {
  shape: (t) => t.shape,
  reshape: (t, s) => tf.reshape(t, s),
  transpose: (t, p) => tf.transpose(t, p),
  pad: (t, p) => tf.pad(t, p),
  slice: (t, b, s) => tf.slice(t, b, s),
  reverse: (t, a) => tf.reverse(t, a),
  conv2d: (x, w, s, d) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, s, "valid", "NHWC", d),
  matMul: (a, b) => tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D),
};

/** Pad (positive amounts) and crop (negative amounts) the two spatial axes of an NHWC tensor. */
function padOrCrop<T>(o: ConvOps<T>, x: T, top: number, bottom: number, left: number, right: number): T {
  let y = x;
  if (top > 0 || bottom > 0 || left > 0 || right > 0) {
    y = o.pad(y, [[0, 0], [Math.max(top, 0), Math.max(bottom, 0)], [Math.max(left, 0), Math.max(right, 0)], [0, 0]]);
  }
  if (top < 0 || bottom < 0 || left < 0 || right < 0) {
    const [n, hh, ww, c] = o.shape(y);
    const t0 = Math.max(-top, 0), l0 = Math.max(-left, 0);
    y = o.slice(y, [0, t0, l0, 0], [n, hh - t0 - Math.max(-bottom, 0), ww - l0 - Math.max(-right, 0), c]);
  }
  return y;
}

function checkDy(dyShape: number[], n: number, g: ConvGeometry, co: number): void {
  if (dyShape[0] !== n || dyShape[1] !== g.outHeight || dyShape[2] !== g.outWidth || dyShape[3] !== co) {
    throw new Error(`dy shape [${dyShape}] does not match the conv output [${n},${g.outHeight},${g.outWidth},${co}]`);
  }
}

/** Filter gradient [KH,KW,Ci,Co] of a conv of x [N,H,W,Ci] given dy [N,OH,OW,Co], on any ConvOps. */
export function filterGradWith<T>(o: ConvOps<T>, x: T, dy: T, filterShape: number[], strides: number | [number, number], pad: ConvPad): T {
  const [n, h, w, ci] = o.shape(x);
  const [kH, kW, fci, co] = filterShape;
  if (fci !== ci) throw new Error(`filter has ${fci} input channels, the input has ${ci}`);
  const g = convGeometry(h, w, kH, kW, strides, pad);
  checkDy(o.shape(dy), n, g, co);
  const [sH, sW] = g.strides;
  const { outHeight: oh, outWidth: ow } = g;
  const [pt, , pl] = g.pad;
  if (kH === 1 && kW === 1 && sH === 1 && sW === 1 && g.pad.every((p) => p === 0)) {
    const m = n * h * w;
    return o.reshape(o.matMul(o.transpose(o.reshape(x, [m, ci]), [1, 0]), o.reshape(dy, [m, co])), [1, 1, ci, co]);
  }
  // The padded input, cut to the rows/columns the windows reach.
  const needH = (oh - 1) * sH + kH;
  const needW = (ow - 1) * sW + kW;
  const xp = padOrCrop(o, x, pt, needH - h - pt, pl, needW - w - pl);
  const xT = o.transpose(xp, [3, 1, 2, 0]); // [Ci, needH, needW, N]
  const dyT = o.transpose(dy, [1, 2, 0, 3]); // [OH, OW, N, Co]
  return o.transpose(o.conv2d(xT, dyT, [1, 1], [sH, sW]), [1, 2, 0, 3]); // [Ci,KH,KW,Co] -> [KH,KW,Ci,Co]
}

/** Input gradient (shape xShape) of a conv with filter w [KH,KW,Ci,Co] given dy, on any ConvOps. */
export function inputGradWith<T>(o: ConvOps<T>, xShape: number[], dy: T, w: T, strides: number | [number, number], pad: ConvPad): T {
  const [n, h, wd, ci] = xShape;
  const [kH, kW, fci, co] = o.shape(w);
  if (fci !== ci) throw new Error(`filter has ${fci} input channels, the input has ${ci}`);
  const g = convGeometry(h, wd, kH, kW, strides, pad);
  checkDy(o.shape(dy), n, g, co);
  const [sH, sW] = g.strides;
  const { outHeight: oh, outWidth: ow } = g;
  const [pt, , pl] = g.pad;
  // Zero-upsample dy by the stride to [N, (OH-1)·sH+1, (OW-1)·sW+1, Co], with rank-4 ops only.
  let up = dy;
  if (sW > 1) up = o.reshape(o.pad(o.reshape(up, [n * oh, ow, 1, co]), [[0, 0], [0, 0], [0, sW - 1], [0, 0]]), [n, oh, ow * sW, co]);
  if (sH > 1) up = o.reshape(o.pad(o.reshape(up, [n, oh, 1, ow * sW * co]), [[0, 0], [0, 0], [0, sH - 1], [0, 0]]), [n, oh * sH, ow * sW, co]);
  const lH = (oh - 1) * sH + 1, lW = (ow - 1) * sW + 1;
  if (sH > 1 || sW > 1) up = o.slice(up, [0, 0, 0, 0], [n, lH, lW, co]);
  const top = kH - 1 - pt, left = kW - 1 - pl;
  const bottom = h + kH - 1 - lH - top, right = wd + kW - 1 - lW - left;
  const wRot = o.transpose(o.reverse(w, [0, 1]), [0, 1, 3, 2]); // [KH,KW,Co,Ci]
  return o.conv2d(padOrCrop(o, up, top, bottom, left, right), wRot, [1, 1], [1, 1]);
}

/** Gradient of a conv2d's loss with respect to its filter, with tf ops: x [N,H,W,Ci], dy [N,OH,OW,Co] -> [KH,KW,Ci,Co]. */
export function conv2dFilterGrad(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  filterShape: [number, number, number, number],
  strides: number | [number, number],
  pad: ConvPad,
): tf.Tensor4D {
  return tf.tidy(() => filterGradWith(tfOps, x, dy, filterShape, strides, pad) as tf.Tensor4D);
}

/** Gradient of a conv2d's loss with respect to its input, with tf ops: dy [N,OH,OW,Co], w [KH,KW,Ci,Co] -> xShape. */
export function conv2dInputGrad(
  xShape: [number, number, number, number],
  dy: tf.Tensor4D,
  w: tf.Tensor4D,
  strides: number | [number, number],
  pad: ConvPad,
): tf.Tensor4D {
  return tf.tidy(() => inputGradWith(tfOps, xShape, dy, w, strides, pad) as tf.Tensor4D);
}

/**
 * conv2d (NHWC, dilation 1) whose gradients are `conv2dInputGrad` / `conv2dFilterGrad` whatever the
 * backend's kernels. (After `installTrainingKernels()`, plain `tf.conv2d` and `tf.fused.conv2d` train
 * on wasm too, with the same arithmetic.)
 */
export function conv2dTrainable(x: tf.Tensor4D, w: tf.Tensor4D, strides: number | [number, number], pad: ConvPad): tf.Tensor4D {
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [x4, w4, save] = args as [tf.Tensor4D, tf.Tensor4D, tf.GradSaveFunc];
    save([x4, w4]);
    return {
      value: tf.conv2d(x4, w4, strides, pad),
      gradFunc: (dy: tf.Tensor4D, saved: tf.Tensor[]) => {
        const [xs, ws] = saved as [tf.Tensor4D, tf.Tensor4D];
        return [conv2dInputGrad(xs.shape, dy, ws, strides, pad), conv2dFilterGrad(xs, dy, ws.shape, strides, pad)];
      },
    };
  });
  return f(x, w) as tf.Tensor4D;
}

/** The active backend's Conv2DBackpropFilter kernel (throws where it is missing, as on stock wasm). */
export function nativeConv2dFilterGrad(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  filterShape: [number, number, number, number],
  strides: number | [number, number],
  pad: ConvPad,
): tf.Tensor4D {
  const attrs = { strides, pad, dataFormat: "NHWC", dimRoundingMode: undefined, filterShape };
  return tf.engine().runKernel("Conv2DBackpropFilter", { x, dy }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor4D;
}

/** The active backend's Conv2DBackpropInput kernel. */
export function nativeConv2dInputGrad(
  xShape: [number, number, number, number],
  dy: tf.Tensor4D,
  w: tf.Tensor4D,
  strides: number | [number, number],
  pad: ConvPad,
): tf.Tensor4D {
  const attrs = { strides, pad, dataFormat: "NHWC", dimRoundingMode: undefined, inputShape: xShape };
  return tf.engine().runKernel("Conv2DBackpropInput", { dy, filter: w }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor4D;
}
