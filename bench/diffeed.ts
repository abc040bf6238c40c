/**
 * DifFeed head vs the plain attention head, seconds per training epoch (figures, not a test):
 *
 *   npx tsx bench/diffeed.ts [--images 200] [--epochs 3] [--batch 32] [--t 100] [--feedback 8,9,11] [--block 10]
 *
 * The embedded Fashion-MNIST U-Net (13 blocks, 32x32x1), the first `images` training images, x_t at `t`
 * (q_sample, seeded noise). DifFeed (lib/heads/diffeed.ts): feedback from `feedback` into their mirror
 * encoder blocks, the attention head on second-pass block `block`, trained by trainHead (two U-Net passes
 * per batch, the second differentiated). The plain attention head: the same head setting on `block`'s map
 * of one ordinary forward pass, computed once before training (the "stored map"; its time is printed on
 * its own line). Both: Adam lr 1e-3, batch `batch`, seed 0. Also the evaluation time of the DifFeed head
 * (two forward passes, no gradient) on the same images.
 */
import { parseArgs } from "util";
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../lib/model/backend";
import { loadFashionMnist } from "../lib/data/fashion-mnist";
import { embeddedModel } from "../lib/model/embedded";
import { modelSchedule } from "../lib/model/model-source";
import { noiseFor, qSampleInto } from "../lib/model/diffusion/q-sample";
import { parseBlock } from "../lib/model/unet/blocks";
import { blockRows } from "../lib/model/unet/feedback";
import { buildHead, HeadSpec } from "../lib/heads/create";
import { loadFrozenUNet } from "../lib/heads/diffeed";
import { evaluateHead } from "../lib/heads/evaluate";
import { countParams } from "../lib/heads/head";
import { memorySource } from "../lib/heads/source";
import { trainHead, TrainHeadOptions } from "../lib/heads/train-head";

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      images: { type: "string", default: "200" },
      epochs: { type: "string", default: "3" },
      batch: { type: "string", default: "32" },
      t: { type: "string", default: "100" },
      feedback: { type: "string", default: "8,9,11" },
      block: { type: "string", default: "10" },
    },
  });
  const int = (k: keyof typeof values) => {
    const v = Number(values[k]);
    if (!Number.isInteger(v) || v < 0) throw new Error(`--${k} must be a non-negative integer, got ${values[k]}`);
    return v;
  };
  const n = int("images"), epochs = int("epochs"), batch = int("batch"), t = int("t"), block = int("block");
  const feedback = String(values.feedback).split(",").map(Number);
  await selectBackend("wasm");
  const em = embeddedModel();
  const frozen = await loadFrozenUNet(em.source);
  const unet = frozen.unet!;
  const set = loadFashionMnist({ split: "train", limit: n });
  const x0 = set.images(); // [n, 32, 32, 1]: with one channel, NHWC is channel-major
  const per = 32 * 32;
  const eps = noiseFor(Array.from(set.ids), [1, 32, 32], 0);
  const { signal, noise } = modelSchedule(em.source).coefficients([t]);
  const xt = new Float32Array(x0.length);
  for (let i = 0; i < set.ids.length; i++) {
    const r = [i * per, (i + 1) * per] as const;
    qSampleInto(xt.subarray(...r), x0.subarray(...r), eps.subarray(...r), signal[0], noise[0]);
  }
  const rows = set.ids.length;
  const xtSource = memorySource(xt, [1, 32, 32], set.labels, 10);
  const attention = { dim: 64, heads: 4, mlpRatio: 2, blocks: 1, pool: 2, project: false };
  const training: TrainHeadOptions = { epochs, batchSize: batch, optimizer: { kind: "adam", lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }, seed: 0, showProgress: false };
  console.log(`embedded U-Net ${frozen.id}, ${rows} Fashion-MNIST images, t ${t}, batch ${batch}, ${epochs} epochs; feedback ${feedback.join(",")} -> second-pass block ${block}; attention ${JSON.stringify(attention)}`);

  const timeEpochs = async (label: string, spec: HeadSpec, src: typeof xtSource) => {
    const built = await buildHead(spec, src, 0);
    const marks: number[] = [Date.now()];
    const r = await trainHead(built.head, built.input(src), { ...training, onEpoch: () => void marks.push(Date.now()) });
    const secs = marks.slice(1).map((m, i) => (m - marks[i]) / 1000);
    console.log(`${label.padEnd(34)} ${countParams(built.head).toLocaleString("en-US").padStart(9)} params  s/epoch ${secs.map((s) => s.toFixed(2)).join(", ")}  loss ${r.lossHistory.map((l) => l.toFixed(3)).join(" -> ")}`);
    return built;
  };

  // The stored map of `block` (one forward pass per batch), then the plain attention head on it.
  let t0 = Date.now();
  const c = unet.config;
  const mapRows: Float32Array[] = [];
  for (let s = 0; s < rows; s += 64) {
    const m = Math.min(64, rows - s);
    const out = tf.tidy(() => {
      const x = tf.tensor4d(xt.subarray(s * per, (s + m) * per), [m, 32, 32, 1]);
      const r = unet.forward(x, new Array(m).fill(t), { capture: [String(block)] });
      r.emb.dispose();
      const map = [...r.blocks.values()][0];
      return blockRows(map);
    });
    mapRows.push(out.dataSync() as Float32Array);
    out.dispose();
  }
  const size = mapRows[0].length / Math.min(64, rows);
  const maps = new Float32Array(rows * size);
  let at = 0;
  for (const r of mapRows) {
    maps.set(r, at);
    at += r.length;
  }
  const b = parseBlock(c, block);
  console.log(`stored map of block ${block} [${b.outCh}, ${32 / b.outDs}, ${32 / b.outDs}]: ${((Date.now() - t0) / 1000).toFixed(2)} s for ${rows} images (once)`);
  const plain = await timeEpochs(`attention on stored block ${block}`, { kind: "attention", ...attention }, memorySource(maps, [b.outCh, 32 / b.outDs, 32 / b.outDs], set.labels, 10));
  plain.head.dispose();

  const dif = await timeEpochs(`diffeed ${feedback.join(",")} -> ${block}`, { kind: "diffeed", unet: frozen, t, feedback, block, ...attention }, xtSource);
  t0 = Date.now();
  const ev = await evaluateHead(dif.head, xtSource, 64);
  console.log(`diffeed evaluation of ${rows} images: ${((Date.now() - t0) / 1000).toFixed(2)} s (train accuracy ${ev.top1.toFixed(3)})`);
  dif.head.dispose();
  unet.dispose();
}

main().catch((e) => {
  console.error(`ERROR: ${(e as Error).stack ?? e}`);
  process.exit(1);
});
