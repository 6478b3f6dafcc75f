import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../rng.js';
import { makeParams, type Params, type Tensors } from '../nn/params.js';
import { dataDependentInit, weightNormDense, weightNormKernel } from '../nn/weight_norm.js';
import { gaussianNoise } from '../nn/noise.js';
import { batchNormSoftplus, dense } from '../nn/native_layers.js';
import { virtualBatchNorm } from '../nn/virtual_batch_norm.js';
import { initMinibatchKernel, initMinibatchLayer, minibatchFeatures, type MinibatchDiscriminationArgs } from '../nn/minibatch_discrimination.js';
import { stableSoftplus } from '../nn/activations.js';
import type { ApplyOptions, ClassifierLayer, DiscriminatorOutput, GanModel } from './model.js';
import { configError } from '../errors.js';

/**
 * The paper's permutation-invariant MNIST model (Salimans et al. 2016, Sec. 5.1; official
 * train_mnist_feature_matching.py), for any flat input and K classes.
 *
 * D: x + N(0, 0.3^2) -> WN-dense 1000 relu + N(0, 0.5^2) -> 500 -> 250 -> 250 -> 250 -> WN-dense K.
 *    v ~ N(0, 0.1^2), b = 0, g = 1, then data-dependent init; g is trained only in the last layer.
 *    Feature matching uses the last 250-unit hidden layer (after relu, before its noise).
 * G: z ~ U[0,1)^100 -> dense 500 (no bias) BN softplus -> dense 500 BN softplus -> WN-dense dim sigmoid.
 *
 * Options for the paper's other techniques: minibatch discrimination between D's last hidden layer
 * (after its noise) and the output layer; virtual batch norm in G instead of batch norm, with a
 * reference batch of z drawn once at creation and stored as a non-trainable G parameter (so it is
 * checkpointed with G); feature matching on any hidden layer of D.
 */
export interface MnistMlpArgs {
  inputDim: number;
  numClasses: number;
  hidden?: number[]; // D's hidden widths
  genHidden?: number[]; // G's hidden widths
  zDim?: number;
  inputNoise?: number; // std of D's input noise
  hiddenNoise?: number; // std of the noise after each hidden layer of D
  featureLayer?: number; // hidden layer of D whose output is `features`: 0-based, negative from the last (-1)
  mbd?: MinibatchDiscriminationArgs | null; // minibatch discrimination before D's output layer
  vbn?: boolean; // virtual batch norm in G
  vbnRefSize?: number; // rows in G's reference batch
  output?: 'sigmoid' | 'linear'; // G's output: sigmoid for [0, 1] pixels, linear for standardized features
  preset?: string; // the name this model is registered under
}

/** Rows of the init batch that set the minibatch layer's scale (a training-sized minibatch). */
const MBD_INIT_ROWS = 100;

/** Consecutive groups of `size` rows (the last one shorter) covering n rows. */
const minibatchGroups = (n: number, size: number) => Array.from({ length: Math.ceil(n / size) }, (_, i) => Math.min(size, n - i * size));

export function mnistMlp(args: MnistMlpArgs): GanModel {
  const hidden = args.hidden ?? [1000, 500, 250, 250, 250];
  const genHidden = args.genHidden ?? [500, 500];
  const zDim = args.zDim ?? 100;
  const inputNoise = args.inputNoise ?? 0.3;
  const hiddenNoise = args.hiddenNoise ?? 0.5;
  const dSizes = [args.inputDim, ...hidden, args.numClasses];
  const nD = dSizes.length - 1; // dense layers in D
  const last = nD - 1;
  const featureLayer = (args.featureLayer ?? -1) < 0 ? hidden.length + (args.featureLayer ?? -1) : args.featureLayer!;
  if (featureLayer < 0 || featureLayer >= hidden.length) {
    throw configError(`--fm-layer ${args.featureLayer} is outside D's ${hidden.length} hidden layers (0..${hidden.length - 1} or -1..-${hidden.length})`);
  }
  const mbd = args.mbd ?? null;
  const vbnRefSize = args.vbnRefSize ?? 100;
  // The output layer's input: the last hidden layer, plus the minibatch features when on.
  const outInDim = hidden[hidden.length - 1] + (mbd ? mbd.kernels : 0);

  function createD(rng: Rng): Params {
    const init: Record<string, tf.Tensor> = {};
    for (let i = 0; i < nD; i++) {
      const [nin, nout] = [i === last ? outInDim : dSizes[i], dSizes[i + 1]];
      init[`l${i}.v`] = tf.tensor2d(rng.fillNormal(new Float32Array(nin * nout), 0.1), [nin, nout]);
      init[`l${i}.g`] = tf.ones([nout]);
      init[`l${i}.b`] = tf.zeros([nout]);
    }
    if (mbd) {
      init['mbd.T'] = initMinibatchKernel(rng, hidden[hidden.length - 1], mbd);
      init['mbd.b'] = tf.zeros([mbd.kernels]);
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
    const trainable = Object.keys(init);
    if (args.vbn) init['vbn.zref'] = tf.tensor2d(rng.fillUniform(new Float32Array(vbnRefSize * zDim)), [vbnRefSize, zDim]);
    return makeParams(init, trainable);
  }

  // Layer i's kernel: folded by foldD, or weight-normed from v and g here.
  const kernelOf = (d: Tensors, i: number) =>
    (d[`l${i}.W`] as tf.Tensor2D | undefined) ?? weightNormKernel(d[`l${i}.v`] as tf.Tensor2D, d[`l${i}.g`] as tf.Tensor1D);
  const layer = (d: Tensors, i: number, h: tf.Tensor2D) =>
    dense(h, kernelOf(d, i), d[`l${i}.b`] as tf.Tensor1D, i === last ? 'linear' : 'relu');

  function foldD(d: Tensors): Tensors {
    const out: Tensors = { ...d };
    for (let i = 0; i < nD; i++) out[`l${i}.W`] = kernelOf(d, i);
    return out;
  }

  // Minibatch features of the clean last hidden layer, appended after its noise: computed on noisy
  // rows, their distances (hence o) would differ between training and evaluation.
  const withMinibatchFeatures = (d: Tensors, clean: tf.Tensor2D, noisy: tf.Tensor2D, groups?: number[]) =>
    tf.concat([noisy, minibatchFeatures(clean, d['mbd.T'] as tf.Tensor2D, mbd!, groups).add(d['mbd.b'])], 1) as tf.Tensor2D; // [B, 250 + kernels]

  function applyD(d: Tensors, x: tf.Tensor2D, { noise, groups }: ApplyOptions): DiscriminatorOutput {
    let h = noise ? gaussianNoise(x, inputNoise, noise) : x;
    let features: tf.Tensor2D | undefined;
    let clean = h;
    for (let i = 0; i < last; i++) {
      clean = layer(d, i, h);
      if (i === featureLayer) features = clean; // [B, F]
      h = noise ? gaussianNoise(clean, hiddenNoise, noise) : clean;
    }
    if (mbd) h = withMinibatchFeatures(d, clean, h, groups);
    const logits = layer(d, last, h); // [B, K]
    return { logits, features: features! };
  }

  // applyD without noise: Flatten, then each weight-normed dense layer with its kernel folded.
  function classifierLayers(d: Tensors): ClassifierLayer[] {
    const dense = Array.from({ length: nD }, (_, i): ClassifierLayer => ({
      kind: 'dense',
      kernel: kernelOf(d, i),
      bias: d[`l${i}.b`].clone() as tf.Tensor1D,
      activation: i === last ? 'linear' : 'relu',
    }));
    return [{ kind: 'flatten' }, ...dense];
  }

  // Layer by layer, as applyD, normalizing each pre-activation before going on.
  function initD(d: Params, x: tf.Tensor2D, { noise, groups }: ApplyOptions): void {
    tf.tidy(() => {
      const v = d.vars;
      let h = noise ? gaussianNoise(x, inputNoise, noise) : x;
      let clean = h;
      for (let i = 0; i < nD; i++) {
        if (i === last && mbd) {
          // Scale the kernels and centre o on one minibatch-sized group, then use the same groups.
          const n = Math.min(clean.shape[0], MBD_INIT_ROWS);
          const init = initMinibatchLayer(clean.slice([0, 0], [n, -1]), v['mbd.T'] as tf.Tensor2D, mbd);
          v['mbd.T'].assign(init.T);
          v['mbd.b'].assign(init.b);
          h = withMinibatchFeatures(v, clean, h, groups ?? minibatchGroups(clean.shape[0], MBD_INIT_ROWS));
        }
        const a = tf.matMul(h, kernelOf(v, i)) as tf.Tensor2D; // [B, out]
        const normalized = dataDependentInit(a, v[`l${i}.g`], v[`l${i}.b`]);
        if (i < last) {
          clean = tf.relu(normalized);
          h = noise ? gaussianNoise(clean, hiddenNoise, noise) : clean;
        }
      }
    });
  }

  function applyG(g: Tensors, z: tf.Tensor2D): tf.Tensor2D {
    let h = z;
    let hRef = g['vbn.zref'] as tf.Tensor2D | undefined; // [n, zDim] when VBN is on
    for (let i = 0; i < genHidden.length; i++) {
      const w = g[`h${i}.w`] as tf.Tensor2D;
      const shift = g[`h${i}.shift`] as tf.Tensor1D;
      if (hRef) {
        const { out, refOut } = virtualBatchNorm(tf.matMul(h, w), tf.matMul(hRef, w), shift);
        h = stableSoftplus(out);
        hRef = stableSoftplus(refOut);
      } else {
        h = batchNormSoftplus(tf.matMul(h, w), shift);
      }
    }
    const activation = args.output === 'linear' ? 'linear' : 'sigmoid';
    return weightNormDense(h, g['out.v'] as tf.Tensor2D, g['out.g'] as tf.Tensor1D, g['out.b'] as tf.Tensor1D, activation); // [B, dim]
  }

  return {
    preset: args.preset ?? 'mnist-mlp',
    zDim,
    batchDependentD: mbd !== null,
    createD,
    createG,
    initD,
    applyD,
    foldD,
    applyG,
    ...(mbd ? {} : { classifierLayers }),
  };
}
