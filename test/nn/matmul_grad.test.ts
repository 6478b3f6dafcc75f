/**
 * The explicit-transpose MatMul gradient against tfjs's own. Gradient registration is global,
 * so this file (its own process under node --test) is the only one that compares the two.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend.js';
import { Rng } from '../../src/rng.js';
import { explicitTransposeMatMulGrad, useExplicitTransposeMatMulGrad } from '../../src/nn/matmul_grad.js';

const COMBOS: [boolean, boolean][] = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
];

interface Case {
  name: string;
  a: tf.Tensor;
  b: tf.Tensor;
  w: tf.Tensor; // weights of the output, so dy is not all ones
  tA: boolean;
  tB: boolean;
}

/** Operands for out = matMul(a, b, tA, tB) with out [batch.., m, n] and inner size k. */
function makeCases(rng: Rng): Case[] {
  const cases: Case[] = [];
  const normal = (shape: number[]) =>
    tf.tensor(rng.fillNormal(new Float32Array(shape.reduce((x, y) => x * y, 1))), shape);
  for (const batch of [[], [3]]) {
    const [m, k, n] = [5, 7, 4];
    for (const [tA, tB] of COMBOS) {
      const a = normal([...batch, ...(tA ? [k, m] : [m, k])]);
      const b = normal([...batch, ...(tB ? [n, k] : [k, n])]);
      const w = normal([...batch, m, n]);
      cases.push({ name: `batch [${batch}] tA=${tA} tB=${tB}`, a, b, w, tA, tB });
    }
  }
  return cases;
}

/** d/da and d/db of sum(matMul(a, b, tA, tB) * w). */
function gradsOf(c: Case): Float32Array[] {
  const f = (a: tf.Tensor, b: tf.Tensor) => tf.matMul(a, b, c.tA, c.tB).mul(c.w).sum();
  const [ga, gb] = tf.grads(f)([c.a, c.b]);
  assert.deepEqual(ga.shape, c.a.shape);
  assert.deepEqual(gb.shape, c.b.shape);
  const out = [ga.dataSync() as Float32Array, gb.dataSync() as Float32Array];
  tf.dispose([ga, gb]);
  return out;
}

/** The same gradients in float64 from the definition: out[i,j] = sum_l A[i,l] B[l,j] with A, B the (transposed) operands. */
function referenceGrads(c: Case): Float64Array[] {
  const batch = c.w.shape.length === 3 ? c.w.shape[0] : 1;
  const [m, n] = c.w.shape.slice(-2);
  const k = c.tA ? c.a.shape[c.a.shape.length - 2] : c.a.shape[c.a.shape.length - 1];
  const a = c.a.dataSync();
  const b = c.b.dataSync();
  const w = c.w.dataSync();
  const ga = new Float64Array(a.length);
  const gb = new Float64Array(b.length);
  // Index of A[i,l] in a (a stored as [m,k] or, transposed, [k,m]); likewise B[l,j].
  const ia = (s: number, i: number, l: number) => s * m * k + (c.tA ? l * m + i : i * k + l);
  const ib = (s: number, l: number, j: number) => s * k * n + (c.tB ? j * k + l : l * n + j);
  for (let s = 0; s < batch; s++)
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        const dy = w[s * m * n + i * n + j];
        for (let l = 0; l < k; l++) {
          ga[ia(s, i, l)] += dy * b[ib(s, l, j)];
          gb[ib(s, l, j)] += dy * a[ia(s, i, l)];
        }
      }
  return [ga, gb];
}

test('explicit-transpose MatMul gradient = tfjs default gradient, all four transpose combos (cpu backend)', async () => {
  const info = await initBackend('cpu');
  assert.equal(info.name, 'cpu');
  assert.equal(tf.getBackend(), 'cpu');
  const cases = makeCases(new Rng(31));

  // 1. tfjs's default gradient (initBackend('cpu') does not register ours).
  const defaults = cases.map(gradsOf);
  // Sanity: the default gradients are the definition's (so the comparison below is against a correct baseline).
  for (const [i, c] of cases.entries()) {
    const ref = referenceGrads(c);
    for (const g of [0, 1])
      for (let j = 0; j < ref[g].length; j++)
        assert.ok(
          Math.abs(defaults[i][g][j] - ref[g][j]) < 1e-4,
          `${c.name}: default grad ${g}[${j}] ${defaults[i][g][j]} vs ${ref[g][j]}`,
        );
  }

  // 2. Ours, registered globally.
  useExplicitTransposeMatMulGrad();
  assert.equal(tf.getGradient(tf.BatchMatMul), explicitTransposeMatMulGrad);
  const ours = cases.map(gradsOf);
  for (const [i, c] of cases.entries()) {
    for (const g of [0, 1]) {
      const [x, y] = [defaults[i][g], ours[i][g]];
      assert.equal(y.length, x.length);
      // Same products summed in the same order: equal to float32 rounding (in practice bit-identical).
      for (let j = 0; j < x.length; j++)
        assert.ok(
          Math.abs(x[j] - y[j]) <= 1e-6 * (1 + Math.abs(x[j])),
          `${c.name}: grad ${'ab'[g]}[${j}] default ${x[j]} vs explicit ${y[j]}`,
        );
    }
  }
  tf.dispose(cases.flatMap((c) => [c.a, c.b, c.w]));
});

test('on wasm with tfjs matMuls (where initBackend registers it) the explicit gradient matches the float64 definition', async () => {
  const info = await initBackend('wasm', { matmul: 'wasm' });
  assert.equal(info.name, 'wasm');
  assert.equal(tf.getGradient(tf.BatchMatMul), explicitTransposeMatMulGrad);
  const cases = makeCases(new Rng(32));
  for (const c of cases) {
    const got = gradsOf(c);
    const ref = referenceGrads(c);
    for (const g of [0, 1])
      for (let j = 0; j < ref[g].length; j++)
        assert.ok(
          Math.abs(got[g][j] - ref[g][j]) < 1e-4,
          `${c.name}: grad ${'ab'[g]}[${j}] ${got[g][j]} vs ${ref[g][j]}`,
        );
  }
  tf.dispose(cases.flatMap((c) => [c.a, c.b, c.w]));
});
