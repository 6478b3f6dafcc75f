import * as tf from '@tensorflow/tfjs';
import { channelMoments } from './batch_norm.js';

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
    const exampleVar = d
      .square()
      .div(n + 1)
      .add(variance)
      .mul(w); // [B, U]
    const out = affine(d.mul(w).div(exampleVar.add(epsilon).sqrt())) as tf.Tensor2D; // [B, U]
    const refOut = affine(hRef.sub(mean).div(variance.add(epsilon).sqrt())) as tf.Tensor2D; // [n, U]
    return { out, refOut };
  });
}

/**
 * Virtual batch norm for feature maps h [B, H, W, C] (per channel), as the official ImageNet
 * code's VBN: an example's statistics (over its own H x W positions) get weight 1/(n+1), the
 * reference batch's (over n x H x W) weight n/(n+1). With m, v the reference's per-channel mean
 * and variance, d = h - m, and dMean, dVar the example's spatial mean and variance of d:
 *   mu(x) - m = dMean / (n+1)
 *   var(x)    = n/(n+1) v + 1/(n+1) dVar + n/(n+1)^2 dMean^2        (>= 0 term by term)
 *   out(x)    = (d - dMean/(n+1)) / sqrt(var(x) + eps) + shift
 * The reference batch is normalized with its own statistics (refOut), as in virtualBatchNorm.
 */
export function virtualBatchNormChannels(
  h: tf.Tensor4D, // [B, H, W, C]
  hRef: tf.Tensor4D, // [n, H, W, C]
  shift: tf.Tensor1D, // [C]
  epsilon = 1e-6,
): { out: tf.Tensor4D; refOut: tf.Tensor4D } {
  const n = hRef.shape[0];
  if (n < 1) throw new Error('virtual batch norm: empty reference batch');
  if (h.shape.slice(1).join() !== hRef.shape.slice(1).join())
    throw new Error(`virtual batch norm: h is [${h.shape}], the reference [${hRef.shape}]; their H, W, C must agree`);
  return tf.tidy(() => {
    const { mean, variance } = channelMoments(hRef); // [C] each
    const d = h.sub(mean); // [B, H, W, C]
    const dMean = d.mean([1, 2], true); // [B, 1, 1, C]
    const dVar = d.sub(dMean).square().mean([1, 2], true); // [B, 1, 1, C]
    const w = 1 / (n + 1);
    const exampleVar = variance
      .mul(1 - w)
      .add(dVar.mul(w))
      .add(dMean.square().mul(w * (1 - w))); // [B, 1, 1, C]
    const out = d.sub(dMean.mul(w)).div(exampleVar.add(epsilon).sqrt()).add(shift) as tf.Tensor4D;
    const refOut = hRef.sub(mean).div(variance.add(epsilon).sqrt()).add(shift) as tf.Tensor4D;
    return { out, refOut };
  });
}
