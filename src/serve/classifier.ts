/**
 * An exported model directory (semigan export) as a classifier: plain tf.loadLayersModel through
 * an in-memory IO handler fed from the files (no tfjs-node needed), batched logits, and
 * probabilities / top-k / realness computed in float64 from the logits.
 *
 * The tfjs backend is the caller's choice: call initBackend() (src/backend.ts) before load().
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SemiganError } from '../errors.js';
import { METADATA_FILE, readMetadata, type ClassifierMetadata } from '../export/metadata.js';

export interface Prediction {
  /** Name of the most probable class. */
  label: string;
  /** Its index (= its logit's position). */
  index: number;
  /** Its probability p(class | x, real). */
  probability: number;
  /** p(class | x, real) for every class (softmax of the logits; sums to 1). */
  probabilities: Record<string, number>;
  /** The topK most probable classes, most probable first (ties: lower index first). */
  top: { label: string; probability: number }[];
  /** D(x) = p(real | x) = sigmoid(logsumexp(logits)): how much the model believes x is a real example rather than a generated one. */
  realness: number;
}

/** Rows per forward pass in predictLogits: bounds memory, and any chunking gives the same logits. */
export const PREDICT_CHUNK = 1024;

const modelDirError = (msg: string) => new SemiganError('SEMIGAN_ERR_MODEL_DIR', msg);

/** D(x) = sigmoid(lse), without overflow for large |lse|. */
const sigmoid = (v: number) => (v >= 0 ? 1 / (1 + Math.exp(-v)) : Math.exp(v) / (1 + Math.exp(v)));

/**
 * Predictions from row-major [n, K] logits, in float64: a stable softmax (shifted by the row max)
 * and lse = max + log(sum exp(l - max)).
 */
export function predictionsFromLogits(logits: Float32Array, classes: readonly string[], topK = 3): Prediction[] {
  const k = classes.length;
  if (logits.length % k !== 0) throw new RangeError(`predictionsFromLogits: ${logits.length} logits is not a multiple of ${k} classes`);
  if (!Number.isInteger(topK) || topK < 1) throw new RangeError(`topK must be a positive integer, got ${topK}`);
  const n = logits.length / k;
  const out: Prediction[] = [];
  const p = new Float64Array(k);
  const order = Array.from({ length: k }, (_, j) => j);
  for (let i = 0; i < n; i++) {
    const row = logits.subarray(i * k, (i + 1) * k);
    let max = -Infinity;
    let arg = 0;
    for (let j = 0; j < k; j++) {
      if (row[j] > max) {
        max = row[j];
        arg = j;
      }
    }
    let sum = 0;
    for (let j = 0; j < k; j++) sum += (p[j] = Math.exp(row[j] - max));
    const lse = max + Math.log(sum);
    const probabilities: Record<string, number> = {};
    for (let j = 0; j < k; j++) probabilities[classes[j]] = p[j] /= sum;
    const top = order
      .slice()
      .sort((a, b) => p[b] - p[a] || a - b)
      .slice(0, Math.min(topK, k))
      .map((j) => ({ label: classes[j], probability: p[j] }));
    out.push({ label: classes[arg], index: arg, probability: p[arg], probabilities, top, realness: sigmoid(lse) });
  }
  return out;
}

export class Classifier {
  /** Values per example: height * width * channels. */
  readonly dim: number;
  readonly classes: readonly string[];

  private constructor(
    readonly metadata: ClassifierMetadata,
    readonly model: tf.LayersModel,
    readonly dir: string,
  ) {
    this.classes = metadata.classes;
    this.dim = metadata.inputShape.reduce((a, b) => a * b, 1);
  }

  /** Load MODEL_DIR (model.json, its weight files, metadata.json) with plain tf.loadLayersModel. */
  static async load(dir: string): Promise<Classifier> {
    const metadata = readMetadata(dir);
    const modelPath = join(dir, metadata.files?.model ?? 'model.json');
    if (!existsSync(modelPath)) throw modelDirError(`${dir}: ${METADATA_FILE} is there but its model file ${modelPath} is missing`);
    let modelJson: tf.io.ModelJSON;
    try {
      modelJson = JSON.parse(readFileSync(modelPath, 'utf8'));
    } catch (e) {
      throw modelDirError(`${modelPath}: not valid JSON (${(e as Error).message})`);
    }
    if (!modelJson.modelTopology || !Array.isArray(modelJson.weightsManifest)) {
      throw modelDirError(`${modelPath}: expected a TensorFlow.js layers model (modelTopology and weightsManifest)`);
    }
    const artifacts = await tf.io.getModelArtifactsForJSON(modelJson, async (manifest) => {
      const specs = manifest.flatMap((g) => g.weights);
      const buffers = manifest.flatMap((g) =>
        g.paths.map((p) => {
          const path = join(dir, p);
          if (!existsSync(path)) throw modelDirError(`${dir}: weight file ${p} named in ${modelPath} is missing`);
          const b = readFileSync(path);
          return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
        }),
      );
      return [specs, tf.io.CompositeArrayBuffer.join(buffers)];
    });
    let model: tf.LayersModel;
    try {
      model = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
    } catch (e) {
      throw modelDirError(`${dir}: tf.loadLayersModel failed: ${(e as Error).message.split('\n')[0]}`);
    }
    const outShape = (model.outputs[0].shape as (number | null)[]).slice(1);
    const inShape = (model.inputs[0].shape as (number | null)[]).slice(1);
    if (outShape.length !== 1 || outShape[0] !== metadata.classes.length) {
      model.dispose();
      throw modelDirError(`${dir}: the model outputs [${outShape}] per input but ${METADATA_FILE} names ${metadata.classes.length} classes`);
    }
    if (inShape.join(',') !== metadata.inputShape.join(',')) {
      model.dispose();
      throw modelDirError(`${dir}: the model takes [${inShape}] per input but ${METADATA_FILE} says inputShape [${metadata.inputShape}]`);
    }
    return new Classifier(metadata, model, dir);
  }

  /**
   * Class logits, row-major [n, K], for n inputs given row-major [n, h, w, c] (preprocessed as
   * metadata.preprocessing says). An input's logits do not depend on the other inputs.
   */
  predictLogits(x: Float32Array, n: number): Float32Array {
    if (!Number.isInteger(n) || n < 0 || x.length !== n * this.dim) {
      throw new RangeError(`predictLogits: expected ${n} x ${this.dim} = ${n * this.dim} values, got ${x.length}`);
    }
    const k = this.classes.length;
    const out = new Float32Array(n * k);
    const shape = this.metadata.inputShape;
    for (let s = 0; s < n; s += PREDICT_CHUNK) {
      const e = Math.min(n, s + PREDICT_CHUNK);
      const chunk = tf.tidy(() => {
        const logits = this.model.predict(tf.tensor4d(x.subarray(s * this.dim, e * this.dim), [e - s, ...shape])) as tf.Tensor;
        return logits.dataSync() as Float32Array;
      });
      out.set(chunk, s * k);
    }
    return out;
  }

  /** Label, probabilities, top-k and realness per input (see Prediction). */
  predict(x: Float32Array, n: number, topK = 3): Prediction[] {
    return predictionsFromLogits(this.predictLogits(x, n), this.classes, topK);
  }

  dispose(): void {
    this.model.dispose();
  }
}
