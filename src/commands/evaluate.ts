import * as tf from '@tensorflow/tfjs';
import { initBackendAndSay, type BackendChoice, type MatMulChoice } from '../backend.js';
import { prepareTestData } from '../data/prepare.js';
import { loadLabeledExamples, loadTestData } from '../data/load.js';
import { absoluteSpec, parseDataSpec } from '../data/sources/spec.js';
import { sliceDataset, type Dataset } from '../data/dataset.js';
import { standardizeRows } from '../data/standardize.js';
import { allRows } from '../data/rows.js';
import { validateConfig, type TrainConfig } from '../train/config.js';
import { configError } from '../errors.js';
import { argmaxRows, classificationReport, type ClassificationReport } from '../eval/metrics.js';
import { discriminatorLogits } from '../eval/predict.js';
import { calibrationReport, type CalibrationReport } from '../eval/calibration.js';
import { loadExportedDiscriminator, readRun, runConfig } from '../train/run_dir.js';
import { isModelDir, type ClassifierMetadata } from '../export/metadata.js';
import { Classifier } from '../export/classifier.js';

export interface EvaluateOptions {
  backend?: BackendChoice;
  threads?: number | null;
  matmul?: MatMulChoice;
  /** Exported models only: a built-in dataset (its test split is scored) or your own labeled data spec (default: the model's own test set). */
  data?: string;
  dataDir?: string;
  /** Score the first N test images only (a run: instead of its own --test-limit). */
  testLimit?: number;
}

/** The classification report plus the calibration of the probabilities (eval/calibration.ts). */
export type EvaluationReport = ClassificationReport & { calibration: CalibrationReport };

/** Report and calibration from D's logits (before the temperature) on a labeled test set. */
function evaluationOf(dLogits: Float32Array, test: Dataset, temperature: number): EvaluationReport {
  const k = test.classes.length;
  const report = classificationReport(test.y, argmaxRows(dLogits, k), test.classes);
  return { ...report, calibration: calibrationReport(dLogits, test.y, k, temperature) };
}

/**
 * `semigan evaluate DIR`: DIR is a run (its EMA discriminator on the run's test split) or an
 * exported model directory (metadata.json; scored on --data's test split).
 */
export async function evaluateCommand(dir: string, opts: EvaluateOptions = {}): Promise<EvaluationReport> {
  return isModelDir(dir) ? evaluateModelDir(dir, opts) : evaluateRun(dir, opts);
}

async function evaluateRun(runDir: string, opts: EvaluateOptions): Promise<EvaluationReport> {
  const ckpt = readRun(runDir);
  if (opts.data !== undefined || opts.dataDir !== undefined) {
    throw configError(
      `--data and --data-dir are for exported models; ${runDir} is a run, evaluated on its own test split (${ckpt.meta.config.dataset})`,
    );
  }
  await initBackendAndSay(opts.backend ?? 'auto', { threads: opts.threads, matmul: opts.matmul });
  const config = runConfig(ckpt.meta);
  const test = await loadTestData({ ...config, testLimit: opts.testLimit ?? config.testLimit });
  const { model, weights, choice } = loadExportedDiscriminator(ckpt);
  try {
    return evaluationOf(discriminatorLogits(model, weights, test, config.batchSize), test, choice.temperature);
  } finally {
    tf.dispose(Object.values(weights));
  }
}

/** A built-in dataset's official test split, checked against the model's input shape and classes. */
function builtinTestSet(
  modelDir: string,
  meta: ClassifierMetadata,
  dataset: string,
  opts: EvaluateOptions,
  trained: TrainConfig | undefined,
): Dataset {
  // Without --data, the training data's location too (a --data-dir given to train).
  const dataDir = opts.dataDir ?? (opts.data === undefined ? (trained?.dataDir ?? null) : null);
  const test = prepareTestData({ dataset, dataDir, testLimit: opts.testLimit ?? null });
  const { classes, inputShape } = meta;
  if (test.shape.join(',') !== inputShape.join(',')) {
    throw configError(
      `the model takes ${inputShape.join('x')} inputs but ${dataset} has ${test.shape.join('x')} images (${modelDir})`,
    );
  }
  if (test.classes.join('\u0000') !== classes.join('\u0000')) {
    throw configError(
      `${modelDir} was trained on classes [${classes.join(', ')}] but ${dataset} has [${test.classes.join(', ')}]`,
    );
  }
  return test;
}

/**
 * Your own data: without --data, the run's own test set (rebuilt from its config); with --data,
 * every example of that spec, shaped and standardized as the model expects.
 */
async function customTestSet(
  meta: ClassifierMetadata,
  opts: EvaluateOptions,
  trained: TrainConfig | undefined,
): Promise<Dataset> {
  const config = validateConfig((trained ?? {}) as unknown as Record<string, unknown>);
  if (opts.data === undefined) return loadTestData({ ...config, testLimit: opts.testLimit ?? null });
  const p = meta.preprocessing;
  const features = p.type === 'tabular' ? p.features : undefined;
  let test = await loadLabeledExamples(absoluteSpec(opts.data), config, {
    classes: meta.classes,
    shape: meta.inputShape,
    features,
  });
  if (p.type === 'tabular') test = { ...test, x: standardizeRows(test.x, p) };
  return opts.testLimit ? sliceDataset(test, opts.testLimit) : test;
}

async function evaluateModelDir(modelDir: string, opts: EvaluateOptions): Promise<EvaluationReport> {
  await initBackendAndSay(opts.backend ?? 'auto', { threads: opts.threads, matmul: opts.matmul });
  const classifier = await Classifier.load(modelDir);
  try {
    const trained = classifier.metadata.training?.config;
    const dataset = opts.data ?? trained?.dataset;
    if (!dataset)
      throw configError(
        `${modelDir}: give --data (a built-in dataset, images:DIR, manifest:FILE.csv or csv:FILE.csv) to evaluate this model on`,
      );
    const test =
      parseDataSpec(dataset).kind === 'builtin'
        ? builtinTestSet(modelDir, classifier.metadata, dataset, opts, trained)
        : await customTestSet(classifier.metadata, opts, trained);
    // The model's logits are D's divided by the temperature: multiply back for D's own.
    const t = classifier.metadata.postprocessing?.temperature ?? 1;
    const dLogits = classifier.predictLogits(allRows(test.x), test.n).map((v) => v * t);
    return evaluationOf(dLogits, test, t);
  } finally {
    classifier.dispose();
  }
}
