/**
 * guided-diffusion's UNetModel in TensorFlow.js.
 *
 * Layout: the model works in NHWC. Input `x` is [B, H, W, C] and every returned activation (block outputs,
 * `out`) is NHWC [B, H, W, C]; `emb` is [B, 4 * model_channels]. The PyTorch reference and the paper's
 * channel-major feature order are NCHW: convert with `toNCHW` (./layers) before comparing with reference
 * arrays or flattening features in (C, H, W) order.
 *
 * forward() mirrors UNetModel.forward:
 *   emb = time_embed(timestep_embedding(t, model_channels)) [+ label_emb(y)]
 *   h = x; for each input block: h = block(h, emb); hs.push(h)
 *   h = middle_block(h, emb)
 *   for each output block: h = block(cat([h, hs.pop()], channels), emb)
 *   out = out(h)         GroupNorm - SiLU - conv3x3
 * Memory: each module runs in its own tf.tidy; a skip activation is freed as soon as its output block
 * has consumed it, and a pass that only needs early blocks stops there (`stopEarly`).
 */
import * as tf from "@tensorflow/tfjs";
import { loadStateDict, validateStateDict } from "../checkpoint/index";
import { attentionBlock } from "./attention";
import { parseBlock } from "./blocks";
import { UNetConfig } from "./config";
import { conv2d, linear, normSilu, silu, timestepEmbedding } from "./layers";
import { expectedParameterShapes } from "./parameters";
import { BlockSpec, buildPlan, ModuleSpec, UNetPlan } from "./plan";
import { downsample, upsample } from "./resample";
import { resizeBilinear } from "../resize";
import { NormParams, resBlock } from "./resblock";
import { UNetWeights, WeightOptions } from "./weights";
import { parameterSpecs } from "./parameters";

export interface ForwardOptions {
  /** Class labels (one per sample), required by class-conditional models, refused by the others. */
  y?: number[];
  /**
   * Blocks whose outputs to return, by module name ("input_blocks.13", "middle_block", "output_blocks.4")
   * or paper number ("24"); results are keyed by module name. "out" asks for the final output.
   */
  capture?: string[];
  /**
   * Stop after the last captured block (skipping the rest of the network and `out`).
   * Default: true when `capture` is given and does not include "out"; false otherwise.
   */
  stopEarly?: boolean;
  /**
   * DifFeed's second pass (./feedback.ts): NHWC maps added to the outputs of input blocks, keyed by module
   * name or paper number. Each map is resized bilinearly (align_corners False) to the block's output size
   * and added to it; the sum goes on to the next block and is pushed as the skip. The caller keeps
   * ownership of the maps; gradients flow through them.
   */
  addToInputBlocks?: ReadonlyMap<string | number, tf.Tensor4D>;
}

export interface ForwardResult {
  /** Final output [B, H, W, out_channels] (NHWC); absent when the pass stopped early. */
  out?: tf.Tensor4D;
  /** `model.time_embed` output [B, 4 * model_channels] (before label_emb is added). */
  emb: tf.Tensor2D;
  /** Captured block outputs, NHWC, keyed by module name. The caller owns (and disposes) every tensor. */
  blocks: Map<string, tf.Tensor4D>;
}

export class UNet {
  readonly plan: UNetPlan;
  private readonly norm: NormParams;

  private constructor(readonly config: UNetConfig, private readonly weights: UNetWeights) {
    this.plan = buildPlan(config);
    this.norm = { groups: config.groupNormGroups, eps: config.groupNormEps };
  }

  /**
   * Load a guided-diffusion checkpoint (`torch.save(model.state_dict())`). Names and shapes are checked
   * against `config` first (one error lists every missing / unexpected / mismatched key); tensors are
   * then read one at a time and converted to tfjs layout.
   */
  static async fromCheckpoint(config: UNetConfig, file: string, opts: WeightOptions = {}): Promise<UNet> {
    const sd = await loadStateDict(file);
    validateStateDict(expectedParameterShapes(config), sd, file);
    return new UNet(config, await UNetWeights.fromStateDict(config, sd, opts));
  }

  /**
   * The weights as trainable tf.Variables keyed by guided-diffusion state-dict name, in state_dict order
   * (tfjs layout: conv HWIO, linear [in, out]); the model computes with them from then on.
   */
  namedVariables(): Map<string, tf.Variable> {
    return this.weights.toVariables(parameterSpecs(this.config).map((s) => s.name));
  }

  /** A model with seeded random weights (see UNetWeights.random); for tests and benchmarks. */
  static random(config: UNetConfig, seed: number, opts: WeightOptions = {}): UNet {
    return new UNet(config, UNetWeights.random(config, seed, opts));
  }

  /**
   * Run one forward pass on a zero image of the smallest valid size (sizeMultiple^2 pixels: 32x32 for
   * six levels, ~1/64 of a 256x256 pass). On wasm this makes XNNPACK pack every resident weight now,
   * while the heap holds no activations, so the long-lived packed copies sit together at the bottom of
   * the heap instead of between activation buffers (which fragments the 4 GiB heap during the first
   * real pass). Harmless elsewhere. Returns the time taken in ms.
   */
  warmUp(): number {
    const t0 = Date.now();
    const m = this.plan.sizeMultiple;
    const x = tf.zeros([1, m, m, this.config.inChannels]) as tf.Tensor4D;
    try {
      const r = this.forward(x, [0], this.config.numClasses === null ? {} : { y: [0] });
      tf.dispose([r.emb, r.out!]);
    } finally {
      x.dispose();
    }
    return Date.now() - t0;
  }

  /** Weight memory: tf-resident and host-streamed bytes. */
  get weightBytes(): { resident: number; streamed: number } {
    return { resident: this.weights.residentBytes, streamed: this.weights.streamedBytes };
  }

  dispose(): void {
    this.weights.dispose();
  }

  /**
   * Run the network on `x` (NHWC, the noised input x_t, nominally in [-1, 1]) at timesteps `t`
   * (one per sample, unscaled: 0..T-1). See {@link ForwardOptions} and {@link ForwardResult}.
   */
  forward(x: tf.Tensor4D, t: number[] | tf.Tensor1D, opts: ForwardOptions = {}): ForwardResult {
    const c = this.config;
    const blocks = this.plan.blocks;
    if (x.rank !== 4) throw new Error(`x must be NHWC [B, H, W, ${c.inChannels}], got shape [${x.shape.join(", ")}]`);
    const [batch, height, width, channels] = x.shape;
    if (channels !== c.inChannels) {
      throw new Error(`x has ${channels} channels in its last axis, the model takes ${c.inChannels} (x must be NHWC; got [${x.shape.join(", ")}])`);
    }
    const m = this.plan.sizeMultiple;
    if (height % m || width % m) throw new Error(`x is ${height}x${width}; height and width must be multiples of ${m} for ${c.channelMult.length} levels`);
    const ts = Array.isArray(t) ? t : Array.from(t.dataSync());
    if (ts.length !== batch) throw new Error(`${ts.length} timesteps for a batch of ${batch}`);
    for (const v of ts) if (!Number.isFinite(v)) throw new Error(`timestep ${v} is not finite`);
    const y = this.checkLabels(opts.y, batch);

    // Which blocks run and which outputs are kept.
    const wanted = new Set<string>();
    let wantOut = false;
    for (const s of opts.capture ?? []) {
      if (s === "out") wantOut = true;
      else wanted.add(parseBlock(c, s).name);
    }
    const added = this.resolveAdded(opts.addToInputBlocks, batch);
    const stopEarly = opts.stopEarly ?? (opts.capture !== undefined && !wantOut);
    let last = blocks.length - 1;
    if (stopEarly) {
      if (wantOut) throw new Error(`stopEarly cannot be combined with capturing "out"`);
      last = wanted.size ? Math.max(...blocks.filter((b) => wanted.has(b.name)).map((b) => b.number - 1)) : -1;
    }

    const captured = new Map<string, tf.Tensor4D>();
    const hs: tf.Tensor4D[] = [];
    let h: tf.Tensor4D = x;
    let emb: tf.Tensor2D | null = null;
    let cond: tf.Tensor2D | null = null;
    const owned = (v: tf.Tensor) => v !== x && !hs.includes(v as tf.Tensor4D);
    try {
      emb = tf.tidy(() => {
        const te = tf.tensor2d(timestepEmbedding(ts, c.modelChannels), [batch, c.modelChannels]);
        return linear(silu(linear(te, this.weights, "time_embed.0")), this.weights, "time_embed.2");
      });
      cond = y ? tf.tidy(() => tf.add(emb!, tf.gather(this.weights.get("label_emb.weight"), tf.tensor1d(y, "int32")))) as tf.Tensor2D : emb;

      for (let i = 0; i <= last; i++) {
        const b = blocks[i];
        let next: tf.Tensor4D;
        if (b.section === "output") {
          const skip = hs.pop()!;
          const prev = h;
          const cat = tf.concat([prev, skip], 3); // [h, skip] along channels, h first
          skip.dispose();
          if (owned(prev)) prev.dispose();
          next = this.runBlock(b, cat, cond, true);
        } else {
          next = this.runBlock(b, h, cond, false);
          const extra = added.get(b.name);
          if (extra) {
            const raw = next;
            next = tf.tidy(() => raw.add(resizeBilinear(extra, raw.shape[1], raw.shape[2])));
            raw.dispose();
          }
          if (b.section === "input") hs.push(next);
          else if (owned(h)) h.dispose();
        }
        h = next;
        // A second handle on the same data (reshape shares the buffer; tf.clone copies on wasm).
        if (wanted.has(b.name)) captured.set(b.name, h.reshape(h.shape) as tf.Tensor4D);
      }

      let out: tf.Tensor4D | undefined;
      if (last === blocks.length - 1) {
        const prev = h;
        out = tf.tidy(() => conv2d(normSilu(prev, this.weights, "out.0", this.norm.groups, this.norm.eps), this.weights, "out.2"));
      }
      const result: ForwardResult = { emb, blocks: captured, out };
      emb = null; // now owned by the caller
      return result;
    } catch (e) {
      for (const v of captured.values()) v.dispose();
      emb?.dispose();
      throw e;
    } finally {
      if (y && cond) cond.dispose(); // emb + label_emb(y), distinct from emb
      if (owned(h)) h.dispose();
      for (const v of hs) if (v !== x) v.dispose();
    }
  }

  private resolveAdded(maps: ReadonlyMap<string | number, tf.Tensor4D> | undefined, batch: number): Map<string, tf.Tensor4D> {
    const out = new Map<string, tf.Tensor4D>();
    for (const [key, m] of maps ?? []) {
      const b = parseBlock(this.config, key);
      if (b.section !== "input") throw new Error(`addToInputBlocks: block ${key} is ${b.name}; maps can only be added to input blocks (1..${this.plan.blocks.filter((x) => x.section === "input").length})`);
      if (out.has(b.name)) throw new Error(`addToInputBlocks: two maps for ${b.name}`);
      if (m.rank !== 4 || m.shape[0] !== batch || m.shape[3] !== b.outCh) {
        throw new Error(`addToInputBlocks: the map for ${b.name} has shape [${m.shape.join(", ")}]; expected NHWC [${batch}, h, w, ${b.outCh}]`);
      }
      out.set(b.name, m);
    }
    return out;
  }

  private checkLabels(y: number[] | undefined, batch: number): number[] | null {
    const n = this.config.numClasses;
    if (n === null) {
      if (y !== undefined) throw new Error("labels y were given to an unconditional model (class_cond False)");
      return null;
    }
    if (y === undefined) throw new Error(`this model is class-conditional (${n} classes): pass y, one label per sample`);
    if (y.length !== batch) throw new Error(`${y.length} labels for a batch of ${batch}`);
    for (const v of y) if (!Number.isInteger(v) || v < 0 || v >= n) throw new Error(`label ${v} is outside 0..${n - 1}`);
    return y;
  }

  /** One block; `input` is consumed (disposed) when `consume`. Each module runs in its own tidy. */
  private runBlock(b: BlockSpec, input: tf.Tensor4D, emb: tf.Tensor2D, consume: boolean): tf.Tensor4D {
    let h = input;
    let ownsH = consume;
    for (const m of b.modules) {
      const prev = h;
      h = tf.tidy(() => this.runModule(m, prev, emb));
      if (ownsH) prev.dispose();
      ownsH = true;
    }
    return h;
  }

  private runModule(m: ModuleSpec, h: tf.Tensor4D, emb: tf.Tensor2D): tf.Tensor4D {
    switch (m.kind) {
      case "conv": return conv2d(h, this.weights, m.name, m.stride);
      case "res": return resBlock(h, emb, this.weights, m, this.norm);
      case "attn": return attentionBlock(h, this.weights, m, this.norm);
      case "down": return downsample(h, this.weights, m);
      case "up": return upsample(h, this.weights, m);
    }
  }
}
