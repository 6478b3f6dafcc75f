import * as tf from '@tensorflow/tfjs';
import { dense, weightNormNative, type DenseActivation } from './native_layers.js';

/**
 * Weight normalization (Salimans & Kingma 2016): W = v * g / ||v||, per output unit (column).
 * Decouples a unit's direction (v) from its scale (g); with data-dependent init it replaces
 * batch norm in D without making an example's output depend on its batch.
 */
export function weightNormKernel(v: tf.Tensor2D, g: tf.Tensor1D): tf.Tensor2D {
  return weightNormNative(v, g) ?? tf.tidy(() => v.mul(g.div(v.square().sum(0).sqrt())) as tf.Tensor2D); // [in, out]
}

/** act(x W + b) with a weight-normalized W. */
export function weightNormDense(
  x: tf.Tensor2D,
  v: tf.Tensor2D,
  g: tf.Tensor1D,
  b: tf.Tensor1D,
  activation: DenseActivation = 'linear',
): tf.Tensor2D {
  return dense(x, weightNormKernel(v, g), b, activation); // [B, out]
}

/**
 * Data-dependent init: given this layer's pre-activations `a` (computed with the current g and
 * b = 0), choose g and b so that every unit has mean 0, std 1 on the init batch:
 * g <- g / std, b <- -mean / std. Returns the normalized pre-activations.
 */
export function dataDependentInit(a: tf.Tensor2D, g: tf.Variable, b: tf.Variable): tf.Tensor2D {
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(a, 0); // [out]
    const std = variance.sqrt();
    g.assign(g.div(std));
    b.assign(mean.neg().div(std));
    return a.sub(mean).div(std) as tf.Tensor2D;
  });
}
