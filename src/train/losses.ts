import * as tf from '@tensorflow/tfjs';
import { stableSoftplus } from '../nn/activations.js';
import { discriminatorLossesNative, type DiscriminatorLossSpec } from '../nn/native_layers.js';

export type { DiscriminatorLossSpec };

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

/** [B, K] -> [B, K]: p(class k | x, real), the softmax over the K real classes. */
const classProbabilities = (logits: tf.Tensor2D) => tf.softmax(logits, 1) as tf.Tensor2D;

/**
 * Conditional entropy of D's class distribution on unlabeled rows, mean over rows of
 * -sum_k p_k log p_k with p = softmax over the K real classes. D minimizing it is pushed to
 * confident class decisions on unlabeled data (Bad GAN, Dai et al. 2017, weight 0.1 on SVHN).
 * log p_k is taken as l_k - logsumexp(l), finite for any logits.
 */
export function conditionalEntropy(logitsUnl: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    const logP = logitsUnl.sub(logSumExpRows(logitsUnl).expandDims(1));
    return logP.exp().mul(logP).sum(1).mean().neg();
  }) as tf.Scalar;
}

/**
 * Consistency of D on one unlabeled batch passed twice with independent noise (CT-GAN, Wei et al.
 * 2018): the mean over rows and classes of (p1_k - p2_k)^2, p = softmax over the K real classes.
 */
export function consistencyLoss(logitsA: tf.Tensor2D, logitsB: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => classProbabilities(logitsA).sub(classProbabilities(logitsB)).square().mean()) as tf.Scalar;
}

/**
 * VAT's divergence (Miyato et al. 2018): the mean over rows of KL(p || q) between the class
 * distributions softmax(logitsP) and softmax(logitsQ) over the K real classes. The caller stops
 * the gradient through p (it is the target).
 */
export function classKl(logitsP: tf.Tensor2D, logitsQ: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    const logP = tf.logSoftmax(logitsP);
    const logQ = tf.logSoftmax(logitsQ);
    return tf.exp(logP).mul(logP.sub(logQ)).sum(1).mean();
  }) as tf.Scalar;
}

/** Each row scaled to unit L2 norm (1e-12 keeps an all-zero row finite): VAT's direction. */
export function unitRows(x: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => x.div(x.square().sum(1, true).add(1e-12).sqrt())) as tf.Tensor2D;
}

/**
 * The pull-away term on G's samples (EBGAN, Zhao et al. 2017; Bad GAN's G, weight 0.8 on SVHN):
 * the mean over pairs i != j of the squared cosine similarity of D's features f_i, f_j. G
 * minimizing it spreads its samples' features apart (against mode collapse). 1e-8 keeps the
 * norm of an all-zero feature row finite.
 */
export function pullAwayLoss(featFake: tf.Tensor2D): tf.Scalar {
  const n = featFake.shape[0];
  if (n < 2) return tf.scalar(0);
  return tf.tidy(() => {
    const unit = featFake.div(featFake.square().sum(1, true).add(1e-8).sqrt()); // [B, F], rows of norm 1
    const cos2 = tf.matMul(unit, unit, false, true).square(); // [B, B]; the diagonal is 1 (or 0 for zero rows)
    const diagonal = unit.square().sum(1).square().sum();
    return cos2
      .sum()
      .sub(diagonal)
      .div(n * (n - 1));
  }) as tf.Scalar;
}

/**
 * D's whole loss from the logits of one pass over [labeled; unlabeled; generated; second look]
 * rows: total = lab + unlabeledWeight * unl + entropy * H + consistency * C, and the parts for
 * the log as [labeled loss, unlabeled loss, labeled error rate]. One native call each way when
 * the addon is there (~200 tfjs kernel calls otherwise).
 */
export function discriminatorLosses(
  logits: tf.Tensor2D,
  labels: tf.Tensor1D,
  spec: DiscriminatorLossSpec,
): { total: tf.Scalar; parts: tf.Tensor1D } {
  const native = discriminatorLossesNative(logits, labels, spec);
  if (native)
    return { total: native.slice([0], [1]).reshape([]) as tf.Scalar, parts: native.slice([1], [3]) as tf.Tensor1D };
  const { labeled: bs, unlabeled: nUnl, generated: nFake } = spec;
  const logitsLab = logits.slice([0, 0], [bs, -1]) as tf.Tensor2D;
  const lossLab = supervisedLoss(logitsLab, labels);
  const trainErr = errorRate(logitsLab, labels);
  if (nUnl === 0) return { total: lossLab, parts: tf.stack([lossLab, tf.scalar(0), trainErr]) as tf.Tensor1D };
  const logitsUnl = logits.slice([bs, 0], [nUnl, -1]) as tf.Tensor2D;
  const logitsFake = logits.slice([bs + nUnl, 0], [nFake, -1]) as tf.Tensor2D;
  const lossUnl = unsupervisedLoss(logitsUnl, logitsFake, spec.realTarget);
  let total = lossLab.add(lossUnl.mul(spec.unlabeledWeight)) as tf.Scalar;
  if (spec.entropy > 0) total = total.add(conditionalEntropy(logitsUnl).mul(spec.entropy));
  if (spec.secondLook !== null) {
    const again = logits.slice([spec.secondLook, 0], [nUnl, -1]) as tf.Tensor2D;
    total = total.add(consistencyLoss(logitsUnl, again).mul(spec.consistency));
  }
  return { total, parts: tf.stack([lossLab, lossUnl, trainErr]) as tf.Tensor1D };
}
