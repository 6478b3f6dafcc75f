/**
 * `semigan export`: a run's averaged (EMA) discriminator as a standalone TensorFlow.js
 * LayersModel made of built-in layers only (mnist-mlp: Flatten + Dense; conv presets: Conv2D,
 * LeakyReLU, GlobalAveragePooling2D, Dense), plus metadata.json. Loadable by plain
 * `tf.loadLayersModel` in Node or a browser, without semigan (docs/model_format.md).
 *
 * What changes from training's D: weight norm is folded into plain kernels (W = v * g / ||v||),
 * Gaussian noise and dropout are dropped (they are off at evaluation anyway), and the output is
 * the K class logits; the "generated" class's logit is the constant 0 and is not stored.
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { SemiganError } from '../errors.js';
import { Rng } from '../rng.js';
import type { Tensors } from '../nn/params.js';
import type { ClassifierLayer, GanModel } from '../models/model.js';
import {
  exportChoiceOf,
  loadExportedDiscriminator,
  readMetrics,
  readResult,
  readRun,
  runConfig,
  METRICS_FILE,
  RESULT_FILE,
  type CheckpointMeta,
} from '../train/run_dir.js';
import type { Checkpoint } from '../train/checkpoint.js';
import type { WeightSet } from '../train/weight_choice.js';
import { SEMIGAN_VERSION } from '../version.js';
import { basename, join, resolve } from 'node:path';
import { atomicWriteDir } from '../fsutil.js';
import { sha256Hex } from './model_files.js';
import { classifierToOnnx, ONNX_INPUT, ONNX_IR_VERSION, ONNX_OPSET, ONNX_OUTPUTS } from './onnx_writer.js';
import { tritonConfig } from './triton.js';
import {
  METADATA_FILE,
  MODEL_FORMAT,
  MODEL_FORMAT_VERSION,
  MODEL_JSON_FILE,
  ONNX_FILE,
  WEIGHTS_FILE,
  type ClassifierMetadata,
  type ImagePreprocessing,
  type Preprocessing,
} from './metadata.js';
import { parseBackground } from '../data/load.js';

const exportError = (msg: string) => new SemiganError('SEMIGAN_ERR_EXPORT', msg);

/** Largest |exported logit - semigan's logit| accepted by the self-check on export. */
const SELF_CHECK_TOLERANCE = 1e-4;
const SELF_CHECK_ROWS = 64;

export interface ExportResult {
  out: string;
  format: ExportFormat;
  /** Files written, relative to `out`. */
  files: string[];
  classes: string[];
  inputShape: [number, number, number];
  layers: number;
  parameters: number;
  weightBytes: number;
  /** Test accuracy of the exported weights as the run measured it (null if the run has none for this checkpoint). */
  testAccuracy: number | null;
  /** Self-check: largest |exported model's logit - semigan D's logit| on random inputs. */
  maxAbsLogitDiff: number;
}

/**
 * Refuse runs whose D is not a per-example function. With minibatch discrimination, D's output
 * for a row depends on the other rows of its batch; a classifier must give each input the same
 * prediction whatever else is in its batch.
 */
export function assertExportable(ckpt: Checkpoint<CheckpointMeta>, runDir: string): void {
  const { config } = ckpt.meta;
  if (config.mbd) {
    throw exportError(
      `${runDir} was trained with minibatch discrimination (--mbd): its discriminator's output for an image depends on the other images in its batch, ` +
        `so it cannot be exported as a classifier that gives each input the same prediction whatever else is in its batch; retrain without --mbd to export it`,
    );
  }
}

/**
 * The EMA discriminator as a tf.Sequential of built-in layers, from the model's own description
 * of its classifier (GanModel.classifierLayers). Caller disposes the model.
 */
export function buildClassifierModel(
  gan: GanModel,
  d: Tensors,
  inputShape: [number, number, number],
  temperature = 1,
): tf.Sequential {
  if (!gan.classifierLayers) throw exportError(`preset '${gan.preset}' has no classifier to export`);
  const spec = temperedLayers(gan.classifierLayers(d), temperature);
  const model = tf.sequential({ name: 'semigan_classifier' });
  const counts: Record<string, number> = {};
  const nameOf = (base: string) => `${base}_${(counts[base] = (counts[base] ?? -1) + 1)}`;
  const lastDense = spec.map((l) => l.kind).lastIndexOf('dense');
  try {
    spec.forEach((l, i) => {
      const first = i === 0 ? { inputShape } : {};
      let layer: tf.layers.Layer;
      switch (l.kind) {
        case 'flatten':
          layer = tf.layers.flatten({ ...first, name: 'flatten' });
          break;
        case 'dense':
          layer = tf.layers.dense({
            ...first,
            units: l.kernel.shape[1],
            activation: l.activation,
            name: i === lastDense ? 'logits' : nameOf('dense'),
          });
          break;
        case 'conv2d':
          layer = tf.layers.conv2d({
            ...first,
            filters: l.kernel.shape[3],
            kernelSize: [l.kernel.shape[0], l.kernel.shape[1]],
            strides: l.stride,
            padding: l.padding,
            name: nameOf('conv'),
          });
          break;
        case 'leakyRelu':
          layer = tf.layers.leakyReLU({ ...first, alpha: l.alpha, name: nameOf('leaky_relu') });
          break;
        case 'globalAveragePool':
          layer = tf.layers.globalAveragePooling2d({ ...first, name: 'global_pool' });
          break;
      }
      model.add(layer);
      if (l.kind === 'dense' || l.kind === 'conv2d') layer.setWeights([l.kernel, l.bias]);
    });
  } finally {
    for (const l of spec) if (l.kind === 'dense' || l.kind === 'conv2d') tf.dispose([l.kernel, l.bias]);
  }
  return model;
}

/**
 * The classifier's layers with its logits divided by `temperature`: the last dense layer's
 * kernel and bias scaled by 1 / T, so tfjs and ONNX apply the same calibration in the weights.
 */
export function temperedLayers(spec: ClassifierLayer[], temperature: number): ClassifierLayer[] {
  if (temperature === 1) return spec;
  const last = spec.map((l) => l.kind).lastIndexOf('dense');
  return spec.map((l, i) => {
    if (i !== last || l.kind !== 'dense') return l;
    const scaled = {
      ...l,
      kernel: l.kernel.div(temperature) as tf.Tensor2D,
      bias: l.bias.div(temperature) as tf.Tensor1D,
    };
    tf.dispose([l.kernel, l.bias]);
    return scaled;
  });
}

/**
 * The run's test metrics for this checkpoint (result.json if it is for this checkpoint, else the
 * matching metrics.jsonl line): `test` is the exported weight set's, beside both sets' figures.
 */
export function runTestMetrics(
  runDir: string,
  meta: CheckpointMeta,
  exported: WeightSet = 'averaged',
): ClassifierMetadata['metrics'] {
  const r = readResult(runDir);
  const m =
    r && r.step === meta.step
      ? null
      : readMetrics(runDir)
          .reverse()
          .find((e) => e.step === meta.step);
  if (!(r && r.step === meta.step) && !m) return null;
  const [source, averaged, current, tail] =
    r && r.step === meta.step
      ? [
          RESULT_FILE,
          { accuracy: r.accuracy, errors: r.errors, n: r.n },
          { accuracy: r.accuracyCurrent, errors: r.errorsCurrent, n: r.n },
          r.errorsTail === undefined ? null : { accuracy: r.accuracyTail!, errors: r.errorsTail, n: r.n },
        ]
      : [
          METRICS_FILE,
          { accuracy: m!.test_acc, errors: m!.test_errors, n: m!.n_test },
          { accuracy: m!.test_acc_current, errors: m!.test_errors_current, n: m!.n_test },
          m!.test_errors_tail === undefined
            ? null
            : { accuracy: m!.test_acc_tail!, errors: m!.test_errors_tail, n: m!.n_test },
        ];
  // A tail average sampled after the last evaluated epoch has no test figure of its own.
  if (exported === 'tail' && !tail) return null;
  return {
    source,
    weights: exported,
    test: { averaged, current, tail: tail! }[exported],
    testAveragedWeights: averaged,
    testCurrentWeights: current,
    ...(tail ? { testTailAveragedWeights: tail } : {}),
  };
}

/** How inputs become what training saw: the image pipeline with the run's background, or the tabular standardization. */
function preprocessingOf(meta: CheckpointMeta): Preprocessing {
  const st = meta.data.standardization;
  if (st) return { type: 'tabular', features: [...st.features], mean: [...st.mean], std: [...st.std] };
  const background = parseBackground(runConfig(meta).background);
  return imagePreprocessing(meta.inputShape, meta.config.dataset, background);
}

function imagePreprocessing(
  [height, width, channels]: [number, number, number],
  dataset: string,
  background: [number, number, number],
): ImagePreprocessing {
  const black = background.every((v) => v === 0);
  if (channels !== 1 && channels !== 3)
    throw exportError(
      `input shape [${height}, ${width}, ${channels}]: only 1 (grayscale) or 3 (RGB) channels can be exported`,
    );
  return {
    type: 'image',
    height,
    width,
    channels,
    colorSpace: channels === 1 ? 'grayscale' : 'rgb',
    ...(channels === 1
      ? { toGrayscale: 'libvips b-w: sRGB-decode, Y = 0.2126 R + 0.7152 G + 0.0722 B in linear light, sRGB-encode' }
      : {}),
    scale: { divisor: 255, range: [0, 1] },
    layout: 'NHWC',
    flatten: 'row-major HWC',
    alpha: black ? 'flatten-onto-black' : 'flatten-onto-background',
    resize: { fit: 'contain', background: black ? 0 : 'background', kernel: 'lanczos3' },
    ...(black ? {} : { background }),
    polarity:
      dataset === 'mnist' || dataset === 'fashion-mnist'
        ? `${dataset}: light object (up to 255) on a black (0) background`
        : 'as the training images',
  };
}

export function buildMetadata(
  runDir: string,
  ckpt: Checkpoint<CheckpointMeta>,
  sha256: Record<string, string>,
): ClassifierMetadata {
  const { meta } = ckpt;
  const choice = exportChoiceOf(meta);
  const [h, w, c] = meta.inputShape;
  const k = meta.classes.length;
  const onnxFile = Object.keys(sha256).find((f) => f === ONNX_FILE || f.endsWith('/' + ONNX_FILE));
  return {
    format: MODEL_FORMAT,
    formatVersion: MODEL_FORMAT_VERSION,
    semiganVersion: SEMIGAN_VERSION,
    createdAt: new Date().toISOString(),
    files: {
      ...(sha256[MODEL_JSON_FILE] ? { model: MODEL_JSON_FILE, weights: [WEIGHTS_FILE] } : { weights: [] }),
      ...(onnxFile ? { onnx: onnxFile } : {}),
      metadata: METADATA_FILE,
      sha256,
    },
    ...(onnxFile
      ? {
          onnx: {
            opset: ONNX_OPSET,
            irVersion: ONNX_IR_VERSION,
            input: ONNX_INPUT,
            outputs: [...ONNX_OUTPUTS],
            layout: 'NHWC, as model.json: the graph transposes to NCHW itself where it needs to',
          },
        }
      : {}),
    classes: [...meta.classes],
    inputShape: [h, w, c],
    input: { dtype: 'float32', shape: [null, h, w, c] },
    output: { name: 'logits', shape: [null, k] },
    preprocessing: preprocessingOf(meta),
    postprocessing: {
      fakeLogit: 0,
      temperature: choice.temperature,
      probabilities: `p(class k | x, real) = softmax(logits)_k (the logits are D's divided by the temperature, ${choice.temperature})`,
      realness:
        'D(x) = p(real | x) = sigmoid(logsumexp(temperature * logits)) = Z / (Z + 1), Z = sum_k exp(temperature * logits_k)',
    },
    training: {
      run: resolve(runDir),
      preset: meta.config.preset,
      weights:
        choice.weights === 'averaged'
          ? `exponential moving average of D's weights (decay ${meta.config.emaDecay}, ${meta.emaSteps} steps): ${choice.reason}`
          : choice.weights === 'tail'
            ? `uniform average of D's weights over ${meta.tailSamples} samples from ${meta.config.tailAverage} of the plan on: ${choice.reason}`
            : `D's current weights at step ${meta.step}: ${choice.reason}`,
      epoch: meta.epoch,
      epochIter: meta.epochIter,
      step: meta.step,
      emaSteps: meta.emaSteps,
      data: meta.data,
      config: meta.config,
    },
    metrics: runTestMetrics(runDir, meta, choice.weights),
  };
}

/** The model's artifacts as model.json (tfjs's layers-model JSON) and the weights file. */
async function modelFiles(model: tf.LayersModel): Promise<{ json: string; weights: Buffer }> {
  let artifacts: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(a) };
    }),
  );
  if (!artifacts?.weightData || !artifacts.weightSpecs)
    throw new Error('tfjs returned no weights when saving the model');
  const weights = Buffer.from(tf.io.CompositeArrayBuffer.join(artifacts.weightData));
  const json = {
    format: artifacts.format ?? 'layers-model',
    generatedBy: artifacts.generatedBy,
    convertedBy: `semigan ${SEMIGAN_VERSION}`,
    modelTopology: artifacts.modelTopology,
    weightsManifest: [{ paths: [WEIGHTS_FILE], weights: artifacts.weightSpecs }],
  };
  return { json: JSON.stringify(json), weights };
}

/** Largest |layers model's logit - D's logit| on random inputs in [0, 1). */
function selfCheck(
  model: tf.LayersModel,
  applyD: (x: tf.Tensor2D) => tf.Tensor2D,
  inputShape: [number, number, number],
): number {
  const dim = inputShape[0] * inputShape[1] * inputShape[2];
  const x = new Rng(12345).fillUniform(new Float32Array(SELF_CHECK_ROWS * dim));
  return tf.tidy(() => {
    const ours = applyD(tf.tensor2d(x, [SELF_CHECK_ROWS, dim]));
    const theirs = model.predict(tf.tensor4d(x, [SELF_CHECK_ROWS, ...inputShape])) as tf.Tensor;
    return tf.max(tf.abs(ours.sub(theirs))).dataSync()[0];
  });
}

/**
 * What may be at MODEL_DIR before an export: nothing, an empty directory, or (with overwrite) an
 * earlier export. Anything else is refused, so --overwrite never deletes a run or unrelated files.
 */
function checkTarget(out: string, overwrite: boolean): 'absent' | 'empty' | 'export' {
  if (!existsSync(out)) return 'absent';
  if (!statSync(out).isDirectory())
    throw exportError(`--out ${out} is a file; expected a new directory for the exported model`);
  const entries = readdirSync(out);
  if (entries.length === 0) return 'empty';
  if (!entries.includes(METADATA_FILE)) {
    throw exportError(`--out ${out} is a non-empty directory that is not an exported model; pick a new directory`);
  }
  if (!overwrite)
    throw exportError(
      `--out ${out} already holds an exported model; pass --overwrite to replace it, or pick another directory`,
    );
  return 'export';
}

/** What `semigan export --format` writes: tfjs, onnx, both (all), or a Triton model repository. */
export const EXPORT_FORMATS = ['all', 'tfjs', 'onnx', 'triton'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/** A Triton model name: letters, digits, _ and - (from the run directory's name by default). */
const tritonName = (runDir: string) => basename(resolve(runDir)).replace(/[^A-Za-z0-9_-]/g, '_') || 'semigan';

/**
 * `semigan export RUN_DIR --out DIR [--format all|tfjs|onnx|triton]`. The tfjs backend must be
 * initialized. With triton, DIR is the model repository and the model goes to DIR/<name>.
 */
export async function exportRun(
  runDir: string,
  out: string,
  opts: { overwrite?: boolean; format?: ExportFormat; name?: string } = {},
): Promise<ExportResult> {
  const format = opts.format ?? 'all';
  const ckpt = readRun(runDir);
  assertExportable(ckpt, runDir);
  const name = opts.name ?? tritonName(runDir);
  const target = format === 'triton' ? join(out, name) : out;
  checkTarget(target, opts.overwrite === true);
  const { model: gan, weights, choice } = loadExportedDiscriminator(ckpt);
  const t = choice.temperature;
  let model: tf.Sequential | undefined;
  try {
    if (!gan.classifierLayers) throw exportError(`${runDir}: preset '${gan.preset}' has no classifier to export`);
    if (gan.batchDependentD)
      throw exportError(`${runDir}: its discriminator is batch-dependent; retrain without --mbd to export it`);
    const inputShape = ckpt.meta.inputShape;
    model = buildClassifierModel(gan, weights, inputShape, t);
    const maxAbsLogitDiff = selfCheck(model, (x) => gan.applyD(weights, x, { noise: null }).logits.div(t), inputShape);
    if (!(maxAbsLogitDiff <= SELF_CHECK_TOLERANCE)) {
      throw exportError(
        `${runDir}: export self-check failed: the exported logits differ from the discriminator's by ${maxAbsLogitDiff} (at most ${SELF_CHECK_TOLERANCE} expected); this is a bug, please report it`,
      );
    }
    const files: Record<string, Buffer | string | Uint8Array> = {};
    if (format === 'all' || format === 'tfjs') {
      const { json, weights: weightBytes } = await modelFiles(model);
      files[MODEL_JSON_FILE] = json;
      files[WEIGHTS_FILE] = weightBytes;
    }
    if (format !== 'tfjs') {
      const layers = temperedLayers(gan.classifierLayers(weights), t);
      try {
        files[ONNX_FILE] = classifierToOnnx(layers, inputShape, SEMIGAN_VERSION).bytes;
      } finally {
        for (const l of layers) if (l.kind === 'dense' || l.kind === 'conv2d') tf.dispose([l.kernel, l.bias]);
      }
    }
    // Triton wants the ONNX file in a version directory: REPO/<name>/1/model.onnx.
    const payload = format === 'triton' ? { [`1/${ONNX_FILE}`]: files[ONNX_FILE] } : files;
    const sha256 = Object.fromEntries(Object.entries(payload).map(([n, b]) => [n, sha256Hex(b)]));
    const metadata = buildMetadata(runDir, ckpt, sha256);
    const written: Record<string, Buffer | string | Uint8Array> = {
      ...payload,
      ...(format === 'triton' ? { 'config.pbtxt': tritonConfig(name, metadata) } : {}),
      [METADATA_FILE]: JSON.stringify(metadata, null, 2) + '\n',
    };
    await atomicWriteDir(
      target,
      written,
      () => checkTarget(target, opts.overwrite === true), // again: it may have appeared meanwhile
    );
    return {
      out: target,
      format,
      files: Object.keys(written).sort(),
      classes: metadata.classes,
      inputShape,
      layers: model.layers.length,
      parameters: model.countParams(),
      weightBytes: 4 * model.countParams(),
      testAccuracy: metadata.metrics?.test.accuracy ?? null,
      maxAbsLogitDiff,
    };
  } finally {
    model?.dispose();
    tf.dispose(Object.values(weights));
  }
}
