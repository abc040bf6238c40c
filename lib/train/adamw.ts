/**
 * AdamW on named tf.Variables, step for step as `torch.optim.AdamW` (decoupled weight decay):
 *
 *   p ← p·(1 − lr·wd)
 *   m ← β1·m + (1 − β1)·g          v ← β2·v + (1 − β2)·g²
 *   p ← p − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε)
 *
 * guided-diffusion trains with AdamW(lr 1e-4, weight_decay 0.0) and default betas (0.9, 0.999), eps 1e-8.
 * The moments are tf.Variables too (kept resident; saved and restored by ./checkpoint-state).
 */
import * as tf from "@tensorflow/tfjs";

export interface AdamWOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

export class AdamW {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** First and second moments, keyed like the parameters. */
  readonly m = new Map<string, tf.Variable>();
  readonly v = new Map<string, tf.Variable>();
  /** Updates applied so far (torch's `state["step"]`). */
  step = 0;

  constructor(readonly params: Map<string, tf.Variable>, opts: AdamWOptions) {
    this.lr = opts.lr;
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
    if (!(this.lr > 0)) throw new Error(`AdamW: lr must be positive, got ${this.lr}`);
    for (const [k, b] of [["beta1", this.beta1], ["beta2", this.beta2]] as const) {
      if (!(b >= 0 && b < 1)) throw new Error(`AdamW: ${k} must be in [0, 1), got ${b}`);
    }
    for (const [name, p] of params) {
      this.m.set(name, tf.variable(tf.zerosLike(p), false));
      this.v.set(name, tf.variable(tf.zerosLike(p), false));
    }
  }

  /** Apply one update with `grads` (keyed by parameter name; every parameter must have one). */
  update(grads: Map<string, tf.Tensor>): void {
    this.step++;
    const t = this.step;
    const { lr, beta1: b1, beta2: b2, eps, weightDecay: wd } = this;
    const stepSize = lr / (1 - b1 ** t);
    const bc2Sqrt = Math.sqrt(1 - b2 ** t);
    for (const [name, p] of this.params) {
      const g = grads.get(name);
      if (!g) throw new Error(`AdamW: no gradient for ${name}`);
      const mv = this.m.get(name)!;
      const vv = this.v.get(name)!;
      tf.tidy(() => {
        const m = tf.add(tf.mul(mv, b1), tf.mul(g, 1 - b1));
        const v = tf.add(tf.mul(vv, b2), tf.mul(tf.square(g), 1 - b2));
        const decayed = wd !== 0 ? tf.mul(p, 1 - lr * wd) : p;
        const denom = tf.add(tf.div(tf.sqrt(v), bc2Sqrt), eps);
        p.assign(tf.sub(decayed, tf.mul(tf.div(m, denom), stepSize)));
        mv.assign(m);
        vv.assign(v);
      });
    }
  }

  dispose(): void {
    for (const x of [...this.m.values(), ...this.v.values()]) x.dispose();
    this.m.clear();
    this.v.clear();
  }
}
