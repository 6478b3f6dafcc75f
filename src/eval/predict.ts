import * as tf from '@tensorflow/tfjs';
import type { Dataset } from '../data/dataset.js';
import { rowRange } from '../data/rows.js';
import type { GanModel } from '../models/model.js';
import type { Tensors } from '../nn/params.js';
import { argmaxRows } from './metrics.js';

/**
 * Deterministic (noise-free) class logits of D for every row of `data`, in chunks. A D with
 * minibatch discrimination sees batches of `batchSize` rows, as in training; any other D gives
 * the same logits whatever the chunking.
 */
export function discriminatorLogits(model: GanModel, d: Tensors, data: Dataset, batchSize = 100): Float32Array {
  const chunk = model.batchDependentD ? batchSize : 2000;
  const dim = data.x.dim;
  let k = 0;
  const parts: Float32Array[] = [];
  for (let s = 0; s < data.n; s += chunk) {
    const e = Math.min(data.n, s + chunk);
    const logits = tf.tidy(
      () => model.applyD(d, tf.tensor2d(rowRange(data.x, s, e), [e - s, dim]), { noise: null }).logits,
    );
    k = logits.shape[1];
    parts.push(logits.dataSync() as Float32Array);
    logits.dispose();
  }
  const out = new Float32Array(data.n * k);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** Predicted class per row. */
export function predictClasses(model: GanModel, d: Tensors, data: Dataset, batchSize = 100): Int32Array {
  return argmaxRows(discriminatorLogits(model, d, data, batchSize), data.classes.length);
}
