/**
 * The training loop of every Head (MLP/linear, CNN, attention): epochs of shuffled mini-batches read
 * from a FeatureSource (never the whole matrix), softmax cross-entropy, gradients by tfjs autodiff,
 * an optimiser from optim.ts with a per-epoch learning-rate schedule. Seeded: epoch e's order is a
 * Fisher-Yates permutation from Rng(seed, 0x5eed0000 + e), so a resumed run replays exactly the same
 * batches. Progress (rate, ETA, loss) through lib/display/progress.ts.
 *
 * Checkpoints: with `checkpoint` set, after every epoch the parameters, the optimiser's slots and step
 * count, the epoch and the loss history are written atomically (writeAtomically) to that file. When
 * the file exists at start, training resumes after its last epoch, provided it was written for the
 * same head, source shape, seed and options (otherwise: an error naming the file and the difference).
 * A run resumed after a kill ends with the same weights as an uninterrupted one. A head's `buffers`
 * (BatchNorm running statistics) are saved and restored with its parameters.
 *
 * Training mode: a head with `setTraining` (DifFeed's BatchNorm) is switched on for the epochs and off
 * when trainHead returns or throws.
 *
 * Views: a source with `forEpoch` (source.ts; augmented and re-noised views, lib/experiments/views.ts)
 * gives each epoch's rows; epoch e reads `source.forEpoch(e)`, so a resumed run reads the same views.
 *
 * Installs lib/train/wasm-kernels.ts's training kernels (tfjs-backend-wasm has no conv2d filter
 * gradient of its own).
 */
import * as fs from "fs";
import * as tf from "@tensorflow/tfjs";
import { writeAtomically } from "../model/checkpoint/atomic";
import { Rng } from "../rng";
import { progress, Progress } from "../display/progress";
import { installTrainingKernels } from "../train/wasm-kernels";
import { Head } from "./head";
import { permutation } from "../rng";
import { createOptimizer, learningRate, LrSchedule, Optimizer, OptimizerSpec } from "./optim";
import { checkSource, FeatureSource, rowSize, sourceForEpoch } from "./source";

export interface TrainHeadOptions {
  epochs: number;
  batchSize: number;
  optimizer: OptimizerSpec;
  schedule?: LrSchedule | null;
  seed: number;
  /** Checkpoint file written after every epoch and resumed from. */
  checkpoint?: string | null;
  showProgress?: boolean;
  label?: string;
  /** Called after each epoch (and its checkpoint). Throwing stops training (tests simulate a kill). */
  onEpoch?: (epoch: number, loss: number) => void | Promise<void>;
}

export interface TrainHeadResult {
  /** Mean training loss of each epoch (including epochs done before a resume). */
  lossHistory: number[];
  /** Epochs found done in the checkpoint at start (0 for a fresh run). */
  resumedFrom: number;
}

const MAGIC = "DPHEAD1\n";

interface CheckpointHeader {
  fingerprint: string;
  epoch: number;
  lossHistory: number[];
  steps: number;
  tensors: { name: string; length: number }[];
}

function fingerprint(head: Head, source: FeatureSource, opts: TrainHeadOptions): string {
  return JSON.stringify({
    kind: head.kind,
    config: head.config,
    inShape: head.inShape,
    numClasses: head.numClasses,
    params: head.params.map((p) => [p.name, p.variable.shape]),
    ...(head.buffers?.length ? { buffers: head.buffers.map((b) => [b.name, b.variable.shape]) } : {}),
    rows: source.rows,
    seed: opts.seed,
    batchSize: opts.batchSize,
    optimizer: opts.optimizer,
    schedule: opts.schedule ?? null,
  });
}

async function saveCheckpoint(file: string, head: Head, optimizer: Optimizer, fp: string, epoch: number, lossHistory: number[]): Promise<void> {
  const arrays: { name: string; data: Float32Array }[] = head.params.map((p) => ({ name: `param:${p.name}`, data: p.variable.dataSync() as Float32Array }));
  for (const b of head.buffers ?? []) arrays.push({ name: `buffer:${b.name}`, data: b.variable.dataSync() as Float32Array });
  const state = optimizer.getState();
  for (const [k, v] of Object.entries(state.slots)) arrays.push({ name: `slot:${k}`, data: v });
  const header: CheckpointHeader = { fingerprint: fp, epoch, lossHistory, steps: state.steps, tensors: arrays.map((a) => ({ name: a.name, length: a.data.length })) };
  const json = Buffer.from(JSON.stringify(header), "utf8");
  const len = Buffer.alloc(4);
  len.writeUInt32LE(json.length, 0);
  const parts = [Buffer.from(MAGIC, "latin1"), len, json, ...arrays.map((a) => Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength))];
  await writeAtomically(file, (tmp) => fs.promises.writeFile(tmp, Buffer.concat(parts)));
}

async function loadCheckpoint(file: string, head: Head, optimizer: Optimizer, fp: string): Promise<CheckpointHeader> {
  const buf = await fs.promises.readFile(file);
  if (buf.length < 12 || buf.toString("latin1", 0, 8) !== MAGIC) throw new Error(`trainHead: ${file} is not a head checkpoint`);
  const hlen = buf.readUInt32LE(8);
  const header = JSON.parse(buf.toString("utf8", 12, 12 + hlen)) as CheckpointHeader;
  if (header.fingerprint !== fp) {
    throw new Error(`trainHead: checkpoint ${file} was written for a different run (head, data shape, seed or options differ); delete it or choose another file.\n  file: ${header.fingerprint}\n  now:  ${fp}`);
  }
  // Copy out of the Buffer so every array is 4-byte aligned.
  const payload = new Float32Array(new Uint8Array(buf.subarray(12 + hlen)).buffer);
  let off = 0;
  const byName = new Map<string, Float32Array>();
  for (const t of header.tensors) {
    byName.set(t.name, payload.subarray(off, off + t.length));
    off += t.length;
  }
  if (off !== payload.length) throw new Error(`trainHead: checkpoint ${file} is truncated or has trailing bytes`);
  for (const p of head.params) {
    const v = byName.get(`param:${p.name}`);
    if (!v || v.length !== p.variable.size) throw new Error(`trainHead: checkpoint ${file} lacks parameter ${p.name}`);
    p.variable.assign(tf.tensor(v, p.variable.shape));
  }
  for (const b of head.buffers ?? []) {
    const v = byName.get(`buffer:${b.name}`);
    if (!v || v.length !== b.variable.size) throw new Error(`trainHead: checkpoint ${file} lacks buffer ${b.name}`);
    b.variable.assign(tf.tensor(v, b.variable.shape));
  }
  const slots: Record<string, Float32Array> = {};
  for (const [k, v] of byName) if (k.startsWith("slot:")) slots[k.slice(5)] = v;
  optimizer.setState({ steps: header.steps, slots }, head.params.map((p) => p.variable));
  return header;
}

/** Epochs done in a head checkpoint file (from its header), or null when there is none or it is not one. */
export function checkpointEpochs(file: string): number | null {
  let fd: number;
  try {
    fd = fs.openSync(file, "r");
  } catch {
    return null;
  }
  try {
    const head = Buffer.alloc(12);
    if (fs.readSync(fd, head, 0, 12, 0) < 12 || head.toString("latin1", 0, 8) !== MAGIC) return null;
    const json = Buffer.alloc(head.readUInt32LE(8));
    if (fs.readSync(fd, json, 0, json.length, 12) < json.length) return null;
    return (JSON.parse(json.toString("utf8")) as CheckpointHeader).epoch;
  } catch {
    return null;
  } finally {
    fs.closeSync(fd);
  }
}

/** Softmax cross-entropy, mean over the batch: logits [n, K], integer labels. */
export function crossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  const logp = tf.logSoftmax(logits);
  return tf.oneHot(labels, logits.shape[1]).mul(logp).sum().neg().div(logits.shape[0]) as tf.Scalar;
}

export async function trainHead(head: Head, source: FeatureSource, opts: TrainHeadOptions): Promise<TrainHeadResult> {
  checkSource(source, "trainHead");
  if (JSON.stringify([...source.shape]) !== JSON.stringify([...head.inShape])) {
    throw new Error(`trainHead: source rows are ${JSON.stringify(source.shape)} but the head takes ${JSON.stringify(head.inShape)}`);
  }
  if (source.numClasses !== head.numClasses) throw new Error(`trainHead: source has ${source.numClasses} classes, the head ${head.numClasses}`);
  if (!(Number.isInteger(opts.epochs) && opts.epochs >= 0)) throw new Error(`trainHead: epochs ${opts.epochs} must be a non-negative integer`);
  if (!(Number.isInteger(opts.batchSize) && opts.batchSize > 0)) throw new Error(`trainHead: batchSize ${opts.batchSize} must be a positive integer`);
  installTrainingKernels(); // conv2d gradients on tfjs-backend-wasm (idempotent; see lib/train/wasm-kernels.ts)
  const optimizer = createOptimizer(opts.optimizer);
  const vars = head.params.map((p) => p.variable);
  const fp = fingerprint(head, source, opts);
  let lossHistory: number[] = [];
  let start = 0;
  if (opts.checkpoint && fs.existsSync(opts.checkpoint)) {
    const h = await loadCheckpoint(opts.checkpoint, head, optimizer, fp);
    start = h.epoch;
    lossHistory = h.lossHistory.slice();
  }
  const resumedFrom = start;
  const size = rowSize(source.shape);
  const batches = Math.ceil(source.rows / opts.batchSize);
  const bar: Progress | null = opts.showProgress === false ? null : progress({ total: Math.max(0, opts.epochs - start) * batches, label: opts.label ?? `${head.kind} head`, unit: "batch" });
  try {
    for (let epoch = start; epoch < opts.epochs; epoch++) {
      head.setTraining?.(true); // each epoch: an onEpoch that scored the head switched it to evaluation
      const lr = learningRate(opts.optimizer.lr, opts.schedule, epoch);
      const order = permutation(source.rows, new Rng(opts.seed, 0x5eed0000 + epoch));
      const batchIdx = (b: number) => order.subarray(b * opts.batchSize, Math.min(source.rows, (b + 1) * opts.batchSize));
      const rows = await sourceForEpoch(source, epoch, "trainHead"); // this epoch's view (the source itself without views)
      let next = rows.readRows(batchIdx(0));
      let lossSum = 0;
      for (let b = 0; b < batches; b++) {
        const idx = batchIdx(b);
        const data = await next;
        if (data.length !== idx.length * size) throw new Error(`trainHead: readRows returned ${data.length} values for ${idx.length} rows of ${size}`);
        if (b + 1 < batches) next = rows.readRows(batchIdx(b + 1)); // read ahead while this batch computes
        const labels = Int32Array.from(idx, (i) => source.labels[i]);
        const loss = tf.tidy(() => {
          const x = tf.tensor2d(data, [idx.length, size]);
          const y = tf.tensor1d(labels, "int32");
          const { value, grads } = tf.variableGrads(() => crossEntropy(head.apply(x), y), vars);
          optimizer.step(vars, vars.map((v) => grads[v.name]), lr);
          return value;
        });
        lossSum += (await loss.data())[0] * idx.length;
        loss.dispose();
        bar?.tick(1, { epoch: epoch + 1, loss: lossSum / Math.min(source.rows, (b + 1) * opts.batchSize) });
      }
      lossHistory.push(lossSum / source.rows);
      if (opts.checkpoint) await saveCheckpoint(opts.checkpoint, head, optimizer, fp, epoch + 1, lossHistory);
      if (opts.onEpoch) await opts.onEpoch(epoch, lossSum / source.rows);
    }
    bar?.done();
    return { lossHistory, resumedFrom };
  } finally {
    head.setTraining?.(false);
    optimizer.dispose();
  }
}
