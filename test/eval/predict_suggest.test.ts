/**
 * Inference helpers on hand-made inputs: discriminatorLogits / predictClasses with a linear "D"
 * whose logits are known, chunked or not; rankByUncertainty's margin and entropy orders.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend.js';
import type { Dataset } from '../../src/data/dataset.js';
import { memoryRows } from '../../src/data/rows.js';
import type { GanModel } from '../../src/models/model.js';
import { discriminatorLogits, predictClasses } from '../../src/eval/predict.js';
import { predictionsFromLogits } from '../../src/eval/predictions.js';
import { csvTextCell, entropyOf, rankByUncertainty, suggestionsCsv } from '../../src/eval/suggest.js';

/** A "discriminator" whose logits are x W: row i's logits are known by hand. */
function linearModel(batchDependentD: boolean): GanModel {
  return {
    preset: 'test',
    zDim: 1,
    createD: () => ({ vars: {}, trainable: [] }),
    createG: () => ({ vars: {}, trainable: [] }),
    initD: () => {},
    applyD: (d, x) => {
      const logits = tf.matMul(x, d.W as tf.Tensor2D) as tf.Tensor2D;
      return { logits, features: logits };
    },
    batchDependentD,
    applyG: (_g, z) => z,
  };
}

test('discriminatorLogits: x W for every row, whatever the chunking; predictClasses takes the argmax', async () => {
  await initBackend('wasm');
  const n = 2500; // more than one 2000-row chunk
  const x = new Float32Array(n * 2);
  for (let i = 0; i < n; i++) [x[2 * i], x[2 * i + 1]] = [i % 7, (i * 3) % 5];
  const data: Dataset = {
    x: memoryRows(x, 2),
    y: new Int32Array(n),
    n,
    classes: ['a', 'b', 'c'],
    shape: [1, 1, 2],
  };
  const W = tf.tensor2d([1, 0, -1, 0, 1, 1], [2, 3]); // logits [x0, x1, x1 - x0]
  for (const batchDependent of [false, true]) {
    const logits = discriminatorLogits(linearModel(batchDependent), { W }, data, 300);
    assert.equal(logits.length, n * 3);
    for (const i of [0, 1, 1999, 2000, 2499])
      assert.deepEqual(Array.from(logits.subarray(3 * i, 3 * i + 3)), [i % 7, (i * 3) % 5, ((i * 3) % 5) - (i % 7)]);
    const classes = predictClasses(linearModel(batchDependent), { W }, data, 300);
    for (const i of [0, 1, 6, 2499]) {
      const [a, b, c] = [i % 7, (i * 3) % 5, ((i * 3) % 5) - (i % 7)];
      const want = a >= b && a >= c ? 0 : b >= c ? 1 : 2; // ties: the lower index
      assert.equal(classes[i], want, `row ${i}`);
    }
  }
  W.dispose();
});

test('rankByUncertainty: smallest margin first (or largest entropy), ties to the earlier row; the fields by hand', () => {
  const classes = ['a', 'b', 'c'];
  const logits = new Float32Array([
    5,
    0,
    0, // confident
    1,
    1,
    -5, // a/b undecided: margin ~0
    0,
    0,
    0, // uniform: margin 0, entropy log 3
    2,
    1,
    0, // in between
  ]);
  const preds = predictionsFromLogits(logits, classes, 3);
  const rows = [10, 11, 12, 13];
  const byMargin = rankByUncertainty(preds, rows, (r) => `img${r}`, 3, 'margin');
  assert.deepEqual(
    byMargin.map((s) => s.row),
    [11, 12, 13],
  ); // 11 and 12 tie at margin 0: the earlier first
  assert.equal(byMargin[0].id, 'img11');
  assert.equal(byMargin[0].rank, 1);
  assert.ok(Math.abs(byMargin[0].margin) < 1e-12);
  const e = Math.exp(1) + Math.exp(1) + Math.exp(-5);
  assert.ok(Math.abs(byMargin[0].probability - Math.exp(1) / e) < 1e-12);
  const byEntropy = rankByUncertainty(preds, rows, String, 2, 'entropy');
  // H: uniform log 3 = 1.099; (2, 1, 0) 0.832; (1, 1, -5) 0.702; (5, 0, 0) 0.080.
  assert.deepEqual(
    byEntropy.map((s) => s.row),
    [12, 13],
  );
  assert.ok(Math.abs(byEntropy[0].entropy - Math.log(3)) < 1e-12);
  assert.equal(entropyOf({ a: 1, b: 0 }), 0);
});

test('CSV text cells that a spreadsheet would run as formulas get a leading quote; RFC 4180 quoting after', () => {
  const cases: [string, string][] = [
    ['=HYPERLINK("http://x","y")', `"'=HYPERLINK(""http://x"",""y"")"`],
    ['+1+1', "'+1+1"],
    ['-2+3', "'-2+3"],
    ['@SUM(1)', "'@SUM(1)"],
    ['\tcmd', "'\tcmd"],
    ['\rcmd', `"'\rcmd"`],
    ['cat', 'cat'],
    ['a,b', '"a,b"'],
    ['x=1', 'x=1'],
  ];
  for (const [v, want] of cases) assert.equal(csvTextCell(v), want, JSON.stringify(v));
  const csv = suggestionsCsv([
    {
      rank: 1,
      row: 0,
      id: '=cmd|"/c calc"!A1',
      predicted: '+1+1',
      probability: 0.5,
      runnerUp: '@SUM(1)',
      runnerUpProbability: 0.4,
      margin: 0.1,
      entropy: 1,
      realness: 0.9,
    },
  ]);
  assert.equal(
    csv.split('\n')[1],
    `1,"'=cmd|""/c calc""!A1",'+1+1,0.500000,'@SUM(1),0.400000,0.100000,1.000000,0.900000`,
  );
});

test('predictionsFromLogits keeps classes named like Object.prototype keys; probabilities sum to 1', () => {
  const classes = ['__proto__', 'constructor', 'toString', 'hasOwnProperty'];
  const [p] = predictionsFromLogits(Float32Array.from([1, 2, 3, 4]), classes, 4);
  assert.deepEqual(Object.keys(p.probabilities), classes);
  const json = JSON.parse(JSON.stringify(p.probabilities));
  assert.deepEqual(Object.keys(json), classes);
  const sum = Object.values(json as Record<string, number>).reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(sum - 1) < 1e-12);
  assert.ok(Math.abs(json.__proto__ - Math.exp(1) / (Math.exp(1) + Math.exp(2) + Math.exp(3) + Math.exp(4))) < 1e-12);
});
