/**
 * Calibration of a classifier's probabilities softmax(logits / T): temperature scaling (Guo et
 * al. 2017, "On Calibration of Modern Neural Networks") fitted on validation rows, and the
 * expected calibration error with its reliability diagram. Plain typed arrays, no tf.
 */

/** Temperatures are kept in this range: a fit on few or all-correct rows runs off to 0 or infinity. */
export const TEMPERATURE_RANGE: readonly [number, number] = [0.05, 20];

/** Mean negative log-likelihood of `labels` under softmax(logits / t), logits row-major [n, k]. */
export function nllAtTemperature(logits: Float32Array, labels: Int32Array, k: number, t: number): number {
  const n = labels.length;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const row = logits.subarray(i * k, i * k + k);
    let max = -Infinity;
    for (const v of row) max = Math.max(max, v / t);
    let z = 0;
    for (const v of row) z += Math.exp(v / t - max);
    sum += max + Math.log(z) - row[labels[i]] / t;
  }
  return n ? sum / n : 0;
}

/**
 * d NLL / d beta at beta = 1 / t: mean over rows of (E_p[logit] - logit_label). The NLL is
 * convex in beta (a log-sum-exp of functions linear in beta, minus a linear term), so this is
 * increasing in beta and its root is the minimum.
 */
function nllSlope(logits: Float32Array, labels: Int32Array, k: number, beta: number): number {
  const n = labels.length;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const row = logits.subarray(i * k, i * k + k);
    let max = -Infinity;
    for (const v of row) max = Math.max(max, beta * v);
    let z = 0;
    let mean = 0;
    for (const v of row) {
      const e = Math.exp(beta * v - max);
      z += e;
      mean += e * v;
    }
    sum += mean / z - row[labels[i]];
  }
  return sum / n;
}

/**
 * The temperature minimizing the NLL of `labels`, by bisection on the slope in log(beta) over
 * TEMPERATURE_RANGE (60 halvings: far below any difference that matters). `atBound` says the
 * minimum lies at or beyond the range's edge (e.g. every row right with a wide margin).
 */
export function fitTemperature(
  logits: Float32Array,
  labels: Int32Array,
  k: number,
): { temperature: number; atBound: boolean } {
  if (labels.length === 0) throw new RangeError('fitTemperature: no rows to fit on');
  let lo = Math.log(1 / TEMPERATURE_RANGE[1]); // log beta
  let hi = Math.log(1 / TEMPERATURE_RANGE[0]);
  if (nllSlope(logits, labels, k, Math.exp(lo)) >= 0) return { temperature: TEMPERATURE_RANGE[1], atBound: true };
  if (nllSlope(logits, labels, k, Math.exp(hi)) <= 0) return { temperature: TEMPERATURE_RANGE[0], atBound: true };
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (nllSlope(logits, labels, k, Math.exp(mid)) < 0) lo = mid;
    else hi = mid;
  }
  return { temperature: 1 / Math.exp((lo + hi) / 2), atBound: false };
}

export interface ReliabilityBin {
  /** Confidence range [lo, hi) (the last bin includes 1). */
  lo: number;
  hi: number;
  count: number;
  /** Mean top-class probability and accuracy of the rows in the bin (0 when empty). */
  confidence: number;
  accuracy: number;
}

/** Bins of the expected calibration error: 15 equal-width confidence bins, as Guo et al. */
export const ECE_BINS = 15;

/**
 * Expected calibration error of softmax(logits / t): sum over bins of (rows in bin / n) x
 * |accuracy - mean confidence|, with the reliability diagram's bins.
 */
export function calibration(
  logits: Float32Array,
  labels: Int32Array,
  k: number,
  t = 1,
  bins = ECE_BINS,
): { ece: number; bins: ReliabilityBin[] } {
  const n = labels.length;
  const count = new Float64Array(bins);
  const conf = new Float64Array(bins);
  const right = new Float64Array(bins);
  for (let i = 0; i < n; i++) {
    const row = logits.subarray(i * k, i * k + k);
    let max = -Infinity;
    let arg = 0;
    for (let j = 0; j < k; j++)
      if (row[j] / t > max) {
        max = row[j] / t;
        arg = j;
      }
    let z = 0;
    for (const v of row) z += Math.exp(v / t - max);
    const p = 1 / z; // the top class's probability
    const b = Math.min(bins - 1, Math.floor(p * bins));
    count[b]++;
    conf[b] += p;
    if (arg === labels[i]) right[b]++;
  }
  let ece = 0;
  const out: ReliabilityBin[] = [];
  for (let b = 0; b < bins; b++) {
    const c = count[b];
    const confidence = c ? conf[b] / c : 0;
    const accuracy = c ? right[b] / c : 0;
    if (n) ece += (c / n) * Math.abs(accuracy - confidence);
    out.push({ lo: b / bins, hi: (b + 1) / bins, count: c, confidence, accuracy });
  }
  return { ece, bins: out };
}

/** The calibration a report shows: D's own ECE (temperature 1), and the exported probabilities' ECE and bins. */
export interface CalibrationReport {
  temperature: number;
  eceBefore: number;
  eceAfter: number;
  bins: ReliabilityBin[];
}

export function calibrationReport(
  logits: Float32Array,
  labels: Int32Array,
  k: number,
  temperature: number,
): CalibrationReport {
  const after = calibration(logits, labels, k, temperature);
  return { temperature, eceBefore: calibration(logits, labels, k).ece, eceAfter: after.ece, bins: after.bins };
}
