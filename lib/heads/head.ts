/**
 * What every trainable head (MLP/linear, CNN, attention) is to the trainer, the evaluator and the
 * checkpoints: named tfjs variables and a function from a batch of rows to class logits.
 *
 * Rows arrive as the FeatureSource gives them: [n, rowSize(inShape)] float32, channel-major
 * ([C, H, W] flattened as PyTorch does). Weight matrices are stored [in, out] (tfjs convention; a
 * PyTorch nn.Linear weight is the transpose). Initialisation follows PyTorch's defaults for nn.Linear
 * and nn.Conv2d (weights and biases uniform in +-1/sqrt(fan_in)), drawn from the seeded JS generator
 * (lib/rng.ts), so a head is identical on every backend and machine for a seed.
 */
import * as tf from "@tensorflow/tfjs";
import { Rng } from "../rng";

/** Receives a head's named intermediate tensors during `apply` (inside its tidy: copy what you keep). */
export type HeadTrace = (name: string, value: tf.Tensor) => void;

export interface Head {
  readonly kind: "mlp" | "cnn" | "attention" | "difformer" | "diffeed";
  /** JSON-serialisable description of the architecture (recorded in checkpoints, compared on resume). */
  readonly config: Record<string, unknown>;
  /** Shape of one input row, channel-major. */
  readonly inShape: readonly number[];
  readonly numClasses: number;
  /** Trainable parameters, in a fixed order, by name. */
  readonly params: ReadonlyArray<{ name: string; variable: tf.Variable }>;
  /**
   * Logits [n, numClasses] for rows [n, rowSize(inShape)]. Call inside tf.tidy. `trace`, where a head
   * supports it (attention, DifFormer), is called with named intermediates (for reference checks).
   */
  apply(x: tf.Tensor2D, trace?: HeadTrace): tf.Tensor2D;
  /**
   * State that is not trained but changes in training (DifFeed's BatchNorm running statistics), by name;
   * checkpoints save and restore it with the parameters. Absent: none.
   */
  readonly buffers?: ReadonlyArray<{ name: string; variable: tf.Variable }>;
  /**
   * Training mode on or off, as PyTorch's module.train() / eval(), for heads whose forward differs
   * (BatchNorm: batch statistics and running-statistic updates in training). trainHead switches it on
   * for its epochs and off at the end; evaluation switches it off. Absent: the head has no such mode.
   */
  setTraining?(on: boolean): void;
  dispose(): void;
}

/** Total number of trainable values of a built head. */
export function countParams(head: Head): number {
  return head.params.reduce((s, p) => s + p.variable.size, 0);
}

/** Builds named variables from a seeded generator. */
export class ParamBuilder {
  readonly params: { name: string; variable: tf.Variable }[] = [];
  private readonly rng: Rng;
  constructor(seed: number, stream: number) {
    this.rng = new Rng(seed, stream);
  }
  private add(name: string, values: Float32Array, shape: number[]): tf.Variable {
    const variable = tf.variable(tf.tensor(values, shape), true);
    this.params.push({ name, variable });
    return variable;
  }
  /** Uniform in [-bound, bound). */
  uniform(name: string, shape: number[], bound: number): tf.Variable {
    const n = shape.reduce((a, b) => a * b, 1);
    const v = this.rng.fillUniform(new Float32Array(n), 0, bound / Math.sqrt(3));
    return this.add(name, v, shape);
  }
  constant(name: string, shape: number[], value: number): tf.Variable {
    return this.add(name, new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(value), shape);
  }
  /** A PyTorch-default dense layer: weight [fanIn, out], bias [out]. */
  dense(name: string, fanIn: number, out: number, bias = true): { w: tf.Variable; b: tf.Variable | null } {
    const bound = 1 / Math.sqrt(fanIn);
    const w = this.uniform(`${name}.weight`, [fanIn, out], bound);
    return { w, b: bias ? this.uniform(`${name}.bias`, [out], bound) : null };
  }
  /** A PyTorch-default conv layer: kernel [k, k, in, out] (tfjs layout), bias [out]. */
  conv(name: string, k: number, cin: number, cout: number): { w: tf.Variable; b: tf.Variable } {
    const bound = 1 / Math.sqrt(cin * k * k);
    return { w: this.uniform(`${name}.weight`, [k, k, cin, cout], bound), b: this.uniform(`${name}.bias`, [cout], bound) };
  }
}

export function disposeParams(params: ReadonlyArray<{ variable: tf.Variable }>): void {
  for (const p of params) p.variable.dispose();
}

/** [n, C*H*W] channel-major rows -> [n, H, W, C] (tfjs's NHWC). */
export function rowsToNHWC(x: tf.Tensor2D, shape: readonly number[]): tf.Tensor4D {
  const [c, h, w] = shape;
  return x.reshape([x.shape[0], c, h, w]).transpose([0, 2, 3, 1]) as tf.Tensor4D;
}
