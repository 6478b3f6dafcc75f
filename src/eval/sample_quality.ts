/**
 * Sample quality of generated images as a Fréchet distance (FID-style) in the feature space of a
 * fixed, separately trained classifier for the dataset ("feature net"): there is no Inception
 * network offline, so each built-in dataset has its own small supervised MLP, trained once by
 * scripts/tools/train_feature_net.ts on all 60k labeled training images and committed under
 * datasets/feature-nets/<dataset>.json (metadata + weight manifest) + <dataset>.bin (float32 LE).
 * Its 64-unit hidden ReLU layer is the feature space. See docs/sample_quality.md.
 *
 * Inference is plain JavaScript in float64 (no tf backend needed, identical on every backend), so
 * the score depends only on the committed weights and the images.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadBuiltin } from '../data/sources/builtin.js';
import { dataError } from '../errors.js';
import { frechetDistanceFromStats, gaussianStats, type GaussianStats } from './frechet.js';
import { PACKAGE_ROOT } from '../package_paths.js';

export const FEATURE_NET_FORMAT = 'semigan-feature-net';
export const FEATURE_NET_FORMAT_VERSION = 1;
/** Test images per half for the real-vs-real floor (the test sets have 10000). */
export const REFERENCE_HALF = 5000;

export interface FeatureNetLayerSpec {
  /** Name of the weight entries: `<name>.kernel` [in, out] and `<name>.bias` [out]. */
  name: string;
  in: number;
  out: number;
  activation: 'relu' | 'linear';
}

export interface FeatureNetWeightEntry {
  name: string;
  shape: number[];
  /** Byte offset in the .bin file. */
  offset: number;
  /** Number of float32 elements. */
  length: number;
}

/** Contents of datasets/feature-nets/<dataset>.json. */
export interface FeatureNetMeta {
  format: typeof FEATURE_NET_FORMAT;
  version: number;
  dataset: string;
  /** Input size (flattened image), e.g. 784. */
  inputDim: number;
  /** Dense layers in order; the last one gives the class logits. */
  layers: FeatureNetLayerSpec[];
  /** Index into `layers` whose (post-activation) output is the feature vector. */
  featureLayer: number;
  featureDim: number;
  classes: string[];
  /** Accuracy on the full official test set (10000 images), never used for training. */
  testAccuracy: number;
  nTest: number;
  training: {
    images: number;
    seed: number;
    epochs: number;
    batchSize: number;
    optimizer: string;
    learningRate: number;
    seconds: number;
    backend: string;
    command: string;
  };
  date: string;
  weightsFile: string;
  /** SHA-256 (hex) of the .bin file, checked on load. */
  weightsSha256: string;
  weights: FeatureNetWeightEntry[];
}

export interface FeatureNetLayer {
  spec: FeatureNetLayerSpec;
  /** Row-major [in, out]. */
  kernel: Float32Array;
  bias: Float32Array;
}

export interface FeatureNet {
  meta: FeatureNetMeta;
  layers: FeatureNetLayer[];
}

export function featureNetDir(): string {
  return join(PACKAGE_ROOT, 'datasets', 'feature-nets');
}

const netCache = new Map<string, FeatureNet>();

/**
 * The committed feature net for a built-in dataset (cached). Throws a SemiganError when the
 * dataset has none or its files are damaged.
 */
export function loadFeatureNet(dataset: string): FeatureNet {
  const cached = netCache.get(dataset);
  if (cached) return cached;
  const dir = featureNetDir();
  const metaPath = join(dir, `${dataset}.json`);
  if (!/^[a-z0-9][a-z0-9_-]*$/i.test(dataset) || !existsSync(metaPath)) {
    const have = existsSync(dir) ? listNets(dir) : [];
    throw dataError(
      `no feature net for dataset '${dataset}' (expected ${metaPath}); sample quality is available for: ` +
        `${have.length ? have.join(', ') : '(none)'}; train one with ` +
        '`node dist/scripts/tools/train_feature_net.js --dataset <name>`',
    );
  }
  const bad = (what: string) =>
    dataError(
      `${metaPath}: not a usable feature net (${what}); retrain it with \`node dist/scripts/tools/train_feature_net.js --dataset ${dataset}\``,
    );
  let meta: FeatureNetMeta;
  try {
    meta = JSON.parse(readFileSync(metaPath, 'utf8'));
  } catch (e) {
    throw bad(`invalid JSON: ${(e as Error).message}`);
  }
  if (meta.format !== FEATURE_NET_FORMAT)
    throw bad(`format is ${JSON.stringify(meta.format)}, expected "${FEATURE_NET_FORMAT}"`);
  if (meta.version !== FEATURE_NET_FORMAT_VERSION)
    throw bad(`version ${meta.version}, this semigan reads version ${FEATURE_NET_FORMAT_VERSION}`);
  const binPath = join(dir, meta.weightsFile);
  if (!existsSync(binPath)) throw bad(`weights file ${binPath} is missing`);
  const bin = readFileSync(binPath);
  const sha = createHash('sha256').update(bin).digest('hex');
  if (sha !== meta.weightsSha256) throw bad(`${binPath} has SHA-256 ${sha}, the metadata says ${meta.weightsSha256}`);
  const tensors = new Map<string, Float32Array>();
  for (const e of meta.weights) {
    const size = e.shape.reduce((a, b) => a * b, 1);
    if (size !== e.length || e.offset % 4 !== 0 || e.offset + 4 * e.length > bin.length) {
      throw bad(
        `weight ${e.name}: shape [${e.shape}] / offset ${e.offset} / length ${e.length} do not fit the ${bin.length}-byte .bin`,
      );
    }
    const arr = new Float32Array(e.length);
    for (let i = 0; i < e.length; i++) arr[i] = bin.readFloatLE(e.offset + 4 * i);
    tensors.set(e.name, arr);
  }
  let prev = meta.inputDim;
  const layers = meta.layers.map((spec) => {
    const kernel = tensors.get(`${spec.name}.kernel`);
    const bias = tensors.get(`${spec.name}.bias`);
    if (spec.in !== prev) throw bad(`layer ${spec.name} takes ${spec.in} inputs, the previous layer gives ${prev}`);
    if (!kernel || kernel.length !== spec.in * spec.out)
      throw bad(`${spec.name}.kernel missing or not ${spec.in}x${spec.out}`);
    if (!bias || bias.length !== spec.out) throw bad(`${spec.name}.bias missing or not of length ${spec.out}`);
    if (spec.activation !== 'relu' && spec.activation !== 'linear')
      throw bad(`layer ${spec.name}: unknown activation ${spec.activation}`);
    prev = spec.out;
    return { spec, kernel, bias };
  });
  if (
    !(meta.featureLayer >= 0 && meta.featureLayer < layers.length) ||
    layers[meta.featureLayer].spec.out !== meta.featureDim
  ) {
    throw bad(`featureLayer ${meta.featureLayer} / featureDim ${meta.featureDim} do not match the layers`);
  }
  const net = { meta, layers };
  netCache.set(dataset, net);
  return net;
}

function listNets(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.slice(0, -5))
    .sort();
}

/** Output of layers 0..last (inclusive) for each of the n rows of x; float64. */
function forward(net: FeatureNet, x: Float32Array, n: number, last: number): Float64Array {
  const inDim = net.meta.inputDim;
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`feature net: n must be a non-negative integer, got ${n}`);
  if (x.length !== n * inDim) {
    throw dataError(
      `feature net (${net.meta.dataset}): expected ${n} x ${inDim} = ${n * inDim} values, got ${x.length}`,
    );
  }
  const outDim = net.layers[last].spec.out;
  const out = new Float64Array(n * outDim);
  const widest = Math.max(...net.layers.map((l) => l.spec.out));
  let cur = new Float64Array(widest);
  let nxt = new Float64Array(widest);
  const input = new Float64Array(inDim);
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < inDim; i++) input[i] = x[r * inDim + i];
    let src: Float64Array = input;
    for (let li = 0; li <= last; li++) {
      const { spec, kernel, bias } = net.layers[li];
      const o = spec.out;
      for (let j = 0; j < o; j++) nxt[j] = bias[j];
      for (let i = 0; i < spec.in; i++) {
        const xi = src[i];
        if (xi === 0) continue; // images are mostly background; ReLU outputs are often 0
        const base = i * o;
        for (let j = 0; j < o; j++) nxt[j] += xi * kernel[base + j];
      }
      if (spec.activation === 'relu') for (let j = 0; j < o; j++) if (!(nxt[j] > 0)) nxt[j] = 0;
      [cur, nxt] = [nxt, cur];
      src = cur;
    }
    out.set(src.subarray(0, outDim), r * outDim);
  }
  return out;
}

/** Feature vectors [n, featureDim] (row-major, float64) of n flat images x [n, inputDim] in [0, 1]. */
export function featureNetFeatures(net: FeatureNet, x: Float32Array, n: number): Float64Array {
  return forward(net, x, n, net.meta.featureLayer);
}

/** Class logits [n, classes] of n flat images. */
export function featureNetLogits(net: FeatureNet, x: Float32Array, n: number): Float64Array {
  return forward(net, x, n, net.layers.length - 1);
}

/** Predicted class per image (argmax of the logits; ties go to the lowest index). */
export function featureNetPredict(net: FeatureNet, x: Float32Array, n: number): Int32Array {
  const logits = featureNetLogits(net, x, n);
  const k = net.layers[net.layers.length - 1].spec.out;
  const pred = new Int32Array(n);
  for (let r = 0; r < n; r++) {
    let best = -Infinity;
    for (let j = 0; j < k; j++) {
      if (logits[r * k + j] > best) {
        best = logits[r * k + j];
        pred[r] = j;
      }
    }
  }
  return pred;
}

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
  const dim = net.meta.inputDim;
  if (test.n < 2 * REFERENCE_HALF)
    throw dataError(`${dataset}: the test set has ${test.n} images, sample quality needs ${2 * REFERENCE_HALF}`);
  const half = (parity: number) => {
    const x = new Float32Array(REFERENCE_HALF * dim);
    for (let i = 0; i < REFERENCE_HALF; i++) {
      const r = 2 * i + parity;
      x.set(test.x.subarray(r * dim, (r + 1) * dim), i * dim);
    }
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
