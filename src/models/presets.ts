import { configError } from '../errors.js';
import { PAPER_TECHNIQUES, type GanModel, type ModelSpec, type ModelTechniques } from './model.js';
import { mnistMlp } from './mnist_mlp.js';
import { tabularMlp } from './tabular_mlp.js';
import { convSmall } from './conv_small.js';
import { convLarge } from './conv_large.js';

export interface PresetArgs {
  inputShape: [number, number, number];
  numClasses: number;
  /** The techniques that change the networks (default: the paper's MNIST recipe). */
  techniques?: Partial<ModelTechniques>;
}

/** The technique options every preset's builder takes. */
const builderTechniques = (t: ModelTechniques) => ({
  featureLayer: t.fmLayer,
  mbd: t.mbd ? { kernels: t.mbdKernels, dim: t.mbdDim } : null,
  vbn: t.vbn,
  ...(t.dNoise ? { inputNoise: t.dNoise[0], hiddenNoise: t.dNoise[1] } : {}),
});

type Preset = (a: { inputShape: [number, number, number]; numClasses: number; t: ModelTechniques }) => GanModel;

/** --d-widths or --g-widths for a conv preset, whose layer plan fixes which counts it takes. */
function convWidths(
  t: ModelTechniques,
  net: 'd' | 'g',
  preset: string,
  fits: (n: number) => boolean,
  what: string,
): number[] | undefined {
  const widths = net === 'd' ? t.dWidths : t.gWidths;
  if (!widths) return undefined;
  if (!fits(widths.length)) throw configError(`--${net}-widths for ${preset} takes ${what}; received ${widths.length}: ${widths.join(',')}`);
  return widths;
}

/** The MLPs' hidden widths: any count, each net its own. */
const mlpWidths = (t: ModelTechniques) => ({
  ...(t.dWidths ? { hidden: t.dWidths } : {}),
  ...(t.gWidths ? { genHidden: t.gWidths } : {}),
});

/** The conv presets' dropout and head; the MLPs' D has Gaussian noise instead (the paper's MNIST model). */
const convOnly = (t: ModelTechniques) => ({
  ...(t.dDropout ? { inputDropout: t.dDropout[0], dropout: t.dDropout[1] } : {}),
  ...(t.dHead ? { head: t.dHead } : {}),
});
function mlpRefusals(t: ModelTechniques, preset: string): void {
  if (t.dDropout) throw configError(`--d-dropout: ${preset}'s D has no dropout layers (its regularizer is Gaussian noise: --d-noise INPUT,HIDDEN)`);
  if (t.dHead) throw configError(`--d-head: ${preset}'s D is dense throughout (it sees every input already); the head is a conv preset's choice`);
}

const PRESETS: Record<string, Preset> = {
  'mnist-mlp': ({ inputShape: [h, w, c], numClasses, t }) => {
    mlpRefusals(t, 'mnist-mlp');
    return mnistMlp({ inputDim: h * w * c, numClasses, ...builderTechniques(t), ...mlpWidths(t) });
  },
  'tabular-mlp': ({ inputShape: [h, w, c], numClasses, t }) => {
    mlpRefusals(t, 'tabular-mlp');
    return tabularMlp({ inputDim: h * w * c, numClasses, ...builderTechniques(t), ...mlpWidths(t) });
  },
  'conv-small': ({ inputShape, numClasses, t }) =>
    convSmall({
      inputShape,
      numClasses,
      ...builderTechniques(t),
      ...convOnly(t),
      widths: convWidths(t, 'd', 'conv-small', (n) => n % 2 === 0 && n >= 2 && n <= 8, '2, 4, 6 or 8 widths (a stride-1 and a stride-2 conv per stage)'),
      genWidths: convWidths(t, 'g', 'conv-small', (n) => n === 2, "2 widths (its dense layer's channels, its middle deconv's)") as
        | [number, number]
        | undefined,
    }),
  'conv-large': ({ inputShape, numClasses, t }) =>
    convLarge({
      inputShape,
      numClasses,
      ...builderTechniques(t),
      ...convOnly(t),
      widths: convWidths(t, 'd', 'conv-large', (n) => n === 2, '2 widths (its two conv blocks)') as [number, number] | undefined,
      genWidths: convWidths(t, 'g', 'conv-large', (n) => n === 3, "3 widths (its dense layer's channels, its two BN deconvs')") as
        | [number, number, number]
        | undefined,
    }),
};

export const PRESET_NAMES = ['auto', ...Object.keys(PRESETS)];

export function buildModel(preset: string, args: PresetArgs): GanModel {
  const make = PRESETS[preset];
  if (!make) throw configError(`unknown preset '${preset}'; expected one of: ${PRESET_NAMES.join(', ')}`);
  return make({ inputShape: args.inputShape, numClasses: args.numClasses, t: { ...PAPER_TECHNIQUES, ...args.techniques } });
}

/**
 * The preset `--preset auto` picks: the paper's MLP for the built-in MNIST-like datasets (its
 * recipe) and for other small grayscale images (up to 32x32: measured better than conv-small on
 * MNIST and Fashion-MNIST files with few labels, and 2.7x faster; docs/benchmarks.md),
 * tabular-mlp for feature vectors, conv-small for colour or larger images — and the paper's
 * CIFAR/SVHN model conv-large for colour images of at least 32x32 on native TensorFlow (it costs
 * ~16x conv-small per iteration with native convs, ~30 min per 50k-image epoch on 2 cores; fine on
 * a GPU).
 */
export function autoPreset(dataset: string, [h, w, c]: [number, number, number], backend?: string): { preset: string; reason: string } {
  if (!dataset.includes(':')) return { preset: 'mnist-mlp', reason: `the paper's model for ${dataset}` };
  if (dataset.startsWith('csv:')) return { preset: 'tabular-mlp', reason: 'tabular data' };
  if (c === 1 && h * w <= 32 * 32) return { preset: 'mnist-mlp', reason: `${h}x${w} grayscale images: the paper's MNIST model` };
  if (c === 3 && Math.min(h, w) >= 32 && backend === 'tensorflow') return { preset: 'conv-large', reason: `${h}x${w} colour images on native TensorFlow: the paper's CIFAR/SVHN model` };
  return { preset: 'conv-small', reason: `${h}x${w}x${c} images${backend === 'tensorflow' ? '' : `; conv-large, the paper's CIFAR model, is ~16x slower per iteration than conv-small on ${backend ?? 'wasm'}`}` };
}

/** The model a run's config describes (training, evaluation and export all build it this way). */
export function buildModelForConfig(config: ModelSpec, inputShape: [number, number, number], numClasses: number): GanModel {
  const preset = config.preset === 'auto' ? autoPreset(config.dataset, inputShape).preset : config.preset;
  return buildModel(preset, { inputShape, numClasses, techniques: config });
}
