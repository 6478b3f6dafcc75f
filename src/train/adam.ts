import * as tf from '@tensorflow/tfjs';
import type { Params } from '../nn/params.js';
import { adamInPlace } from '../nn/in_place_updates.js';

/**
 * Adam over a Params record, as the official improved-gan code (eps inside the square root:
 * p -= lr * m_hat / sqrt(v_hat + eps)). Written here rather than tf.train.adam because its
 * moments must live in our checkpoints under our stable parameter names.
 */
export interface AdamState {
  t: number;
  m: Record<string, tf.Variable>;
  v: Record<string, tf.Variable>;
}

export interface AdamArgs {
  beta1: number; // 0.5 in the paper (GAN training is unstable with 0.9)
  beta2: number;
  epsilon: number;
}

export class Adam {
  readonly state: AdamState;

  constructor(
    private readonly params: Params,
    private readonly args: AdamArgs,
  ) {
    const m: Record<string, tf.Variable> = {};
    const v: Record<string, tf.Variable> = {};
    // tidy: the zerosLike temporaries would otherwise keep the moments' memory alive after dispose().
    tf.tidy(() => {
      for (const name of params.trainable) {
        m[name] = tf.variable(tf.zerosLike(params.vars[name]), false);
        v[name] = tf.variable(tf.zerosLike(params.vars[name]), false);
      }
    });
    this.state = { t: 0, m, v };
  }

  /** One update with gradients keyed by parameter name. */
  apply(grads: Record<string, tf.Tensor>, lr: number): void {
    const { beta1, beta2, epsilon } = this.args;
    const t = ++this.state.t;
    const c1 = 1 - beta1 ** t;
    const c2 = 1 - beta2 ** t;
    const step = { beta1, beta2, lrOverC1: lr / c1, c2, epsilon };
    tf.tidy(() => {
      for (const name of this.params.trainable) {
        const g = grads[name];
        if (!g) throw new Error(`Adam: no gradient for ${name}`);
        const m = this.state.m[name];
        const v = this.state.v[name];
        if (adamInPlace(this.params.vars[name], m, v, g, step)) continue; // the same numbers, natively
        m.assign(m.mul(beta1).add(g.mul(1 - beta1)));
        v.assign(v.mul(beta2).add(g.square().mul(1 - beta2)));
        const p = this.params.vars[name];
        p.assign(p.sub(m.mul(lr / c1).div(v.div(c2).add(epsilon).sqrt())));
      }
    });
  }

  dispose(): void {
    for (const x of [...Object.values(this.state.m), ...Object.values(this.state.v)]) x.dispose();
  }
}
