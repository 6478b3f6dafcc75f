import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../rng.js';
import { configError } from '../errors.js';
import { makeParams, type Params, type Tensors } from '../nn/params.js';
import { convTranspose2d, dataDependentInitChannels, weightNormConvLeaky, weightNormConvKernel, weightNormConvTransposeKernel, type Padding } from '../nn/conv.js';
import { weightNormDense, weightNormKernel } from '../nn/weight_norm.js';
import { LEAKY_SLOPE, leakyRelu } from '../nn/activations.js';
import { dropout } from '../nn/dropout.js';
import { gaussianNoise } from '../nn/noise.js';
import { batchNormShiftChannels } from '../nn/batch_norm.js';
import { virtualBatchNorm, virtualBatchNormChannels } from '../nn/virtual_batch_norm.js';
import { initMinibatchKernel, initMinibatchLayer, minibatchFeatures, type MinibatchDiscriminationArgs } from '../nn/minibatch_discrimination.js';
import type { ApplyOptions, ClassifierLayer, DHead, DiscriminatorOutput, GanModel } from './model.js';

/**
 * The convolutional K+1 GAN shared by the conv presets, after the official improved-gan CIFAR-10
 * model (train_cifar_feature_matching.py); conv_small.ts and conv_large.ts give the layer plans.
 *
 * D: x [B, h*w*c] -> NHWC -> trunk (dropout steps; weight-normed convs, each + leaky ReLU 0.2)
 *    -> global average pool (head `flatten`: the whole last map, NHWC order) = `features` (what
 *    feature matching compares) -> [minibatch features] -> weight-normed dense K.
 *    v ~ N(0, 0.05^2), g = 1, b = 0, then data-dependent init (every conv channel to mean 0, std 1 over batch, height, width; the logits to std 0.1);
 *    as in the official code, g is trained only in the output layer.
 * G: z ~ U[0,1)^zDim -> dense to (H0 x W0 x base) BN relu -> per entry of `deconvs`: transposed
 *    conv stride 2 BN relu -> weight-normed transposed conv stride 2 to c channels, sigmoid (data
 *    in [0, 1]; the paper's tanh is for [-1, 1]). H0 = ceil(h / 2^k) for k upsamplings; G makes
 *    H0 * 2^k x W0 * 2^k images and crops the centre h x w. BN has a learned shift only (the
 *    official g=None); its output layer gets the same data-dependent init (std 0.1) on a z batch
 *    when created, since GanModel has no G init.
 *
 * applyD/applyG read every width from the weights, so a run's checkpoint can be applied (and
 * exported) by the preset's default model whatever widths it was created with.
 */
export type ConvStep =
  | { kind: 'dropout'; rate: number }
  | { kind: 'noise'; std: number } // additive Gaussian noise in training, as the MNIST MLP's D has
  | { kind: 'conv'; filters: number; kernel: number; stride: number; padding: Padding };

export interface ConvGeneratorPlan {
  base: number; // channels of the dense layer's H0 x W0 map
  deconvs: number[]; // channels of the BN transposed convs, each upsampling x2
  kernel: number; // transposed-conv kernel size
}

export interface ConvGanArgs {
  preset: string;
  inputShape: [number, number, number]; // [h, w, c]
  numClasses: number;
  trunk: ConvStep[];
  head?: DHead; // what the output layer sees (default pool)
  noise?: [number, number]; // std of D's Gaussian noise on its input and after each conv (default none)
  generator: ConvGeneratorPlan;
  zDim?: number;
  featureLayer?: number; // only -1 (the features the head makes) is supported
  mbd?: MinibatchDiscriminationArgs | null; // minibatch discrimination on the head's features
  vbn?: boolean; // virtual batch norm in G
  vbnRefSize?: number;
}

const INIT_STD = 0.05; // the official Normal(0.05) weights
const OUTPUT_INIT_STD = 0.1; // official init_stdv of the logits' and G's output layers
const MBD_INIT_ROWS = 100; // as mnist_mlp.ts: one training-sized group sets the minibatch layer's scale
const G_INIT_ROWS = 100; // the official batch for G's data-dependent init

const minibatchGroups = (n: number, size: number) => Array.from({ length: Math.ceil(n / size) }, (_, i) => Math.min(size, n - i * size));

/** A dropout step of a layer plan; rate 0 is no step, so it draws nothing from the Rng. */
export const dropoutStep = (rate: number): ConvStep[] => (rate > 0 ? [{ kind: 'dropout', rate }] : []);

/** The trunk with Gaussian noise on its input and after each conv (as the MNIST MLP's D after each layer). */
export const noisyTrunk = (trunk: ConvStep[], [input, hidden]: [number, number]): ConvStep[] => [
  ...(input > 0 ? [{ kind: 'noise', std: input } as const] : []),
  ...trunk.flatMap((s) => (s.kind === 'conv' && hidden > 0 ? [s, { kind: 'noise', std: hidden } as const] : [s])),
];

/** The conv layers of a trunk, in order (their parameters are c0, c1, ...). */
export const trunkConvs = (trunk: ConvStep[]) => trunk.flatMap((s) => (s.kind === 'conv' ? [s] : []));

/** Spatial size after each conv of the trunk (TF's 'same' / 'valid' arithmetic). */
const trunkSizes = (trunk: ConvStep[], size: number) =>
  trunkConvs(trunk).map((s) => (size = s.padding === 'same' ? Math.ceil(size / s.stride) : Math.ceil((size - s.kernel + 1) / s.stride)));

export function convGan(args: ConvGanArgs): GanModel {
  const [h, w, c] = args.inputShape;
  const { generator: gen, numClasses } = args;
  const trunk = noisyTrunk(args.trunk, args.noise ?? [0, 0]);
  const zDim = args.zDim ?? 100;
  if ((args.featureLayer ?? -1) !== -1) {
    throw configError(`--fm-layer ${args.featureLayer}: ${args.preset} matches the features of its head only; only --fm-layer -1 is supported for conv presets`);
  }
  const mbd = args.mbd ?? null;
  const vbnRefSize = args.vbnRefSize ?? 100;
  const convs = trunkConvs(trunk);
  if (convs.length === 0) throw new Error(`${args.preset}: the trunk has no conv layer`);
  const [rowsPerMap, colsPerMap] = [trunkSizes(trunk, h), trunkSizes(trunk, w)];
  if ([...rowsPerMap, ...colsPerMap].some((n) => n < 1)) {
    throw configError(`${args.preset}: ${h}x${w} images are too small for its conv layers (feature maps ${rowsPerMap.join(' -> ')} rows); use a smaller preset`);
  }
  const flatten = args.head === 'flatten';
  const lastMap = rowsPerMap.at(-1)! * colsPerMap.at(-1)!;
  const featureCount = convs[convs.length - 1].filters * (flatten ? lastMap : 1);
  // G's geometry: k upsamplings by 2 from an H0 x W0 map, then a centre crop to h x w.
  const ups = gen.deconvs.length + 1;
  const [h0, w0] = [Math.ceil(h / 2 ** ups), Math.ceil(w / 2 ** ups)];
  const [hg, wg] = [h0 * 2 ** ups, w0 * 2 ** ups];
  const crop = [Math.floor((hg - h) / 2), Math.floor((wg - w) / 2)];

  const normal = (rng: Rng, shape: number[]) => tf.tensor(rng.fillNormal(new Float32Array(shape.reduce((a, b) => a * b, 1)), INIT_STD), shape);

  function createD(rng: Rng): Params {
    const init: Record<string, tf.Tensor> = {};
    let cin = c;
    convs.forEach((s, i) => {
      init[`c${i}.v`] = normal(rng, [s.kernel, s.kernel, cin, s.filters]);
      init[`c${i}.g`] = tf.ones([s.filters]);
      init[`c${i}.b`] = tf.zeros([s.filters]);
      cin = s.filters;
    });
    init['out.v'] = normal(rng, [featureCount + (mbd ? mbd.kernels : 0), numClasses]);
    init['out.g'] = tf.ones([numClasses]);
    init['out.b'] = tf.zeros([numClasses]);
    if (mbd) {
      init['mbd.T'] = initMinibatchKernel(rng, featureCount, mbd);
      init['mbd.b'] = tf.zeros([mbd.kernels]);
    }
    const trainable = Object.keys(init).filter((k) => !k.endsWith('.g') || k === 'out.g');
    return makeParams(init, trainable);
  }

  /**
   * D's forward pass; with `init` (D's variables), the data-dependent init of every weight-normed
   * layer on the way (each layer normalized before the next one sees it).
   */
  function runD(d: Tensors, x: tf.Tensor2D, { noise, groups }: ApplyOptions, init?: Params['vars']): DiscriminatorOutput {
    const rows = x.shape[0];
    let hid = x.reshape([rows, h, w, c]) as tf.Tensor4D;
    let i = 0;
    for (const s of trunk) {
      if (s.kind === 'dropout') {
        if (noise) hid = dropout(hid, s.rate, noise);
        continue;
      }
      if (s.kind === 'noise') {
        if (noise) hid = gaussianNoise(hid, s.std, noise);
        continue;
      }
      const [v, g, b] = [d[`c${i}.v`] as tf.Tensor4D, d[`c${i}.g`] as tf.Tensor1D, d[`c${i}.b`] as tf.Tensor1D];
      hid = init // [B, H', W', filters]
        ? leakyRelu(dataDependentInitChannels(tf.conv2d(hid, weightNormConvKernel(v, g), s.stride, s.padding), init[`c${i}.g`], init[`c${i}.b`]))
        : weightNormConvLeaky(hid, v, g, b, s.stride, s.padding);
      i++;
    }
    const features = (flatten ? hid.reshape([rows, -1]) : hid.mean([1, 2])) as tf.Tensor2D; // [B, F]
    let top = features;
    if (mbd) {
      if (init) {
        // Scale the kernels and centre o on one minibatch-sized group, then use the same groups.
        const n = Math.min(rows, MBD_INIT_ROWS);
        const fit = initMinibatchLayer(features.slice([0, 0], [n, -1]), d['mbd.T'] as tf.Tensor2D, mbd);
        init['mbd.T'].assign(fit.T);
        init['mbd.b'].assign(fit.b);
        tf.dispose([fit.T, fit.b]);
        groups ??= minibatchGroups(rows, MBD_INIT_ROWS);
      }
      const o = minibatchFeatures(features, d['mbd.T'] as tf.Tensor2D, mbd, groups).add(d['mbd.b']);
      top = tf.concat([features, o], 1) as tf.Tensor2D; // [B, F + kernels]
    }
    const [v, g, b] = [d['out.v'] as tf.Tensor2D, d['out.g'] as tf.Tensor1D, d['out.b'] as tf.Tensor1D];
    const logits: tf.Tensor2D = init
      ? dataDependentInitChannels(tf.matMul(top, weightNormKernel(v, g)), init['out.g'], init['out.b'], OUTPUT_INIT_STD)
      : weightNormDense(top, v, g, b); // [B, K]
    return { logits, features };
  }

  const applyD = (d: Tensors, x: tf.Tensor2D, opts: ApplyOptions) => runD(d, x, opts);

  // runD without noise or dropout: each conv with its kernel folded, leaky relu, the head, logits.
  function classifierLayers(d: Tensors): ClassifierLayer[] {
    const layers: ClassifierLayer[] = convs.flatMap((s, i): ClassifierLayer[] => [
      {
        kind: 'conv2d',
        kernel: weightNormConvKernel(d[`c${i}.v`] as tf.Tensor4D, d[`c${i}.g`] as tf.Tensor1D),
        bias: d[`c${i}.b`].clone() as tf.Tensor1D,
        stride: s.stride,
        padding: s.padding,
      },
      { kind: 'leakyRelu', alpha: LEAKY_SLOPE },
    ]);
    const out: ClassifierLayer = {
      kind: 'dense',
      kernel: weightNormKernel(d['out.v'] as tf.Tensor2D, d['out.g'] as tf.Tensor1D),
      bias: d['out.b'].clone() as tf.Tensor1D,
      activation: 'linear',
    };
    return [...layers, { kind: flatten ? 'flatten' : 'globalAveragePool' }, out];
  }
  const initD = (d: Params, x: tf.Tensor2D, opts: ApplyOptions) => void tf.tidy(() => runD(d.vars, x, opts, d.vars).logits);

  function createG(rng: Rng): Params {
    const init: Record<string, tf.Tensor> = {};
    init['fc.w'] = normal(rng, [zDim, h0 * w0 * gen.base]);
    init['fc.shift'] = tf.zeros([h0 * w0 * gen.base]);
    let cin = gen.base;
    gen.deconvs.forEach((cout, i) => {
      init[`dc${i}.w`] = normal(rng, [gen.kernel, gen.kernel, cout, cin]);
      init[`dc${i}.shift`] = tf.zeros([cout]);
      cin = cout;
    });
    init['out.v'] = normal(rng, [gen.kernel, gen.kernel, c, cin]);
    init['out.g'] = tf.ones([c]);
    init['out.b'] = tf.zeros([c]);
    const trainable = Object.keys(init);
    if (args.vbn) init['vbn.zref'] = tf.tensor2d(rng.fillUniform(new Float32Array(vbnRefSize * zDim)), [vbnRefSize, zDim]);
    const params = makeParams(init, trainable);
    tf.tidy(() => {
      const z = tf.tensor2d(rng.fillUniform(new Float32Array(G_INIT_ROWS * zDim)), [G_INIT_ROWS, zDim]);
      const v = params.vars;
      dataDependentInitChannels(
        convTranspose2d(generatorTrunk(v, z), weightNormConvTransposeKernel(v['out.v'] as tf.Tensor4D, v['out.g'] as tf.Tensor1D), 2),
        v['out.g'],
        v['out.b'],
        OUTPUT_INIT_STD,
      );
    });
    return params;
  }

  /** G up to its output layer: z [B, zDim] -> [B, H, W, channels] after the last BN relu. */
  function generatorTrunk(g: Tensors, z: tf.Tensor2D): tf.Tensor4D {
    const rows = z.shape[0];
    const fcW = g['fc.w'] as tf.Tensor2D;
    const base = fcW.shape[1] / (h0 * w0);
    const zRef = g['vbn.zref'] as tf.Tensor2D | undefined; // [n, zDim] when VBN is on
    let hid: tf.Tensor4D;
    let hRef: tf.Tensor4D | undefined;
    if (zRef) {
      const { out, refOut } = virtualBatchNorm(tf.matMul(z, fcW), tf.matMul(zRef, fcW), g['fc.shift'] as tf.Tensor1D);
      hid = tf.relu(out).reshape([rows, h0, w0, base]) as tf.Tensor4D;
      hRef = tf.relu(refOut).reshape([zRef.shape[0], h0, w0, base]) as tf.Tensor4D;
    } else {
      hid = tf.relu(batchNormShiftChannels(tf.matMul(z, fcW), g['fc.shift'] as tf.Tensor1D)).reshape([rows, h0, w0, base]) as tf.Tensor4D;
    }
    for (let i = 0; g[`dc${i}.w`]; i++) {
      const [filter, shift] = [g[`dc${i}.w`] as tf.Tensor4D, g[`dc${i}.shift`] as tf.Tensor1D];
      if (hRef) {
        const { out, refOut } = virtualBatchNormChannels(convTranspose2d(hid, filter, 2), convTranspose2d(hRef, filter, 2), shift);
        hid = tf.relu(out);
        hRef = tf.relu(refOut);
      } else {
        hid = tf.relu(batchNormShiftChannels(convTranspose2d(hid, filter, 2), shift)); // [B, 2H, 2W, cout]
      }
    }
    return hid;
  }

  function applyG(g: Tensors, z: tf.Tensor2D): tf.Tensor2D {
    const rows = z.shape[0];
    const kernel = weightNormConvTransposeKernel(g['out.v'] as tf.Tensor4D, g['out.g'] as tf.Tensor1D);
    const img = tf.sigmoid(convTranspose2d(generatorTrunk(g, z), kernel, 2).add(g['out.b'])) as tf.Tensor4D; // [B, hg, wg, c]
    const cropped = hg === h && wg === w ? img : img.slice([0, crop[0], crop[1], 0], [rows, h, w, c]);
    return cropped.reshape([rows, h * w * c]);
  }

  return {
    preset: args.preset,
    zDim,
    batchDependentD: mbd !== null,
    createD,
    createG,
    initD,
    applyD,
    applyG,
    ...(mbd ? {} : { classifierLayers }),
  };
}
