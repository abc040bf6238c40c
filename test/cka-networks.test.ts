/**
 * Network rows for CKA (lib/metrics/cka/network-rows) on both engines of lib/model/nets/net-engine (ONNX Runtime
 * and tfjs): the streamed rows equal a direct tfjs forward pass of the whole set pooled by a brute-force adaptive
 * average pool written here (PyTorch's bin formula, float64); the two engines' rows agree to 1e-5; on the
 * PyTorch reference folders (../shared/fixtures/torchvision) the rows equal PyTorch's layer outputs pooled the
 * same brute-force way; the ViT token grid is laid out as conv_proj's map (checked with the position embedding
 * zeroed, where the two must agree); two streams zipped over the same batches stay in step (and a stream out of
 * step is caught); the tiny random-weight stand-ins of notebook 07's smoke run load through the checkpoint loader
 * with their values intact; and the layer choice gives the paper's counts (19 for ResNet-50, 14 for ViT-B/16).
 */
import { strict as assert } from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import sharp from "sharp";
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../lib/model/backend";
import { loadStateDict } from "../lib/model/checkpoint/index";
import type { StateDict, TensorEntry } from "../lib/model/checkpoint/state-dict";
import { zipStreams } from "../lib/metrics/cka/zip";
import { ckaLayerChoice, ckaNetworkLayers, FileBatch, netLayerNames, networkBatchRows, networkLayerDims, networkRows, NetworkRowsOptions, sameImages } from "../lib/metrics/cka/network-rows";
import { torchvisionBatch } from "../lib/data/torchvision-transform";
import { configFromManifest, loadNet, netFromStateDict, TorchvisionNet } from "../lib/model/nets/load";
import { createNetEngine, NetEngine } from "../lib/model/nets/net-engine";
import { npyToFloat32, readNpy } from "../lib/model/npy";
import { randomNetTensors, TINY_NETS, writeRandomNet } from "../lib/model/nets/random-weights";
import { RESNET_PRESETS, resnetLayers } from "../lib/model/nets/resnet";
import { VIT_PRESETS, vitLayers, VisionTransformer } from "../lib/model/nets/vit";
import { sharedOrSkip } from "./helpers/shared";
import { tempDir, removeTempDir } from "./helpers/tmp";

const TRANSFORM = { resize: 40, crop: 32 };
const ENGINES = ["tfjs", "ort"] as const;

/** Brute-force adaptive average pooling of one [C, H, W] map (PyTorch: start floor(i H / p), end ceil((i + 1) H / p)). */
function refPool(map: ArrayLike<number>, c: number, h: number, w: number, p: number): number[] {
  const out: number[] = [];
  for (let ch = 0; ch < c; ch++) {
    for (let i = 0; i < p; i++) {
      for (let j = 0; j < p; j++) {
        const y0 = Math.floor((i * h) / p), y1 = Math.ceil(((i + 1) * h) / p);
        const x0 = Math.floor((j * w) / p), x1 = Math.ceil(((j + 1) * w) / p);
        let s = 0;
        for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) s += map[ch * h * w + y * w + x];
        out.push(s / ((y1 - y0) * (x1 - x0)));
      }
    }
  }
  return out;
}

/** Reference rows of one layer output: maps pooled, tokens' patch grid [d, g, g] pooled (token 1 + y g + x at (y, x)), vectors as is. */
function refRows(t: { data: Float32Array; shape: number[] }, p: number): number[][] {
  const [n] = t.shape;
  const rows: number[][] = [];
  for (let i = 0; i < n; i++) {
    if (t.shape.length === 4) {
      const [, c, h, w] = t.shape;
      rows.push(refPool(t.data.subarray(i * c * h * w, (i + 1) * c * h * w), c, h, w, p));
    } else if (t.shape.length === 3) {
      const [, seq, d] = t.shape;
      const g = Math.sqrt(seq - 1);
      const map = new Float64Array(d * g * g);
      for (let y = 0; y < g; y++) for (let x = 0; x < g; x++) for (let c = 0; c < d; c++) map[c * g * g + y * g + x] = t.data[(i * seq + 1 + y * g + x) * d + c];
      rows.push(refPool(map, d, g, g, p));
    } else {
      const d = t.shape[1];
      rows.push(Array.from(t.data.subarray(i * d, (i + 1) * d)));
    }
  }
  return rows;
}

/** Every layer's output for all files at once (no stopping early), as plain arrays. */
async function directOutputs(net: TorchvisionNet, files: (string | Buffer)[], layers: string[]): Promise<Map<string, { data: Float32Array; shape: number[] }>> {
  const x = await torchvisionBatch(files, TRANSFORM);
  const input = tf.tensor4d(x.data, x.shape);
  const outs = net.forward(input, { layers, stopEarly: false });
  const res = new Map<string, { data: Float32Array; shape: number[] }>();
  for (const [k, v] of outs) {
    res.set(k, { data: (await v.data()) as Float32Array, shape: v.shape });
    v.dispose();
  }
  input.dispose();
  return res;
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string, tol = 1e-5): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  for (let i = 0; i < expected.length; i++) {
    if (!(Math.abs(actual[i] - expected[i]) <= tol * Math.max(1, scale))) assert.fail(`${what}: value ${i} is ${actual[i]}, expected ${expected[i]}`);
  }
}

function* batchesOf(ids: string[], files: (string | Buffer)[], size: number): Generator<FileBatch> {
  for (let i = 0; i < ids.length; i += size) yield { ids: ids.slice(i, i + size), files: files.slice(i, i + size) };
}

/** max |a - b| / max |b| (the engines' and the reference check's measure). */
function relDiff(a: ArrayLike<number>, b: ArrayLike<number>, what: string): number {
  assert.equal(a.length, b.length, `${what}: length`);
  let d = 0, m = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return d / m;
}

describe("network rows for CKA (lib/metrics/cka/network-rows)", function () {
  this.timeout(300000);
  let dir: string;
  let cache: string;
  let resnet: TorchvisionNet;
  let vit: VisionTransformer;
  /** The tiny stand-ins on each engine, every layer returned. */
  const engines = new Map<string, NetEngine>();
  const engineOf = (family: "resnet" | "vit", engine: string) => engines.get(`${family}/${engine}`)!;
  let ids: string[];
  let files: (string | Buffer)[];

  before(async () => {
    await selectBackend("wasm");
    dir = tempDir("cka-networks");
    cache = path.join(dir, "onnx");
    await writeRandomNet(path.join(dir, "resnet.pt"), TINY_NETS.resnet, 11);
    await writeRandomNet(path.join(dir, "vit.pt"), TINY_NETS.vit, 12);
    resnet = await loadNet(path.join(dir, "resnet.pt"));
    vit = (await loadNet(path.join(dir, "vit.pt"), { numHeads: 2 })) as VisionTransformer;
    for (const family of ["resnet", "vit"] as const) {
      for (const engine of ENGINES) {
        const { engine: e } = await createNetEngine(path.join(dir, `${family}.pt`), { engine, config: TINY_NETS[family], cacheRoot: cache });
        assert.equal(e.name, engine);
        engines.set(`${family}/${engine}`, e);
      }
    }
    // Five images of different sizes and kinds: RGB and grey PNGs in memory, one RGB JPEG on disk.
    const rng = (k: number) => (Math.sin(k * 12.9898) * 43758.5453) % 1;
    const img = async (w: number, h: number, ch: 1 | 3, seed: number) => {
      const raw = Buffer.alloc(w * h * ch);
      for (let i = 0; i < raw.length; i++) raw[i] = Math.floor(Math.abs(rng(i + seed * 1000)) * 256);
      return sharp(raw, { raw: { width: w, height: h, channels: ch } }).png().toBuffer();
    };
    const jpeg = path.join(dir, "c.jpg");
    await sharp(await img(45, 38, 3, 3)).jpeg({ quality: 90 }).toFile(jpeg);
    files = [await img(40, 48, 3, 1), await img(32, 32, 1, 2), jpeg, await img(60, 41, 3, 4), await img(36, 50, 1, 5)];
    ids = files.map((_, i) => `img${i}`);
  });

  after(async () => {
    resnet?.dispose();
    vit?.dispose();
    for (const e of engines.values()) await e.dispose();
    removeTempDir(dir);
  });

  it("the smoke stand-ins load from their torch.save files with the written values and configurations", async () => {
    for (const [name, cfg, seed, opts] of [["resnet", TINY_NETS.resnet, 11, {}], ["vit", TINY_NETS.vit, 12, { numHeads: 2 }]] as const) {
      const file = path.join(dir, `${name}.pt`);
      const sd = await loadStateDict(file);
      const want = randomNetTensors(cfg, seed);
      assert.deepEqual([...sd.keys()], [...want.keys()]);
      for (const [k, t] of want) {
        assert.deepEqual(sd.get(k)!.shape, t.shape, k);
        assert.deepEqual(await sd.get(k)!.readFloat32(), t.data, k);
      }
      const net = await loadNet(file, opts);
      assert.deepEqual(net.config, cfg.config);
      assert.deepEqual(netLayerNames(cfg), net.layers());
      net.dispose();
    }
    // Seeds give other weights; BatchNorm variances are positive.
    const a = randomNetTensors(TINY_NETS.resnet, 1).get("layer1.0.conv2.weight")!.data;
    const b = randomNetTensors(TINY_NETS.resnet, 2).get("layer1.0.conv2.weight")!.data;
    assert.notDeepEqual(a, b);
    for (const [k, t] of randomNetTensors(TINY_NETS.resnet, 1)) if (k.endsWith("running_var")) assert.ok(t.data.every((v) => v > 0), k);
  });

  it("the layer choice has the paper's counts: ResNet-50 19, ViT-B/16 14; tiny nets 7 and 4", () => {
    const r50 = ckaLayerChoice("resnet", resnetLayers(RESNET_PRESETS.resnet50));
    assert.equal(r50.length, 19);
    assert.deepEqual([r50[0], r50[1], r50[2], r50[17], r50[18]], ["conv1", "maxpool", "layer1.0", "layer4.2", "avgpool"]);
    const vb = ckaLayerChoice("vit", vitLayers(VIT_PRESETS.vit_b_16));
    assert.equal(vb.length, 14);
    assert.deepEqual([vb[0], vb[1], vb[12], vb[13]], ["conv_proj", "encoder.layers.encoder_layer_0", "encoder.layers.encoder_layer_11", "encoder.ln"]);
    assert.deepEqual(ckaNetworkLayers({ family: "resnet", config: RESNET_PRESETS.resnet50 }), r50);
    assert.deepEqual(ckaNetworkLayers(TINY_NETS.resnet), ["conv1", "maxpool", "layer1.0", "layer2.0", "layer3.0", "layer4.0", "avgpool"]);
    assert.equal(ckaNetworkLayers(TINY_NETS.vit).length, 4);
  });

  for (const engine of ENGINES) {
    for (const pool of [1, 2, 3]) {
      it(`${engine}: the stream (batches of 2) equals a direct tfjs forward of all 5 images, brute-force pooled to ${pool}x${pool}`, async () => {
        for (const [family, net] of [["resnet", resnet], ["vit", vit]] as const) {
          const e = engineOf(family, engine);
          const layers = net.layers();
          const opts: NetworkRowsOptions = { layers, pool, transform: TRANSFORM };
          const dims = networkLayerDims(e.net, opts);
          const direct = await directOutputs(net, files, layers);
          const got = new Map(layers.map((l) => [l, [] as number[]]));
          const seen: string[] = [];
          for await (const b of networkRows(e, batchesOf(ids, files, 2), opts)) {
            seen.push(...b.ids);
            for (const l of layers) {
              const r = b.rows.get(l)!;
              assert.equal(r.length, b.ids.length * dims.get(l)!, `${l}: ${r.length} values for ${b.ids.length} rows of ${dims.get(l)}`);
              got.get(l)!.push(...r);
            }
          }
          assert.deepEqual(seen, ids);
          for (const l of layers) assertClose(got.get(l)!, refRows(direct.get(l)!, pool).flat(), `${engine} ${family} ${l} pool ${pool}`);
        }
      });
    }
  }

  it("ONNX Runtime and tfjs give the same rows (1e-5 relative) for every layer, patch tokens and class token", async () => {
    for (const family of ["resnet", "vit"] as const) {
      for (const tokens of family === "vit" ? (["patches", "cls"] as const) : (["patches"] as const)) {
        const opts: NetworkRowsOptions = { layers: netLayerNames(TINY_NETS[family]), pool: 2, tokens, transform: TRANSFORM };
        const [o] = await arrayOf(networkRows(engineOf(family, "ort"), [{ ids, files }], opts));
        const [t] = await arrayOf(networkRows(engineOf(family, "tfjs"), [{ ids, files }], opts));
        for (const l of opts.layers) {
          const rel = relDiff(o.rows.get(l)!, t.rows.get(l)!, `${family} ${l}`);
          assert.ok(rel <= 1e-5, `${family} ${l} (${tokens}): ort vs tfjs rel ${rel.toExponential(2)}`);
        }
      }
    }
  });

  for (const name of ["resnet-lite", "vit-lite"]) {
    it(`${name}: on both engines, the rows equal PyTorch's layer outputs brute-force pooled (1e-5 relative)`, async function () {
      const folder = sharedOrSkip(this, "fixtures", "torchvision", name);
      const manifest = JSON.parse(fs.readFileSync(path.join(folder, "manifest.json"), "utf8"));
      const net = configFromManifest(manifest);
      const xa = await readNpy(path.join(folder, "x.npy"));
      const x = { data: npyToFloat32(xa), shape: xa.shape as [number, number, number, number] };
      const layers: string[] = manifest.tensors.map((t: { name: string }) => t.name);
      const refs = new Map<string, { data: Float32Array; shape: number[] }>();
      for (const t of manifest.tensors as { name: string; file: string }[]) {
        const a = await readNpy(path.join(folder, t.file));
        refs.set(t.name, { data: npyToFloat32(a), shape: a.shape });
      }
      for (const engine of ENGINES) {
        const { engine: e } = await createNetEngine(path.join(folder, "model.pt"), { engine, config: net, layers, cacheRoot: cache });
        try {
          for (const pool of [1, 3]) {
            for (const tokens of net.family === "vit" ? (["patches", "cls"] as const) : (["patches"] as const)) {
              const rows = await networkBatchRows(e, x, { layers, pool, tokens });
              for (const l of layers) {
                const ref = refs.get(l)!;
                const want = tokens === "cls" && ref.shape.length === 3 ? clsRows(ref) : refRows(ref, pool).flat();
                const rel = relDiff(rows.get(l)!, want, `${name} ${l}`);
                assert.ok(rel <= 1e-5, `${name} on ${engine}, ${l} pool ${pool} ${tokens}: rel ${rel.toExponential(2)} against PyTorch`);
              }
            }
          }
        } finally {
          await e.dispose();
        }
      }
    });
  }

  it("ViT patch tokens are laid out as conv_proj's map (position embedding zeroed: encoder.dropout rows = conv_proj rows); cls takes token 0", async () => {
    const sd: StateDict = await loadStateDict(path.join(dir, "vit.pt"));
    const pos = sd.get("encoder.pos_embedding")!;
    const zero: TensorEntry = { ...pos, readFloat32: async () => new Float32Array(pos.shape.reduce((a, b) => a * b, 1)) };
    const flat = new Map(sd);
    flat.set("encoder.pos_embedding", zero);
    const tfNet = await netFromStateDict(flat, { numHeads: 2 });
    const layer = "encoder.layers.encoder_layer_1";
    const direct = (await directOutputs(tfNet, files, [layer])).get(layer)!;
    tfNet.dispose();
    for (const engine of ENGINES) {
      // Another cache folder: the ONNX cache is keyed by the file's content, and these weights are not the file's.
      const { engine: net } = await createNetEngine(path.join(dir, "vit.pt"), { engine, config: TINY_NETS.vit, stateDict: flat, cacheRoot: path.join(dir, "onnx-zeroed") });
      try {
        for (const pool of [1, 2, 4]) {
          const opts = { layers: ["conv_proj", "encoder.dropout"], pool, transform: TRANSFORM };
          const [b] = await arrayOf(networkRows(net, [{ ids, files }], opts));
          assertClose(b.rows.get("encoder.dropout")!, b.rows.get("conv_proj")!, `${engine} pool ${pool}`, 1e-6);
        }
        const [c] = await arrayOf(networkRows(net, [{ ids, files }], { layers: [layer], pool: 3, tokens: "cls", transform: TRANSFORM }));
        assertClose(c.rows.get(layer)!, clsRows(direct), `${engine} cls`, 1e-5);
        assert.equal(networkLayerDims(net.net, { layers: [layer], pool: 3, tokens: "cls" }).get(layer), 64);
      } finally {
        await net.dispose();
      }
    }
  });

  it("zipped streams over the same batches stay in step; out of step is caught", async () => {
    const opts = { layers: ["layer2.0", "avgpool"], pool: 2, transform: TRANSFORM };
    const vopts = { layers: ["encoder.ln"], pool: 2, transform: TRANSFORM };
    const r = await directOutputs(resnet, files, opts.layers);
    const v = await directOutputs(vit, files, vopts.layers);
    const [er, ev] = [engineOf("resnet", "ort"), engineOf("vit", "tfjs")];
    const dimR = networkLayerDims(er.net, opts).get("layer2.0")!;
    const dimV = networkLayerDims(ev.net, vopts).get("encoder.ln")!;
    let k = 0;
    for await (const [a, b] of zipStreams([networkRows(er, batchesOf(ids, files, 2), opts), networkRows(ev, batchesOf(ids, files, 2), vopts)])) {
      sameImages(a.ids, b.ids, `batch ${k}`);
      const rows = a.ids.map((id) => ids.indexOf(id));
      assertClose(a.rows.get("layer2.0")!, rows.flatMap((i) => refRows(r.get("layer2.0")!, 2)[i]), `resnet batch ${k}`);
      assertClose(b.rows.get("encoder.ln")!, rows.flatMap((i) => refRows(v.get("encoder.ln")!, 2)[i]), `vit batch ${k}`);
      assert.equal(a.rows.get("layer2.0")!.length, a.ids.length * dimR);
      assert.equal(b.rows.get("encoder.ln")!.length, b.ids.length * dimV);
      k++;
    }
    assert.equal(k, 3);
    // The second stream sees the files in another order: the first batch already differs.
    const shuffled = [4, 3, 2, 1, 0];
    const other = networkRows(ev, batchesOf(shuffled.map((i) => ids[i]), shuffled.map((i) => files[i]), 2), vopts);
    await assert.rejects(
      (async () => {
        for await (const [a, b] of zipStreams([networkRows(er, batchesOf(ids, files, 2), opts), other])) sameImages(a.ids, b.ids, "batch 0");
      })(),
      /batch 0: the streams are out of step: 2 vs 2 images, first difference at position 0 \("img0" vs "img4"\)/,
    );
    assert.throws(() => sameImages(["a", "b"], ["a"], "batch 3"), /batch 3: the streams are out of step: 2 vs 1 images, first difference at position 1/);
  });

  it("bad requests and bad files fail with the layer or batch named", async () => {
    const e = engineOf("resnet", "ort");
    assert.throws(() => networkLayerDims(TINY_NETS.resnet, { layers: ["layer9.0"], pool: 2 }), /network layer "layer9\.0" does not exist; the layers are conv1, bn1/);
    assert.throws(() => networkLayerDims(TINY_NETS.resnet, { layers: ["conv1"], pool: 0 }), /pool must be an integer >= 1, got 0/);
    await assert.rejects(arrayOf(networkRows(e, [{ ids: ["x"], files: [files[0]] }], { layers: ["layer9.0"], pool: 1, transform: TRANSFORM })), /network layer "layer9\.0" does not exist/);
    await assert.rejects(arrayOf(networkRows(e, [{ ids: ["x", "bad"], files: [files[0], Buffer.from("not an image")] }], { layers: ["conv1"], pool: 1, transform: TRANSFORM })), /network rows: batch x\.\.bad: cannot decode image <buffer>/);
    await assert.rejects(arrayOf(networkRows(e, [{ ids: ["x"], files: [] }], { layers: ["conv1"], pool: 1 })), /1 ids for 0 files/);
    // An engine made for fewer layers: the missing ones are named before any image is read.
    const { engine: part } = await createNetEngine(path.join(dir, "resnet.pt"), { engine: "ort", config: TINY_NETS.resnet, layers: ["conv1", "maxpool"], cacheRoot: cache });
    try {
      await assert.rejects(
        arrayOf(networkRows(part, [{ ids: ["x"], files: [Buffer.from("never read")] }], { layers: ["maxpool", "layer1.0", "avgpool"], pool: 1 })),
        /network rows: layers "layer1\.0", "avgpool" not among the engine's outputs \(conv1, maxpool\)/,
      );
      const [b] = await arrayOf(networkRows(part, [{ ids: ["x"], files: [files[0]] }], { layers: ["maxpool"], pool: 2, transform: TRANSFORM }));
      const [full] = await arrayOf(networkRows(e, [{ ids: ["x"], files: [files[0]] }], { layers: ["maxpool"], pool: 2, transform: TRANSFORM }));
      assertClose(b.rows.get("maxpool")!, full.rows.get("maxpool")!, "a graph cut after maxpool", 1e-6);
    } finally {
      await part.dispose();
    }
  });
});

/** The class token (token 0) of every image of [n, seq, d] tokens, as rows. */
function clsRows(t: { data: Float32Array; shape: number[] }): number[] {
  const [n, seq, d] = t.shape;
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(...t.data.subarray(i * seq * d, i * seq * d + d));
  return out;
}

async function arrayOf<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}
