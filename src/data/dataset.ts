import { rowsView, type Rows } from './rows.js';

/** Labeled/unlabeled examples: the one type every data source produces. */
export interface Dataset {
  /** [n, dim] rows (data/rows.ts): gathered as float32, scaled to [0, 1] for images. */
  x: Rows;
  /** Class index per row; -1 = unlabeled. */
  y: Int32Array;
  n: number;
  /** Per-example shape [height, width, channels]; dim = h * w * c. */
  shape: [number, number, number];
  classes: string[];
  /** Where each row came from (a file path relative to the data spec, or `FILE:LINE` for CSV rows): for messages and `semigan suggest`. */
  ids?: RowIds;
  /** Tabular data: the feature column names, in row order (absent for images). */
  features?: string[];
}

/** Row names: a string[] for small sets, packed for millions of rows (images/compact_list.ts). */
export interface RowIds {
  readonly length: number;
  at(row: number): string | undefined;
}

/** A built-in dataset: official train and test splits. */
export interface DataSplits {
  name: string;
  train: Dataset;
  test: Dataset;
  /** Where the files were read from, for the run summary. */
  source: string;
}

export const exampleDim = (d: Pick<Dataset, 'shape'>) => d.shape[0] * d.shape[1] * d.shape[2];

/** Rows `indices` of `d` as float32 [indices.length, dim]. */
export function gatherRows(d: Dataset, indices: ArrayLike<number>, out?: Float32Array): Float32Array {
  return d.x.gather(indices, out);
}

/** Rows `rows` of `d`, in that order, as a Dataset (pixels shared, not copied; ids kept). */
export function subsetDataset(d: Dataset, rows: Int32Array): Dataset {
  const ids = d.ids;
  return {
    ...d,
    x: rowsView(d.x, rows),
    y: Int32Array.from(rows, (r) => d.y[r]),
    n: rows.length,
    ...(ids ? { ids: Array.isArray(ids) ? Array.from(rows, (r) => ids[r]) : idsView(ids, rows) } : {}),
  };
}

/** Names of rows `rows` of `ids`, without copying the strings. */
const idsView = (ids: RowIds, rows: Int32Array): RowIds => ({
  length: rows.length,
  at: (i) => (i >= 0 && i < rows.length ? ids.at(rows[i]) : undefined),
});

/** The first `n` rows of `d` (for quick runs and tests on slices of real data). */
export function sliceDataset(d: Dataset, n: number): Dataset {
  if (n >= d.n) return d;
  return subsetDataset(
    d,
    Int32Array.from({ length: n }, (_, i) => i),
  );
}

/** Every row name as an array (small sets: tests, messages). */
export const idList = (ids: RowIds): string[] => Array.from({ length: ids.length }, (_, i) => ids.at(i)!);
