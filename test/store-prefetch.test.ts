import { strict as assert } from "assert";
import { extractToStore, partPieces } from "../lib/features/store/extract";
import { FeatureExtractor, FeatureRequest, modelExtractor } from "../lib/features/store/extractor";
import { ImageSource, memorySource } from "../lib/features/store/images";
import { extractFeatures, FeatureBatch, ImageArray } from "../lib/features/extract";
import { FeatureSet } from "../lib/features/store/store";
import { UNet } from "../lib/model/unet/model";
import { createUNetConfig } from "../lib/model/unet/config";
import { TINY_ADM_FLAGS } from "../lib/data/synthetic-tree";
import { selectBackend } from "../lib/model/backend";
import { Rng } from "../lib/rng";
import { tempDir, removeTempDir } from "./helpers/tmp";

const tick = () => new Promise((r) => setTimeout(r, 5));

/**
 * A model stand-in taking `rows` images per call: each row is [first pixel of the image, block, t], so a
 * row shows which image it came from. Calls and their start/end are logged with the source's loads.
 */
class PieceExtractor implements FeatureExtractor {
  readonly modelId = "fake:pieces";
  calls: string[][] = [];
  prepared = 0;
  constructor(private readonly rows: number, private readonly events: string[]) {}
  engine() {
    return { name: "fake", version: "1" };
  }
  layout(req: { blocks: (number | string)[] }) {
    return req.blocks.map((b) => ({ block: `block.${b}`, number: Number(b), dim: 3, rowShape: [3, 1, 1] }));
  }
  rowsPerCall() {
    return this.rows;
  }
  async prepare() {
    this.prepared++;
  }
  async extract(images: ImageArray, ids: string[], req: FeatureRequest): Promise<FeatureBatch> {
    const [n, h, w, c] = images.shape;
    assert.ok(n <= this.rows, `${n} images in one call, rowsPerCall is ${this.rows}`);
    this.events.push(`extract ${ids[0]} start`);
    this.calls.push(ids);
    await tick();
    await tick();
    const matrices = [];
    for (const b of req.blocks) {
      for (const t of req.timesteps) {
        const data = new Float32Array(n * 3);
        for (let i = 0; i < n; i++) data.set([images.data[i * h * w * c], Number(b), t], i * 3);
        matrices.push({ block: `block.${b}`, number: Number(b), t, n, dim: 3, data, mapShape: [1, 1, 3] as [number, number, number], rowShape: [3, 1, 1] as [number, number, number] });
      }
    }
    this.events.push(`extract ${ids[0]} end`);
    return { n, ids, matrices };
  }
  async close() {}
}

/** n images of 2x2x1 whose pixels are the image's index; loads are logged, slow, and may fail from row `failFrom`. */
function loggedSource(n: number, events: string[], failFrom = Infinity): ImageSource {
  const data = new Float32Array(n * 4);
  for (let i = 0; i < n; i++) data.fill(i, i * 4, i * 4 + 4);
  const src = memorySource({ dataset: "fake", split: "train", preprocessing: "none", images: { data, shape: [n, 2, 2, 1] }, ids: Array.from({ length: n }, (_, i) => `img${i}`), labels: Int32Array.from({ length: n }, (_, i) => i % 3) });
  return {
    ...src,
    async load(s, e) {
      events.push(`load img${s} start`);
      await tick();
      if (e > failFrom) throw new Error(`img${failFrom}.JPEG: cannot decode image`);
      events.push(`load img${s} end`);
      return src.load(s, e);
    },
  };
}

const REQ = { blocks: [3, 7], timesteps: [5, 9], pool: { kind: "global" as const }, noise: { policy: "seeded" as const, seed: 0 } };

describe("feature store: pieces and prefetch", function () {
  let dir: string;
  beforeEach(() => (dir = tempDir("store-prefetch")));
  afterEach(() => removeTempDir(dir));

  it("partPieces: pieces of at most `rows`, in order, never across a part's end", () => {
    const range = (p: number): [number, number] => [4 * p, Math.min(10, 4 * p + 4)];
    const pieces = partPieces([0, 2], range, 3).map((x) => [x.part, x.start, x.end]);
    assert.deepEqual(pieces, [[0, 0, 3], [0, 3, 4], [2, 8, 10]]);
    assert.throws(() => partPieces([0], range, 0), /rows per call must be a positive integer, got 0/);
  });

  it("calls the model in pieces of rowsPerCall, loads the next piece while the current one runs, and keeps row order", async () => {
    const events: string[] = [];
    const fake = new PieceExtractor(3, events);
    const r = await extractToStore({ root: dir, extractor: fake, images: loggedSource(10, events), ...REQ, partRows: 4, progress: false });
    assert.equal(fake.prepared, 1);
    assert.deepEqual(fake.calls, [["img0", "img1", "img2"], ["img3"], ["img4", "img5", "img6"], ["img7"], ["img8", "img9"]]);
    // every piece after the first was being loaded before the model finished the piece before it
    for (const [cur, next] of [["img0", "img3"], ["img3", "img4"], ["img4", "img7"], ["img7", "img8"]]) {
      assert.ok(events.indexOf(`load ${next} start`) < events.indexOf(`extract ${cur} end`), `${next} loaded after ${cur} ran: ${events.join(", ")}`);
    }
    assert.equal(r.computed, 3);
    assert.equal(r.sets.length, 4);
    for (const set of r.sets) {
      const m = set.matrix();
      for (let i = 0; i < 10; i++) assert.deepEqual(Array.from(m.subarray(3 * i, 3 * i + 3)), [i, set.key.block, set.key.t], `${set.key.module}@${set.key.t} row ${i}`);
    }
    assert.ok(r.seconds.extract > 0 && r.seconds.waitImages >= 0 && r.seconds.write >= 0);
  });

  it("stops between parts with the prefetched load abandoned (even a failing one), and a rerun computes only the rest", async () => {
    const events: string[] = [];
    let parts = 0;
    const fake = new PieceExtractor(2, events);
    const base = { root: dir, extractor: fake, ...REQ, partRows: 4, progress: false as const };
    // the load of img4.. fails; stopping after part 0 must not surface it (nor leave an unhandled rejection)
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on("unhandledRejection", onUnhandled);
    try {
      const first = await extractToStore({ ...base, images: loggedSource(10, events, 4), shouldStop: () => parts++ >= 1 });
      await tick();
      assert.equal(first.stopped, true);
      assert.equal(first.computed, 1);
      assert.ok(events.includes("load img4 start"), "the next part's first piece was prefetched");
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
    assert.deepEqual(unhandled, []);
    fake.calls = [];
    const second = await extractToStore({ ...base, images: loggedSource(10, []) });
    assert.equal(second.computed, 2);
    assert.equal(second.skipped, 1);
    assert.deepEqual(fake.calls, [["img4", "img5"], ["img6", "img7"], ["img8", "img9"]]);
    for (const set of second.sets) {
      const m = FeatureSet.open(set.dir).matrix();
      for (let i = 0; i < 10; i++) assert.equal(m[3 * i], i);
    }
    // a load that fails while running (not abandoned) is an error naming the file
    const other = tempDir("store-prefetch-fail");
    try {
      await assert.rejects(extractToStore({ ...base, root: other, images: loggedSource(10, [], 6) }), /img6\.JPEG: cannot decode image/);
    } finally {
      removeTempDir(other);
    }
  });

  it("a real U-Net in pieces of 3 across parts of 4 stores the rows of one call on all the images", async function () {
    this.timeout(120000);
    await selectBackend("cpu");
    const config = createUNetConfig(TINY_ADM_FLAGS);
    const unet = UNet.random(config, 0);
    try {
      const n = 7;
      const data = new Rng(3).fillNormal(new Float32Array(n * 32 * 32 * 3)).map((v) => Math.max(-1, Math.min(1, v / 2)));
      const ids = Array.from({ length: n }, (_, i) => `x${i}`);
      const images = memorySource({ dataset: "noise", split: "train", preprocessing: "none", images: { data, shape: [n, 32, 32, 3] }, ids });
      const ex = modelExtractor(unet, "tiny:random0", { batchSize: 3 });
      const req = { blocks: [2, 6], timesteps: [10], pool: { kind: "adaptive" as const, size: 2 }, noise: { policy: "seeded" as const, seed: 4 } };
      assert.equal(ex.rowsPerCall!(req), 3);
      const r = await extractToStore({ root: dir, extractor: ex, images, ...req, partRows: 4, progress: false });
      const ref = await extractFeatures(unet, { data, shape: [n, 32, 32, 3] }, { ...req, ids });
      for (const set of r.sets) {
        const want = ref.matrices.find((m) => m.block === set.key.module)!;
        const got = set.matrix();
        assert.equal(got.length, want.data.length);
        for (let i = 0; i < got.length; i++) assert.ok(Math.abs(got[i] - want.data[i]) <= 1e-6 * (1 + Math.abs(want.data[i])), `${set.key.module} value ${i}: ${got[i]} vs ${want.data[i]}`);
      }
    } finally {
      unet.dispose();
    }
  });
});
