import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../rng.js';
import { makeParams, type Params, type Tensors } from '../nn/params.js';
import { dataDependentInit, weightNormDense, weightNormKernel } from '../nn/weight_norm.js';
import { gaussianNoise } from '../nn/noise.js';
import { batchNormShift } from '../nn/batch_norm.js';
import { stableSoftplus } from '../nn/activations.js';
import type { ApplyOptions, DiscriminatorOutput, GanModel } from './model.js';

/**
 * The paper's permutation-invariant MNIST model (Salimans et al. 2016, Sec. 5.1; official
 * train_mnist_feature_matching.py), for any flat input and K classes.
 *
 * D: x + N(0, 0.3^2) -> WN-dense 1000 relu + N(0, 0.5^2) -> 500 -> 250 -> 250 -> 250 -> WN-dense K.
 *    v ~ N(0, 0.1^2), b = 0, g = 1, then data-dependent init; g is trained only in the last layer.
 *    Feature matching uses the last 250-unit hidden layer (after relu, before its noise).
 * G: z ~ U[0,1)^100 -> dense 500 (no bias) BN softplus -> dense 500 BN softplus -> WN-dense dim sigmoid.
 */
export interface MnistMlpArgs {
  inputDim: number;
  numClasses: number;
  hidden?: number[]; // D's hidden widths
  genHidden?: number[]; // G's hidden widths
  zDim?: number;
  inputNoise?: number; // std of D's input noise
  hiddenNoise?: number; // std of the noise after each hidden layer of D
}

export function mnistMlp(args: MnistMlpArgs): GanModel {
  const hidden = args.hidden ?? [1000, 500, 250, 250, 250];
  const genHidden = args.genHidden ?? [500, 500];
  const zDim = args.zDim ?? 100;
  const inputNoise = args.inputNoise ?? 0.3;
  const hiddenNoise = args.hiddenNoise ?? 0.5;
  const dSizes = [args.inputDim, ...hidden, args.numClasses];
  const nD = dSizes.length - 1; // dense layers in D
  const last = nD - 1;

  function createD(rng: Rng): Params {
    const init: Record<string, tf.Tensor> = {};
    for (let i = 0; i < nD; i++) {
      const [nin, nout] = [dSizes[i], dSizes[i + 1]];
      init[`l${i}.v`] = tf.tensor2d(rng.fillNormal(new Float32Array(nin * nout), 0.1), [nin, nout]);
      init[`l${i}.g`] = tf.ones([nout]);
      init[`l${i}.b`] = tf.zeros([nout]);
    }
    const trainable = Object.keys(init).filter((k) => !k.endsWith('.g') || k === `l${last}.g`);
    return makeParams(init, trainable);
  }

  function glorotUniform(rng: Rng, nin: number, nout: number): tf.Tensor2D {
    const limit = Math.sqrt(6 / (nin + nout));
    const w = rng.fillUniform(new Float32Array(nin * nout)).map((u) => (2 * u - 1) * limit);
    return tf.tensor2d(w, [nin, nout]);
  }

  function createG(rng: Rng): Params {
    const sizes = [zDim, ...genHidden];
    const init: Record<string, tf.Tensor> = {};
    for (let i = 0; i < genHidden.length; i++) {
      init[`h${i}.w`] = glorotUniform(rng, sizes[i], sizes[i + 1]);
      init[`h${i}.shift`] = tf.zeros([sizes[i + 1]]);
    }
    init['out.v'] = glorotUniform(rng, genHidden[genHidden.length - 1], args.inputDim);
    init['out.g'] = tf.ones([args.inputDim]);
    init['out.b'] = tf.zeros([args.inputDim]);
    return makeParams(init, Object.keys(init));
  }

  function applyD(d: Tensors, x: tf.Tensor2D, { noise }: ApplyOptions): DiscriminatorOutput {
    let h = noise ? gaussianNoise(x, inputNoise, noise) : x;
    let features: tf.Tensor2D | undefined;
    for (let i = 0; i < last; i++) {
      h = tf.relu(weightNormDense(h, d[`l${i}.v`] as tf.Tensor2D, d[`l${i}.g`] as tf.Tensor1D, d[`l${i}.b`] as tf.Tensor1D));
      if (i === last - 1) features = h; // [B, 250]
      if (noise) h = gaussianNoise(h, hiddenNoise, noise);
    }
    const logits = weightNormDense(h, d[`l${last}.v`] as tf.Tensor2D, d[`l${last}.g`] as tf.Tensor1D, d[`l${last}.b`] as tf.Tensor1D); // [B, K]
    return { logits, features: features! };
  }

  // Layer by layer, as applyD, normalizing each pre-activation before going on.
  function initD(d: Params, x: tf.Tensor2D, { noise }: ApplyOptions): void {
    tf.tidy(() => {
      let h = noise ? gaussianNoise(x, inputNoise, noise) : x;
      for (let i = 0; i < nD; i++) {
        const v = d.vars;
        const a = tf.matMul(h, weightNormKernel(v[`l${i}.v`] as tf.Tensor2D, v[`l${i}.g`] as tf.Tensor1D)) as tf.Tensor2D; // [B, out]
        const normalized = dataDependentInit(a, v[`l${i}.g`], v[`l${i}.b`]);
        if (i < last) {
          h = tf.relu(normalized);
          if (noise) h = gaussianNoise(h, hiddenNoise, noise);
        }
      }
    });
  }

  function applyG(g: Tensors, z: tf.Tensor2D): tf.Tensor2D {
    let h = z;
    for (let i = 0; i < genHidden.length; i++) {
      h = stableSoftplus(batchNormShift(tf.matMul(h, g[`h${i}.w`] as tf.Tensor2D), g[`h${i}.shift`] as tf.Tensor1D)) as tf.Tensor2D;
    }
    return tf.sigmoid(weightNormDense(h, g['out.v'] as tf.Tensor2D, g['out.g'] as tf.Tensor1D, g['out.b'] as tf.Tensor1D)); // [B, dim]
  }

  return { preset: 'mnist-mlp', zDim, createD, createG, initD, applyD, applyG };
}
