import * as tf from '@tensorflow/tfjs';

/**
 * softplus(x) = log(1 + e^x), computed as max(x, 0) + log1p(e^-|x|): finite for any x
 * (the K+1 losses feed it logsumexps that can be large).
 */
export function stableSoftplus<T extends tf.Tensor>(x: T): T {
  return tf.relu(x).add(tf.log1p(tf.exp(tf.abs(x).neg()))) as T;
}

/**
 * Leaky ReLU, max(x, alpha x) (the official CIFAR D: alpha 0.2), as x * m with the slope mask
 * m = alpha + (1 - alpha) step(x) kept for the backward pass (dx = dy * m). On wasm, Step and Mul
 * are vectorized while tfjs's LeakyRelu kernel and its Greater/Where gradient are scalar loops:
 * measured 11 vs 28 ms forward and ~7x faster backward on 3.7M floats here.
 */
/** The official CIFAR D's leaky ReLU slope. */
export const LEAKY_SLOPE = 0.2;

export function leakyRelu<T extends tf.Tensor>(x: T, alpha = LEAKY_SLOPE): T {
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xIn, save] = args as [tf.Tensor, tf.GradSaveFunc];
    const m = tf.tidy(() =>
      tf
        .step(xIn, 0)
        .mul(1 - alpha)
        .add(alpha),
    );
    save([m]);
    return { value: xIn.mul(m), gradFunc: (dy: tf.Tensor, [mask]: tf.Tensor[]) => dy.mul(mask) };
  });
  return f(x) as T;
}
