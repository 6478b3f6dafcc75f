import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../rng.js';
import { addNoiseNative } from './native_layers.js';

/** x + N(0, std^2), drawn from our seeded Rng (see rng.ts for why not tf.randomNormal); std 0 draws nothing. */
export function gaussianNoise<T extends tf.Tensor>(x: T, std: number, rng: Rng): T {
  if (std === 0) return x;
  const drawn = addNoiseNative(x, std, rng);
  if (drawn) return drawn;
  const noise = rng.fillNormal(new Float32Array(x.size), std);
  return x.add(tf.tensor(noise, x.shape)) as T;
}

/** z ~ U[0, 1)^dim, the generator's input. */
export function uniformNoise(rows: number, dim: number, rng: Rng): tf.Tensor2D {
  return tf.tensor2d(rng.fillUniform(new Float32Array(rows * dim)), [rows, dim]);
}
