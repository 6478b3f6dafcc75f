/**
 * Per-feature standardization for tabular data: x' = (x - mean) / std, with mean and std fitted on
 * the training rows only, so nothing about the test rows leaks into the preprocessing. The same
 * stats are applied to test data and saved with an exported model.
 */
import { rowRange, RowsBuilder, type Rows } from './rows.js';

/** The one rule for a tabular value, in a CSV or a request: a number that stays finite as float32. */
export const isFiniteFloat32 = (v: number) => Number.isFinite(Math.fround(v));

export interface Standardizer {
  mean: number[];
  std: number[];
}

/**
 * Mean and population std (divide by n, as scikit-learn's StandardScaler) of each of the `dim`
 * columns of `x` ([n, dim] row-major), over `rows` (row indices; default all rows).
 * Accumulates in float64, two passes (mean, then squared deviations), so a constant column gets
 * exactly 0 variance rather than rounding noise.
 */
export function fitStandardizer(x: Float32Array, dim: number, rows?: ArrayLike<number>): Standardizer {
  if (!Number.isInteger(dim) || dim < 1 || x.length % dim !== 0) {
    throw new Error(`fitStandardizer: x has ${x.length} values, not a multiple of dim ${dim}`);
  }
  const n = rows ? rows.length : x.length / dim;
  if (n === 0) throw new Error('fitStandardizer: no rows to fit on');
  const row = (i: number) => (rows ? rows[i] : i);
  const mean = new Float64Array(dim);
  for (let i = 0; i < n; i++) {
    const o = row(i) * dim;
    for (let j = 0; j < dim; j++) mean[j] += x[o + j];
  }
  for (let j = 0; j < dim; j++) mean[j] /= n;
  const sq = new Float64Array(dim);
  for (let i = 0; i < n; i++) {
    const o = row(i) * dim;
    for (let j = 0; j < dim; j++) {
      const d = x[o + j] - mean[j];
      sq[j] += d * d;
    }
  }
  // A column that is constant on the training rows carries no information; dividing by its std (0)
  // would give NaN or Infinity. std = 1 maps it to 0 there and leaves test values merely centered.
  const std = Array.from(sq, (s) => (s > 0 ? Math.sqrt(s / n) : 1));
  return { mean: Array.from(mean), std };
}

/** (x - mean) / std per column, as a new Float32Array of the same shape. */
export function standardize(x: Float32Array, dim: number, stats: Standardizer): Float32Array {
  if (stats.mean.length !== dim || stats.std.length !== dim) {
    throw new Error(`standardize: stats for ${stats.mean.length} features, data has ${dim}`);
  }
  const out = new Float32Array(x.length);
  for (let o = 0; o < x.length; o += dim) {
    for (let j = 0; j < dim; j++) out[o + j] = (x[o + j] - stats.mean[j]) / stats.std[j];
  }
  return out;
}

/** Rows read a block at a time, so a table of any length is never one array. */
const BLOCK_ROWS = 65_536;

function* blocks(rows: Rows): Generator<Float32Array> {
  for (let s = 0; s < rows.n; s += BLOCK_ROWS) yield rowRange(rows, s, Math.min(rows.n, s + BLOCK_ROWS));
}

/** fitStandardizer over every row of `rows` (two passes over blocks, float64 sums as above). */
export function fitStandardizerRows(rows: Rows): Standardizer {
  const { dim, n } = rows;
  if (n === 0) throw new Error('fitStandardizer: no rows to fit on');
  const mean = new Float64Array(dim);
  for (const x of blocks(rows))
    for (let o = 0; o < x.length; o += dim) for (let j = 0; j < dim; j++) mean[j] += x[o + j];
  for (let j = 0; j < dim; j++) mean[j] /= n;
  const sq = new Float64Array(dim);
  for (const x of blocks(rows))
    for (let o = 0; o < x.length; o += dim)
      for (let j = 0; j < dim; j++) {
        const d = x[o + j] - mean[j];
        sq[j] += d * d;
      }
  return { mean: Array.from(mean), std: Array.from(sq, (s) => (s > 0 ? Math.sqrt(s / n) : 1)) };
}

/** standardize() over every row of `rows`, as new in-memory float32 rows. */
export function standardizeRows(rows: Rows, stats: Standardizer): Rows {
  const out = new RowsBuilder('f32', rows.dim, rows.n);
  for (const x of blocks(rows)) out.append(standardize(x, rows.dim, stats));
  return out.finish();
}
