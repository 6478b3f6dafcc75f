import * as tf from '@tensorflow/tfjs';

/**
 * Batch norm with batch statistics and a learned shift only (no scale), as the paper's MNIST
 * generator: the next layer (softplus, then a dense layer) absorbs the scale.
 */
export function batchNormShift(h: tf.Tensor2D, shift: tf.Tensor1D, epsilon = 1e-6): tf.Tensor2D {
  const { mean, variance } = tf.moments(h, 0); // [units]
  return h.sub(mean).div(variance.add(epsilon).sqrt()).add(shift) as tf.Tensor2D;
}
