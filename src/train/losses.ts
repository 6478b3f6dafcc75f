import * as tf from '@tensorflow/tfjs';
import { stableSoftplus } from '../nn/activations.js';

/**
 * The K+1-class losses of Salimans et al. 2016, Sec. 5. D outputs K logits l_1..l_K; the logit
 * of the (K+1)-th "fake" class is fixed at 0 (softmax is invariant to shifting all logits, so
 * this loses nothing). With Z = sum_k exp(l_k) and lse = log Z:
 *   p(real | x) = D(x) = Z / (Z + 1) = sigmoid(lse)
 *   -log D(x)       = -lse + softplus(lse)
 *   -log(1 - D(x))  = softplus(lse)
 */

/** [B, K] -> [B]: log Z(x). */
export const logSumExpRows = (logits: tf.Tensor2D): tf.Tensor1D => tf.logSumExp(logits, 1) as tf.Tensor1D;

/** D(x) = Z/(Z+1): how "real" (in-distribution) an input looks. */
export const realness = (logits: tf.Tensor2D): tf.Tensor1D => tf.sigmoid(logSumExpRows(logits));

/** Cross-entropy over the K real classes on the labeled batch (the fake class plays no part). */
export function supervisedLoss(logitsLab: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  const picked = logitsLab.mul(tf.oneHot(labels, logitsLab.shape[1])).sum(1); // [B]
  return logSumExpRows(logitsLab).sub(picked).mean() as tf.Scalar;
}

/**
 * The unsupervised GAN loss of D, each half weighted 0.5 as in the official code:
 *   0.5 * E_unl[-log D(x)] + 0.5 * E_fake[-log(1 - D(G(z)))]
 * = -0.5 mean(lse_unl) + 0.5 mean(softplus(lse_unl)) + 0.5 mean(softplus(lse_fake)).
 *
 * One-sided label smoothing (Sec. 3.4) replaces the real target 1 by alpha, the fake target
 * staying 0: the real half becomes -alpha log D(x) - (1 - alpha) log(1 - D(x))
 * = alpha (-lse + softplus(lse)) + (1 - alpha) softplus(lse) = -alpha lse + softplus(lse).
 * alpha = 1 is the unsmoothed loss.
 */
export function unsupervisedLoss(logitsUnl: tf.Tensor2D, logitsFake: tf.Tensor2D, realTarget = 1): tf.Scalar {
  const lseUnl = logSumExpRows(logitsUnl);
  const lseFake = logSumExpRows(logitsFake);
  return tf.tidy(() =>
    lseUnl
      .mean()
      .mul(-0.5 * realTarget)
      .add(stableSoftplus(lseUnl).mean().mul(0.5))
      .add(stableSoftplus(lseFake).mean().mul(0.5)),
  ) as tf.Scalar;
}

/**
 * Feature matching (Sec. 3.1): G matches the mean of D's intermediate features on real data.
 * l2 (MNIST recipe): mean over units of (E f(x) - E f(G(z)))^2; l1 (CIFAR recipe): mean of |.|.
 */
export function featureMatchingLoss(
  featReal: tf.Tensor2D,
  featFake: tf.Tensor2D,
  distance: 'l2' | 'l1' = 'l2',
): tf.Scalar {
  const diff = featFake.mean(0).sub(featReal.mean(0));
  return (distance === 'l2' ? diff.square() : diff.abs()).mean() as tf.Scalar;
}

/** G's non-saturating loss (used when feature matching is off): E[-log D(G(z))] = mean(-lse + softplus(lse)). */
export function nonSaturatingGeneratorLoss(logitsFake: tf.Tensor2D): tf.Scalar {
  const lse = logSumExpRows(logitsFake);
  return stableSoftplus(lse).sub(lse).mean() as tf.Scalar;
}

/** Fraction of rows whose argmax differs from the label. */
export function errorRate(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  return tf.notEqual(logits.argMax(1), labels).cast('float32').mean() as tf.Scalar;
}
