import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend.js';
import { Rng } from '../../src/rng.js';
import { stableSoftplus } from '../../src/nn/activations.js';
import {
  errorRate,
  featureMatchingLoss,
  logSumExpRows,
  realness,
  supervisedLoss,
  unsupervisedLoss,
} from '../../src/train/losses.js';

before(async () => {
  await initBackend('wasm');
});

const close = (actual: number, expected: number, tol: number, what = '') =>
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: got ${actual}, expected ${expected} (tol ${tol})`);

const scalar = (f: () => tf.Tensor) => {
  const t = tf.tidy(f);
  const v = t.dataSync()[0];
  t.dispose();
  return v;
};

test('supervisedLoss = mean cross-entropy over the K real classes (hand-computed)', () => {
  // Row 0: logits [1, 2, 3], label 2:
  //   lse = 3 + log(1 + e^-1 + e^-2) = 3 + log(1.503214724) = 3.407605964; loss = lse - 3 = 0.407605964
  // Row 1: logits [0, 0, 0], label 0: loss = log 3 = 1.098612289
  // Mean = (0.407605964 + 1.098612289) / 2 = 0.753109127
  const loss = scalar(() =>
    supervisedLoss(
      tf.tensor2d([
        [1, 2, 3],
        [0, 0, 0],
      ]),
      tf.tensor1d([2, 0], 'int32'),
    ),
  );
  close(loss, 0.753109127, 1e-6, 'supervisedLoss');
  // Label 0 on row 0 instead: lse - 1 = 2.407605964; mean with row 1 = (2.407605964 + 1.098612289)/2 = 1.753109127
  const loss2 = scalar(() =>
    supervisedLoss(
      tf.tensor2d([
        [1, 2, 3],
        [0, 0, 0],
      ]),
      tf.tensor1d([0, 0], 'int32'),
    ),
  );
  close(loss2, 1.753109127, 1e-6, 'supervisedLoss (wrong label)');
});

test('K = 2, all-zero logits: D(x) = Z/(Z+1) = 2/3 and the unsupervised loss by hand', () => {
  // Z = e^0 + e^0 = 2, D = 2/3. Real rows: -log(2/3) = 0.405465108; fake rows: -log(1/3) = 1.098612289.
  // loss = 0.5 * 0.405465108 + 0.5 * 1.098612289 = 0.752038698 (independent of the row counts).
  const unl = tf.zeros([3, 2]) as tf.Tensor2D;
  const fake = tf.zeros([5, 2]) as tf.Tensor2D;
  const d = realness(unl);
  assert.deepEqual(d.shape, [3]);
  for (const v of d.dataSync()) close(v, 2 / 3, 1e-7, 'realness');
  close(
    scalar(() => unsupervisedLoss(unl, fake)),
    0.752038698,
    1e-6,
    'unsupervisedLoss',
  );
  tf.dispose([unl, fake, d]);
});

test('realness / logSumExpRows on a non-trivial row', () => {
  // Row [log 1, log 3] = [0, 1.098612289]: Z = 1 + 3 = 4, log Z = 1.386294361, D = 4/5 = 0.8.
  const l = tf.tensor2d([[0, Math.log(3)]]);
  close(logSumExpRows(l).dataSync()[0], Math.log(4), 1e-6, 'lse');
  close(realness(l).dataSync()[0], 0.8, 1e-6, 'realness');
  l.dispose();
});

/**
 * The explicit (K+1)-way softmax cross-entropy, in float64: append the fake class's logit 0,
 * softmax over K+1 (max-shifted), then
 *   real row: -log(1 - p_fake) = -log(sum_{k<K} p_k), fake row: -log p_fake,
 * each half a mean, weighted 0.5.
 */
function explicitUnsupervised(unl: number[][], fake: number[][]): number {
  const softmax = (row: number[]) => {
    const full = [...row, 0];
    const m = Math.max(...full);
    const e = full.map((v) => Math.exp(v - m));
    const s = e.reduce((a, b) => a + b, 0);
    return e.map((v) => v / s);
  };
  const realTerm = (row: number[]) => {
    const p = softmax(row);
    return -Math.log(p.slice(0, row.length).reduce((a, b) => a + b, 0));
  };
  const fakeTerm = (row: number[]) => -Math.log(softmax(row)[row.length]);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return 0.5 * mean(unl.map(realTerm)) + 0.5 * mean(fake.map(fakeTerm));
}

test('unsupervisedLoss equals the explicit (K+1)-way softmax cross-entropy, incl. huge logits', () => {
  const rng = new Rng(7);
  const K = 10;
  const randRows = (n: number, std: number) =>
    Array.from({ length: n }, () => Array.from(rng.fillNormal(new Float32Array(K), std)));
  const cases: { name: string; unl: number[][]; fake: number[][] }[] = [
    { name: 'random std 1', unl: randRows(6, 1), fake: randRows(4, 1) },
    { name: 'random std 5', unl: randRows(5, 5), fake: randRows(7, 5) },
    {
      name: 'huge logits',
      unl: [Array(K).fill(80), Array(K).fill(-80), [80, ...Array(K - 1).fill(-80)], randRows(1, 30)[0]],
      fake: [Array(K).fill(-80), Array(K).fill(80), [-80, 80, ...Array(K - 2).fill(0)]],
    },
  ];
  for (const c of cases) {
    const expected = explicitUnsupervised(c.unl, c.fake);
    assert.ok(Number.isFinite(expected), c.name);
    const unl = tf.tensor2d(c.unl);
    const fake = tf.tensor2d(c.fake);
    const got = scalar(() => unsupervisedLoss(unl, fake));
    assert.ok(Number.isFinite(got), `${c.name}: loss ${got}`);
    // float32 arithmetic on values up to ~80: relative 1e-5 plus a small absolute floor.
    close(got, expected, 1e-5 * Math.abs(expected) + 1e-5, c.name);
    // Gradients w.r.t. both logit sets stay finite too (what training actually needs).
    const grads = tf.grads((a: tf.Tensor, b: tf.Tensor) => unsupervisedLoss(a as tf.Tensor2D, b as tf.Tensor2D))([
      unl,
      fake,
    ]);
    for (const g of grads) for (const v of g.dataSync()) assert.ok(Number.isFinite(v), `${c.name}: gradient ${v}`);
    tf.dispose([unl, fake, ...grads]);
  }
  // One huge case by hand: real row all 0 (Z = 10, -log(10/11) = log 1.1 = 0.0953101798), fake row all 80
  // (-log p_fake = log(1 + 10 e^80) = 80 + log 10 + O(e^-80) = 82.302585093):
  // loss = 0.5 * 0.0953101798 + 0.5 * 82.302585093 = 41.198947636.
  const z = tf.zeros([1, K]) as tf.Tensor2D;
  const big = tf.fill([1, K], 80) as tf.Tensor2D;
  close(explicitUnsupervised([Array(K).fill(0)], [Array(K).fill(80)]), 41.198947636, 1e-8, 'reference by hand');
  close(
    scalar(() => unsupervisedLoss(z, big)),
    41.198947636,
    1e-4,
    'unsupervisedLoss by hand (huge)',
  );
  tf.dispose([z, big]);
});

test('featureMatchingLoss = mean over units of the squared difference of batch means (hand-computed)', () => {
  // real [[1,2],[3,4]] -> mean [2,3]; fake [[0,0],[2,2]] -> mean [1,1];
  // diff [-1,-2] -> squares [1,4] -> mean 2.5.
  const loss = scalar(() =>
    featureMatchingLoss(
      tf.tensor2d([
        [1, 2],
        [3, 4],
      ]),
      tf.tensor2d([
        [0, 0],
        [2, 2],
      ]),
    ),
  );
  close(loss, 2.5, 1e-6, 'featureMatchingLoss');
  // Batch sizes may differ: real [[1,1,1]] vs fake [[0,3,1],[2,1,1]] (mean [1,2,1]) -> diff [0,1,0] -> 1/3.
  const loss2 = scalar(() =>
    featureMatchingLoss(
      tf.tensor2d([[1, 1, 1]]),
      tf.tensor2d([
        [0, 3, 1],
        [2, 1, 1],
      ]),
    ),
  );
  close(loss2, 1 / 3, 1e-6, 'featureMatchingLoss (uneven batches)');
});

test('errorRate counts argmax mismatches', () => {
  // argmax rows: [1, 0, 1, 2] vs labels [1, 1, 1, 0] -> 2 wrong of 4.
  const e = scalar(() =>
    errorRate(
      tf.tensor2d([
        [1, 2, 0],
        [3, 0, 1],
        [0, 5, 4],
        [0, 0, 9],
      ]),
      tf.tensor1d([1, 1, 1, 0], 'int32'),
    ),
  );
  close(e, 0.5, 0, 'errorRate');
});

test('stableSoftplus is finite at +-1000 and equals log1p(exp(x)) where that is finite', () => {
  const xs = [-1000, -100, -30, -10, -3, -1, -0.5, 0, 0.5, 1, 3, 10, 30, 100, 1000];
  const t = tf.tensor1d(xs);
  const y = stableSoftplus(t);
  const got = Array.from(y.dataSync());
  tf.dispose([t, y]);
  close(got[0], 0, 0, 'softplus(-1000)');
  close(got[xs.length - 1], 1000, 0, 'softplus(1000)');
  close(got[xs.indexOf(0)], Math.LN2, 1e-7, 'softplus(0) = log 2');
  for (const [i, x] of xs.entries()) {
    assert.ok(Number.isFinite(got[i]), `softplus(${x}) = ${got[i]}`);
    const ref = Math.log1p(Math.exp(x));
    if (!Number.isFinite(ref)) continue; // x = 1000: exp overflows in float64 too
    close(got[i], ref, 1e-6 * Math.abs(ref) + 1e-7, `softplus(${x})`);
  }
});
