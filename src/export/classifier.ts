/**
 * An exported model directory (semigan export) as a classifier: plain tf.loadLayersModel through
 * an in-memory IO handler fed from the files (no tfjs-node needed), batched logits, and
 * probabilities / top-k / realness (eval/predictions.ts).
 *
 * The tfjs backend is the caller's choice: call initBackend() (src/backend.ts) before load().
 */
import * as tf from '@tensorflow/tfjs';
import { statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { SemiganError } from '../errors.js';
import { METADATA_FILE, MODEL_JSON_FILE, readMetadata, type ClassifierMetadata } from './metadata.js';
import { MAX_JSON_BYTES, modelDirPath, readModelFile } from './model_files.js';
import { ExportedModel } from './exported_model.js';

import { predictionsFromLogits, type Prediction } from '../eval/predictions.js';
export { predictionsFromLogits, type Prediction };

const modelDirError = (msg: string) => new SemiganError('SEMIGAN_ERR_MODEL_DIR', msg);

/** Bytes the weights of a manifest take (float32 and int32 only: what semigan writes), refusing absurd shapes. */
function weightBytes(specs: tf.io.WeightsManifestEntry[], source: string): number {
  let total = 0;
  for (const w of specs) {
    const shapeOk = Array.isArray(w.shape) && w.shape.every((d) => Number.isInteger(d) && d >= 0);
    if (!shapeOk || (w.dtype !== 'float32' && w.dtype !== 'int32') || w.quantization)
      throw modelDirError(
        `${source}: weight ${w.name} has shape ${JSON.stringify(w.shape)}, dtype ${w.dtype}; expected an unquantized float32 tensor`,
      );
    total += w.shape.reduce((a, b) => a * b, 1) * 4;
  }
  if (!(total <= 2 ** 31))
    throw modelDirError(`${source}: the weights take ${total} bytes, more than the 2 GiB a model may have`);
  return total;
}

export class Classifier extends ExportedModel {
  readonly engine = 'tfjs';

  private constructor(
    metadata: ClassifierMetadata,
    readonly model: tf.LayersModel,
    dir: string,
  ) {
    super(metadata, dir);
  }

  /** Load MODEL_DIR (model.json, its weight files, metadata.json) with plain tf.loadLayersModel. */
  static async load(dir: string): Promise<Classifier> {
    const metadata = readMetadata(dir);
    const sums = metadata.files?.sha256;
    if (metadata.files && !metadata.files.model)
      throw modelDirError(
        `${dir} holds no TensorFlow.js model, only ${metadata.files.onnx ?? 'an ONNX model'} (exported with --format onnx or triton): serve it with --engine onnx, or export again with --format all`,
      );
    const modelName = metadata.files?.model ?? MODEL_JSON_FILE;
    const modelPath = modelDirPath(dir, modelName, 'files.model', join(dir, METADATA_FILE));
    let modelJson: tf.io.ModelJSON;
    try {
      modelJson = JSON.parse(readModelFile(modelPath, MAX_JSON_BYTES, sums?.[modelName]).toString('utf8'));
    } catch (e) {
      if (e instanceof SemiganError) throw e;
      throw modelDirError(`${modelPath}: not valid JSON (${(e as Error).message})`);
    }
    if (!modelJson?.modelTopology || !Array.isArray(modelJson.weightsManifest)) {
      throw modelDirError(`${modelPath}: expected a TensorFlow.js layers model (modelTopology and weightsManifest)`);
    }
    const artifacts = await tf.io.getModelArtifactsForJSON(modelJson, async (manifest) => {
      const specs = manifest.flatMap((g) => g.weights);
      const expected = weightBytes(specs, modelPath);
      const paths = manifest.flatMap((g) =>
        g.paths.map((p) => modelDirPath(dir, p, 'weight file', `${modelPath} weightsManifest`)),
      );
      const sizes = paths.map((p) => statSync(p).size);
      const total = sizes.reduce((a, b) => a + b, 0);
      if (total !== expected)
        throw modelDirError(
          `${dir}: the weight files hold ${total} bytes but the weights named in ${modelPath} take ${expected}; the files were changed or damaged after export`,
        );
      const buffers = paths.map((p, i) => {
        const b = readModelFile(p, sizes[i], sums?.[basename(p)]);
        return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
      });
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
      throw modelDirError(
        `${dir}: the model outputs [${outShape}] per input but ${METADATA_FILE} names ${metadata.classes.length} classes`,
      );
    }
    if (inShape.join(',') !== metadata.inputShape.join(',')) {
      model.dispose();
      throw modelDirError(
        `${dir}: the model takes [${inShape}] per input but ${METADATA_FILE} says inputShape [${metadata.inputShape}]`,
      );
    }
    const bad = model.weights.find((w) => !(w.read().dataSync() as Float32Array).every(Number.isFinite));
    if (bad) {
      model.dispose();
      throw modelDirError(
        `${dir}: weight ${bad.name} holds NaN or infinite values; export the run again from a healthy checkpoint`,
      );
    }
    return new Classifier(metadata, model, dir);
  }

  /**
   * Class logits, row-major [n, K], for n inputs given row-major [n, h, w, c] (preprocessed as
   * metadata.preprocessing says). An input's logits do not depend on the other inputs.
   */
  predictLogits(x: Float32Array, n: number): Float32Array {
    const k = this.classes.length;
    const out = new Float32Array(n * k);
    const shape = this.metadata.inputShape;
    for (const [s, e] of this.chunks(x, n)) {
      const chunk = tf.tidy(() => {
        const logits = this.model.predict(
          tf.tensor4d(x.subarray(s * this.dim, e * this.dim), [e - s, ...shape]),
        ) as tf.Tensor;
        return logits.dataSync() as Float32Array;
      });
      out.set(chunk, s * k);
    }
    return out;
  }

  /** Label, probabilities, top-k and realness per input (see Prediction). */
  predict(x: Float32Array, n: number, topK = 3): Prediction[] {
    return predictionsFromLogits(
      this.predictLogits(x, n),
      this.classes,
      topK,
      this.metadata.postprocessing?.temperature ?? 1,
    );
  }

  dispose(): void {
    this.model.dispose();
  }
}
