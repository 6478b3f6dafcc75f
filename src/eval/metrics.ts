/**
 * Classification metrics on plain typed arrays (no tf), so evaluation, tests and the server
 * share one definition of "accuracy" and "F1".
 */
import { dataError } from '../errors.js';

export interface ClassMetrics {
  name: string;
  /** Number of examples whose true label is this class. */
  support: number;
  precision: number;
  recall: number;
  f1: number;
}

export interface ClassificationReport {
  n: number;
  /** correct / n; 0 when n = 0. */
  accuracy: number;
  /** n - correct. */
  errors: number;
  /** confusion[true][pred] = count. */
  confusion: number[][];
  perClass: ClassMetrics[];
  /** Unweighted mean of per-class F1 over all K classes (classes absent from yTrue count as 0). */
  macroF1: number;
}

/**
 * Index of the largest value in each row of a row-major [n, k] matrix.
 * Ties go to the lowest index; NaN never wins (a row of all NaN gives 0).
 */
export function argmaxRows(logits: Float32Array, k: number): Int32Array {
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`argmaxRows: k must be a positive integer, got ${k}`);
  if (logits.length % k !== 0) {
    throw new RangeError(`argmaxRows: length ${logits.length} is not a multiple of k = ${k}`);
  }
  const n = logits.length / k;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const base = i * k;
    let best = -Infinity;
    let arg = 0;
    for (let j = 0; j < k; j++) {
      const v = logits[base + j];
      if (v > best) {
        best = v;
        arg = j;
      }
    }
    out[i] = arg;
  }
  return out;
}

/**
 * Confusion matrix and per-class precision/recall/F1.
 *
 * Conventions for empty denominators (instead of NaN, so reports and JSON stay numeric):
 * precision = 0 for a class that is never predicted, recall = 0 for a class with no support,
 * f1 = 0 when precision + recall = 0.
 */
export function classificationReport(yTrue: Int32Array, yPred: Int32Array, classes: string[]): ClassificationReport {
  const k = classes.length;
  // A length mismatch is a caller bug, not bad input data.
  if (yTrue.length !== yPred.length) {
    throw new RangeError(`classificationReport: yTrue has ${yTrue.length} labels but yPred has ${yPred.length}`);
  }
  if (k === 0) throw new RangeError('classificationReport: no classes');
  const n = yTrue.length;
  const confusion = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  let correct = 0;
  for (let i = 0; i < n; i++) {
    const t = yTrue[i];
    const p = yPred[i];
    if (t < 0 || t >= k) throw dataError(`true label ${t} at index ${i} is outside [0, ${k}) (classes: ${k})`);
    if (p < 0 || p >= k) throw dataError(`predicted label ${p} at index ${i} is outside [0, ${k}) (classes: ${k})`);
    confusion[t][p]++;
    if (t === p) correct++;
  }

  const perClass: ClassMetrics[] = classes.map((name, c) => {
    const tp = confusion[c][c];
    const support = confusion[c].reduce((s, v) => s + v, 0);
    let predicted = 0;
    for (let t = 0; t < k; t++) predicted += confusion[t][c];
    const precision = predicted > 0 ? tp / predicted : 0;
    const recall = support > 0 ? tp / support : 0;
    const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
    return { name, support, precision, recall, f1 };
  });

  return {
    n,
    accuracy: n > 0 ? correct / n : 0,
    errors: n - correct,
    confusion,
    perClass,
    macroF1: perClass.reduce((s, m) => s + m.f1, 0) / k,
  };
}
