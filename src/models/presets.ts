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
  'conv-small': ({ inputShape, numClasses, techniques: t = {} }) => convSmall({ inputShape, numClasses, ...convTechniques(t) }),
  'conv-large': ({ inputShape, numClasses, techniques: t = {} }) => convLarge({ inputShape, numClasses, ...convTechniques(t) }),
};

export const PRESET_NAMES = Object.keys(PRESETS);

export function buildModel(preset: string, args: PresetArgs): GanModel {
  const make = PRESETS[preset];
  if (!make) throw configError(`unknown preset '${preset}'; expected one of: ${PRESET_NAMES.join(', ')}`);
  return make(args);
}

/** The model a run's config describes (training, evaluation and export all build it this way). */
export function buildModelForConfig(config: TrainConfig, inputShape: [number, number, number], numClasses: number): GanModel {
  return buildModel(config.preset, { inputShape, numClasses, techniques: config });
}
