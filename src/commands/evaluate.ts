import * as tf from '@tensorflow/tfjs';
import { initBackend, type BackendChoice } from '../backend.js';
import { prepareTestData } from '../data/prepare.js';
import { configError } from '../errors.js';
import { argmaxRows, classificationReport, type ClassificationReport } from '../eval/metrics.js';
import { predictClasses } from '../eval/predict.js';
import { loadEmaDiscriminator, readRun } from '../eval/run_model.js';
import { isModelDir } from '../export/metadata.js';
import { Classifier } from '../serve/classifier.js';

export interface EvaluateOptions {
  backend?: BackendChoice;
  /** Exported models only: the built-in dataset whose test split is scored (default: the one the model was trained on). */
  data?: string;
  dataDir?: string;
  /** Score the first N test images only (a run: instead of its own --test-limit). */
  testLimit?: number;
}

/**
 * `semigan evaluate DIR`: DIR is a run (its EMA discriminator on the run's test split) or an
 * exported model directory (metadata.json; scored on --data's test split).
 */
export async function evaluateCommand(dir: string, opts: EvaluateOptions = {}): Promise<ClassificationReport> {
  return isModelDir(dir) ? evaluateModelDir(dir, opts) : evaluateRun(dir, opts);
}

async function evaluateRun(runDir: string, opts: EvaluateOptions): Promise<ClassificationReport> {
  const ckpt = readRun(runDir);
  if (opts.data !== undefined || opts.dataDir !== undefined) {
    throw configError(`--data and --data-dir are for exported models; ${runDir} is a run, evaluated on its own test split (${ckpt.meta.config.dataset})`);
  }
  await initBackend(opts.backend ?? 'auto');
  const config = ckpt.meta.config;
  const test = prepareTestData({ ...config, testLimit: opts.testLimit ?? config.testLimit });
  const { model, weights } = loadEmaDiscriminator(ckpt);
  try {
    return classificationReport(test.y, predictClasses(model, weights, test, config.batchSize), test.classes);
  } finally {
    tf.dispose(Object.values(weights));
  }
}

async function evaluateModelDir(modelDir: string, opts: EvaluateOptions): Promise<ClassificationReport> {
  await initBackend(opts.backend ?? 'auto');
  const classifier = await Classifier.load(modelDir);
  try {
    const trained = classifier.metadata.training?.config;
    const dataset = opts.data ?? trained?.dataset;
    if (!dataset) throw configError(`${modelDir}: give --data (a built-in dataset) to evaluate this model on`);
    // Without --data, the training data's location too (a --data-dir given to train).
    const dataDir = opts.dataDir ?? (opts.data === undefined ? (trained?.dataDir ?? null) : null);
    const test = prepareTestData({ dataset, dataDir, testLimit: opts.testLimit ?? null });
    const { classes, inputShape } = classifier.metadata;
    if (test.shape.join(',') !== inputShape.join(',')) {
      throw configError(`${modelDir} takes ${inputShape.join('x')} inputs but ${dataset} has ${test.shape.join('x')} images`);
    }
    if (test.classes.join('\u0000') !== classes.join('\u0000')) {
      throw configError(`${modelDir} was trained on classes [${classes.join(', ')}] but ${dataset} has [${test.classes.join(', ')}]`);
    }
    const pred = argmaxRows(classifier.predictLogits(test.x, test.n), classes.length);
    return classificationReport(test.y, pred, test.classes);
  } finally {
    classifier.dispose();
  }
}
