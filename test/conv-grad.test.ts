import { strict as assert } from "assert";
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../lib/model/backend";
import {
  ConvPad, convGeometry, conv2dFilterGrad, conv2dInputGrad, conv2dTrainable, nativeConv2dFilterGrad, nativeConv2dInputGrad,
} from "../lib/train/conv-grad";
import { installTrainingKernels, uninstallTrainingKernels } from "../lib/train/wasm-kernels";

type Case = { x: [number, number, number, number]; w: [number, number, number, number]; s: number | [number, number]; pad: ConvPad };
const P1: ConvPad = [[0, 0], [1, 1], [1, 1], [0, 0]];
const CASES: Case[] = [
  { x: [2, 8, 8, 4], w: [3, 3, 4, 6], s: 1, pad: "same" },
  { x: [2, 8, 8, 4], w: [3, 3, 4, 6], s: 1, pad: 1 }, // ADM's conv3x3 (fused.conv2d, pad 1)
  { x: [2, 8, 8, 4], w: [3, 3, 4, 6], s: 2, pad: P1 }, // ADM's Downsample conv
  { x: [2, 9, 7, 3], w: [3, 3, 3, 5], s: 2, pad: "same" },
  { x: [2, 9, 7, 3], w: [3, 3, 3, 5], s: [2, 1], pad: "valid" },
  { x: [3, 8, 8, 4], w: [1, 1, 4, 6], s: 1, pad: 0 }, // skip connections
  { x: [2, 8, 8, 4], w: [1, 1, 4, 6], s: 2, pad: "valid" },
  { x: [2, 10, 10, 2], w: [5, 5, 2, 3], s: 1, pad: 2 },
  { x: [1, 7, 7, 2], w: [3, 3, 2, 3], s: 3, pad: [[0, 0], [0, 2], [2, 0], [0, 0]] },
  { x: [2, 8, 8, 1], w: [3, 3, 1, 8], s: 1, pad: 1 }, // grey input conv
  { x: [2, 8, 8, 8], w: [3, 3, 8, 1], s: 1, pad: 1 }, // output conv
];

function rand(shape: number[], seed: number): tf.Tensor {
  return tf.randomNormal(shape, 0, 1, "float32", seed);
}

/** max|a-b| / max|b|. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let d = 0, m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return d / m;
}

const label = (c: Case) => `x[${c.x}] w[${c.w}] s=${JSON.stringify(c.s)} pad=${JSON.stringify(c.pad)}`;
const read = (gs: tf.Tensor[]) => gs.map((g) => ({ shape: g.shape, data: g.dataSync() }));

describe("conv2d gradients from forward ops", function () {
  this.timeout(120000);
  after(async () => {
    uninstallTrainingKernels();
    await selectBackend("wasm");
  });

  it("convGeometry agrees with tf.conv2d's output shape", async () => {
    await selectBackend("cpu");
    for (const c of CASES) {
      const g = convGeometry(c.x[1], c.x[2], c.w[0], c.w[1], c.s, c.pad);
      const y = tf.conv2d(tf.zeros(c.x) as tf.Tensor4D, tf.zeros(c.w) as tf.Tensor4D, c.s, c.pad);
      assert.deepEqual([g.outHeight, g.outWidth], [y.shape[1], y.shape[2]], label(c));
      y.dispose();
    }
  });

  it("stock wasm has no Conv2DBackpropFilter kernel (the reason for this module)", async () => {
    uninstallTrainingKernels();
    await selectBackend("wasm");
    assert.equal(tf.getKernel("Conv2DBackpropFilter", "wasm"), undefined);
    assert.throws(() => tf.grad((w: tf.Tensor) => tf.sum(tf.conv2d(rand([1, 4, 4, 2], 1) as tf.Tensor4D, w as tf.Tensor4D, 1, 1)))(rand([3, 3, 2, 2], 2)), /Conv2DBackpropFilter/);
  });

  for (const installed of [false, true]) {
    it(`filter and input gradients on wasm match the cpu backend's native kernels (rel 1e-5)${installed ? ", as registered wasm kernels" : ", with tf ops"}`, async () => {
      for (const [i, c] of CASES.entries()) {
        uninstallTrainingKernels();
        await selectBackend("cpu");
        const inputs = () => {
          const x = rand(c.x, 10 + i) as tf.Tensor4D, w = rand(c.w, 20 + i) as tf.Tensor4D;
          return { x, w, dy: rand(tf.conv2d(x, w, c.s, c.pad).shape, 30 + i) as tf.Tensor4D };
        };
        const ref = tf.tidy(() => {
          const { x, w, dy } = inputs();
          return read([nativeConv2dFilterGrad(x, dy, c.w, c.s, c.pad), nativeConv2dInputGrad(c.x, dy, w, c.s, c.pad),
            conv2dFilterGrad(x, dy, c.w, c.s, c.pad), conv2dInputGrad(c.x, dy, w, c.s, c.pad)]);
        });
        assert.ok(relErr(ref[2].data, ref[0].data) < 1e-5, `dW with tf ops on cpu ${label(c)}`);
        assert.ok(relErr(ref[3].data, ref[1].data) < 1e-5, `dx with tf ops on cpu ${label(c)}`);
        if (installed) installTrainingKernels();
        await selectBackend("wasm");
        const got = tf.tidy(() => {
          const { x, w, dy } = inputs();
          return installed
            ? read([nativeConv2dFilterGrad(x, dy, c.w, c.s, c.pad), nativeConv2dInputGrad(c.x, dy, w, c.s, c.pad)])
            : read([conv2dFilterGrad(x, dy, c.w, c.s, c.pad), conv2dInputGrad(c.x, dy, w, c.s, c.pad)]);
        });
        assert.deepEqual(got[0].shape, c.w);
        assert.deepEqual(got[1].shape, c.x);
        assert.ok(relErr(got[0].data, ref[0].data) < 1e-5, `dW ${label(c)}: ${relErr(got[0].data, ref[0].data)}`);
        assert.ok(relErr(got[1].data, ref[1].data) < 1e-5, `dx ${label(c)}: ${relErr(got[1].data, ref[1].data)}`);
      }
    });
  }

  it("conv2dTrainable, tf.conv2d and tf.fused.conv2d (kernels installed) train on wasm like stock tf.conv2d on cpu", async () => {
    type Conv = (x: tf.Tensor4D, w: tf.Tensor4D, s: number, pad: ConvPad) => tf.Tensor4D;
    const stack = (conv: Conv) => (x: tf.Tensor, w1: tf.Tensor, w2: tf.Tensor) =>
      tf.sum(tf.square(conv(tf.relu(conv(x as tf.Tensor4D, w1 as tf.Tensor4D, 1, 1)), w2 as tf.Tensor4D, 2, P1)));
    const fused: Conv = (x, filter, strides, pad) => tf.fused.conv2d({ x, filter, strides, pad, bias: tf.fill([filter.shape[3]], 0.1) });
    const plainBias: Conv = (x, w, s, pad) => tf.add(tf.conv2d(x, w, s, pad), 0.1);
    const inputs = () => [rand([2, 8, 8, 3], 1), rand([3, 3, 3, 5], 2), rand([3, 3, 5, 4], 3)];
    uninstallTrainingKernels();
    await selectBackend("cpu");
    const ref = tf.tidy(() => read(tf.grads(stack(tf.conv2d))(inputs())));
    const refBias = tf.tidy(() => read(tf.grads(stack(plainBias))(inputs())));
    await selectBackend("wasm");
    const viaCustom = tf.tidy(() => read(tf.grads(stack(conv2dTrainable))(inputs())));
    installTrainingKernels();
    await selectBackend("wasm");
    const viaKernels = tf.tidy(() => read(tf.grads(stack(tf.conv2d))(inputs())));
    const viaFused = tf.tidy(() => read(tf.grads(stack(fused))(inputs())));
    for (let k = 0; k < 3; k++) {
      assert.ok(relErr(viaCustom[k].data, ref[k].data) < 1e-5, `customGrad input ${k}: ${relErr(viaCustom[k].data, ref[k].data)}`);
      assert.ok(relErr(viaKernels[k].data, ref[k].data) < 1e-5, `kernels input ${k}: ${relErr(viaKernels[k].data, ref[k].data)}`);
      assert.ok(relErr(viaFused[k].data, refBias[k].data) < 1e-5, `fused input ${k}: ${relErr(viaFused[k].data, refBias[k].data)}`);
    }
  });

  it("the matMul kernels give the stock results for every transpose combination, forward and gradients", async () => {
    const shapes: [number[], number[], boolean, boolean][] = [
      [[5, 3], [3, 4], false, false], [[3, 5], [3, 4], true, false], [[5, 3], [4, 3], false, true], [[3, 5], [4, 3], true, true],
      [[2, 5, 3], [2, 3, 4], false, false], [[2, 3, 5], [2, 4, 3], true, true], [[2, 3, 5], [1, 3, 4], true, false],
    ];
    for (const [sa, sb, ta, tb] of shapes) {
      const f = (a: tf.Tensor, b: tf.Tensor) => {
        const y = tf.matMul(a, b, ta, tb);
        return tf.sum(tf.mul(y, tf.randomNormal(y.shape, 0, 1, "float32", 5)));
      };
      const cols = tb ? sb[sb.length - 2] : sb[sb.length - 1];
      const fusedMM = (a: tf.Tensor, b: tf.Tensor) => tf.fused.matMul({ a, b, transposeA: ta, transposeB: tb, bias: tf.fill([cols], 0.5), activation: "relu" });
      const fusedF = (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(fusedMM(a, b), tf.randomNormal(fusedMM(a, b).shape, 0, 1, "float32", 6)));
      const run = () => {
        const ins = [rand(sa, 1), rand(sb, 2)];
        return [...read([tf.matMul(ins[0], ins[1], ta, tb)]), ...read(ins[0].shape[0] === ins[1].shape[0] || ins[0].rank === 2 ? tf.grads(f)(ins) : []),
          ...read([fusedMM(ins[0], ins[1])]),
          ...read(ins[0].rank === 2 ? tf.grads(fusedF)(ins) : [])];
      };
      uninstallTrainingKernels();
      await selectBackend("cpu");
      const ref = tf.tidy(run);
      installTrainingKernels();
      await selectBackend("wasm");
      const got = tf.tidy(run);
      assert.equal(got.length, ref.length);
      for (let k = 0; k < ref.length; k++) {
        assert.deepEqual(got[k].shape, ref[k].shape);
        assert.ok(relErr(got[k].data, ref[k].data) < 1e-5, `${sa} ${sb} ${ta} ${tb} output ${k}`);
      }
    }
  });

  it("frees every intermediate (no tensor or wasm memory leak over repeated gradients)", async () => {
    installTrainingKernels();
    await selectBackend("wasm");
    const x = rand([2, 8, 8, 4], 1), w = rand([3, 3, 4, 6], 2), m = rand([6, 5], 3);
    const step = () => tf.tidy(() => {
      const g = tf.grads((x, w, m) => tf.sum(tf.matMul(tf.reshape(tf.fused.conv2d({ x: x as tf.Tensor4D, filter: w as tf.Tensor4D, strides: 2, pad: P1 }), [-1, 6]), m)))([x, w, m]);
      return g.map((t) => t.dataSync());
    });
    step();
    const before = tf.memory();
    const idsBefore = tf.engine().backend.numDataIds();
    for (let i = 0; i < 5; i++) step();
    const after = tf.memory();
    assert.equal(tf.engine().backend.numDataIds(), idsBefore, "wasm data buffers leaked");
    assert.equal(after.numTensors, before.numTensors);
    assert.equal(after.numBytes, before.numBytes);
    assert.equal((after as unknown as { numDataBuffers: number }).numDataBuffers, (before as unknown as { numDataBuffers: number }).numDataBuffers);
    tf.dispose([x, w, m]);
  });
});

describe("nearest-neighbour upsampling gradient", () => {
  after(async () => {
    uninstallTrainingKernels();
    await selectBackend("wasm");
  });
  const up2 = (x: tf.Tensor4D) => tf.image.resizeNearestNeighbor(x, [x.shape[1] * 2, x.shape[2] * 2]);
  /** The same upsampling by stack + reshape, whose gradient does not involve the resize kernels. */
  const up2Stack = (x: tf.Tensor4D) => {
    const [n, h, w, c] = x.shape;
    const wide = tf.reshape(tf.stack([x, x], 3), [n, h, 2 * w, c]);
    return tf.reshape(tf.stack([wide, wide], 2), [n, 2 * h, 2 * w, c]);
  };
  const gradOf = (f: (x: tf.Tensor4D) => tf.Tensor) =>
    tf.tidy(() => tf.grad((x: tf.Tensor) => tf.sum(tf.mul(f(x as tf.Tensor4D), rand([3, 8, 10, 2], 2))))(rand([3, 4, 5, 2], 1)).dataSync());

  it("the stock cpu gradient is wrong for batch > 1; with the fix it is right on cpu and wasm", async () => {
    uninstallTrainingKernels();
    await selectBackend("cpu");
    const ref = gradOf(up2Stack);
    assert.ok(relErr(gradOf(up2), ref) > 0.1, "the tfjs cpu ResizeNearestNeighborGrad bug seems fixed: the override can go");
    installTrainingKernels();
    assert.ok(relErr(gradOf(up2), ref) < 1e-6);
    await selectBackend("wasm");
    assert.ok(relErr(gradOf(up2), ref) < 1e-6);
  });
});

describe("squaredDifference gradient with broadcasting", () => {
  after(async () => {
    uninstallTrainingKernels();
    await selectBackend("wasm");
  });
  const shapes: [number[], number[]][] = [[[2, 6, 4, 1], [2, 1, 4, 1]], [[3, 4], [4]], [[2, 1, 3], [2, 5, 1]], [[3, 4], [3, 4]]];
  const grads = (f: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor, sa: number[], sb: number[]) =>
    read(tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(f(a, b), rand(tf.broadcastTo(a, f(a, b).shape).shape, 3))))([rand(sa, 1), rand(sb, 2)]));

  it("the stock gradient fails on broadcast inputs; the fix equals the gradient of (a - b)^2", async () => {
    uninstallTrainingKernels();
    await selectBackend("cpu");
    assert.throws(() => grads(tf.squaredDifference, [2, 6, 4, 1], [2, 1, 4, 1]), /does not match the shape of the input/);
    for (const backend of ["cpu", "wasm"]) {
      installTrainingKernels();
      await selectBackend(backend);
      for (const [sa, sb] of shapes) {
        const ref = tf.tidy(() => grads((a, b) => tf.square(tf.sub(a, b)), sa, sb));
        const got = tf.tidy(() => grads(tf.squaredDifference, sa, sb));
        for (let k = 0; k < 2; k++) {
          assert.deepEqual(got[k].shape, ref[k].shape);
          assert.ok(relErr(got[k].data, ref[k].data) < 1e-6, `${backend} ${sa} ${sb} input ${k}`);
        }
      }
    }
  });
});
