import * as tf from '@tensorflow/tfjs';
import { weightNormKernel } from './weight_norm.js';
import { conv2dInputGrad } from './conv_grad.js';
import { convLayer, nativeConvFor } from './native_conv.js';
import { LEAKY_SLOPE, leakyRelu } from './activations.js';

/**
 * Weight-normalized convolutions (Salimans & Kingma 2016), as the official improved-gan CIFAR
 * model: W = v * g / ||v|| per output channel, so D's conv layers need no batch norm and an
 * example's output never depends on its batch. NHWC throughout (tfjs's layout, and the exported
 * model's).
 */
export type Padding = 'same' | 'valid';

/** Conv kernel v [kh, kw, in, out]: the dense formula on v flattened to [kh*kw*in, out]. */
export function weightNormConvKernel(v: tf.Tensor4D, g: tf.Tensor1D): tf.Tensor4D {
  return tf.tidy(() => weightNormKernel(v.reshape([-1, v.shape[3]]), g).reshape(v.shape));
}

/** conv2d(x, W) + b with a weight-normalized W. x [B, H, W, in] -> [B, H', W', out]. */
export function weightNormConv2d(
  x: tf.Tensor4D,
  v: tf.Tensor4D,
  g: tf.Tensor1D,
  b: tf.Tensor1D,
  stride: number,
  padding: Padding,
): tf.Tensor4D {
  return tf.conv2d(x, weightNormConvKernel(v, g), stride, padding).add(b);
}

/**
 * leakyRelu(weightNormConv2d(...)), D's conv layer: one native kernel forward (the bias and the
 * activation as the conv's epilogue) and three backward when convs are native.
 */
export function weightNormConvLeaky(
  x: tf.Tensor4D,
  v: tf.Tensor4D,
  g: tf.Tensor1D,
  b: tf.Tensor1D,
  stride: number,
  padding: Padding,
  slope = LEAKY_SLOPE,
): tf.Tensor4D {
  if (!nativeConvFor('NHWC', 1)) return leakyRelu(weightNormConv2d(x, v, g, b, stride, padding), slope);
  return convLayer(x, weightNormConvKernel(v, g), b, stride, padding, slope);
}

/**
 * Transposed-conv filter v [kh, kw, out, in] (tfjs's layout for conv2dTranspose): the norm of
 * output channel o is over kh, kw and in, as the official Deconv2DLayer's weight norm.
 */
export function weightNormConvTransposeKernel(v: tf.Tensor4D, g: tf.Tensor1D): tf.Tensor4D {
  return tf.tidy(() => v.mul(g.reshape([1, 1, -1, 1]).div(v.square().sum([0, 1, 3], true).sqrt())) as tf.Tensor4D);
}

/**
 * Transposed convolution that upsamples by `stride` with 'same' padding: x [B, H, W, in] ->
 * [B, H*stride, W*stride, out], filter [kh, kw, out, in]. On wasm, as conv_grad.ts's sub-pixel
 * conv (the same numbers): wasm's Conv2DBackpropInput kernel, which tf.conv2dTranspose runs, is
 * a scalar loop, measured 4-6x slower on G's layers (e.g. 195 vs 32 ms for 100 x 7x7, 64 -> 32, 5x5).
 */
export function convTranspose2d(x: tf.Tensor4D, filter: tf.Tensor4D, stride: number): tf.Tensor4D {
  const [b, h, w] = x.shape;
  const outShape: [number, number, number, number] = [b, h * stride, w * stride, filter.shape[2]];
  if (tf.getBackend() === 'wasm' && !nativeConvFor('NHWC', 1))
    return conv2dInputGrad(outShape, x, filter, stride, 'same');
  return tf.conv2dTranspose(x, filter, outShape, stride, 'same');
}

/**
 * Data-dependent init of a weight-normed layer (conv or dense): given its pre-activations `a`
 * (channels last, any rank; computed with the current g and without b), set g <- g * s and
 * b <- -mean * s with s = targetStd / std, so that every channel has mean 0 and std targetStd
 * over all other axes (batch, height, width) of the init batch. Returns the normalized
 * pre-activations. The official CIFAR model uses targetStd 0.1 for its output layers.
 */
export function dataDependentInitChannels<T extends tf.Tensor>(a: T, g: tf.Variable, b: tf.Variable, targetStd = 1): T {
  return tf.tidy(() => {
    const axes = a.shape.slice(0, -1).map((_, i) => i);
    const { mean, variance } = tf.moments(a, axes); // [C] each
    const scale = tf.div(targetStd, variance.sqrt());
    g.assign(g.mul(scale));
    b.assign(mean.neg().mul(scale));
    return a.sub(mean).mul(scale) as T;
  });
}
