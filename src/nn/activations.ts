import * as tf from '@tensorflow/tfjs';

/**
 * softplus(x) = log(1 + e^x), computed as max(x, 0) + log1p(e^-|x|): finite for any x
 * (the K+1 losses feed it logsumexps that can be large).
 */
export function stableSoftplus<T extends tf.Tensor>(x: T): T {
  return tf.relu(x).add(tf.log1p(tf.exp(tf.abs(x).neg()))) as T;
}
