/**
 * Optimisers for the heads, written out (PyTorch's update rules, so the authors' recipes carry over),
 * with state that checkpoints can save and restore exactly:
 *
 *   SGD (torch.optim.SGD, dampening 0, no Nesterov):
 *     g = grad + weightDecay * p;  buf = momentum * buf + g (buf = g at the first step);  p -= lr * buf
 *   Adam (torch.optim.Adam, no amsgrad; weight decay is an L2 term added to the gradient):
 *     g = grad + weightDecay * p, then AdamW's moments and step without the decoupled decay
 *   AdamW (torch.optim.AdamW, no amsgrad):
 *     p *= 1 - lr * weightDecay;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
 *     p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 *
 * Learning rate per epoch: step decay lr * gamma^floor(epoch / stepEpochs) (torch StepLR stepped once
 * per epoch); the authors' linear recipe is SGD lr 1e-2, momentum (their script: none; 0.9 is common),
 * step 7 epochs x 0.1, 28 epochs.
 */
import * as tf from "@tensorflow/tfjs";

export type OptimizerSpec =
  | { kind: "sgd"; lr: number; momentum: number; weightDecay: number }
  | { kind: "adam" | "adamw"; lr: number; beta1: number; beta2: number; eps: number; weightDecay: number };

export interface LrSchedule {
  /** Multiply the rate by gamma every stepEpochs epochs (null: constant rate). */
  stepEpochs: number | null;
  gamma: number;
}

export const SGD_DEFAULTS = { momentum: 0.9, weightDecay: 0 };
export const ADAMW_DEFAULTS = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-2 };

/**
 * The project's linear-probe recipe (notebooks 01, 02 and 08): standardised features, Adam lr 1e-3 with an L2
 * term 1e-4, batches of 256, 30 epochs, constant rate. A convex problem: it converges to the same optimum
 * from any start; `epochs` is the setting the demo trades against time.
 */
export const PROBE_RECIPE = {
  optimizer: { kind: "adam", lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-4 } as OptimizerSpec,
  schedule: null as LrSchedule | null,
  epochs: 30,
  batchSize: 256,
};

/** The authors' linear-probe recipe (recipes.linear): SGD lr 1e-2, StepLR 7 x 0.1, 28 epochs. */
export const PAPER_LINEAR_RECIPE = {
  optimizer: { kind: "sgd", lr: 1e-2, momentum: 0, weightDecay: 0 } as OptimizerSpec,
  schedule: { stepEpochs: 7, gamma: 0.1 } as LrSchedule,
  epochs: 28,
};

/** Learning rate in (0-based) epoch `epoch`. */
export function learningRate(base: number, schedule: LrSchedule | null | undefined, epoch: number): number {
  if (!schedule || schedule.stepEpochs === null) return base;
  return base * schedule.gamma ** Math.floor(epoch / schedule.stepEpochs);
}

export interface Optimizer {
  readonly spec: OptimizerSpec;
  /** One update of `params` with `grads` (same order) at learning rate `lr`. */
  step(params: ReadonlyArray<tf.Variable>, grads: ReadonlyArray<tf.Tensor>, lr: number): void;
  /** Number of steps taken. */
  readonly steps: number;
  /** Slot arrays for checkpoints: name -> values (with steps). */
  getState(): { steps: number; slots: Record<string, Float32Array> };
  setState(state: { steps: number; slots: Record<string, Float32Array> }, params: ReadonlyArray<tf.Variable>): void;
  dispose(): void;
}

export function createOptimizer(spec: OptimizerSpec): Optimizer {
  if (!(spec.lr > 0)) throw new Error(`optimizer: lr must be > 0, got ${spec.lr}`);
  const slots = new Map<string, tf.Variable>();
  let steps = 0;
  const slot = (name: string, like: tf.Tensor): tf.Variable => {
    let s = slots.get(name);
    if (!s) {
      s = tf.variable(tf.zerosLike(like), false);
      slots.set(name, s);
    }
    return s;
  };
  return {
    spec,
    get steps() {
      return steps;
    },
    step(params, grads, lr) {
      if (params.length !== grads.length) throw new Error(`optimizer: ${params.length} parameters but ${grads.length} gradients`);
      steps++;
      tf.tidy(() => {
        params.forEach((p, i) => {
          let g = grads[i];
          if (spec.kind === "sgd") {
            if (spec.weightDecay) g = g.add(p.mul(spec.weightDecay));
            if (spec.momentum) {
              const buf = slot(`${i}.momentum`, p);
              buf.assign(steps === 1 ? g : buf.mul(spec.momentum).add(g));
              g = buf;
            }
            p.assign(p.sub(g.mul(lr)));
          } else {
            if (spec.kind === "adam" && spec.weightDecay) g = g.add(p.mul(spec.weightDecay));
            const m = slot(`${i}.m`, p), v = slot(`${i}.v`, p);
            m.assign(m.mul(spec.beta1).add(g.mul(1 - spec.beta1)));
            v.assign(v.mul(spec.beta2).add(g.square().mul(1 - spec.beta2)));
            const c1 = 1 - spec.beta1 ** steps, c2 = 1 - spec.beta2 ** steps;
            const decayed = spec.kind === "adamw" && spec.weightDecay ? p.mul(1 - lr * spec.weightDecay) : p;
            p.assign(decayed.sub(m.div(c1).div(v.div(c2).sqrt().add(spec.eps)).mul(lr)));
          }
        });
      });
    },
    getState() {
      const out: Record<string, Float32Array> = {};
      for (const [k, v] of slots) out[k] = v.dataSync() as Float32Array;
      return { steps, slots: out };
    },
    setState(state, params) {
      for (const s of slots.values()) s.dispose();
      slots.clear();
      steps = state.steps;
      for (const [k, values] of Object.entries(state.slots)) {
        const i = Number(k.split(".")[0]);
        if (!(i >= 0 && i < params.length) || params[i].size !== values.length) throw new Error(`optimizer state: slot ${k} does not fit the parameters`);
        slots.set(k, tf.variable(tf.tensor(values, params[i].shape), false));
      }
    },
    dispose() {
      for (const s of slots.values()) s.dispose();
      slots.clear();
    },
  };
}
