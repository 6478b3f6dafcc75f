import { configError } from '../errors.js';
import type { GanModel } from './model.js';
import type { TrainConfig } from '../train/config.js';
import { mnistMlp } from './mnist_mlp.js';
import { convSmall } from './conv_small.js';
import { convLarge } from './conv_large.js';

export interface PresetArgs {
  inputShape: [number, number, number];
  numClasses: number;
  /** The techniques that change the networks (defaults: the paper's MNIST recipe). */
  techniques?: Partial<Pick<TrainConfig, 'fmLayer' | 'mbd' | 'mbdKernels' | 'mbdDim' | 'vbn'>>;
}

/** The technique options of the conv presets (conv_gan.ts). */
const convTechniques = (t: NonNullable<PresetArgs['techniques']>) => ({
  featureLayer: t.fmLayer ?? -1,
  mbd: t.mbd ? { kernels: t.mbdKernels ?? 100, dim: t.mbdDim ?? 5 } : null,
  vbn: t.vbn ?? false,
});

const PRESETS: Record<string, (a: PresetArgs) => GanModel> = {
  'mnist-mlp': ({ inputShape: [h, w, c], numClasses, techniques: t = {} }) =>
    mnistMlp({
      inputDim: h * w * c,
      numClasses,
      featureLayer: t.fmLayer ?? -1,
      mbd: t.mbd ? { kernels: t.mbdKernels ?? 100, dim: t.mbdDim ?? 5 } : null,
      vbn: t.vbn ?? false,
    }),
  // mnist-mlp's recipe for feature vectors: smaller layers, less input noise (features are
  // standardized, so noise 0.3 is a third of a standard deviation), linear G output.
  'tabular-mlp': ({ inputShape: [h, w, c], numClasses, techniques: t = {} }) =>
    mnistMlp({
      preset: 'tabular-mlp',
      inputDim: h * w * c,
      numClasses,
      hidden: [256, 128, 128],
      genHidden: [128, 128],
      inputNoise: 0.1,
      hiddenNoise: 0.3,
      output: 'linear',
      featureLayer: t.fmLayer ?? -1,
      mbd: t.mbd ? { kernels: t.mbdKernels ?? 100, dim: t.mbdDim ?? 5 } : null,
      vbn: t.vbn ?? false,
    }),
  'conv-small': ({ inputShape, numClasses, techniques: t = {} }) => convSmall({ inputShape, numClasses, ...convTechniques(t) }),
  'conv-large': ({ inputShape, numClasses, techniques: t = {} }) => convLarge({ inputShape, numClasses, ...convTechniques(t) }),
};

export const PRESET_NAMES = ['auto', ...Object.keys(PRESETS)];

export function buildModel(preset: string, args: PresetArgs): GanModel {
  const make = PRESETS[preset];
  if (!make) throw configError(`unknown preset '${preset}'; expected one of: ${PRESET_NAMES.join(', ')}`);
  return make(args);
}

/**
 * The preset `--preset auto` picks: the paper's MLP for the built-in MNIST-like datasets (its
 * recipe) and for other small grayscale images (up to 32x32: measured better than conv-small on
 * MNIST and Fashion-MNIST files with few labels, and 2.7x faster; docs/benchmarks.md),
 * tabular-mlp for feature vectors, conv-small for colour or larger images — and the paper's
 * CIFAR/SVHN model conv-large for colour images of at least 32x32 on native TensorFlow (it costs
 * ~40x conv-small per iteration: hours per epoch on wasm, fine on a GPU).
 */
export function autoPreset(dataset: string, [h, w, c]: [number, number, number], backend?: string): { preset: string; reason: string } {
  if (!dataset.includes(':')) return { preset: 'mnist-mlp', reason: `the paper's model for ${dataset}` };
  if (dataset.startsWith('csv:')) return { preset: 'tabular-mlp', reason: 'tabular data' };
  if (c === 1 && h * w <= 32 * 32) return { preset: 'mnist-mlp', reason: `${h}x${w} grayscale images: the paper's MNIST model` };
  if (c === 3 && Math.min(h, w) >= 32 && backend === 'tensorflow') return { preset: 'conv-large', reason: `${h}x${w} colour images on native TensorFlow: the paper's CIFAR/SVHN model` };
  return { preset: 'conv-small', reason: `${h}x${w}x${c} images${backend === 'tensorflow' ? '' : `; conv-large, the paper's CIFAR model, is ~40x slower per iteration than conv-small on ${backend ?? 'wasm'}`}` };
}

/** The model a run's config describes (training, evaluation and export all build it this way). */
export function buildModelForConfig(config: TrainConfig, inputShape: [number, number, number], numClasses: number): GanModel {
  const preset = config.preset === 'auto' ? autoPreset(config.dataset, inputShape).preset : config.preset;
  return buildModel(preset, { inputShape, numClasses, techniques: config });
}
