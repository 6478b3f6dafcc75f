/**
 * Any data spec -> what training needs (TrainData): built-in datasets keep the official split
 * (prepare.ts); image folders, manifests and tabular CSVs get a test set from --test SPEC or a
 * stratified --test-split, the labeled subset from --labels (or every labeled example), and,
 * for tabular data, features standardized with the training rows' statistics.
 */
import { configError, dataError } from '../errors.js';
import { sliceDataset, subsetDataset, type Dataset } from './dataset.js';
import { prepareData, withValidation, type DataOptions, type TrainData } from './prepare.js';
import { parseDataSpec, type DataSpec } from './sources/spec.js';
import { allLabeled, labeledSubset, resolveLabelsPerClass, splitSummary, stratifiedHoldout } from './split/split.js';
import { scanImageFolder } from './sources/image_folder.js';
import { readManifest } from './sources/manifest.js';
import { DEFAULT_IMAGE_COLUMN, parquetFiles, readParquetImages } from './sources/parquet.js';
import { decodeImages, decodeSummary, skippedSummary, type DecodeOptions } from './images/decode.js';
import { defaultCacheDir } from './images/decode_cache.js';
import { entryArray, imageDataset } from './images/entry.js';
import { memoryRows, type Rows } from './rows.js';
import { decodeProgress, memoryBytesFor, storeSummary } from './images/store_plan.js';
import { describeSkipped, readTabularCsv } from './sources/tabular.js';
import { fitStandardizerRows, standardizeRows, type Standardizer } from './standardize.js';

/** The feature columns and their training-set statistics (kept for evaluation and export). */
export type Standardization = Standardizer & { features: string[] };

/** Every data option of a run (a TrainConfig has them all); the built-in datasets need only DataOptions. */
export interface LoadOptions extends DataOptions {
  test: string | null; // your own data: test set spec of the same kind (else a stratified --test-split)
  testSplit: number | null; // your own data: fraction of each class's labeled examples held out for testing (default 0.2)
  size: string | null; // images: HEIGHTxWIDTH to resize to (default: the most common size found)
  channels: number | null; // images: 1 or 3 (default: the most common found)
  background: string; // images: colour transparent pixels are composited onto (and padding)
  unlabeledDir: string; // images:DIR: the subfolder holding unlabeled images
  labelColumn: string | null; // csv: the column holding the class (empty = unlabeled)
  features: string[] | null; // csv: feature columns to use (default: every other column)
  dropColumns: string[]; // csv: columns to leave out
  skipBad: boolean; // skip unreadable images / bad CSV rows (counted and named) instead of failing
  cache: boolean; // images: keep decoded pixels in the decode cache ($SEMIGAN_CACHE_DIR or ~/.cache/semigan)
  dataStore?: string; // images: auto | memory | disk (data/images/store_plan.ts)
  imageColumn?: string | null; // parquet: the column of encoded images (default 'image')
  mode?: string; // 'gan' needs unlabeled examples
}

/** Used when neither --test nor --test-split is given for a user's dataset. */
export const DEFAULT_TEST_SPLIT = 0.2;
/** A held-out test set smaller than this gets a warning: accuracy then moves in steps of over 1 point. */
export const SMALL_TEST_SET = 100;
const CUSTOM_ONLY = ['test', 'testSplit', 'size', 'channels', 'labelColumn', 'features'] as const;

type Log = (line: string) => void;

export async function loadData(o: LoadOptions, log: Log = () => {}): Promise<TrainData> {
  const spec = parseDataSpec(o.dataset);
  if (spec.kind === 'builtin') {
    const given = CUSTOM_ONLY.filter((k) => o[k] !== null && o[k] !== undefined);
    if (given.length)
      throw configError(
        `${given.map(flag).join(', ')} ${given.length > 1 ? 'apply' : 'applies'} to your own data (images:, manifest:, csv:), not to the built-in ${spec.name}, which has its official test split`,
      );
    return prepareData(o);
  }
  const all = await loadSource(spec, o, null, log);
  const classes = all.classes;
  if (classes.length < 2)
    throw dataError(
      `${o.dataset}: found ${classes.length === 0 ? 'no labeled examples' : `only one class ('${classes[0]}')`}; a classifier needs labeled examples of at least two classes`,
    );
  let train: Dataset;
  let test: Dataset;
  let testText: string;
  if (o.test !== null) {
    if (o.testSplit !== null) throw configError('give either --test SPEC or --test-split FRACTION, not both');
    test = await loadLabeledExamples(o.test, o, all, log, spec);
    train = all;
    testText = `test from ${o.test}`;
  } else {
    const fraction = o.testSplit ?? DEFAULT_TEST_SPLIT;
    const { rows, emptyClasses } = stratifiedHoldout(all.y, classes.length, fraction, o.seedData);
    const held = new Uint8Array(all.n);
    for (const r of rows) held[r] = 1;
    const keep = Int32Array.from({ length: all.n }, (_, i) => i).filter((i) => !held[i]);
    train = subsetDataset(all, keep);
    test = subsetDataset(all, rows);
    testText = `test = ${(fraction * 100).toFixed(0)}% of each class's labeled examples (--test-split ${fraction}, stratified, seed-data ${o.seedData})`;
    if (test.n < SMALL_TEST_SET)
      log(
        `warning: the test set holds only ${test.n} examples (--test-split ${fraction} of the labels): one error moves the accuracy by ${(100 / Math.max(1, test.n)).toFixed(1)} points; label more examples or give --test SPEC for a figure to trust`,
      );
    if (emptyClasses.length)
      log(
        `warning: too few labels to hold out test examples of ${emptyClasses.map((c) => `'${classes[c]}'`).join(', ')}; the test set has none of them`,
      );
  }
  if (o.trainLimit) train = sliceDataset(train, o.trainLimit);
  if (o.testLimit) test = sliceDataset(test, o.testLimit);

  let standardization: Standardization | undefined;
  if (spec.kind === 'csv') {
    standardization = { features: train.features!, ...fitStandardizerRows(train.x) };
    train = { ...train, x: standardizeRows(train.x, standardization) };
    test = { ...test, x: standardizeRows(test.x, standardization) };
  }

  const k = classes.length;
  const useSubset = o.labels !== null || o.labelsPerClass !== null;
  const perClass = useSubset
    ? resolveLabelsPerClass({ labels: o.labels ?? undefined, labelsPerClass: o.labelsPerClass ?? undefined }, k)
    : null;
  const { labeled, initRows } = perClass
    ? labeledSubset(train.y, k, perClass, o.seedData, classes)
    : allLabeled(train.y, o.seedData);
  const counts = new Array<number>(k).fill(0);
  for (const r of labeled) counts[train.y[r]]++;
  const missing = counts.flatMap((c, i) => (c === 0 ? [`'${classes[i]}'`] : []));
  if (missing.length)
    throw dataError(
      `${o.dataset}: no labeled training examples of class ${missing.join(', ')}; every class needs at least one (add labels, or lower --test-split)`,
    );
  const unlabeledCount = train.n - labeled.length;
  if ((o.mode ?? 'gan') === 'gan' && unlabeledCount === 0) {
    throw dataError(
      `${o.dataset}: every training example is labeled, so there is no unlabeled data for the GAN; ` +
        `${spec.kind === 'images' ? `add unlabeled images under ${o.unlabeledDir}/, ` : 'add rows with an empty label, '}use --labels N to keep only N labels, or train with --mode supervised`,
    );
  }
  const { text, json } = splitSummary({
    dataset: o.dataset,
    train: train.n,
    test: test.n,
    labeled: labeled.length,
    labelsPerClass: perClass,
    seedData: o.seedData,
  });
  const labelText = perClass ? '' : `; labels per class ${counts.map((c, i) => `${classes[i]}: ${c}`).join(', ')}`;
  return withValidation(
    {
      train,
      test,
      labeled,
      initRows,
      summary: { ...json, ...(standardization ? { standardization } : {}) },
      summaryText: `${text}; ${testText}${labelText}`,
      source: spec.path,
    },
    o,
  );
}

/**
 * Every example of `specText` as a labeled set shaped like `like` (its classes, image size and
 * feature columns): a --test set, or data to evaluate an exported model on. Tabular features
 * are returned raw (not standardized).
 */
export async function loadLabeledExamples(
  specText: string,
  o: LoadOptions,
  like: Pick<Dataset, 'classes' | 'shape' | 'features'>,
  log: Log = () => {},
  trainSpec?: DataSpec,
): Promise<Dataset> {
  const testSpec = parseDataSpec(specText, '--test');
  const tabular = like.features !== undefined;
  if (testSpec.kind === 'builtin' || (testSpec.kind === 'csv') !== tabular) {
    throw configError(
      `${specText}: expected data of the same kind as the training data${trainSpec ? ` (${trainSpec.kind}:...)` : ''}: ${tabular ? 'csv:FILE.csv' : 'images:DIR or manifest:FILE.csv'}`,
    );
  }
  const test = await loadSource(testSpec, o, like, log);
  const unlabeled = test.y.findIndex((c) => c < 0);
  if (unlabeled >= 0)
    throw dataError(
      `${specText}: every test example needs a label, but ${test.ids?.at(unlabeled) ?? `row ${unlabeled}`} has none`,
    );
  return test;
}

/** Only the test set of a run's data (for evaluation). */
export async function loadTestData(o: LoadOptions): Promise<Dataset> {
  return (await loadData({ ...o, mode: 'supervised' })).test;
}

const flag = (key: string) => '--' + key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());

/** "28x28" -> [28, 28]. */
export function parseImageSize(s: string): [number, number] {
  const m = /^(\d+)x(\d+)$/.exec(s);
  if (!m || +m[1] < 1 || +m[2] < 1)
    throw configError(`--size ${JSON.stringify(s)}: expected HEIGHTxWIDTH in pixels, e.g. 28x28`);
  return [+m[1], +m[2]];
}

/** black | white | #rrggbb | r,g,b -> [r, g, b]. */
export function parseBackground(s: string): [number, number, number] {
  if (s === 'black') return [0, 0, 0];
  if (s === 'white') return [255, 255, 255];
  const hex = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(s);
  if (hex) return [parseInt(hex[1], 16), parseInt(hex[2], 16), parseInt(hex[3], 16)];
  const rgb = s.split(',').map(Number);
  if (rgb.length === 3 && rgb.every((v) => Number.isInteger(v) && v >= 0 && v <= 255))
    return rgb as [number, number, number];
  throw configError(`--background ${JSON.stringify(s)}: expected black, white, #rrggbb or r,g,b (0-255)`);
}

/** How to decode a spec's images: the run's options, or the training set's shape for a --test set. */
function decodeOptionsFor(o: LoadOptions, train: Pick<Dataset, 'shape'> | null, log: Log): DecodeOptions {
  return {
    size: train ? [train.shape[0], train.shape[1]] : o.size ? parseImageSize(o.size) : null,
    channels: train ? (train.shape[2] as 1 | 3) : (o.channels as 1 | 3 | null),
    background: parseBackground(o.background),
    skipBad: o.skipBad,
    cacheDir: o.cache ? defaultCacheDir() : null,
    memoryBytes: memoryBytesFor(o.dataStore),
    onProgress: decodeProgress(log),
  };
}

/** Read one spec. `train` (for a --test spec) fixes the classes, image shape and feature columns. */
async function loadSource(
  spec: DataSpec,
  o: LoadOptions,
  train: Pick<Dataset, 'classes' | 'shape' | 'features'> | null,
  log: Log,
): Promise<Dataset> {
  const what = train ? '--test' : '--data';
  if (spec.kind === 'csv') {
    if (!o.labelColumn)
      throw configError(
        `${what} csv:${spec.path} needs --label-column NAME (the column holding the class; empty = unlabeled)`,
      );
    const t = readTabularCsv(spec.path, {
      labelColumn: o.labelColumn,
      features: o.features,
      drop: o.dropColumns,
      skipBad: o.skipBad,
      ...(train ? { classes: train.classes, featureNames: train.features } : {}),
    });
    if (t.skipped.length) log(`--skip-bad: ${describeSkipped(t.skipped)}`);
    return t;
  }
  if (spec.kind === 'builtin')
    throw configError(`${what} ${spec.name}: built-in datasets cannot be mixed with your own data`);
  if (spec.kind === 'parquet') {
    const r = await readParquetImages(`${what} parquet:${spec.path}`, parquetFiles(spec.path), {
      ...decodeOptionsFor(o, train, log),
      imageColumn: o.imageColumn ?? DEFAULT_IMAGE_COLUMN,
      labelColumn: o.labelColumn,
      ...(train ? { classes: train.classes } : {}),
    });
    const rows = r.dataset.n.toLocaleString('en-US');
    log(
      `${what} parquet:${spec.path}: ${r.decodedRows ? `decoded ${rows} images` : `loaded ${rows} images from the decode cache`} in ${r.seconds.toFixed(1)} s; ${r.choice}`,
    );
    log(`${what} store: ${storeSummary({ rows: r.dataset.x, inMemory: r.inMemory, shardPaths: r.shardPaths })}`);
    return r.dataset;
  }
  const found =
    spec.kind === 'images' ? scanImageFolder(spec.path, { unlabeledDir: o.unlabeledDir }) : readManifest(spec.path);
  const classes = train ? train.classes : found.classes;
  const index = new Map(classes.map((c, i) => [c, i]));
  if (train) {
    const unknown = entryArray(found.entries).find((e) => e.label !== null && !index.has(e.label));
    if (unknown)
      throw dataError(
        `${unknown.id}${unknown.line ? ` (line ${unknown.line})` : ''}: class '${unknown.label}' is not one of the training classes [${classes.join(', ')}]`,
      );
  }
  // A stray file next to the class folders (a README) is noted; one inside a class folder is bad data.
  const [inClass, beside] = [
    found.ignored.filter((f) => /[\\/]/.test(f)),
    found.ignored.filter((f) => !/[\\/]/.test(f)),
  ];
  if (beside.length)
    log(
      `note: ${beside.length} non-image file(s) in ${found.source} left out: ${beside.slice(0, 3).join(', ')}${beside.length > 3 ? ', ...' : ''}`,
    );
  if (inClass.length) {
    const first = inClass.slice(0, 3).join(', ');
    if (!o.skipBad)
      throw dataError(
        `${first}${inClass.length > 1 ? ` (and ${inClass.length - 1} more)` : ''}: not an image file (by its extension) in ${found.source}; remove it, or pass --skip-bad to leave such files out (they are listed)`,
      );
    log(
      `--skip-bad: left out ${inClass.length} non-image file(s) in ${found.source}: ${first}${inClass.length > 3 ? ', ...' : ''}`,
    );
  }
  const decodeOptions = decodeOptionsFor(o, train, log);
  const decoded = await decodeImages(found.entries, decodeOptions);
  if (decoded.cacheDamaged) log(`decode cache: ${decoded.cacheDamaged}; decoded the images again and rewrote it`);
  if (decoded.cacheWarning) log(`warning: ${decoded.cacheWarning}`);
  log(`${what} ${spec.kind}:${spec.path}: ${decodeSummary(decoded)}; ${decoded.choice}`);
  log(`${what} store: ${storeSummary(decoded)}`);
  const skipped = skippedSummary(decoded);
  if (skipped) log(skipped);
  // Many tools save grayscale pictures as RGB PNGs; file headers cannot tell, the pixels can.
  if (!train && o.channels === null && decoded.gray) {
    log(
      `${what} ${spec.kind}:${spec.path}: every colour image is gray (R = G = B in every pixel): using 1 channel (--channels 3 keeps 3)`,
    );
    // In memory: drop two of three equal bytes. On disk: decode as grayscale (the same bytes).
    const [h, w] = decoded.shape;
    const gray = decoded.inMemory
      ? { ...decoded, rows: memoryRows(grayFromEqualChannels(allBytes(decoded.rows))!, h * w) }
      : await decodeImages(found.entries, { ...decodeOptions, channels: 1 });
    return imageDataset({ entries: found.entries, classes }, { ...gray, shape: [h, w, 1] });
  }
  return imageDataset({ entries: found.entries, classes }, decoded);
}

/** Every byte of in-memory rows, in row order. */
const allBytes = (rows: Rows) => rows.gatherRaw(Int32Array.from({ length: rows.n }, (_, i) => i)) as Uint8Array;

/**
 * HWC rows with 3 channels -> 1 channel when R = G = B everywhere (else null). sharp's grayscale
 * conversion leaves such pixels unchanged, so this equals decoding with --channels 1.
 */
export function grayFromEqualChannels(x: Uint8Array): Uint8Array | null {
  for (let i = 0; i < x.length; i += 3) if (x[i] !== x[i + 1] || x[i] !== x[i + 2]) return null;
  const out = new Uint8Array(x.length / 3);
  for (let i = 0; i < out.length; i++) out[i] = x[3 * i];
  return out;
}
