/**
 * Sample quality of generated images as a Fréchet distance (FID-style) in the feature space of a
 * fixed, separately trained classifier for the dataset ("feature net", feature_net.ts): there is
 * no Inception network offline, so each built-in dataset has its own small supervised MLP. Its
 * 64-unit hidden ReLU layer is the feature space. See docs/sample_quality.md. The score depends
 * only on the committed weights and the images.
 */
import { loadBuiltin } from '../data/sources/builtin.js';
import { dataError } from '../errors.js';
import { frechetDistanceFromStats, gaussianStats, type GaussianStats } from './frechet.js';
import { featureNetFeatures, loadFeatureNet, type FeatureNet } from './feature_net.js';

/** Test images per half for the real-vs-real floor (the test sets have 10000). */
export const REFERENCE_HALF = 5000;

interface Reference {
  /** Stats of the reference half: test images 0, 2, 4, ..., 9998. Every sample set is compared with it. */
  refA: GaussianStats;
  /** Features of the other half (1, 3, ..., 9999): the stand-in for "a generator that outputs real images". */
  featsB: Float64Array;
  /** Stats of all of half B (the n >= 5000 floor). */
  statsB: GaussianStats;
}

const refCache = new Map<string, Reference>();

/**
 * Even/odd test indices, not first/last 5000: the MNIST test set's first 5000 images come from
 * NIST's (cleaner) SD-3 writers and the last 5000 from SD-1, so contiguous halves differ
 * systematically (FD 14.0 between them vs 0.80 for even/odd with the MNIST net, n = 5000).
 */
function reference(dataset: string, net: FeatureNet, dataDir?: string): Reference {
  const key = `${dataset}\0${dataDir ?? ''}`;
  const hit = refCache.get(key);
  if (hit) return hit;
  const { test } = loadBuiltin(dataset, { dataDir });
  if (test.n < 2 * REFERENCE_HALF)
    throw dataError(`${dataset}: the test set has ${test.n} images, sample quality needs ${2 * REFERENCE_HALF}`);
  const half = (parity: number) => {
    const x = test.x.gather(Int32Array.from({ length: REFERENCE_HALF }, (_, i) => 2 * i + parity));
    return featureNetFeatures(net, x, REFERENCE_HALF);
  };
  const featsA = half(0);
  const featsB = half(1);
  const fd = net.meta.featureDim;
  const ref = { refA: gaussianStats(featsA, fd), featsB, statsB: gaussianStats(featsB, fd) };
  refCache.set(key, ref);
  return ref;
}

export interface SampleQuality {
  /**
   * Fréchet distance between the generated images and the reference half of the real test set
   * (the 5000 even-indexed test images), in the feature net's 64-d feature space. Lower is better.
   */
  fd: number;
  /**
   * The same distance for real images the reference has not seen: the first min(n, 5000) of the
   * odd-indexed test images against the same reference half — roughly what a perfect generator
   * would score with this many samples. FD is biased upwards for small sample sets, so compare
   * `fd` with this, not with 0.
   */
  realVsRealFd: number;
}

/**
 * Sample quality of n generated images (flat, [n, 784], values in [0, 1] like the real data) for a
 * built-in dataset. Use n = 5000 to compare with the documented floors; with n > 5000 the floor
 * still uses 5000 real images (there are only 10000 test images).
 */
export function sampleQuality(
  dataset: string,
  generated: Float32Array,
  n: number,
  opts: { dataDir?: string } = {},
): SampleQuality {
  const net = loadFeatureNet(dataset);
  if (!Number.isInteger(n) || n < 2) throw dataError(`sample quality: need at least 2 generated images, got n = ${n}`);
  for (let i = 0; i < generated.length; i++) {
    if (!Number.isFinite(generated[i]))
      throw dataError(
        `sample quality: generated image ${Math.floor(i / net.meta.inputDim)} has a non-finite value (${generated[i]})`,
      );
  }
  const ref = reference(dataset, net, opts.dataDir);
  const fdim = net.meta.featureDim;
  const gen = gaussianStats(featureNetFeatures(net, generated, n), fdim);
  const m = Math.min(n, REFERENCE_HALF);
  const realStats = m === REFERENCE_HALF ? ref.statsB : gaussianStats(ref.featsB.subarray(0, m * fdim), fdim);
  return {
    fd: frechetDistanceFromStats(gen, ref.refA),
    realVsRealFd: frechetDistanceFromStats(realStats, ref.refA),
  };
}
