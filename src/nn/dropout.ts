import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../rng.js';

/**
 * Inverted dropout: each value is zeroed with probability `rate`, the rest scaled by 1/(1 - rate)
 * (as Lasagne's DropoutLayer in the official CIFAR model), so evaluation uses x unchanged.
 *
 * The mask comes from our seeded Rng, not tf.dropout: runs must be reproducible and resumable
 * from the checkpointed Rng state (see rng.ts). Each uint32 draw gives two 16-bit uniforms (D's
 * dropout needs millions of values per step); the keep probability is then quantized to
 * 1/65536, and the scale uses the quantized value so that E[dropout(x)] = x exactly.
 */
export function dropout<T extends tf.Tensor>(x: T, rate: number, rng: Rng): T {
  if (!(rate >= 0 && rate < 1)) throw new Error(`dropout: rate must be in [0, 1); got ${rate}`);
  if (rate === 0) return x;
  return x.mul(tf.tensor(dropoutMask(x.size, rate, rng), x.shape)) as T;
}

/** n values, each 0 or 1/keep (keep = the quantized 1 - rate). */
export function dropoutMask(n: number, rate: number, rng: Rng): Float32Array {
  const threshold = Math.round(rate * 65536); // drop when a 16-bit uniform < threshold
  const scale = 65536 / (65536 - threshold);
  const mask = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = rng.nextUint32();
    mask[i] = (u & 0xffff) < threshold ? 0 : scale;
    if (i + 1 < n) mask[i + 1] = u >>> 16 < threshold ? 0 : scale;
  }
  return mask;
}
