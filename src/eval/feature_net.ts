/**
 * The feature nets of the sample-quality score (sample_quality.ts): small supervised MLPs, one per
 * built-in dataset, trained once by scripts/tools/train_feature_net.ts on all 60k labeled training
 * images and committed under datasets/feature-nets/<dataset>.json (metadata + weight manifest) +
 * <dataset>.bin (float32 LE): the file format, its checked loader, and inference in plain
 * JavaScript float64 (no tf backend needed, identical on every backend).
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { dataError } from '../errors.js';
import { PACKAGE_ROOT } from '../package_paths.js';

export const FEATURE_NET_FORMAT = 'semigan-feature-net';
export const FEATURE_NET_FORMAT_VERSION = 1;

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
