import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../rng.js';

/**
 * Minibatch discrimination (Salimans et al. 2016, Sec. 3.2): D sees, for every example, how close
 * it is to the other examples of its minibatch, so a generator that collapses to a few modes
 * (near-identical samples) becomes easy to spot.
 *
 *   M = h T reshaped [B, kernels, dim]
 *   c_b(i, j) = exp(-||M_{i,b} - M_{j,b}||_L1)
 *   o(i)_b = sum over j != i in i's group of c_b(i, j)          (o [B, kernels])
 *
 * `groups` are consecutive segment sizes (default: one group, the whole batch). The trainer runs
 * labeled, unlabeled and generated rows through D in one pass; each source must get statistics
 * from its own rows only, or real rows would be told how close they are to generated ones.
 *
 * As in the official layer, o gets a learned per-kernel bias b, and a data-dependent init
 * (initMinibatchLayer) scales each kernel so that the typical nearest-neighbour distance is ~2
 * and centres o at 0: without it, o is either ~0 (far rows) or ~n (near rows) and swamps the
 * logits.
 */
export interface MinibatchDiscriminationArgs {
  /** Number of kernels B in the paper (100), i.e. features added per example. */
  kernels: number;
  /** Rows C of each kernel (5), the dimension the L1 distance is taken over. */
  dim: number;
}

/** T ~ N(0, 0.05^2), [in, kernels*dim], as the official code's minibatch layer. */
export function initMinibatchKernel(rng: Rng, inDim: number, args: MinibatchDiscriminationArgs): tf.Tensor2D {
  const cols = args.kernels * args.dim;
  return tf.tensor2d(rng.fillNormal(new Float32Array(inDim * cols), 0.05), [inDim, cols]);
}

/**
 * sign(x) with sign(0) = 0, from two Step kernels: wasm's Sign (and Greater) are scalar loops
 * ~18x slower than Step (7 ms vs 0.4 ms per 1M floats here), and the backward pass needs `dim`
 * of them per group.
 */
const sign = (x: tf.Tensor): tf.Tensor => tf.step(x, 0).sub(tf.step(x.neg(), 0));

/**
 * exp(-x) as sigmoid(-x) / sigmoid(x) on wasm: its Sigmoid is XNNPACK-vectorized, its Exp a
 * scalar loop (1.2 vs 7.4 ms per 1M floats); measured relative error <= 4e-7 for x >= 0, and
 * exp(-0) is exactly 1. Other backends use exp.
 */
function expNeg(x: tf.Tensor): tf.Tensor {
  if (tf.getBackend() !== 'wasm') return tf.exp(x.neg());
  return tf.sigmoid(x.neg()).div(tf.sigmoid(x));
}

/**
 * o for one group, x [dim, kernels, n] -> [kernels, n], with a hand-written gradient.
 *
 * Pairs are laid out [kernels, n, n] one dim-slice at a time, so every reduction is over the last
 * axis (a non-last one costs wasm a transpose) and no [n, n, kernels, dim] tensor exists.
 * The gradient uses the symmetry of c: with g = dL/do [kernels, n] and W_ij = (g_i + g_j) c_ij
 * (j != i), dL/dx_{d,i} = -sum_j W_ij sign(x_{d,i} - x_{d,j}). tfjs's autodiff of a broadcast
 * [n, n, kernels, dim] version took ~2x as long (its broadcast-sub gradients reduce over
 * non-last axes). sign(0) = 0 makes tied rows (a collapsed G) get a zero subgradient.
 */
function groupFeatures(x: tf.Tensor3D, offDiag: tf.Tensor2D): tf.Tensor2D {
  const [dim, kernels, n] = x.shape;
  if (dim < 1) throw new Error('minibatch discrimination: dim must be >= 1');
  // x_{d,i} - x_{d,j} for one slice xd [kernels, n] -> [kernels, n, n].
  const pairDiff = (xd: tf.Tensor) => xd.reshape([kernels, n, 1]).sub(xd.reshape([kernels, 1, n]));
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xIn, save] = args as [tf.Tensor3D, tf.GradSaveFunc];
    // Free the [kernels, n, n] temporaries now, not at the caller's tidy: keep only c.
    const { c, value } = tf.tidy(() => {
      const slices = tf.unstack(xIn, 0); // dim x [kernels, n]
      const dist = tf.addN(slices.map((xd) => pairDiff(xd).abs())); // [kernels, n, n]
      const c = expNeg(dist).mul(offDiag); // [kernels, n, n], c_ii = 0
      return { c, value: c.sum(-1) }; // value [kernels, n]
    });
    save([xIn, c]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, cs] = saved;
        const g = dy as tf.Tensor2D; // [kernels, n]
        const w = g
          .reshape([kernels, n, 1])
          .add(g.reshape([kernels, 1, n]))
          .mul(cs); // [kernels, n, n]
        const grads = tf.unstack(xs as tf.Tensor3D, 0).map((xd) => sign(pairDiff(xd)).mul(w).sum(-1).neg()); // dim x [kernels, n]
        return tf.stack(grads, 0); // [dim, kernels, n]
      },
    };
  });
  return f(x) as tf.Tensor2D;
}

/** The features o [B, kernels] of every row of h [B, in], statistics taken within each group. */
export function minibatchFeatures(
  h: tf.Tensor2D,
  T: tf.Tensor2D,
  args: MinibatchDiscriminationArgs,
  groups?: number[],
): tf.Tensor2D {
  const { kernels, dim } = args;
  const [B, inDim] = h.shape;
  if (T.shape[0] !== inDim || T.shape[1] !== kernels * dim)
    throw new Error(`minibatch discrimination: T is [${T.shape}], want [${inDim}, ${kernels * dim}]`);
  const sizes = groups ?? [B];
  if (sizes.some((s) => !Number.isInteger(s) || s < 1) || sizes.reduce((a, s) => a + s, 0) !== B)
    throw new Error(`minibatch discrimination: groups [${sizes}] must be positive sizes summing to the batch (${B})`);
  return tf.tidy(() => {
    const m = tf.matMul(h, T).reshape([B, kernels, dim]).transpose([2, 1, 0]) as tf.Tensor3D; // [dim, kernels, B]
    const parts = (sizes.length === 1 ? [m] : tf.split(m, sizes, 2)) as tf.Tensor3D[]; // [dim, kernels, n] each
    const masks = new Map<number, tf.Tensor2D>();
    const offDiag = (n: number) => {
      if (!masks.has(n)) masks.set(n, tf.sub(1, tf.eye(n)) as tf.Tensor2D); // [n, n]
      return masks.get(n)!;
    };
    const o = parts.map((p, k) => groupFeatures(p, offDiag(sizes[k]))); // [kernels, n] each
    return (o.length === 1 ? o[0] : tf.concat(o, 1)).transpose() as tf.Tensor2D; // [B, kernels]
  });
}

/** The layer's output: h with its (biased) minibatch features appended, [B, in + kernels]. */
export function minibatchDiscrimination(
  h: tf.Tensor2D,
  T: tf.Tensor2D,
  b: tf.Tensor1D,
  args: MinibatchDiscriminationArgs,
  groups?: number[],
): tf.Tensor2D {
  return tf.tidy(() => tf.concat([h, minibatchFeatures(h, T, args, groups).add(b) as tf.Tensor2D], 1));
}

/**
 * Data-dependent init on a batch h [n, in] (one group): per kernel k, s_k = 0.5 * mean_i min_{j != i}
 * ||M_{i,k} - M_{j,k}||_1; T's columns of kernel k are divided by s_k (distances scale linearly
 * with T), then b = -mean_i o(i) so the features start centred. Returns the new T and b.
 */
export function initMinibatchLayer(
  h: tf.Tensor2D,
  T: tf.Tensor2D,
  args: MinibatchDiscriminationArgs,
): { T: tf.Tensor2D; b: tf.Tensor1D } {
  const { kernels, dim } = args;
  const n = h.shape[0];
  return tf.tidy(() => {
    const m = tf.matMul(h, T).reshape([n, kernels, dim]).transpose([1, 0, 2]); // [kernels, n, dim]
    const dist = m
      .reshape([kernels, n, 1, dim])
      .sub(m.reshape([kernels, 1, n, dim]))
      .abs()
      .sum(-1); // [kernels, n, n]
    const self = tf.eye(n).mul(1e30).reshape([1, n, n]);
    const scale = dist.add(self).min(-1).mean(-1).mul(0.5); // [kernels]
    const colScale = scale
      .reshape([kernels, 1])
      .tile([1, dim])
      .reshape([1, kernels * dim]); // [1, kernels*dim]
    const scaledT = T.div(colScale) as tf.Tensor2D;
    const b = minibatchFeatures(h, scaledT, args).mean(0).neg() as tf.Tensor1D; // [kernels]
    return { T: scaledT, b };
  });
}
