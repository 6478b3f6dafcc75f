import * as tf from '@tensorflow/tfjs';
import type { GanModel } from '../models/model.js';
import type { Tensors } from '../nn/params.js';
import { uniformNoise } from '../nn/noise.js';
import { Rng } from '../rng.js';

/**
 * n generated examples [n, dim], z from Rng(seed), in batches of `batchSize` (G's batch norm uses
 * batch statistics, so samples are drawn in training-sized batches).
 */
export function generateImages(model: GanModel, g: Tensors, n: number, seed: number, batchSize = 100): Float32Array {
  const rng = new Rng(seed);
  const parts: Float32Array[] = [];
  for (let done = 0; done < n; done += batchSize) {
    const rows = Math.min(batchSize, n - done);
    const x = tf.tidy(() => model.applyG(g, uniformNoise(rows, model.zDim, rng)));
    parts.push(x.dataSync() as Float32Array);
    x.dispose();
  }
  const dim = parts[0].length / Math.min(batchSize, n);
  const out = new Float32Array(n * dim);
  parts.forEach((p, i) => out.set(p, i * batchSize * dim));
  return out;
}
