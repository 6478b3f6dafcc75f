import type { MinibatchDiscriminationArgs } from '../nn/minibatch_discrimination.js';
import { convGan, dropoutStep, type ConvStep } from './conv_gan.js';
import type { DHead, GanModel } from './model.js';

/**
 * conv-small: a fast convolutional D/G for small images (MNIST-sized, 28-32 px, 1 or 3 channels;
 * any h x w works), the CIFAR recipe of conv_large.ts scaled down: a training iteration costs
 * ~3.8x the paper's MNIST MLP's with native convs (scripts/bench/presets.ts: 216 vs 57 ms on MNIST,
 * 2 threads; conv-large ~63x). 33k D and 350k G parameters at 28x28x1.
 *
 * D: dropout 0.2 -> conv3x3 16 -> conv3x3 32 stride 2 -> dropout 0.5 -> conv3x3 32
 *    -> conv3x3 64 stride 2 -> global average pool (the features; --d-head flatten: the whole
 *    7x7x64 map) -> dense K.
 *    Weight norm, leaky ReLU 0.2, data-dependent init (conv_gan.ts). Each stage is a conv and a
 *    stride-2 conv; --d-widths with 2, 6 or 8 widths gives 1, 3 or 4 stages (a third stage
 *    widens the pooled features' receptive field from 13 to 29 pixels), each later stage behind
 *    a dropout like the second's.
 * G: z ~ U[0,1)^100 -> dense to (ceil(h/4) x ceil(w/4) x 64) BN relu -> deconv 4x4 stride 2 to 32,
 *    BN relu -> weight-normed deconv 4x4 stride 2 to c, sigmoid; centre crop to h x w.
 * Widths (--d-widths) are the cost lever: D's convs at 14x14 dominate, and cost grows with width
 * squared (32-64-64-128 measured 3.3x slower than these widths; a 5x5 G kernel +20%).
 */
export interface ConvSmallArgs {
  inputShape: [number, number, number];
  numClasses: number;
  widths?: number[]; // D's convs, two per stage (default 16,32 and 32,64)
  genWidths?: [number, number]; // G's dense layer channels and its middle deconv's (64, 32)
  genKernel?: number;
  inputDropout?: number;
  dropout?: number;
  head?: DHead; // what the output layer sees (default: pool)
  inputNoise?: number; // std of Gaussian noise on D's input (training only)
  hiddenNoise?: number; // std of Gaussian noise after each of D's convs (training only)
  zDim?: number;
  featureLayer?: number;
  mbd?: MinibatchDiscriminationArgs | null;
  vbn?: boolean;
}

/**
 * D's layer plan: stages of a stride-1 and a stride-2 3x3 conv, dropout on the input and before
 * each later stage (a rate of 0 is no step, so it draws nothing). Widths per run (the exporter
 * reads them from the weights).
 */
export function convSmallTrunk(widths: number[] = [16, 32, 32, 64], inputDropout = 0.2, dropout = 0.5): ConvStep[] {
  if (widths.length === 0 || widths.length % 2 !== 0) throw new Error(`conv-small: widths come in pairs (one per stage); got ${widths.length}`);
  const conv = (filters: number, stride: number): ConvStep => ({ kind: 'conv', filters, kernel: 3, stride, padding: 'same' });
  return Array.from({ length: widths.length / 2 }, (_, stage) => [
    ...dropoutStep(stage === 0 ? inputDropout : dropout),
    conv(widths[2 * stage], 1),
    conv(widths[2 * stage + 1], 2),
  ]).flat();
}

export function convSmall(args: ConvSmallArgs): GanModel {
  return convGan({
    preset: 'conv-small',
    inputShape: args.inputShape,
    numClasses: args.numClasses,
    trunk: convSmallTrunk(args.widths, args.inputDropout, args.dropout),
    head: args.head,
    noise: [args.inputNoise ?? 0, args.hiddenNoise ?? 0],
    generator: { base: args.genWidths?.[0] ?? 64, deconvs: [args.genWidths?.[1] ?? 32], kernel: args.genKernel ?? 4 },
    zDim: args.zDim,
    featureLayer: args.featureLayer,
    mbd: args.mbd,
    vbn: args.vbn,
  });
}
