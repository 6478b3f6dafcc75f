import * as tf from '@tensorflow/tfjs';
import type { Params, Tensors } from '../nn/params.js';
import { emaInPlace } from '../nn/in_place_updates.js';

/**
 * Exponential moving average of D's trainable weights; the averaged D is what is evaluated and
 * exported (the official code's `disc_param_avg`). The shadow starts at zero and is
 * bias-corrected (divided by 1 - decay^steps, as Adam's moments), so it is a proper weighted
 * mean of past weights from the first step on rather than a shrunken copy.
 */
export class Ema {
  readonly shadow: Record<string, tf.Variable> = {};
  steps = 0;

  /**
   * `warmup`: the decay of update t (0-based) is min(decay, (1 + t) / (10 + t)), so early
   * averages follow the recent weights instead of the first ones (tf.train.ExponentialMovingAverage's
   * num_updates rule); off, every update uses `decay` (the official code).
   */
  constructor(
    private readonly params: Params,
    readonly decay: number,
    readonly warmup = false,
  ) {
    tf.tidy(() => {
      for (const name of params.trainable) this.shadow[name] = tf.variable(tf.zerosLike(params.vars[name]), false);
    });
  }

  update(): void {
    const d = decayAt(this.decay, this.warmup, this.steps);
    this.steps++;
    tf.tidy(() => {
      for (const [name, s] of Object.entries(this.shadow)) {
        const p = this.params.vars[name];
        if (!emaInPlace(s, p, d)) s.assign(s.mul(d).add(p.mul(1 - d)));
      }
    });
  }

  /** Bias-corrected averages of the trainable weights, current values of the fixed ones. Caller disposes. */
  averaged(): Tensors {
    return averagedWeights(this.params.vars, this.shadow, this.decay, this.steps, this.warmup);
  }

  dispose(): void {
    for (const s of Object.values(this.shadow)) s.dispose();
  }
}

/**
 * The weights to evaluate: shadow / (1 - decay^steps) where a shadow exists, else the current
 * value (weights fixed after init). Shared by the live trainer and by checkpoint readers.
 */
export function averagedWeights(
  current: Tensors,
  shadow: Tensors,
  decay: number,
  steps: number,
  warmup = false,
): Tensors {
  const out: Tensors = {};
  const correction = 1 / (1 - remainingWeight(decay, warmup, steps));
  for (const [name, v] of Object.entries(current)) {
    const s = shadow[name];
    out[name] = s && steps > 0 ? s.mul(correction) : v.clone();
  }
  return out;
}

/** The decay of update t (0-based). */
export const decayAt = (decay: number, warmup: boolean, t: number) =>
  warmup ? Math.min(decay, (1 + t) / (10 + t)) : decay;

/**
 * The weight the zero start still has after `steps` updates, prod_t decay_t (decay^steps without
 * warm-up): the shadow divided by 1 minus it is a weighted mean of the past weights.
 */
export function remainingWeight(decay: number, warmup: boolean, steps: number): number {
  if (!warmup) return decay ** steps;
  let w = 1;
  for (let t = 0; t < steps; t++) w *= decayAt(decay, true, t);
  return w;
}
