import { test } from 'node:test';
import assert from 'node:assert/strict';
import { argmaxRows, classificationReport } from '../../src/eval/metrics.js';
import { formatReport } from '../../src/eval/report.js';
import { SemiganError } from '../../src/errors.js';

const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} != ${b}`);

test('argmaxRows picks the first maximum per row and ignores NaN', () => {
  const logits = new Float32Array([0.1, 0.9, 0.0, /**/ 5, 5, 1, /**/ NaN, -1, -2, /**/ -3, -2, -1]);
  assert.deepEqual([...argmaxRows(logits, 3)], [1, 0, 1, 2]);
  assert.throws(() => argmaxRows(new Float32Array(5), 3), RangeError);
});

test('classificationReport matches a hand-computed example', () => {
  // yTrue = a a a a b b b c c c, yPred = a a b c b b a c c b
  // confusion [true][pred]:
  //        a  b  c
  //   a    2  1  1    support 4
  //   b    1  2  0    support 3
  //   c    0  1  2    support 3
  //  col   3  4  3    (times predicted)
  // correct = 6 of 10 -> accuracy 0.6, errors 4
  // a: P = 2/3, R = 2/4 = 1/2, F1 = 2(1/3)/(7/6) = 4/7
  // b: P = 2/4 = 1/2, R = 2/3, F1 = 4/7
  // c: P = 2/3, R = 2/3, F1 = 2/3
  // macroF1 = (4/7 + 4/7 + 2/3) / 3 = (24 + 24 + 28) / 126 = 38/63
  const yTrue = new Int32Array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2]);
  const yPred = new Int32Array([0, 0, 1, 2, 1, 1, 0, 2, 2, 1]);
  const r = classificationReport(yTrue, yPred, ['a', 'b', 'c']);
  assert.equal(r.n, 10);
  assert.equal(r.errors, 4);
  close(r.accuracy, 0.6);
  assert.deepEqual(r.confusion, [
    [2, 1, 1],
    [1, 2, 0],
    [0, 1, 2],
  ]);
  const expected = [
    { name: 'a', support: 4, precision: 2 / 3, recall: 1 / 2, f1: 4 / 7 },
    { name: 'b', support: 3, precision: 1 / 2, recall: 2 / 3, f1: 4 / 7 },
    { name: 'c', support: 3, precision: 2 / 3, recall: 2 / 3, f1: 2 / 3 },
  ];
  expected.forEach((e, i) => {
    const m = r.perClass[i];
    assert.equal(m.name, e.name);
    assert.equal(m.support, e.support);
    close(m.precision, e.precision);
    close(m.recall, e.recall);
    close(m.f1, e.f1);
  });
  close(r.macroF1, 38 / 63);
});

test('a class never predicted (or never present) gets precision/recall/f1 0, not NaN', () => {
  // 4 classes; class 1 is present but never predicted, class 3 neither present nor predicted.
  // class 0: P = 1/3, R = 1, F1 = 2(1/3)/(4/3) = 1/2; class 2 is never predicted either.
  const r = classificationReport(new Int32Array([0, 1, 2]), new Int32Array([0, 0, 0]), ['w', 'x', 'y', 'z']);
  close(r.perClass[0].f1, 0.5);
  for (const c of [1, 2, 3]) {
    assert.deepEqual([r.perClass[c].precision, r.perClass[c].recall, r.perClass[c].f1], [0, 0, 0]);
  }
  assert.equal(r.perClass[3].support, 0);
  close(r.macroF1, 0.5 / 4);
  // Empty input: numeric, no NaN.
  const empty = classificationReport(new Int32Array(0), new Int32Array(0), ['a']);
  assert.deepEqual([empty.n, empty.accuracy, empty.errors, empty.macroF1], [0, 0, 0, 0]);
});

test('classificationReport rejects mismatched lengths and out-of-range labels', () => {
  assert.throws(() => classificationReport(new Int32Array(3), new Int32Array(2), ['a']), RangeError);
  assert.throws(
    () => classificationReport(new Int32Array([0, 2]), new Int32Array([0, 1]), ['a', 'b']),
    (e: unknown) => e instanceof SemiganError && /true label 2 at index 1/.test(e.message),
  );
  assert.throws(
    () => classificationReport(new Int32Array([0, 1]), new Int32Array([-1, 1]), ['a', 'b']),
    (e: unknown) => e instanceof SemiganError && /predicted label -1 at index 0/.test(e.message),
  );
});

test('formatReport shows accuracy, errors, per-class numbers and the confusion matrix', () => {
  const yTrue = new Int32Array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2]);
  const yPred = new Int32Array([0, 0, 1, 2, 1, 1, 0, 2, 2, 1]);
  const names = ['airplane', 'automobile_long_name', 'cat'];
  const text = formatReport(classificationReport(yTrue, yPred, names));
  assert.match(text, /accuracy 60\.00%/);
  assert.match(text, /errors 4 of 10/);
  // Full name in the per-class table with P, R, F1, support.
  assert.match(text, /automobile_long_name\s+0\.5000\s+0\.6667\s+0\.5714\s+3\n/);
  assert.match(text, /airplane\s+0\.6667\s+0\.5000\s+0\.5714\s+4\n/);
  assert.match(text, /macro avg\s+0\.6032\s+10\n/); // 38/63
  // Matrix: truncated header names, rows = true classes.
  const matrix = text.slice(text.indexOf('confusion'));
  assert.match(matrix, /automobil…/);
  assert.doesNotMatch(matrix, /automobile_long_name/);
  assert.match(matrix, /\nairplane\s+2\s+1\s+1\n/);
  assert.match(matrix, /\nautomobil…\s+1\s+2\s+0\n/);
  assert.match(matrix, /\ncat\s+0\s+1\s+2\n/);
});
