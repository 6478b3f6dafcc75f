import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend.js';
import { Rng } from '../../src/rng.js';
import {
  initMinibatchKernel,
  minibatchDiscrimination,
  minibatchFeatures,
} from '../../src/nn/minibatch_discrimination.js';
import { virtualBatchNorm } from '../../src/nn/virtual_batch_norm.js';

before(async () => {
  await initBackend('wasm');
});

const close = (got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string) => {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++)
    assert.ok(Math.abs(got[i] - want[i]) <= tol, `${what}[${i}] = ${got[i]}, want ${want[i]} (tol ${tol})`);
};
const normal = (rng: Rng, n: number, std = 1) => rng.fillNormal(new Float32Array(n), std);

// ---------------------------------------------------------------- minibatch discrimination

test('MBD: two identical rows and a far one, by hand', () => {
  // in = 2, kernels = 2, dim = 2. Columns of T are kernel-major (M [B, 2*2] -> [B, kernel, dim]):
  //   kernel 0: M = (h_x, h_y)     kernel 1: M = (2 h_x, -h_y)
  // rows r0 = r1 = (1, 2), r2 = (5, -3):
  //   kernel 0: M_r0 = (1, 2),  M_r2 = (5, -3);  L1 = 4 + 5 = 9
  //   kernel 1: M_r0 = (2, -2), M_r2 = (10, 3);  L1 = 8 + 5 = 13
  // c(r0, r1) = exp(0) = 1 in both kernels; c(r0, r2) = e^-9 and e^-13 (~0). Self excluded:
  //   o(r0) = o(r1) = [1 + e^-9, 1 + e^-13],  o(r2) = [2 e^-9, 2 e^-13].
  const h = tf.tensor2d([
    [1, 2],
    [1, 2],
    [5, -3],
  ]);
  const T = tf.tensor2d([
    [1, 0, 2, 0],
    [0, 1, 0, -1],
  ]);
  const args = { kernels: 2, dim: 2 };
  const e9 = Math.exp(-9);
  const e13 = Math.exp(-13);
  const o = minibatchFeatures(h, T, args);
  assert.deepEqual(o.shape, [3, 2]);
  close(o.dataSync(), [1 + e9, 1 + e13, 1 + e9, 1 + e13, 2 * e9, 2 * e13], 1e-6, 'o');

  const b = tf.tensor1d([-1, 0.5]); // the layer's learned bias is added to o
  const layer = minibatchDiscrimination(h, T, b, args);
  assert.deepEqual(layer.shape, [3, 4]);
  close(
    layer.dataSync(),
    [1, 2, e9, 1.5 + e13, 1, 2, e9, 1.5 + e13, 5, -3, 2 * e9 - 1, 2 * e13 + 0.5],
    1e-6,
    'concat([h, o + b])',
  );

  // The tie (r0 = r1) is a kink of |.|: the gradient there must still be finite.
  const [gh, gT] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
    minibatchFeatures(a as tf.Tensor2D, b as tf.Tensor2D, args).sum(),
  )([h, T]);
  for (const v of [...gh.dataSync(), ...gT.dataSync()]) assert.ok(Number.isFinite(v));
  tf.dispose([h, T, o, layer, gh, gT]);
});

test('MBD: an example is not its own neighbour (a batch of 1, groups of 1 give o = 0)', () => {
  const rng = new Rng(5);
  const args = { kernels: 4, dim: 3 };
  const T = initMinibatchKernel(rng, 6, args);
  assert.deepEqual(T.shape, [6, 12]);
  const one = tf.tensor2d(normal(rng, 6), [1, 6]);
  const o1 = minibatchFeatures(one, T, args);
  assert.deepEqual(Array.from(o1.dataSync()), [0, 0, 0, 0]);

  const h = tf.tensor2d(normal(rng, 3 * 6), [3, 6]);
  const o3 = minibatchFeatures(h, T, args, [1, 1, 1]);
  assert.deepEqual(Array.from(o3.dataSync()), new Array(12).fill(0));
  tf.dispose([T, one, o1, h, o3]);
});

test('MBD: each group gets its own statistics', () => {
  const rng = new Rng(7);
  const args = { kernels: 5, dim: 3 };
  const inDim = 8;
  // Small T entries (x4 the init) so that rows are at moderate distances and o is not ~0.
  const T = tf.tensor2d(normal(rng, inDim * 15, 0.2), [inDim, 15]);
  const a = normal(rng, 3 * inDim);
  const b1 = normal(rng, 4 * inDim);
  const b2 = normal(rng, 4 * inDim, 3);
  const withB1 = tf.tensor2d([...a, ...b1], [7, inDim]);
  const withB2 = tf.tensor2d([...a, ...b2], [7, inDim]);
  const o1 = minibatchFeatures(withB1, T, args, [3, 4]).dataSync();
  const o2 = minibatchFeatures(withB2, T, args, [3, 4]).dataSync();
  const aAlone = tf.tensor2d(a, [3, inDim]);
  const oA = minibatchFeatures(aAlone, T, args).dataSync();
  // Group A's rows (the first 3 * kernels values): unchanged by B, equal to A on its own.
  close(o1.slice(0, 15), o2.slice(0, 15), 1e-6, 'group A with B1 vs with B2');
  close(o1.slice(0, 15), oA, 1e-6, 'group A vs A alone');
  assert.ok(
    o1.slice(0, 15).some((v) => v > 1e-3),
    'group A has non-trivial features',
  );
  // ...and B's rows did change.
  assert.ok(o1.slice(15).some((v, i) => Math.abs(v - o2[15 + i]) > 1e-3));
  // Without groups, A's rows see B's rows.
  const whole = minibatchFeatures(withB1, T, args).dataSync();
  assert.ok(whole.slice(0, 15).some((v, i) => v - o1[i] > 1e-6));

  assert.throws(() => minibatchFeatures(withB1, T, args, [3, 3]), /summing to the batch/);
  tf.dispose([T, withB1, withB2, aAlone]);
});

/** Float64 reference of sum_{i,b} w[i,b] o(i)_b, straight from the paper's formula. */
function mbdLoss64(
  h: number[],
  T: number[],
  w: number[],
  B: number,
  inDim: number,
  K: number,
  D: number,
  groups: number[],
): number {
  const M = new Float64Array(B * K * D);
  for (let i = 0; i < B; i++)
    for (let c = 0; c < K * D; c++) {
      let s = 0;
      for (let k = 0; k < inDim; k++) s += h[i * inDim + k] * T[k * K * D + c];
      M[i * K * D + c] = s;
    }
  let loss = 0;
  let start = 0;
  for (const n of groups) {
    for (let i = start; i < start + n; i++)
      for (let j = start; j < start + n; j++) {
        if (i === j) continue;
        for (let b = 0; b < K; b++) {
          let l1 = 0;
          for (let d = 0; d < D; d++) l1 += Math.abs(M[i * K * D + b * D + d] - M[j * K * D + b * D + d]);
          loss += w[i * K + b] * Math.exp(-l1);
        }
      }
    start += n;
  }
  return loss;
}

test('MBD: gradients w.r.t. T and h match finite differences of a float64 reference', () => {
  const rng = new Rng(13);
  const [B, inDim, K, D] = [5, 3, 2, 3];
  const groups = [2, 3];
  const h = Array.from(normal(rng, B * inDim));
  const T = Array.from(normal(rng, inDim * K * D, 0.5));
  const w = Array.from(normal(rng, B * K));
  const ht = tf.tensor2d(h, [B, inDim]);
  const Tt = tf.tensor2d(T, [inDim, K * D]);
  const wt = tf.tensor2d(w, [B, K]);
  const args = { kernels: K, dim: D };

  const loss = (a: tf.Tensor, b: tf.Tensor) =>
    minibatchFeatures(a as tf.Tensor2D, b as tf.Tensor2D, args, groups)
      .mul(wt)
      .sum();
  const value = loss(ht, Tt);
  const want = mbdLoss64(h, T, w, B, inDim, K, D, groups);
  assert.ok(
    Math.abs(value.dataSync()[0] - want) < 1e-5 * Math.max(1, Math.abs(want)),
    `loss ${value.dataSync()[0]} vs ${want}`,
  );

  const [gh, gT] = tf.grads(loss)([ht, Tt]);
  const fd = (x: number[], idx: number, f: () => number) => {
    const eps = 1e-6;
    const x0 = x[idx];
    x[idx] = x0 + eps;
    const up = f();
    x[idx] = x0 - eps;
    const down = f();
    x[idx] = x0;
    return (up - down) / (2 * eps);
  };
  const f = () => mbdLoss64(h, T, w, B, inDim, K, D, groups);
  const fdT = T.map((_, i) => fd(T, i, f));
  const fdH = h.map((_, i) => fd(h, i, f));
  const scale = (g: number[]) => Math.max(1, ...g.map(Math.abs));
  close(gT.dataSync(), fdT, 1e-4 * scale(fdT), 'dL/dT');
  close(gh.dataSync(), fdH, 1e-4 * scale(fdH), 'dL/dh');
  assert.ok(
    fdT.some((v) => Math.abs(v) > 1e-2),
    'the test case has non-trivial gradients',
  );
  tf.dispose([ht, Tt, wt, value, gh, gT]);
});

test('MBD: no tensors leak through forward or backward', () => {
  const rng = new Rng(17);
  const args = { kernels: 3, dim: 2 };
  const h = tf.tensor2d(normal(rng, 6 * 4), [6, 4]);
  const T = initMinibatchKernel(rng, 4, args);
  const bias = tf.zeros([3]) as tf.Tensor1D;
  const n0 = tf.memory().numTensors;
  const out = minibatchDiscrimination(h, T, bias, args, [2, 4]);
  assert.equal(tf.memory().numTensors, n0 + 1);
  out.dispose();
  const grads = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
    minibatchDiscrimination(a as tf.Tensor2D, b as tf.Tensor2D, bias, args, [2, 4]).sum(),
  )([h, T]);
  assert.equal(tf.memory().numTensors, n0 + 2);
  tf.dispose([...grads, h, T, bias]);
});

// ---------------------------------------------------------------- virtual batch norm

test('VBN: one example by hand (n = 2), including a zero-variance unit', () => {
  // hRef = [[0, 1], [2, 1]], x = [4, 1], scale = [2, 3], shift = [0.5, -1].
  // unit 0: mu = (0 + 2 + 4) / 3 = 2, meansq = (0 + 4 + 16) / 3 = 20/3, var = 20/3 - 4 = 8/3,
  //         out = (4 - 2) / sqrt(8/3 + eps) * 2 + 0.5  (~ 5.39898)
  // unit 1: mu = 1, meansq = 1, var = 0: out = 0 / sqrt(eps) * 3 - 1 = -1 (the shift)
  // refOut (plain BN): unit 0 mean 1, var 1: (0 - 1) / sqrt(1 + eps) * 2 + 0.5 ~ -1.5, and ~ 2.5;
  //                    unit 1 var 0: -1 for both rows.
  const eps = 1e-6;
  const hRef = tf.tensor2d([
    [0, 1],
    [2, 1],
  ]);
  const x = tf.tensor2d([[4, 1]]);
  const scale = tf.tensor1d([2, 3]);
  const shift = tf.tensor1d([0.5, -1]);
  const { out, refOut } = virtualBatchNorm(x, hRef, shift, scale, eps);
  assert.deepEqual(out.shape, [1, 2]);
  assert.deepEqual(refOut.shape, [2, 2]);
  close(out.dataSync(), [(2 / Math.sqrt(8 / 3 + eps)) * 2 + 0.5, -1], 1e-6, 'out');
  const r = 1 / Math.sqrt(1 + eps);
  close(refOut.dataSync(), [-r * 2 + 0.5, -1, r * 2 + 0.5, -1], 1e-6, 'refOut');
  tf.dispose([hRef, x, scale, shift, out, refOut]);
});

test('VBN: reference = n copies of v and x = v gives exactly the shift', () => {
  const v = [1.5, -2, 0.25];
  const hRef = tf.tensor2d([v, v, v]);
  const x = tf.tensor2d([v]);
  const shift = tf.tensor1d([0.1, 0.2, -0.3]);
  const scale = tf.tensor1d([5, 6, 7]);
  const { out, refOut } = virtualBatchNorm(x, hRef, shift, scale);
  close(out.dataSync(), shift.dataSync(), 0, 'out');
  close(refOut.dataSync(), [...shift.dataSync(), ...shift.dataSync(), ...shift.dataSync()], 0, 'refOut');
  tf.dispose([hRef, x, shift, scale, out, refOut]);
});

test("VBN: an example's output does not depend on the rest of its batch", () => {
  const rng = new Rng(21);
  const U = 16;
  const hRef = tf.tensor2d(normal(rng, 32 * U, 2), [32, U]);
  const shift = tf.tensor1d(normal(rng, U));
  const scale = tf.tensor1d(normal(rng, U));
  const x = normal(rng, U);
  const batch1 = tf.tensor2d([...x, ...normal(rng, 4 * U, 5)], [5, U]); // x is row 0
  const batch2 = tf.tensor2d([...normal(rng, 2 * U, 0.1), ...x], [3, U]); // x is row 2
  const alone = tf.tensor2d(x, [1, U]);
  const o1 = virtualBatchNorm(batch1, hRef, shift, scale).out.dataSync().slice(0, U);
  const o2 = virtualBatchNorm(batch2, hRef, shift, scale)
    .out.dataSync()
    .slice(2 * U);
  const o0 = virtualBatchNorm(alone, hRef, shift, scale).out.dataSync();
  close(o1, o2, 1e-6, 'x in batch 1 vs batch 2');
  close(o1, o0, 1e-6, 'x in batch 1 vs alone');
  tf.dispose([hRef, shift, scale, batch1, batch2, alone]);
});

test('VBN: matches the paper formula (float64) even for units with a large mean/std; refOut is standardized; inputs untouched', () => {
  const rng = new Rng(23);
  const [n, B, U] = [64, 10, 8];
  // Units whose mean is up to 2000 stds: float32 meansq - mu^2 cancels there (measured: the
  // naive form is off by 0.75 on unit 0, the centered one by 3.5e-4).
  const means = [100, 100, 25, -3, 0, 1, -10, 5];
  const stds = [0.05, 0.5, 0.35, 0.05, 1, 2, 0.1, 3];
  const gen = (rows: number) => {
    const a = normal(rng, rows * U);
    for (let i = 0; i < rows; i++) for (let u = 0; u < U; u++) a[i * U + u] = means[u] + stds[u] * a[i * U + u];
    return a;
  };
  const refVals = gen(n);
  const xVals = gen(B);
  const hRef = tf.tensor2d(refVals, [n, U]);
  const h = tf.tensor2d(xVals, [B, U]);
  const shift = tf.zeros([U]) as tf.Tensor1D;
  const { out, refOut } = virtualBatchNorm(h, hRef, shift);

  assert.deepEqual(Array.from(hRef.dataSync()), Array.from(refVals), 'hRef not modified');
  assert.deepEqual(Array.from(h.dataSync()), Array.from(xVals), 'h not modified');

  // Paper formula in float64 on the same float32 inputs.
  const eps = 1e-6;
  const want: number[] = [];
  const refMean: number[] = [];
  const refMeanSq: number[] = [];
  for (let u = 0; u < U; u++) {
    let s = 0;
    let s2 = 0;
    for (let i = 0; i < n; i++) {
      s += refVals[i * U + u];
      s2 += refVals[i * U + u] ** 2;
    }
    refMean.push(s / n);
    refMeanSq.push(s2 / n);
  }
  for (let i = 0; i < B; i++)
    for (let u = 0; u < U; u++) {
      const x = xVals[i * U + u];
      const mu = (n / (n + 1)) * refMean[u] + x / (n + 1);
      const meanSq = (n / (n + 1)) * refMeanSq[u] + (x * x) / (n + 1);
      want.push((x - mu) / Math.sqrt(meanSq - mu * mu + eps));
    }
  close(out.dataSync(), want, 1e-3, 'out vs float64 paper formula');

  // Plain BN of the reference: mean 0, variance 1 up to float32 input resolution (unit 0:
  // ulp(100) / 0.05 ~ 1.5e-4 std).
  const r = refOut.dataSync();
  for (let u = 0; u < U; u++) {
    let s = 0;
    let s2 = 0;
    for (let i = 0; i < n; i++) {
      s += r[i * U + u];
      s2 += r[i * U + u] ** 2;
    }
    const m = s / n;
    assert.ok(Math.abs(m) < 1e-3, `refOut unit ${u} mean ${m}`);
    assert.ok(Math.abs(s2 / n - m * m - 1) < 1e-3, `refOut unit ${u} variance ${s2 / n - m * m}`);
  }
  tf.dispose([hRef, h, shift, out, refOut]);
});
