/** In-memory labeled/unlabeled examples: the one type every data source produces. */
export interface Dataset {
  /** [n, dim] row-major, scaled to [0, 1] for images. */
  x: Float32Array;
  /** Class index per row; -1 = unlabeled. */
  y: Int32Array;
  n: number;
  /** Per-example shape [height, width, channels]; dim = h * w * c. */
  shape: [number, number, number];
  classes: string[];
  /** Where each row came from (a file path relative to the data spec, or `FILE:LINE` for CSV rows): for messages and `semigan suggest`. */
  ids?: string[];
  /** Tabular data: the feature column names, in row order (absent for images). */
  features?: string[];
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

/** Rows `indices` of `d` as a new Float32Array [indices.length, dim]. */
export function gatherRows(d: Dataset, indices: ArrayLike<number>, out?: Float32Array): Float32Array {
  const dim = exampleDim(d);
  const rows = out ?? new Float32Array(indices.length * dim);
  for (let i = 0; i < indices.length; i++) {
    const r = indices[i];
    rows.set(d.x.subarray(r * dim, (r + 1) * dim), i * dim);
  }
  return rows;
}

/** The first `n` rows of `d` (for quick runs and tests on slices of real data). */
export function sliceDataset(d: Dataset, n: number): Dataset {
  if (n >= d.n) return d;
  const dim = exampleDim(d);
  return { ...d, x: d.x.subarray(0, n * dim), y: d.y.subarray(0, n), n, ...(d.ids ? { ids: d.ids.slice(0, n) } : {}) };
}
