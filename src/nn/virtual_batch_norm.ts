import * as tf from '@tensorflow/tfjs';

/**
 * Virtual batch normalization (Salimans et al. 2016, Sec. 3.5), for the generator.
 *
 * Batch norm makes each generated example depend on the other z's of its minibatch. VBN instead
 * normalizes every example x with the statistics of a reference batch (n rows, chosen once at the
 * start of training: the caller keeps z_ref and runs it through G alongside each batch) combined
 * with x itself, so an example's output depends only on x and the reference batch:
 *
 *   mu(x)     = n/(n+1) mean_ref(h)   + 1/(n+1) x
 *   meansq(x) = n/(n+1) mean_ref(h^2) + 1/(n+1) x^2
 *   var(x)    = meansq(x) - mu(x)^2
 *   out(x)    = (x - mu(x)) / sqrt(var(x) + eps) * scale + shift          (per unit)
 *
 * The reference batch itself is normalized with its own batch statistics (plain batch norm) and
 * that result, refOut, is the next layer's reference input, layer by layer. Gradients flow
 * through the reference statistics too, as in the official code (they depend on G).
 *
 * Computed in the equivalent centered form: with m, v the reference batch's mean and (population)
 * variance and d = x - m,
 *   x - mu(x) = n/(n+1) d,   var(x) = n/(n+1) (v + d^2 / (n+1)).
 * meansq - mu^2 cancels catastrophically in float32 when a unit's mean is large against its std
 * (and can round below 0, giving NaN); the centered form is >= 0 by construction.
 */
export function virtualBatchNorm(
  h: tf.Tensor2D, // [B, U]
  hRef: tf.Tensor2D, // [n, U] reference activations at this layer
  shift: tf.Tensor1D, // [U]
  scale?: tf.Tensor1D, // [U]
  epsilon = 1e-6,
): { out: tf.Tensor2D; refOut: tf.Tensor2D } {
  const n = hRef.shape[0];
  if (n < 1) throw new Error('virtual batch norm: empty reference batch');
  if (h.shape[1] !== hRef.shape[1])
    throw new Error(`virtual batch norm: h has ${h.shape[1]} units, the reference ${hRef.shape[1]}`);
  const affine = (x: tf.Tensor) => (scale ? x.mul(scale) : x).add(shift);
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(hRef, 0); // [U] each
    const d = h.sub(mean); // [B, U]
    const w = n / (n + 1);
    const exampleVar = d.square().div(n + 1).add(variance).mul(w); // [B, U]
    const out = affine(d.mul(w).div(exampleVar.add(epsilon).sqrt())) as tf.Tensor2D; // [B, U]
    const refOut = affine(hRef.sub(mean).div(variance.add(epsilon).sqrt())) as tf.Tensor2D; // [n, U]
    return { out, refOut };
  });
}
