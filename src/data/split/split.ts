/**
 * Which training rows are labeled, chosen exactly as the official improved-gan code does:
 *
 *   inds = np.random.RandomState(seed_data).permutation(n); x, y = x[inds], y[inds]
 *   labeled = concat_j (x[y == j][:count])        # j = 0..K-1
 *   init_param(x[:500])                           # data-dependent init batch
 *
 * so the same --seed-data gives the same labeled images as the official code and the PyTorch peer.
 * Every training row (labeled ones included) is also used as unlabeled data, as there.
 */
import { configError, dataError } from '../../errors.js';
import { RandomState } from './numpy_random.js';

/** The paper's MNIST setting: 100 labels = 10 per class. */
export const DEFAULT_LABELS_PER_CLASS = 10;
/** Rows the official code feeds to data-dependent initialization. */
export const INIT_ROWS = 500;

export interface LabeledSubset {
  /** Row indices into the training set, grouped by class 0..K-1, permutation order within a class. */
  labeled: Int32Array;
  /** The first INIT_ROWS rows of the permutation (= official `trainx[:500]` after shuffling). */
  initRows: Int32Array;
}

export function labeledSubset(
  y: Int32Array,
  numClasses: number,
  perClass: number,
  seedData: number,
  classNames?: readonly string[],
): LabeledSubset {
  if (!Number.isInteger(seedData) || seedData < 0 || seedData > 0xffffffff) {
    throw configError(`--seed-data ${seedData}: expected an integer in [0, 4294967295]`);
  }
  if (!Number.isInteger(perClass) || perClass < 1) {
    throw configError(`--labels-per-class ${perClass}: expected a positive integer`);
  }
  const inds = new RandomState(seedData).permutation(y.length);
  const byClass: number[][] = Array.from({ length: numClasses }, () => []);
  for (let k = 0; k < inds.length; k++) {
    const c = y[inds[k]];
    // Rows labeled -1 (unlabeled) or outside 0..K-1 never become labeled examples.
    if (c >= 0 && c < numClasses && byClass[c].length < perClass) byClass[c].push(inds[k]);
  }
  const labeled = new Int32Array(numClasses * perClass);
  for (let c = 0; c < numClasses; c++) {
    if (byClass[c].length < perClass) {
      const name = classNames?.[c] ?? String(c);
      throw dataError(
        `--labels-per-class ${perClass} but class '${name}' has only ${byClass[c].length} training examples`,
      );
    }
    labeled.set(byClass[c], c * perClass);
  }
  return { labeled, initRows: inds.slice(0, INIT_ROWS) };
}

const isPositiveInt = (v: number) => Number.isInteger(v) && v > 0;

/** Labels per class from --labels (total) or --labels-per-class; default DEFAULT_LABELS_PER_CLASS. */
export function resolveLabelsPerClass(opts: { labels?: number; labelsPerClass?: number }, numClasses: number): number {
  const { labels, labelsPerClass } = opts;
  if (labels !== undefined && !isPositiveInt(labels)) {
    throw configError(`--labels ${labels}: expected a positive integer (total labeled examples)`);
  }
  if (labelsPerClass !== undefined && !isPositiveInt(labelsPerClass)) {
    throw configError(`--labels-per-class ${labelsPerClass}: expected a positive integer`);
  }
  if (labels !== undefined && labels % numClasses !== 0) {
    throw configError(
      `--labels ${labels} is not divisible by the ${numClasses} classes; ` +
        `use a multiple of ${numClasses} or --labels-per-class`,
    );
  }
  const fromTotal = labels !== undefined ? labels / numClasses : undefined;
  if (fromTotal !== undefined && labelsPerClass !== undefined && fromTotal !== labelsPerClass) {
    throw configError(
      `--labels ${labels} and --labels-per-class ${labelsPerClass} disagree ` +
        `(${numClasses} classes x ${labelsPerClass} = ${numClasses * labelsPerClass}); give only one`,
    );
  }
  return labelsPerClass ?? fromTotal ?? DEFAULT_LABELS_PER_CLASS;
}

export interface SplitSummary {
  dataset: string;
  train: number;
  labeled: number;
  /** null: every label the data has is used (your own data without --labels). */
  labelsPerClass: number | null;
  /** Rows used as unlabeled data; the official setup uses all training rows. */
  unlabeled: number;
  test: number;
  seedData: number;
  /** Labeled rows held out for validation (--val); absent without one. */
  val?: number;
  /** Tabular data: feature columns and the training rows' mean and std they are standardized with. */
  standardization?: { features: string[]; mean: number[]; std: number[] };
}

export function splitSummary(s: {
  dataset: string;
  train: number;
  test: number;
  labeled: number;
  labelsPerClass: number | null;
  seedData: number;
  unlabeled?: number;
}): { text: string; json: SplitSummary } {
  const unlabeled = s.unlabeled ?? s.train;
  const json: SplitSummary = {
    dataset: s.dataset,
    train: s.train,
    labeled: s.labeled,
    labelsPerClass: s.labelsPerClass,
    unlabeled,
    test: s.test,
    seedData: s.seedData,
  };
  const unl = unlabeled === s.train ? `${unlabeled} unlabeled = all train` : `${unlabeled} unlabeled`;
  const text =
    `${s.dataset}: ${s.train} train (${s.labeled} labeled, ${s.labelsPerClass === null ? 'all labels given' : `${s.labelsPerClass} per class`}, ` +
    `seed-data ${s.seedData}; ${unl}), ${s.test} test`;
  return { text, json };
}

/** Every labeled row (y >= 0) is a labeled example; init rows as labeledSubset chooses them. */
export function allLabeled(y: Int32Array, seedData: number): LabeledSubset {
  const inds = new RandomState(seedData).permutation(y.length);
  const labeled = Int32Array.from(inds.filter((r) => y[r] >= 0)).sort();
  return { labeled, initRows: inds.slice(0, INIT_ROWS) };
}

/**
 * Stratified holdout of labeled rows for a test set: per class, the first round(fraction * count)
 * rows of a seeded permutation, leaving every class at least one labeled training row.
 * Returns the held-out rows (ascending) and the classes that got none (too few labels).
 */
export function stratifiedHoldout(
  y: Int32Array,
  numClasses: number,
  fraction: number,
  seedData: number,
): { rows: Int32Array; emptyClasses: number[] } {
  const inds = new RandomState((seedData + 1) % 2 ** 32).permutation(y.length); // not the labeled-subset permutation: independent choices
  const byClass: number[][] = Array.from({ length: numClasses }, () => []);
  for (const r of inds) if (y[r] >= 0) byClass[y[r]].push(r);
  const rows: number[] = [];
  const emptyClasses: number[] = [];
  byClass.forEach((rs, c) => {
    const take = Math.min(Math.round(fraction * rs.length), rs.length - 1);
    if (take <= 0) emptyClasses.push(c);
    else rows.push(...rs.slice(0, take));
  });
  return { rows: Int32Array.from(rows).sort(), emptyClasses };
}

/**
 * Labeled rows held out to validate on (choosing the weights to export, fitting a temperature):
 * `count` rows, the same number from each class, never trained on as labeled. They are taken
 * from labeled rows outside the training labels when every class has enough of them (a
 * built-in dataset with --labels: the training labels stay those of a run without --val), else,
 * when every label is used for training (your own data without --labels), from those labels,
 * leaving each class at least one. The images stay in the unlabeled pool, as every training image does.
 */
export function validationHoldout(
  y: Int32Array,
  labeled: Int32Array,
  numClasses: number,
  count: number,
  seedData: number,
  labelsBounded: boolean,
  classNames?: readonly string[],
): { labeled: Int32Array; val: Int32Array } {
  if (count % numClasses !== 0)
    throw configError(
      `--val ${count} is not divisible by the ${numClasses} classes; use a multiple of ${numClasses} (the same number from each class)`,
    );
  const perClass = count / numClasses;
  const inds = new RandomState((seedData + 2) % 2 ** 32).permutation(y.length); // independent of the labeled and test choices
  const isTrainLabel = new Uint8Array(y.length);
  for (const r of labeled) isTrainLabel[r] = 1;
  const outside: number[][] = Array.from({ length: numClasses }, () => []);
  const inside: number[][] = Array.from({ length: numClasses }, () => []);
  for (const r of inds) {
    const c = y[r];
    if (c < 0 || c >= numClasses) continue;
    (isTrainLabel[r] ? inside : outside)[c].push(r);
  }
  if (outside.every((rs) => rs.length >= perClass)) {
    const val = Int32Array.from(outside.flatMap((rs) => rs.slice(0, perClass))).sort();
    return { labeled, val };
  }
  if (labelsBounded) {
    const c = outside.findIndex((rs) => rs.length < perClass);
    throw configError(
      `--val ${count} needs ${perClass} labeled rows of each class besides the training labels (--labels), but class '${classNames?.[c] ?? c}' has ${outside[c].length}; give a smaller --val or fewer --labels`,
    );
  }
  const short = inside.findIndex((rs) => rs.length - 1 < perClass);
  if (short >= 0)
    throw configError(
      `--val ${count} needs ${perClass} labeled rows of each class besides at least one to train on, but class '${classNames?.[short] ?? short}' has ${inside[short].length} labels; give a smaller --val`,
    );
  const val = inside.flatMap((rs) => rs.slice(0, perClass));
  const held = new Set(val);
  return { labeled: labeled.filter((r) => !held.has(r)), val: Int32Array.from(val).sort() };
}
