/**
 * Which of D's weight sets a run exports, and the temperature of its probabilities: chosen on
 * the validation rows (--val), never on the test set. Without validation rows: the averaged
 * weights (the paper's choice, usually the better one) at temperature 1.
 */
import * as tf from '@tensorflow/tfjs';
import { fitTemperature } from '../eval/calibration.js';
import { discriminatorLogits } from '../eval/predict.js';
import { argmaxRows } from '../eval/metrics.js';
import type { Dataset } from '../data/dataset.js';
import { rowsView } from '../data/rows.js';
import type { GanModel } from '../models/model.js';
import type { Tensors } from '../nn/params.js';

export const WEIGHT_SETS = ['averaged', 'current'] as const;
export type WeightSet = (typeof WEIGHT_SETS)[number];

/** What a finished run exports; written to the checkpoint, result.json and config.json. */
export interface ExportChoice {
  weights: WeightSet;
  reason: string;
  /** Errors of each weight set on the validation rows (absent without --val). */
  valErrors?: Record<WeightSet, number>;
  valRows: number;
  /** Divides the classifier's logits (1: not fitted). */
  temperature: number;
}

/** Logits of one weight set on the validation rows (row-major [rows, k]) and their labels. */
export type ValidationLogits = (weights: WeightSet) => { logits: Float32Array; labels: Int32Array; k: number };

const errorsOf = ({ logits, labels, k }: ReturnType<ValidationLogits>): number =>
  argmaxRows(logits, k).reduce((n, c, i) => n + (c === labels[i] ? 0 : 1), 0);

/**
 * The weight set with fewer validation errors (a tie keeps the averaged weights: they vary less
 * from step to step), and the temperature fitted on its validation logits.
 */
export function chooseExport(validation: ValidationLogits | null): ExportChoice {
  if (!validation)
    return {
      weights: 'averaged',
      reason: 'no validation rows (--val N): the averaged weights, the default',
      valRows: 0,
      temperature: 1,
    };
  const averaged = validation('averaged');
  const current = validation('current');
  const valErrors = { averaged: errorsOf(averaged), current: errorsOf(current) };
  const weights: WeightSet = valErrors.current < valErrors.averaged ? 'current' : 'averaged';
  const chosen = weights === 'averaged' ? averaged : current;
  const { temperature, atBound } = fitTemperature(chosen.logits, chosen.labels, chosen.k);
  const n = chosen.labels.length;
  const reason =
    `${valErrors.averaged} validation errors of ${n} with the averaged weights, ${valErrors.current} with the current ones` +
    (valErrors.current === valErrors.averaged ? ' (a tie keeps the averaged)' : '') +
    `; temperature ${temperature.toPrecision(3)} fitted on the same rows` +
    (atBound ? ' (at the edge of its range: too few or too easy rows to fit it)' : '');
  return { weights, reason, valErrors, valRows: n, temperature };
}

/**
 * ValidationLogits over rows `rows` of the training set `train` (and nothing else: the test set
 * is not an argument). `weightsOf` gives a weight set's tensors and whether the caller must
 * dispose them.
 */
export function validationLogitsOf(
  model: GanModel,
  weightsOf: (set: WeightSet) => { weights: Tensors; owned: boolean },
  train: Dataset,
  rows: Int32Array,
  batchSize: number,
): ValidationLogits {
  const val: Dataset = {
    ...train,
    x: rowsView(train.x, rows),
    y: Int32Array.from(rows, (r) => train.y[r]),
    n: rows.length,
  };
  return (set) => {
    const { weights, owned } = weightsOf(set);
    try {
      return { logits: discriminatorLogits(model, weights, val, batchSize), labels: val.y, k: train.classes.length };
    } finally {
      if (owned) tf.dispose(Object.values(weights));
    }
  };
}
