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

export const WEIGHT_SETS = ['averaged', 'current', 'tail'] as const;
export type WeightSet = (typeof WEIGHT_SETS)[number];

/** The sets a run can export, its default first: the tail average when the run has one. */
export const exportCandidates = (hasTail: boolean): WeightSet[] =>
  hasTail ? ['tail', 'averaged', 'current'] : ['averaged', 'current'];

/** How messages name each set. */
export const WEIGHT_SET_NAMES: Record<WeightSet, string> = {
  averaged: 'averaged',
  current: 'current',
  tail: 'tail-averaged',
};

/** What a finished run exports; written to the checkpoint, result.json and config.json. */
export interface ExportChoice {
  weights: WeightSet;
  reason: string;
  /** Errors of each candidate weight set on the validation rows (absent without --val). */
  valErrors?: Partial<Record<WeightSet, number>>;
  valRows: number;
  /** Divides the classifier's logits (1: not fitted). */
  temperature: number;
}

/** Logits of one weight set on the validation rows (row-major [rows, k]) and their labels. */
export type ValidationLogits = (weights: WeightSet) => { logits: Float32Array; labels: Int32Array; k: number };

const errorsOf = ({ logits, labels, k }: ReturnType<ValidationLogits>): number =>
  argmaxRows(logits, k).reduce((n, c, i) => n + (c === labels[i] ? 0 : 1), 0);

/**
 * The weight set with fewest validation errors among `candidates`, and the temperature fitted on
 * its validation logits. A tie keeps the earlier candidate: the default (the first) varies least
 * from step to step. Without validation rows: the first candidate at temperature 1.
 */
export function chooseExport(
  validation: ValidationLogits | null,
  candidates: readonly WeightSet[] = ['averaged', 'current'],
): ExportChoice {
  const [first] = candidates;
  if (!validation)
    return {
      weights: first,
      reason: `no validation rows (--val N): the ${WEIGHT_SET_NAMES[first]} weights, the default`,
      valRows: 0,
      temperature: 1,
    };
  const logits = candidates.map((set) => validation(set));
  const errors = logits.map(errorsOf);
  const best = errors.indexOf(Math.min(...errors));
  const weights = candidates[best];
  const valErrors = Object.fromEntries(candidates.map((set, i) => [set, errors[i]]));
  const { temperature, atBound } = fitTemperature(logits[best].logits, logits[best].labels, logits[best].k);
  const n = logits[best].labels.length;
  const reason =
    candidates
      .map(
        (set, i) =>
          `${errors[i]}${i === 0 ? ` validation errors of ${n}` : ''} with the ${WEIGHT_SET_NAMES[set]} ${i === 0 ? 'weights' : 'ones'}`,
      )
      .join(', ') +
    (errors.filter((e) => e === errors[best]).length > 1 ? ` (a tie keeps the ${WEIGHT_SET_NAMES[weights]})` : '') +
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
