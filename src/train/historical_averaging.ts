import * as tf from '@tensorflow/tfjs';
import type { Params } from '../nn/params.js';

/**
 * Historical averaging (Salimans et al. 2016, Sec. 3.3): each player's loss gets
 * ||theta - (1/t) sum_{i<=t} theta[i]||^2, pulling the parameters towards their own history
 * (fictitious play; damps oscillation). theta[i] are the values at the start of each step i,
 * the current one included, so the penalty is 0 at the first step. The running means are
 * kept per trainable parameter (no history is stored) and live in the checkpoint.
 */
export class HistoricalAverage {
  readonly mean: Record<string, tf.Variable> = {};
  count = 0;

  constructor(private readonly params: Params) {
    tf.tidy(() => {
      for (const name of params.trainable) this.mean[name] = tf.variable(tf.zerosLike(params.vars[name]), false);
    });
  }

  /** Fold the current parameters into the running mean (call once per step, before penalty()). */
  observe(): void {
    this.count++;
    const rate = 1 / this.count;
    tf.tidy(() => {
      for (const [name, m] of Object.entries(this.mean)) m.assign(m.add(this.params.vars[name].sub(m).mul(rate)));
    });
  }

  /** sum over trainable parameters of ||theta - mean||^2; differentiable w.r.t. theta. */
  penalty(): tf.Scalar {
    return tf.tidy(
      () =>
        tf.addN(
          Object.entries(this.mean).map(([name, m]) => this.params.vars[name].sub(m).square().sum()),
        ) as tf.Scalar,
    );
  }

  dispose(): void {
    for (const m of Object.values(this.mean)) m.dispose();
  }
}
