/**
 * torchvision networks on tfjs (lib/model/nets; ONNX Runtime: test/nets-ort.test.ts): parity with PyTorch reference outputs
 * (../shared/fixtures/torchvision: torchvision 0.14 ResNet(Bottleneck, [1,1,1,1]) and VisionTransformer,
 * random weights), checkpoint validation errors, layer selection / stop-early against the full pass,
 * the published-weights key mappings on synthetic checkpoints with the publishers' key names, and the
 * ImageNet evaluation transform against torchvision 0.14 + Pillow 9.4 (test/fixtures/torchvision-transform).
 */
import { strict as assert } from "assert";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../lib/model/backend";
import { loadStateDict, writeTorchZip } from "../lib/model/checkpoint/index";
import type { StateDict, TensorEntry } from "../lib/model/checkpoint/state-dict";
import { decodeRgb } from "../lib/data/image";
import { normalizeToCHW, resizedSize, torchvisionCrop } from "../lib/data/torchvision-transform";
import { ChecksumError } from "../lib/data/download";
import { readNpy, npyToFloat32 } from "../lib/model/npy";
import { publishedNetEngine, verifyDigestPrefix } from "../lib/model/nets/fetch-published";
import { configFromManifest, detectFamily, netFromStateDict } from "../lib/model/nets/load";
import { mapPublishedStateDict, PUBLISHED_NETS, publishedNet } from "../lib/model/nets/published";
import { checkTorchvisionFolder } from "../lib/model/nets/reference";
import { ResNet } from "../lib/model/nets/resnet";
import { VisionTransformer } from "../lib/model/nets/vit";
import { formatLine, relError } from "../lib/model/unet/reference";
import { sharedOrSkip } from "./helpers/shared";
import { tempDir, removeTempDir } from "./helpers/tmp";

const TOL = 1e-5;
const FOLDERS = ["resnet-lite", "vit-lite"];

for (const backend of ["wasm", "cpu"]) {
  describe(`torchvision reference parity on ${backend}`, function () {
    this.timeout(300000);
    before(async () => {
      await selectBackend(backend);
    });
    after(async () => {
      await selectBackend("wasm");
    });
    for (const name of FOLDERS) {
      it(`${name}: every saved module output within ${TOL}`, async function () {
        const dir = sharedOrSkip(this, "fixtures", "torchvision", name);
        const manifest = JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8"));
        const r = await checkTorchvisionFolder(dir, { tol: TOL, engine: "tfjs" });
        const bad = r.lines.filter((l) => l.status !== "PASS");
        assert.equal(bad.length, 0, bad.map(formatLine).join("\n"));
        assert.deepEqual(r.lines.map((l) => l.name), manifest.tensors.map((t: { name: string }) => t.name));
        const worst = r.lines.reduce((a, l) => (l.rel! > a.rel! ? l : a));
        assert.ok(worst.rel! <= TOL);
        console.log(`      ${name} on ${r.backend}: worst rel ${worst.rel!.toExponential(2)} (${worst.name}), forward ${r.forwardMs} ms`);
      });
    }
  });
}

/** An in-memory tensor entry. */
function entry(name: string, shape: number[], data: Float32Array): TensorEntry {
  return { name, dtype: "float32", shape, readFloat32: async () => data, readRaw: async () => new Uint8Array(data.buffer.slice(0)) };
}

/** The same entries under other names. */
function renamed(sd: StateDict, rename: (k: string) => string, extra: [string, number[]][] = []): StateDict {
  const out: StateDict = new Map();
  for (const [k, v] of sd) out.set(rename(k), { ...v, name: rename(k) });
  for (const [k, shape] of extra) out.set(k, entry(k, shape, new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.5)));
  return out;
}

async function fixture(ctx: Mocha.Context, name: string): Promise<{ dir: string; sd: StateDict; x: tf.Tensor4D; manifest: any }> {
  const dir = sharedOrSkip(ctx, "fixtures", "torchvision", name);
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8"));
  const sd = await loadStateDict(path.join(dir, "model.pt"));
  const xa = await readNpy(path.join(dir, "x.npy"));
  return { dir, sd, manifest, x: tf.tensor4d(npyToFloat32(xa), xa.shape as [number, number, number, number]) };
}

async function refValues(dir: string, name: string): Promise<Float32Array> {
  return npyToFloat32(await readNpy(path.join(dir, `${name}.npy`)));
}

describe("torchvision networks: building and layer selection", function () {
  this.timeout(120000);
  before(async () => {
    await selectBackend("wasm");
  });

  it("derives the configuration from the state dict alone (family, layers, widths, ViT sizes)", async function () {
    const r = await fixture(this, "resnet-lite");
    assert.equal(detectFamily(r.sd), "resnet");
    const net = (await netFromStateDict(r.sd)) as ResNet;
    assert.deepEqual(net.config, configFromManifest(r.manifest).config);
    net.dispose();
    r.x.dispose();
    const v = await fixture(this, "vit-lite");
    assert.equal(detectFamily(v.sd), "vit");
    // 64 wide with 4 heads: the head count is not in any shape, so it is given.
    const vit = (await netFromStateDict(v.sd, { numHeads: 4 })) as VisionTransformer;
    assert.deepEqual(vit.config, configFromManifest(v.manifest).config);
    vit.dispose();
    v.x.dispose();
  });

  it("a checkpoint that does not match lists every missing, unexpected and mis-shaped key", async function () {
    const r = await fixture(this, "resnet-lite");
    r.x.dispose();
    const sd: StateDict = new Map(r.sd);
    sd.delete("layer2.0.bn2.running_var");
    sd.set("layer3.0.conv2.weight", entry("layer3.0.conv2.weight", [256, 256, 1, 1], new Float32Array(256 * 256)));
    sd.set("layer9.0.conv1.weight", entry("layer9.0.conv1.weight", [4], new Float32Array(4)));
    const cfg = configFromManifest(r.manifest);
    await assert.rejects(netFromStateDict(sd, { config: cfg, file: "bad.pt" }), (e: Error) => {
      assert.match(e.message, /^bad\.pt: the checkpoint does not match the model: 1 missing, 1 unexpected, 1 with another shape/);
      assert.match(e.message, /layer2\.0\.bn2\.running_var expected \[128\]/);
      assert.match(e.message, /layer9\.0\.conv1\.weight found \[4\]/);
      assert.match(e.message, /layer3\.0\.conv2\.weight: expected \[256, 256, 3, 3\], found \[256, 256, 1, 1\]/);
      return true;
    });
  });

  for (const name of FOLDERS) {
    it(`${name}: a selected layer with stop-early equals the same layer of the full pass; unknown layers are named`, async function () {
      const r = await fixture(this, name);
      const net = await netFromStateDict(r.sd, { config: configFromManifest(r.manifest) });
      try {
        const all = net.layers();
        const full = net.forward(r.x, { stopEarly: false });
        assert.deepEqual([...full.keys()].sort(), [...all].sort());
        const mid = all[Math.floor(all.length / 2)];
        const partial = net.forward(r.x, { layers: [mid, all[1]] });
        assert.deepEqual([...partial.keys()].sort(), [mid, all[1]].sort());
        for (const k of partial.keys()) assert.deepEqual(partial.get(k)!.dataSync(), full.get(k)!.dataSync(), k);
        // Stop-early reads no weight past the last requested layer (spy on the weight lookup).
        const weights = (net as unknown as { w: { get(n: string): tf.Tensor } }).w;
        const read: string[] = [];
        const get = weights.get.bind(weights);
        weights.get = (n: string) => (read.push(n), get(n));
        const early = net.forward(r.x, { layers: [all[1]] });
        weights.get = get;
        assert.ok(read.length > 0 && !read.some((n) => /^(layer2|fc|heads|encoder\.layers)/.test(n)), read.join(", "));
        tf.dispose([...early.values()]);
        // And the full pass itself is the reference's (independent of the folder check above).
        const last = r.manifest.tensors[r.manifest.tensors.length - 1].name;
        assert.ok(relError(full.get(last)!.dataSync(), await refValues(r.dir, last)).rel <= TOL);
        for (const t of [...full.values(), ...partial.values()]) t.dispose();
        assert.throws(() => net.forward(r.x, { layers: ["layer7", "nope"] }), /unknown layers "layer7", "nope"; the layers are /);
      } finally {
        net.dispose();
        r.x.dispose();
      }
    });
  }

  it("rejects an input of the wrong layout or size, naming the expected shape", async function () {
    const v = await fixture(this, "vit-lite");
    const vit = await netFromStateDict(v.sd, { config: configFromManifest(v.manifest) });
    const nhwc = tf.zeros([1, 32, 32, 3]) as tf.Tensor4D;
    const small = tf.zeros([1, 3, 16, 16]) as tf.Tensor4D;
    try {
      assert.throws(() => vit.forward(nhwc), /input has 32 channels .*expected 3 \(NCHW\)/);
      assert.throws(() => vit.forward(small), /input is 16x16; this network takes 32x32/);
    } finally {
      tf.dispose([nhwc, small, v.x]);
      vit.dispose();
    }
  });
});

/** torchvision ResNet keys -> a published checkpoint's names (the publishers' patterns). */
const PUBLISHED_RESNET: Record<string, { rename: (k: string) => string; extra: [string, number[]][] }> = {
  "swav-resnet50": {
    rename: (k) => `module.${k}`,
    extra: [["module.projection_head.0.weight", [8, 2048]], ["module.projection_head.1.running_mean", [8]], ["module.prototypes.weight", [30, 8]]],
  },
  "mocov2-resnet50": {
    rename: (k) => `module.encoder_q.${k}`,
    extra: [["module.encoder_q.fc.0.weight", [2048, 2048]], ["module.encoder_q.fc.2.bias", [128]], ["module.encoder_k.conv1.weight", [64, 3, 7, 7]], ["module.queue", [128, 16]], ["module.queue_ptr", [1]]],
  },
  "dino-resnet50": { rename: (k) => k, extra: [] },
};

/** torchvision ViT keys -> timm-style names (DINO / MAE), the inverse of the documented mapping. */
function toTimm(k: string): string {
  const fixed: Record<string, string> = {
    class_token: "cls_token",
    "encoder.pos_embedding": "pos_embed",
    "conv_proj.weight": "patch_embed.proj.weight",
    "conv_proj.bias": "patch_embed.proj.bias",
    "encoder.ln.weight": "norm.weight",
    "encoder.ln.bias": "norm.bias",
  };
  if (fixed[k]) return fixed[k];
  const m = /^encoder\.layers\.encoder_layer_(\d+)\.(.*)$/.exec(k);
  if (!m) return k; // heads.head.*: dropped below
  const rest = m[2]
    .replace(/^ln_1\./, "norm1.")
    .replace(/^ln_2\./, "norm2.")
    .replace(/^self_attention\.in_proj_(weight|bias)$/, "attn.qkv.$1")
    .replace(/^self_attention\.out_proj\./, "attn.proj.")
    .replace(/^mlp\.0\./, "mlp.fc1.")
    .replace(/^mlp\.3\./, "mlp.fc2.");
  return `blocks.${m[1]}.${rest}`;
}

describe("published weights: table and key mappings", function () {
  this.timeout(120000);
  before(async () => {
    await selectBackend("wasm");
  });

  it("every entry has an https URL, a unique file, and a published digest prefix or none", () => {
    const files = new Set<string>();
    for (const p of PUBLISHED_NETS) {
      assert.match(p.url, /^https:\/\//, p.name);
      assert.ok(p.url.endsWith(`/${p.file}`), `${p.name}: file name ${p.file} is the URL's`);
      assert.ok(!files.has(p.file));
      files.add(p.file);
      if (p.checksum) assert.match(p.checksum.prefix, /^[0-9a-f]{6,}$/);
    }
    // torchvision's file names carry their sha256 prefix.
    for (const n of ["resnet50-supervised", "vit_b_16-supervised"]) {
      const p = publishedNet(n);
      assert.equal(p.checksum!.algorithm, "sha256");
      assert.ok(p.file.includes(`-${p.checksum!.prefix}.`));
    }
  });

  for (const [name, pattern] of Object.entries(PUBLISHED_RESNET)) {
    it(`${name}: its key names map onto the ResNet (heads dropped) and give the reference features`, async function () {
      const r = await fixture(this, "resnet-lite");
      const published = renamed(r.sd, pattern.rename, pattern.extra);
      const mapped = mapPublishedStateDict(publishedNet(name), published, `${name}.pth`);
      assert.ok(![...mapped.keys()].some((k) => k.startsWith("fc.") || k.endsWith("num_batches_tracked")));
      const net = await netFromStateDict(mapped, { file: `${name}.pth` });
      try {
        assert.ok(!net.layers().includes("fc"));
        const out = net.forward(r.x, { layers: ["avgpool"] });
        assert.ok(relError(out.get("avgpool")!.dataSync(), await refValues(r.dir, "avgpool")).rel <= TOL);
        tf.dispose([...out.values()]);
      } finally {
        net.dispose();
        r.x.dispose();
      }
    });
  }

  for (const [name, extra] of [
    ["dino-vit_b_16", [["head.weight", [0]]]],
    ["mae-vit_b_16", [["mask_token", [1, 1, 64]], ["decoder_embed.weight", [32, 64]], ["decoder_blocks.0.attn.qkv.weight", [96, 32]], ["decoder_pos_embed", [1, 17, 32]]]],
  ] as [string, [string, number[]][]][]) {
    it(`${name}: timm-style names (cls_token, blocks.N.attn.qkv, mlp.fc1, norm) map onto the VisionTransformer`, async function () {
      const v = await fixture(this, "vit-lite");
      const noHead: StateDict = new Map([...v.sd].filter(([k]) => !k.startsWith("heads.")));
      const published = renamed(noHead, toTimm, extra);
      assert.ok(published.has("blocks.1.attn.qkv.weight") && published.has("cls_token"));
      const mapped = mapPublishedStateDict(publishedNet(name), published, `${name}.pth`);
      const net = await netFromStateDict(mapped, { numHeads: 4 });
      try {
        const out = net.forward(v.x, { layers: ["encoder.ln"] });
        assert.ok(relError(out.get("encoder.ln")!.dataSync(), await refValues(v.dir, "encoder.ln")).rel <= TOL);
        tf.dispose([...out.values()]);
      } finally {
        net.dispose();
        v.x.dispose();
      }
    });
  }

  it("a published checkpoint file (MoCo v2's names) runs through publishedNetEngine on ONNX Runtime and tfjs, giving PyTorch's avgpool", async function () {
    const r = await fixture(this, "resnet-lite");
    r.x.dispose();
    const dir = tempDir("nets-published");
    try {
      const published = renamed(r.sd, PUBLISHED_RESNET["mocov2-resnet50"].rename, PUBLISHED_RESNET["mocov2-resnet50"].extra);
      const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
      for (const [k, t] of published) tensors.set(k, { shape: t.shape, data: await t.readFloat32() });
      const file = path.join(dir, "moco_v2_800ep_pretrain.pth.tar");
      await writeTorchZip(file, tensors);
      const lite = configFromManifest(r.manifest);
      lite.config.numClasses = null; // the mapping drops the projection head
      const xa = await readNpy(path.join(r.dir, "x.npy"));
      const want = await refValues(r.dir, "avgpool");
      for (const engine of ["ort", "tfjs"]) {
        const { engine: e, choice } = await publishedNetEngine(publishedNet("mocov2-resnet50"), file, { engine, config: lite, layers: ["avgpool"], cacheRoot: path.join(dir, "onnx") });
        try {
          assert.equal(choice.name, engine);
          assert.deepEqual(e.outputs, ["avgpool"]);
          const out = (await e.run(npyToFloat32(xa), xa.shape)).get("avgpool")!;
          const rel = relError(out.data, want).rel;
          assert.ok(rel <= TOL, `${engine}: avgpool rel ${rel}`);
        } finally {
          await e.dispose();
        }
      }
      // Without a configuration the entry's own (ResNet-50) is used, and these weights do not fit it.
      await assert.rejects(publishedNetEngine(publishedNet("mocov2-resnet50"), file, { engine: "tfjs" }), /moco_v2_800ep_pretrain\.pth\.tar: the checkpoint does not match the model: 180 missing, 0 unexpected/);
    } finally {
      removeTempDir(dir);
    }
  });

  it("a key that maps nowhere is an error listing every such key", () => {
    const sd: StateDict = new Map();
    const add = (k: string, shape: number[]) => sd.set(k, entry(k, shape, new Float32Array(shape.reduce((a, b) => a * b, 1))));
    add("module.conv1.weight", [64, 3, 7, 7]);
    add("module.encoder_q.conv1.weight", [64, 3, 7, 7]);
    add("module.layer1.0.attn.weight", [4]);
    add("module.prototypes.weight", [3000, 128]);
    assert.throws(() => mapPublishedStateDict(publishedNet("swav-resnet50"), sd, "swav.pth.tar"), (e: Error) => {
      assert.match(e.message, /^swav\.pth\.tar: 2 key\(s\) do not map to torchvision names for "swav-resnet50" \(4 keys in the file\)/);
      assert.match(e.message, /module\.encoder_q\.conv1\.weight \[64,3,7,7\]/);
      assert.match(e.message, /module\.layer1\.0\.attn\.weight \[4\]/);
      assert.doesNotMatch(e.message, /prototypes/);
      return true;
    });
    const vit: StateDict = new Map();
    vit.set("blocks.0.attn.relative_position_bias_table", entry("x", [3, 4], new Float32Array(12)));
    assert.throws(() => mapPublishedStateDict(publishedNet("dino-vit_b_16"), vit, "dino.pth"), /relative_position_bias_table \[3,4\]/);
  });

  it("torchvision's own names pass the supervised entries unchanged (old mlp.linear_1 names too)", () => {
    for (const k of ["conv1.weight", "bn1.running_var", "layer4.2.downsample.1.bias", "layer3.5.conv3.weight", "fc.bias"]) {
      assert.equal(publishedNet("resnet50-supervised").mapKey(k), k);
    }
    assert.equal(publishedNet("resnet50-supervised").mapKey("layer1.0.conv1.bias"), undefined);
    for (const k of ["class_token", "encoder.layers.encoder_layer_11.mlp.linear_2.weight", "encoder.layers.encoder_layer_0.self_attention.in_proj_bias", "heads.head.weight"]) {
      assert.equal(publishedNet("vit_b_16-supervised").mapKey(k), k);
    }
  });

  it("a downloaded file whose digest does not start with the published prefix is moved aside", async () => {
    const dir = tempDir("nets-digest");
    const file = path.join(dir, "w.pth");
    const bytes = Buffer.from("not the published weights");
    fs.writeFileSync(file, bytes);
    const sha256 = crypto.createHash("sha256").update(bytes).digest("hex");
    const md5 = crypto.createHash("md5").update(bytes).digest("hex");
    const base = publishedNet("mocov2-resnet50");
    await verifyDigestPrefix({ ...base, checksum: { algorithm: "md5", prefix: md5.slice(0, 8), source: "test" } }, { file, md5: "", sha256 });
    assert.ok(fs.existsSync(file));
    const wrong = md5[0] === "0" ? "1" + md5.slice(1, 8) : "0" + md5.slice(1, 8);
    await assert.rejects(
      verifyDigestPrefix({ ...base, checksum: { algorithm: "md5", prefix: wrong, source: "test" } }, { file, md5, sha256 }),
      (e: Error) => e instanceof ChecksumError && e.message.includes(`md5 ${md5} does not start with the published ${wrong}`),
    );
    assert.ok(!fs.existsSync(file) && fs.existsSync(`${file}.bad`));
    removeTempDir(dir);
  });
});

describe("torchvision ImageNet evaluation transform vs torchvision 0.14 + Pillow 9.4", function () {
  this.timeout(60000);
  const dir = path.join(__dirname, "fixtures", "torchvision-transform");
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8"));

  it("Resize's output size truncates the long side as torchvision does", () => {
    assert.deepEqual(resizedSize(100, 60, 256), { width: 426, height: 256 });
    assert.deepEqual(resizedSize(140, 300, 256), { width: 256, height: 548 });
    assert.deepEqual(resizedSize(256, 256, 256), { width: 256, height: 256 });
  });

  for (const c of manifest.cases as { name: string; image: string; resize: number; crop: number; file: string; normalized?: string }[]) {
    it(`${c.name}: the uint8 crop is identical${c.normalized ? ", the normalised tensor equal" : ""}`, async () => {
      const src = fs.existsSync(path.join(dir, c.image)) ? path.join(dir, c.image) : path.join(__dirname, "fixtures", "datasets", "preprocess", "images", c.image);
      const img = torchvisionCrop(await decodeRgb(src), { resize: c.resize, crop: c.crop });
      const ref = await readNpy(path.join(dir, c.file));
      assert.deepEqual([img.height, img.width, 3], ref.shape);
      let worst = 0;
      for (let i = 0; i < ref.data.length; i++) worst = Math.max(worst, Math.abs(img.data[i] - Number(ref.data[i])));
      assert.equal(worst, 0, `max |ours - PIL| = ${worst} levels`);
      if (c.normalized) {
        const ours = normalizeToCHW(img);
        const refN = npyToFloat32(await readNpy(path.join(dir, c.normalized)));
        assert.equal(relError(ours, refN).maxAbsDiff, 0);
      }
    });
  }
});
