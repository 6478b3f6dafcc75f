import { configError } from '../errors.js';
import type { GanModel } from './model.js';
import { mnistMlp } from './mnist_mlp.js';

export interface PresetArgs {
  inputShape: [number, number, number];
  numClasses: number;
}

const PRESETS: Record<string, (a: PresetArgs) => GanModel> = {
  'mnist-mlp': ({ inputShape: [h, w, c], numClasses }) => mnistMlp({ inputDim: h * w * c, numClasses }),
};

export const PRESET_NAMES = Object.keys(PRESETS);

export function buildModel(preset: string, args: PresetArgs): GanModel {
  const make = PRESETS[preset];
  if (!make) throw configError(`unknown preset '${preset}'; expected one of: ${PRESET_NAMES.join(', ')}`);
  return make(args);
}
