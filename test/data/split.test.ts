import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { SemiganError } from '../../src/errors.js';
import { RandomState } from '../../src/data/split/numpy_random.js';
import { readIdxLabels } from '../../src/data/sources/idx.js';
import { labeledSubset, resolveLabelsPerClass, splitSummary, validationHoldout } from '../../src/data/split/split.js';
import { mnistDataDir } from '../../src/package_paths.js';

const MNIST_DIR = mnistDataDir()!;
const mnistY = () => Int32Array.from(readIdxLabels(join(MNIST_DIR, 'train-labels-idx1-ubyte')));

const isSemiganError = (re: RegExp) => (e: unknown) => e instanceof SemiganError && re.test(e.message);

test('RandomState.permutation matches numpy bit-for-bit', () => {
  // Produced with numpy 1.24.2:
  //   /usr/bin/python3 -c "import numpy as np; p=np.random.RandomState(S).permutation(60000); print(p[:10].tolist(), p[-1])"
  const expected: Record<number, { head: number[]; last: number }> = {
    1: { head: [15281, 21435, 44536, 13518, 47529, 53560, 41094, 6060, 9358, 49039], last: 33003 },
    1234: { head: [30329, 44957, 30866, 40447, 25580, 6216, 26373, 9010, 23445, 108], last: 27439 },
    0: { head: [3048, 19563, 58303, 8870, 40228, 31488, 21860, 56864, 845, 25770], last: 2732 },
  };
  for (const [seed, { head, last }] of Object.entries(expected)) {
    const p = new RandomState(Number(seed)).permutation(60000);
    assert.deepEqual([...p.subarray(0, 10)], head, `seed ${seed}`);
    assert.equal(p[59999], last, `seed ${seed}`);
  }
  // np.random.RandomState(1).permutation(10) and RandomState(2**32-1).permutation(100)[:10]
  assert.deepEqual([...new RandomState(1).permutation(10)], [2, 9, 6, 4, 0, 3, 1, 7, 8, 5]);
  assert.deepEqual(
    [...new RandomState(0xffffffff).permutation(100).subarray(0, 10)],
    [92, 36, 80, 77, 31, 6, 69, 20, 21, 81],
  );
  assert.throws(() => new RandomState(-1), RangeError);
});

test('labeledSubset on MNIST matches the official selection for seed_data 1', () => {
  const y = mnistY();
  const { labeled, initRows } = labeledSubset(y, 10, 10, 1);
  // Produced with /usr/bin/python3 + numpy 1.24.2, y = MNIST train labels:
  //   inds = np.random.RandomState(1).permutation(60000)
  //   np.concatenate([inds[y[inds] == j][:10] for j in range(10)])
  assert.deepEqual(
    [...labeled.subarray(0, 12)],
    [38161, 20117, 18486, 1578, 58510, 42649, 33078, 16705, 19490, 44413, 11395, 17209],
  );
  assert.deepEqual([...labeled.subarray(97)], [6842, 20228, 14582]);
  // Balanced: 10 per class, grouped by class.
  assert.equal(labeled.length, 100);
  for (let i = 0; i < 100; i++) assert.equal(y[labeled[i]], Math.floor(i / 10));
  assert.equal(new Set(labeled).size, 100);
  // initRows = official trainx[:500] after the shuffle = the permutation's head.
  assert.equal(initRows.length, 500);
  assert.deepEqual([...initRows.subarray(0, 3)], [15281, 21435, 44536]);
});

test('labeledSubset is deterministic per seed and differs across seeds', () => {
  const y = mnistY();
  const a = labeledSubset(y, 10, 10, 7).labeled;
  const b = labeledSubset(y, 10, 10, 7).labeled;
  const c = labeledSubset(y, 10, 10, 8).labeled;
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  // seed 2, from the same python recipe as above
  assert.deepEqual([...labeledSubset(y, 10, 10, 2).labeled.subarray(0, 4)], [27477, 7409, 6758, 52045]);
});

test('labeledSubset: too many per class names the class and its count', () => {
  const y = mnistY();
  assert.throws(
    () => labeledSubset(y, 10, 5500, 1),
    isSemiganError(/^--labels-per-class 5500 but class '5' has only 5421 training examples$/),
  );
  assert.throws(
    () => labeledSubset(y, 10, 7000, 1, ['zero', 'one']),
    isSemiganError(/--labels-per-class 7000 but class 'zero' has only 5923 training examples/),
  );
  // Unlabeled rows (-1) are never picked.
  assert.throws(() => labeledSubset(Int32Array.from([-1, -1, 0, 1]), 2, 2, 1), isSemiganError(/class '0' has only 1/));
});

test('resolveLabelsPerClass', () => {
  assert.equal(resolveLabelsPerClass({ labels: 100 }, 10), 10);
  assert.equal(resolveLabelsPerClass({ labelsPerClass: 3 }, 10), 3);
  assert.equal(resolveLabelsPerClass({ labels: 30, labelsPerClass: 3 }, 10), 3);
  assert.equal(resolveLabelsPerClass({}, 10), 10);
  assert.throws(
    () => resolveLabelsPerClass({ labels: 105 }, 10),
    isSemiganError(/^--labels 105 is not divisible by the 10 classes; use a multiple of 10 or --labels-per-class$/),
  );
  assert.throws(
    () => resolveLabelsPerClass({ labels: 0 }, 10),
    isSemiganError(/--labels 0: expected a positive integer/),
  );
  assert.throws(() => resolveLabelsPerClass({ labelsPerClass: 2.5 }, 10), isSemiganError(/--labels-per-class 2.5/));
  assert.throws(() => resolveLabelsPerClass({ labels: 100, labelsPerClass: 20 }, 10), isSemiganError(/disagree/));
});

test('splitSummary', () => {
  const s = splitSummary({
    dataset: 'mnist',
    train: 60000,
    test: 10000,
    labeled: 100,
    labelsPerClass: 10,
    seedData: 1,
  });
  assert.equal(
    s.text,
    'mnist: 60000 train (100 labeled, 10 per class, seed-data 1; 60000 unlabeled = all train), 10000 test',
  );
  assert.deepEqual(s.json, {
    dataset: 'mnist',
    train: 60000,
    labeled: 100,
    labelsPerClass: 10,
    unlabeled: 60000,
    test: 10000,
    seedData: 1,
  });
});

test('validationHoldout: besides the training labels when there are enough, else out of them; never too many', () => {
  const y = mnistY();
  const { labeled } = labeledSubset(y, 10, 10, 1);
  const { labeled: kept, val } = validationHoldout(y, labeled, 10, 100, 1, true);
  assert.deepEqual(kept, labeled, 'the training labels are those of a run without --val');
  assert.equal(val.length, 100);
  const perClass = new Array(10).fill(0);
  for (const r of val) perClass[y[r]]++;
  assert.deepEqual(perClass, new Array(10).fill(10));
  const train = new Set(labeled);
  assert.ok(
    [...val].every((r) => !train.has(r)),
    'no validation row is a training label',
  );
  assert.deepEqual(validationHoldout(y, labeled, 10, 100, 1, true).val, val, 'deterministic');

  // Every label used (your own data): 3 classes x 4 labeled rows, nothing outside them.
  const small = Int32Array.from([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, -1, -1]);
  const all = Int32Array.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  const out = validationHoldout(small, all, 3, 6, 7, false);
  assert.equal(out.val.length, 6);
  assert.equal(out.labeled.length, 6);
  assert.ok([...out.val].every((r) => !out.labeled.includes(r)));
  for (let c = 0; c < 3; c++) assert.equal([...out.val].filter((r) => small[r] === c).length, 2);

  assert.throws(
    () => validationHoldout(small, all, 3, 12, 7, false),
    isSemiganError(
      /^--val 12 needs 4 labeled rows of each class besides at least one to train on, but class '0' has 4 labels/,
    ),
  );
  assert.throws(
    () => validationHoldout(small, all, 3, 5, 7, false),
    isSemiganError(/^--val 5 is not divisible by the 3 classes/),
  );
  // Bounded labels (--labels) and too few rows besides them: refused rather than taking training labels.
  assert.throws(
    () => validationHoldout(small, Int32Array.from([0, 1, 4, 5, 8, 9]), 3, 9, 7, true),
    isSemiganError(
      /^--val 9 needs 3 labeled rows of each class besides the training labels \(--labels\), but class '\d' has 2/,
    ),
  );
});
