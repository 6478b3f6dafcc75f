import { loadBuiltin } from './sources/builtin.js';
import { sliceDataset, type Dataset } from './dataset.js';
import {
  labeledSubset,
  resolveLabelsPerClass,
  splitSummary,
  validationHoldout,
  type SplitSummary,
} from './split/split.js';

/** What training needs: train (all unlabeled), the labeled rows among them, and the test set. */
export interface TrainData {
  train: Dataset;
  test: Dataset;
  labeled: Int32Array; // row indices into train
  val?: Int32Array; // labeled rows of train held out for validation (--val), never trained on as labeled
  initRows: Int32Array; // rows for D's data-dependent init
  summary: SplitSummary;
  summaryText: string;
  source: string;
}

/** What a built-in dataset and its labeled subset need. */
export interface DataOptions {
  dataset: string; // data spec (data/sources/spec.ts): mnist | fashion-mnist | images:DIR | manifest:FILE.csv | csv:FILE.csv
  dataDir: string | null; // folder with the four idx files, overriding the built-in location
  labels: number | null; // total labeled examples, split evenly over classes (paper: 100)
  labelsPerClass: number | null; // alternative to `labels`
  trainLimit: number | null; // use only the first N training images (quick runs, tests)
  testLimit: number | null; // evaluate on the first N test images only
  seedData: number; // which examples are labeled (numpy-compatible permutation, as the official code); default: seed
  val?: number | null; // labeled rows held out to choose the exported weights and fit a temperature (null: none)
}

/** Load a built-in dataset and choose its labeled subset as the paper (and official code) does. */
export function prepareData(o: DataOptions): TrainData {
  const splits = loadBuiltin(o.dataset, o.dataDir ? { dataDir: o.dataDir } : {});
  const train = o.trainLimit ? sliceDataset(splits.train, o.trainLimit) : splits.train;
  const test = o.testLimit ? sliceDataset(splits.test, o.testLimit) : splits.test;
  const k = train.classes.length;
  const perClass = resolveLabelsPerClass(
    { labels: o.labels ?? undefined, labelsPerClass: o.labelsPerClass ?? undefined },
    k,
  );
  const { labeled, initRows } = labeledSubset(train.y, k, perClass, o.seedData, train.classes);
  const { text, json } = splitSummary({
    dataset: splits.name,
    train: train.n,
    test: test.n,
    labeled: labeled.length,
    labelsPerClass: perClass,
    seedData: o.seedData,
  });
  return withValidation({ train, test, labeled, initRows, summary: json, summaryText: text, source: splits.source }, o);
}

/** Hold out --val labeled rows (split.ts validationHoldout) and say so in the summary. */
export function withValidation(data: TrainData, o: Pick<DataOptions, 'val' | 'seedData'>): TrainData {
  if (!o.val) return data;
  const { train } = data;
  const { labeled, val } = validationHoldout(
    train.y,
    data.labeled,
    train.classes.length,
    o.val,
    o.seedData,
    data.summary.labelsPerClass !== null,
    train.classes,
  );
  const fromLabels = labeled.length < data.labeled.length;
  return {
    ...data,
    labeled,
    val,
    summary: { ...data.summary, labeled: labeled.length, val: val.length },
    summaryText:
      data.summaryText +
      `; validation: ${val.length} labeled rows (${fromLabels ? 'held out of the labels given' : 'besides the training labels'}, --val)`,
  };
}

/** Only the test split (for evaluating a finished run). */
export function prepareTestData(o: Pick<DataOptions, 'dataset' | 'dataDir' | 'testLimit'>): Dataset {
  const splits = loadBuiltin(o.dataset, o.dataDir ? { dataDir: o.dataDir } : {});
  return o.testLimit ? sliceDataset(splits.test, o.testLimit) : splits.test;
}
