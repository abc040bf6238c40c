/**
 * Exponential moving average of the weights, as guided-diffusion's `update_ema`:
 *   ema ← rate·ema + (1 − rate)·param      after every optimizer step, starting from the initial weights.
 *
 * Rate: guided-diffusion uses 0.9999 over hundreds of thousands of steps. The average's memory is about
 * 1/(1 − rate) steps and the initial (random) weights keep a share rate^steps, so a short run needs a
 * lower rate: 0.9999 keeps e^-1 = 37% of the random init after 10k steps, 0.999 keeps e^-10 after 10k
 * (and averages over the last ~1k steps). The trainer's default is 0.999 (see ./trainer).
 */
import * as tf from "@tensorflow/tfjs";

export class Ema {
  /** The averaged weights, keyed like the parameters (tfjs layout). */
  readonly shadow = new Map<string, tf.Variable>();

  constructor(readonly params: Map<string, tf.Variable>, readonly rate: number) {
    if (!(rate >= 0 && rate < 1)) throw new Error(`EMA rate must be in [0, 1), got ${rate}`);
    for (const [name, p] of params) this.shadow.set(name, tf.variable(p.clone(), false));
  }

  /** One EMA step from the current parameters. */
  update(): void {
    const r = this.rate;
    for (const [name, p] of this.params) {
      const s = this.shadow.get(name)!;
      tf.tidy(() => s.assign(tf.add(tf.mul(s, r), tf.mul(p, 1 - r))));
    }
  }

  dispose(): void {
    for (const s of this.shadow.values()) s.dispose();
    this.shadow.clear();
  }
}
