import type { MinibatchDiscriminationArgs } from '../nn/minibatch_discrimination.js';
import { convGan, dropoutStep, type ConvStep } from './conv_gan.js';
import type { DHead, GanModel } from './model.js';

/**
 * conv-large: the paper's CIFAR-10 / SVHN model (Salimans et al. 2016, Sec. 5.2; official
 * train_cifar_feature_matching.py), for any h x w x c (the paper: 32 x 32 x 3).
 *
 * D: dropout 0.2 -> 3 x conv3x3 96 (the third stride 2) -> dropout 0.5 -> 3 x conv3x3 192 (the
 *    third stride 2) -> dropout 0.5 -> conv3x3 192 valid -> NIN (1x1) 192 -> NIN 192 -> global
 *    average pool (the features) -> dense K. Weight norm, leaky ReLU 0.2, data-dependent init.
 * G: z ~ U[0,1)^100 -> dense 4x4x512 BN relu -> deconv 5x5 stride 2 256 BN relu -> deconv 128 BN
 *    relu -> weight-normed deconv to c, sigmoid (the paper: tanh on [-1, 1] data). For other
 *    sizes the dense map is ceil(h/8) x ceil(w/8) and G's output is centre-cropped to h x w.
 */
export interface ConvLargeArgs {
  inputShape: [number, number, number];
  numClasses: number;
  widths?: [number, number]; // D's two conv blocks (96, 192)
  genWidths?: [number, number, number]; // G: dense channels, then the two BN deconvs (512, 256, 128)
  zDim?: number;
  featureLayer?: number;
  mbd?: MinibatchDiscriminationArgs | null;
  vbn?: boolean;
  inputDropout?: number; // D's dropout on its input (the official 0.2)
  dropout?: number; // D's dropout before the second block and the top (the official 0.5)
  head?: DHead; // what the output layer sees (default: pool, the official)
  inputNoise?: number; // std of Gaussian noise on D's input (training only; the official model has none)
  hiddenNoise?: number; // std of Gaussian noise after each of D's convs (training only)
}

/** D's layer plan (the exporter reads the widths from the weights); a dropout rate of 0 is no step. */
export function convLargeTrunk([w1, w2]: number[] = [96, 192], inputDropout = 0.2, dropout = 0.5): ConvStep[] {
  const conv = (filters: number, kernel: number, stride = 1, padding: 'same' | 'valid' = 'same'): ConvStep => ({ kind: 'conv', filters, kernel, stride, padding });
  return [
    ...dropoutStep(inputDropout),
    conv(w1, 3),
    conv(w1, 3),
    conv(w1, 3, 2),
    ...dropoutStep(dropout),
    conv(w2, 3),
    conv(w2, 3),
    conv(w2, 3, 2),
    ...dropoutStep(dropout),
    conv(w2, 3, 1, 'valid'),
    conv(w2, 1), // NIN
    conv(w2, 1), // NIN
  ];
}

export function convLarge(args: ConvLargeArgs): GanModel {
  const [base, d1, d2] = args.genWidths ?? [512, 256, 128];
  return convGan({
    preset: 'conv-large',
    inputShape: args.inputShape,
    numClasses: args.numClasses,
    trunk: convLargeTrunk(args.widths, args.inputDropout, args.dropout),
    head: args.head,
    noise: [args.inputNoise ?? 0, args.hiddenNoise ?? 0],
    generator: { base, deconvs: [d1, d2], kernel: 5 },
    zDim: args.zDim,
    featureLayer: args.featureLayer,
    mbd: args.mbd,
    vbn: args.vbn,
  });
}
