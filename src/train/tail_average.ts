import * as tf from '@tensorflow/tfjs';
import type { Tensors } from '../nn/params.js';

/**
 * A uniform average of D's weights over the last part of a run (stochastic weight averaging,
 * Izmailov et al. 2018; Athiwaratkun et al. 2019 for semi-supervised learning): one sample at
 * each epoch's end once the run's progress reaches `start`. A run that a budget ends mid-epoch
 * also counts the weights it ends with, without storing them as a sample, so a resumed run
 * continues exactly as if never stopped. At a
 * constant lr the weights wander around a region; the mean of many samples sits nearer its
 * centre than the EMA, whose window (decay 0.9999: ~17 MNIST epochs) forgets the older ones.
 */
export class TailAverage {
  readonly mean: Record<string, tf.Variable> = {};
  samples = 0;

  constructor(
    names: readonly string[],
    shapeOf: (name: string) => number[],
    readonly start: number,
  ) {
    for (const name of names) this.mean[name] = tf.variable(tf.zeros(shapeOf(name)), false);
  }

  /** Add `weights` (a name -> tensor map holding every averaged name) as one more sample. */
  add(weights: Tensors): void {
    const n = ++this.samples;
    tf.tidy(() => {
      // The running mean m += (w - m) / n: float32 sums of hundreds of samples would lose digits.
      for (const [name, m] of Object.entries(this.mean)) m.assign(m.add(weights[name].sub(m).div(n)));
    });
  }

  /** The averaged weights (with `current` as one more sample if `withCurrent`). Caller disposes. */
  averaged(current: Tensors, withCurrent = false): Tensors {
    return tailAveragedWeights(current, this.mean, this.samples, withCurrent);
  }

  dispose(): void {
    for (const m of Object.values(this.mean)) m.dispose();
  }
}

/**
 * The mean of `samples` samples over `current`'s names (weights fixed after init keep their
 * value), with `current` folded in as one more sample if `withCurrent`. Caller disposes.
 */
export function tailAveragedWeights(current: Tensors, mean: Tensors, samples: number, withCurrent: boolean): Tensors {
  const out: Tensors = {};
  for (const [name, v] of Object.entries(current)) {
    const m = mean[name];
    out[name] = !m ? v.clone() : withCurrent ? tf.tidy(() => m.add(v.sub(m).div(samples + 1))) : m.clone();
  }
  return out;
}

/**
 * How far a run is through its plan, in [0, 1]: the share of --epochs done, or of the
 * --max-minutes budget spent, whichever is further (the one that will stop it first).
 */
export function runProgress(
  plan: { epochs: number; maxMinutes: number | null; open: boolean },
  epoch: number,
  seconds: number,
): number {
  const byEpochs = plan.open ? 0 : epoch / plan.epochs;
  const byTime = plan.maxMinutes ? seconds / (plan.maxMinutes * 60) : 0;
  return Math.min(1, Math.max(byEpochs, byTime));
}
