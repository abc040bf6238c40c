import { strict as assert } from "assert";
import * as tf from "@tensorflow/tfjs";
import { planBackend, probeBackends, parseBackendName, selectBackend, Probe, BACKEND_ENV } from "../lib/model/backend";

function fakeProbe(opts: { gpuPkg?: boolean; gpuBinding?: boolean; gpu?: boolean; nodePkg?: boolean; nodeBinding?: boolean }): Probe {
  return {
    resolvePackage: (name) =>
      name.endsWith("tfjs-node-gpu") ? (opts.gpuPkg ? "/fake/gpu" : null) : name.endsWith("tfjs-node") ? (opts.nodePkg ? "/fake/node" : null) : null,
    fileExists: (p) => (p.startsWith("/fake/gpu") ? !!opts.gpuBinding : p.startsWith("/fake/node") ? !!opts.nodeBinding : false),
    gpuVisible: () => ({ visible: !!opts.gpu, reason: opts.gpu ? "fake GPU" : "no fake GPU" }),
  };
}

describe("backend choice", () => {
  it("prefers tfjs-node-gpu when its binding is present and a GPU is visible", () => {
    const c = probeBackends(fakeProbe({ gpuPkg: true, gpuBinding: true, gpu: true, nodePkg: true, nodeBinding: true }));
    assert.equal(planBackend(c).name, "tensorflow-gpu");
  });

  it("skips tfjs-node-gpu without a GPU and takes tfjs-node", () => {
    const c = probeBackends(fakeProbe({ gpuPkg: true, gpuBinding: true, gpu: false, nodePkg: true, nodeBinding: true }));
    const plan = planBackend(c);
    assert.equal(plan.name, "tensorflow");
    assert.match(plan.log[0], /tensorflow-gpu: skipped — .*no fake GPU/);
  });

  it("falls back to wasm when native packages are absent or lack their binding", () => {
    const c = probeBackends(fakeProbe({ gpuPkg: true, gpuBinding: false, gpu: true, nodePkg: false }));
    const plan = planBackend(c);
    assert.equal(plan.name, "wasm");
    assert.match(plan.log[0], /binding is missing/);
    assert.match(plan.log[1], /tfjs-node is not installed/);
    assert.match(plan.log[2], /^wasm: taken/);
  });

  it("honours a forced choice and refuses an unavailable one with the reason", () => {
    const c = probeBackends(fakeProbe({}));
    assert.equal(planBackend(c, "cpu").name, "cpu");
    assert.equal(planBackend(c, "cpu").forced, true);
    assert.throws(() => planBackend(c, "tfjs-node"), /"tensorflow" was requested but is unavailable: @tensorflow\/tfjs-node is not installed/);
  });

  it("rejects unknown names, listing the accepted ones", () => {
    assert.throws(() => parseBackendName("webgpu"), /unknown backend "webgpu": expected one of .*wasm/);
    assert.equal(parseBackendName("@tensorflow/tfjs-node-gpu"), "tensorflow-gpu");
  });

  it("activates the backend in tfjs, from the argument or the environment variable", async () => {
    const noNative = fakeProbe({});
    let choice = await selectBackend("cpu", noNative);
    assert.equal(choice.name, "cpu");
    assert.equal(tf.getBackend(), "cpu");
    const saved = process.env[BACKEND_ENV];
    process.env[BACKEND_ENV] = "wasm";
    try {
      choice = await selectBackend(undefined, noNative);
      assert.equal(tf.getBackend(), "wasm");
      assert.equal(choice.forced, true);
    } finally {
      if (saved === undefined) delete process.env[BACKEND_ENV];
      else process.env[BACKEND_ENV] = saved;
    }
    choice = await selectBackend(undefined, noNative);
    assert.equal(choice.name, "wasm");
    assert.equal(choice.forced, false);
  });
});
