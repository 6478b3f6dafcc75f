import type { GanModel } from './model.js';
import { mnistMlp, type MnistMlpArgs } from './mnist_mlp.js';

/**
 * The tabular-mlp preset: mnist-mlp's recipe for rows of standardized features. Smaller layers,
 * less input noise (features are standardized, so noise 0.3 would be a third of a standard
 * deviation), and a linear G output instead of sigmoid pixels.
 */
export function tabularMlp(
  args: Pick<MnistMlpArgs, 'inputDim' | 'numClasses' | 'featureLayer' | 'mbd' | 'vbn' | 'inputNoise' | 'hiddenNoise' | 'hidden' | 'genHidden'>,
): GanModel {
  return mnistMlp({
    inputNoise: 0.1,
    hiddenNoise: 0.3,
    hidden: [256, 128, 128],
    genHidden: [128, 128],
    ...args,
    preset: 'tabular-mlp',
    output: 'linear',
  });
}
