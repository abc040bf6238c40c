import { strict as assert } from "assert";
import * as path from "path";
import { WorkerPool, TaskError, Job } from "../lib/features/workers/pool";
import type { EchoInit, EchoTask, EchoResult } from "../lib/features/workers/echo-worker";
import * as fs from "fs";
import * as os from "os";
import { FeaturePool, PoolExtractOptions, extractFeaturesParallel } from "../lib/features/workers/feature-pool";
import { sourceConfig } from "../lib/model/model-source";
import { extractFeatures, concatBatches, featureMatrix, FeatureBatch } from "../lib/features/extract";
import { selectBackend } from "../lib/model/backend";
import { UNet } from "../lib/model/unet/model";
import { NoiseSchedule } from "../lib/model/diffusion/schedule";
import { TINY_FLAGS, testImages } from "./helpers/models";


function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

const ECHO = path.join(__dirname, "..", "lib", "features", "workers", "echo-worker.ts");

function job(i: number, extra: Partial<EchoTask> = {}): Job<EchoTask> {
  const values = Float32Array.from({ length: 4 }, (_, k) => i * 10 + k);
  return { task: { values, ...extra }, transfer: [values.buffer as ArrayBuffer], label: `batch ${i}` };
}

describe("worker pool (echo worker)", function () {
  this.timeout(60000);
  let pool: WorkerPool<EchoTask, EchoResult> | null = null;
  afterEach(async () => {
    await pool?.close();
    pool = null;
  });

  it("starts TypeScript workers through tsx and reports their setup info", async () => {
    const infos: unknown[] = [];
    pool = await WorkerPool.start<EchoTask, EchoResult>({ entry: ECHO, size: 2, init: { setupMs: 20 } satisfies EchoInit, onReady: (_, info) => infos.push(info) });
    assert.equal(pool.size, 2);
    assert.equal(infos.length, 2);
    for (const info of pool.infos as { typescript: boolean; threadId: number }[]) assert.equal(info.typescript, true);
    const r = await pool.run(job(3));
    assert.equal(r.sum, 30 + 31 + 32 + 33);
    assert.deepEqual(Array.from(r.values), [60, 62, 64, 66]);
  });

  it("map yields in source order, uses every worker, and transfers input buffers", async () => {
    pool = await WorkerPool.start<EchoTask, EchoResult>({ entry: ECHO, size: 2 });
    const jobs = Array.from({ length: 8 }, (_, i) => job(i, { delayMs: (8 - i) * 15 }));
    const out: EchoResult[] = [];
    for await (const r of pool.map(jobs)) out.push(r);
    assert.deepEqual(out.map((r) => r.sum), jobs.map((_, i) => 4 * i * 10 + 6));
    assert.deepEqual(new Set(out.map((r) => r.worker)), new Set([0, 1]));
    // The input buffers were moved to the workers, not copied.
    assert.equal(jobs[0].task.values.length, 0);
  });

  it("runs workers in parallel", async () => {
    pool = await WorkerPool.start<EchoTask, EchoResult>({ entry: ECHO, size: 2 });
    const out: EchoResult[] = [];
    for await (const r of pool.map([job(0, { delayMs: 300 }), job(1, { delayMs: 300 })])) out.push(r);
    assert.notEqual(out[0].threadId, out[1].threadId);
    // The two tasks overlapped in time.
    assert.ok(out[0].startedAt < out[1].endedAt && out[1].startedAt < out[0].endedAt, JSON.stringify(out.map((r) => [r.startedAt, r.endedAt])));
  });

  it("backpressure: never pulls more than `window` jobs ahead of the consumer", async () => {
    pool = await WorkerPool.start<EchoTask, EchoResult>({ entry: ECHO, size: 2 });
    let pulled = 0;
    let consumed = 0;
    let maxAhead = 0;
    async function* source() {
      for (let i = 0; i < 12; i++) {
        pulled++;
        maxAhead = Math.max(maxAhead, pulled - consumed);
        yield job(i, { delayMs: 5 });
      }
    }
    for await (const r of pool.map(source(), { window: 3 })) {
      consumed++;
      assert.equal(r.n, 4);
      await new Promise((res) => setTimeout(res, 20)); // slow consumer
    }
    assert.equal(consumed, 12);
    assert.ok(maxAhead <= 3, `pulled ${maxAhead} jobs ahead of the consumer with window 3`);
  });

  it("a failing task rejects naming its label; earlier results were yielded, onResult saw every finished task", async () => {
    pool = await WorkerPool.start<EchoTask, EchoResult>({ entry: ECHO, size: 2 });
    const jobs = [job(0), job(1, { delayMs: 50 }), job(2, { delayMs: 100, fail: "image 17 has 4 channels" }), job(3), job(4), job(5), job(6), job(7)];
    const yielded: number[] = [];
    const finished = new Set<number>();
    let pulled = 0;
    function* source() {
      for (const j of jobs) {
        pulled++;
        yield j;
      }
    }
    await assert.rejects(
      (async () => {
        for await (const r of pool!.map(source(), { window: 4, onResult: (_, i) => finished.add(i) })) yielded.push(r.sum);
      })(),
      (e: unknown) => {
        assert.ok(e instanceof TaskError);
        assert.match(e.message, /^batch 2 failed in echo-worker [01]: image 17 has 4 channels$/);
        assert.equal(e.label, "batch 2");
        return true;
      },
    );
    assert.deepEqual(yielded, [6, 46]);
    // Job 3 was running beside the failing job 2: it finished and was reported, not lost.
    assert.ok(finished.has(0) && finished.has(1) && finished.has(3), `finished: ${[...finished]}`);
    // Window 4: once jobs 0 and 1 were yielded, at most jobs 2..5 were taken; the source stopped there.
    assert.ok(pulled <= 6, `pulled ${pulled} jobs`);
    assert.ok(!finished.has(6) && !finished.has(7) && !finished.has(2));
    // The pool is still usable afterwards.
    assert.equal((await pool.run(job(1))).sum, 46);
  });

  it("a crashed worker rejects its task by label; the other worker carries on", async () => {
    pool = await WorkerPool.start<EchoTask, EchoResult>({ entry: ECHO, size: 2 });
    await assert.rejects(pool.run({ ...job(9, { crash: 7 }) }), /batch 9 lost: echo-worker [01] exited with code 7/);
    assert.equal(pool.size, 1);
    const out: number[] = [];
    for await (const r of pool.map([job(0), job(1), job(2)])) out.push(r.sum);
    assert.deepEqual(out, [6, 46, 86]);
  });

  it("setup failure rejects start() with the worker's message and leaves no worker running", async () => {
    await assert.rejects(
      WorkerPool.start<EchoTask, EchoResult>({ entry: ECHO, size: 2, init: { failSetup: "checkpoint /x/model.pt not found" } }),
      /echo-worker [01] failed to start: checkpoint \/x\/model.pt not found/,
    );
  });

  it("a consumer that stops early cancels queued work and the pool closes cleanly", async () => {
    pool = await WorkerPool.start<EchoTask, EchoResult>({ entry: ECHO, size: 1 });
    let seen = 0;
    for await (const _ of pool.map(Array.from({ length: 10 }, (_, i) => job(i, { delayMs: 10 })))) {
      if (++seen === 2) break;
    }
    assert.equal(seen, 2);
    await pool.close();
    await assert.rejects(pool.run(job(0)), /closed/);
  });

  it("rejects a missing entry and a bad size", async () => {
    await assert.rejects(WorkerPool.start({ entry: "/nonexistent/worker.ts" }), /worker entry \/nonexistent\/worker.ts does not exist/);
    await assert.rejects(WorkerPool.start({ entry: ECHO, size: 0 }), /positive integer, got 0/);
  });
});

describe("feature pool (tiny U-Net, 2 wasm workers)", function () {
  this.timeout(180000);
  const source = { config: TINY_FLAGS, seed: 5 };
  const opts: PoolExtractOptions = { blocks: [4, "output_blocks.1"], timesteps: [30, 200], pool: { kind: "adaptive", size: 2 }, schedule: NoiseSchedule.named("linear", 1000), progress: false };
  let pool: FeaturePool;
  let reference: FeatureBatch;
  const batches = () => Array.from({ length: 5 }, (_, b) => ({ images: testImages(3, 32, b) }));

  before(async () => {
    pool = await FeaturePool.start({ model: source, workers: 2, progress: false });
    // The same features in this thread, one batch at a time (ids = running index).
    await selectBackend("wasm");
    const model = UNet.random(sourceConfig(source), 5);
    const parts: FeatureBatch[] = [];
    let offset = 0;
    for (const b of batches()) {
      parts.push(await extractFeatures(model, b.images, { ...opts, indexOffset: offset }));
      offset += 3;
    }
    reference = concatBatches(parts);
    model.dispose();
  });
  after(async () => pool?.close());

  it("workers report the wasm backend; results come in input order and equal single-thread extraction", async () => {
    assert.equal(pool.workers, 2);
    for (const info of pool.infos) assert.equal(info.backend, "wasm");
    const seen: string[][] = [];
    const out: FeatureBatch[] = [];
    async function* stream() {
      for (const b of batches()) yield b; // an async source
    }
    for await (const b of pool.extract(stream(), opts)) {
      seen.push(b.ids);
      out.push(b);
    }
    assert.deepEqual(seen, [["0", "1", "2"], ["3", "4", "5"], ["6", "7", "8"], ["9", "10", "11"], ["12", "13", "14"]]);
    const all = concatBatches(out);
    for (const m of all.matrices) assert.equal(maxAbsDiff(m.data, featureMatrix(reference, m.block, m.t).data), 0, `${m.block}@${m.t}`);
  });

  it("a bad image rejects naming its batch and image; earlier batches arrive", async () => {
    const input = batches().map((b, i) => ({ ...b, ids: [0, 1, 2].map((k) => `img${3 * i + k}`) }));
    input[2].images.data[1 * 32 * 32 * 3 + 5] = 7; // image img7
    const got: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const b of pool.extract(input, opts)) got.push(...b.ids);
      })(),
      (e: unknown) => {
        assert.ok(e instanceof TaskError);
        assert.match(e.message, /^batch 2 \(images 6-8, ids img6..img8\) failed in feature worker [01]: image 1 \(id "img7"\): value 7 at position 5 is outside \[-1, 1\]/);
        return true;
      },
    );
    assert.deepEqual(got, ["img0", "img1", "img2", "img3", "img4", "img5"]);
  });

  it("an on-demand pool starts no worker for an empty input, and starts them at the first batch", async () => {
    const lazy = FeaturePool.onDemand({ model: source, workers: 1, progress: false });
    try {
      const none = await lazy.extractAll([], opts);
      assert.equal(none.n, 0);
      assert.equal(lazy.started, false);
      assert.equal(lazy.workers, 0);
      const more = await lazy.extractAll(batches(), opts);
      assert.equal(lazy.started, true);
      assert.equal(lazy.workers, 1);
      for (const m of more.matrices) assert.equal(maxAbsDiff(m.data, featureMatrix(reference, m.block, m.t).data), 0);
    } finally {
      await lazy.close();
    }
  });

  it("an on-demand pool reports a start-up failure from extract", async () => {
    const lazy = FeaturePool.onDemand({ model: { config: TINY_FLAGS, checkpoint: "/nonexistent/model.pt" }, workers: 1, progress: false });
    try {
      await assert.rejects(lazy.extractAll(batches().slice(0, 1), opts), /feature worker 0 failed to start: checkpoint \/nonexistent\/model.pt does not exist/);
    } finally {
      await lazy.close();
    }
  });

  it("extractFeaturesParallel starts, runs and terminates its own pool", async () => {
    const r = await extractFeaturesParallel(source, batches().slice(0, 2), { ...opts, workers: 2 });
    assert.equal(r.n, 6);
    for (const m of r.matrices) assert.equal(maxAbsDiff(m.data, featureMatrix(reference, m.block, m.t).data.subarray(0, 6 * m.dim)), 0);
  });

  it("a missing checkpoint fails start-up with the path", async () => {
    await assert.rejects(FeaturePool.start({ model: { config: TINY_FLAGS, checkpoint: "/nonexistent/model.pt" }, workers: 1, progress: false }), /feature worker 0 failed to start: checkpoint \/nonexistent\/model.pt does not exist/);
  });
});
