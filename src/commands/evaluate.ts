import * as tf from '@tensorflow/tfjs';
import { initBackend, type BackendChoice } from '../backend.js';
import { prepareTestData } from '../data/prepare.js';
import { classificationReport, type ClassificationReport } from '../eval/metrics.js';
import { predictClasses } from '../eval/predict.js';
import { loadEmaDiscriminator, readRun } from '../eval/run_model.js';

/** `semigan evaluate RUN_DIR`: the EMA discriminator on the run's test split. */
export async function evaluateCommand(runDir: string, backend: BackendChoice): Promise<ClassificationReport> {
  const ckpt = readRun(runDir);
  await initBackend(backend);
  const test = prepareTestData(ckpt.meta.config);
  const { model, weights } = loadEmaDiscriminator(ckpt);
  try {
    return classificationReport(test.y, predictClasses(model, weights, test, ckpt.meta.config.batchSize), test.classes);
  } finally {
    tf.dispose(Object.values(weights));
  }
}
