import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend.js';
import { Rng } from '../../src/rng.js';
import { prepareData } from '../../src/data/prepare.js';
import { gatherRows } from '../../src/data/dataset.js';
import { mnistMlp } from '../../src/models/mnist_mlp.js';
import { disposeParams } from '../../src/nn/params.js';
import { weightNormDense, weightNormKernel } from '../../src/nn/weight_norm.js';

before(async () => {
  await initBackend('wasm');
});

test('data-dependent init: every D layer has pre-activation mean 0, std 1 on the init batch (500 real MNIST rows)', () => {
  const data = prepareData({
    dataset: 'mnist',
    dataDir: null,
    labels: 100,
    labelsPerClass: null,
    trainLimit: 2000,
    testLimit: 10,
    seedData: 1,
  });
  const rows = data.initRows.subarray(0, 500);
  assert.equal(rows.length, 500);
  const x = tf.tensor2d(gatherRows(data.train, rows), [500, 784]);
  const model = mnistMlp({ inputDim: 784, numClasses: 10 });
  const d = model.createD(new Rng(3));
  const before = tf.memory().numTensors;
  model.initD(d, x, { noise: null });
  assert.equal(tf.memory().numTensors, before, 'initD leaks no tensors');

  // Apply the layers ourselves: a_i = h_{i-1} W_i + b_i, h_i = relu(a_i) (no relu after the last).
  const sizes = [784, 1000, 500, 250, 250, 250, 10];
  const nLayers = sizes.length - 1;
  let h: tf.Tensor2D = x;
  for (let i = 0; i < nLayers; i++) {
    const v = d.vars;
    const a = weightNormDense(h, v[`l${i}.v`] as tf.Tensor2D, v[`l${i}.g`] as tf.Tensor1D, v[`l${i}.b`] as tf.Tensor1D);
    assert.deepEqual(a.shape, [500, sizes[i + 1]]);
    // Per-unit mean and (population) std in float64.
    const vals = a.dataSync();
    const units = sizes[i + 1];
    let worstMean = 0;
    let worstStd = 0;
    for (let u = 0; u < units; u++) {
      let s = 0;
      for (let r = 0; r < 500; r++) s += vals[r * units + u];
      const m = s / 500;
      let ss = 0;
      for (let r = 0; r < 500; r++) ss += (vals[r * units + u] - m) ** 2;
      const std = Math.sqrt(ss / 500);
      worstMean = Math.max(worstMean, Math.abs(m));
      worstStd = Math.max(worstStd, Math.abs(std - 1));
    }
    assert.ok(worstMean < 1e-4, `layer ${i}: max |mean| = ${worstMean}`);
    assert.ok(worstStd < 1e-3, `layer ${i}: max |std - 1| = ${worstStd}`);
    const next = i < nLayers - 1 ? tf.relu(a) : null;
    if (h !== x) h.dispose();
    a.dispose();
    if (next) h = next as tf.Tensor2D;
  }
  // Only the last layer's g is trained; the hidden gains stay as the init set them.
  assert.deepEqual(
    d.trainable.filter((n) => n.endsWith('.g')),
    [`l${nLayers - 1}.g`],
  );
  x.dispose();
  disposeParams(d);
});

test("weightNormKernel: W = v * g / ||v|| column-wise, so column j has norm |g_j| and v_j's direction", () => {
  // v columns: [3,4] (norm 5), [1,0] (norm 1), [0,-2] (norm 2); g = [2, -0.5, 3].
  // W = [[3*2/5, 1*-0.5/1, 0], [4*2/5, 0, -2*3/2]] = [[1.2, -0.5, 0], [1.6, 0, -3]].
  const v = tf.tensor2d([
    [3, 1, 0],
    [4, 0, -2],
  ]);
  const g = tf.tensor1d([2, -0.5, 3]);
  const w = weightNormKernel(v, g);
  const got = Array.from(w.dataSync());
  const want = [1.2, -0.5, 0, 1.6, 0, -3];
  for (let i = 0; i < 6; i++) assert.ok(Math.abs(got[i] - want[i]) < 1e-6, `W[${i}] = ${got[i]}, want ${want[i]}`);
  tf.dispose([v, g, w]);

  // Random v [50, 7]: column norms are |g| whatever v's scale.
  const rng = new Rng(11);
  const v2 = tf.tensor2d(rng.fillNormal(new Float32Array(50 * 7), 3), [50, 7]);
  const gVals = [0.5, -1, 2, 3.5, -0.25, 1, 10];
  const g2 = tf.tensor1d(gVals);
  const w2 = weightNormKernel(v2, g2);
  const norms = w2.square().sum(0);
  for (const [j, n] of Array.from(norms.dataSync()).entries()) {
    assert.ok(
      Math.abs(Math.sqrt(n) - Math.abs(gVals[j])) < 1e-5 * Math.abs(gVals[j]),
      `column ${j}: norm ${Math.sqrt(n)} vs |g| ${Math.abs(gVals[j])}`,
    );
  }
  // weightNormDense = x W + b.
  const xv = new Float32Array(50);
  [xv[0], xv[1], xv[49]] = [1, 2, -1];
  const x = tf.tensor2d(xv, [1, 50]);
  const b = tf.tensor1d([1, 2, 3, 4, 5, 6, 7]);
  const y = weightNormDense(x, v2, g2, b).dataSync();
  const W = w2.dataSync();
  for (let j = 0; j < 7; j++) {
    const ref = W[0 * 7 + j] + 2 * W[1 * 7 + j] - W[49 * 7 + j] + (j + 1);
    assert.ok(Math.abs(y[j] - ref) < 1e-5, `dense unit ${j}: ${y[j]} vs ${ref}`);
  }
  tf.dispose([v2, g2, w2, norms, x, b]);
});

test('Rng: same seed gives the same stream, different seeds differ', () => {
  const a = new Rng(123);
  const b = new Rng(123);
  const c = new Rng(124);
  const sa = Array.from({ length: 1000 }, () => a.nextUint32());
  const sb = Array.from({ length: 1000 }, () => b.nextUint32());
  const sc = Array.from({ length: 1000 }, () => c.nextUint32());
  assert.deepEqual(sa, sb);
  assert.ok(sa.filter((v, i) => v === sc[i]).length < 5, 'seeds 123 and 124 give different streams');
  for (const v of sa) assert.ok(Number.isInteger(v) && v >= 0 && v < 2 ** 32);
  // Uniforms in [0, 1), ints in [0, n).
  const r = new Rng(5);
  for (let i = 0; i < 10000; i++) {
    const u = r.uniform();
    assert.ok(u >= 0 && u < 1);
    const k = r.int(7);
    assert.ok(Number.isInteger(k) && k >= 0 && k < 7);
  }
});

test('Rng: getState/setState resumes the exact stream (uniform, normal, permutation)', () => {
  const r = new Rng(99);
  r.fillNormal(new Float32Array(37)); // advance, odd length
  const state = r.getState();
  assert.equal(state.length, 4);
  const draw = (g: Rng) => ({
    u: Array.from(g.fillUniform(new Float32Array(10))),
    n: Array.from(g.fillNormal(new Float32Array(11), 0.5)),
    p: Array.from(g.permutation(20)),
    x: g.nextUint32(),
  });
  const first = draw(r);
  // Same object, state set back.
  r.setState(state);
  assert.deepEqual(draw(r), first);
  // A fresh generator from the state (as restore() does), through a JSON round trip (as the checkpoint header).
  const copy = Rng.fromState(JSON.parse(JSON.stringify(state)));
  assert.deepEqual(draw(copy), first);
  // getState is a snapshot, not a live view.
  assert.notDeepEqual(r.getState(), state);
});

test('Rng.fillNormal: mean and std on 1e5 samples', () => {
  for (const std of [1, 0.3]) {
    const n = 100_000;
    const x = new Rng(2024).fillNormal(new Float32Array(n), std);
    let s = 0;
    for (const v of x) s += v;
    const m = s / n;
    let ss = 0;
    for (const v of x) ss += (v - m) ** 2;
    const sd = Math.sqrt(ss / (n - 1));
    // Standard errors: mean std/sqrt(n) = 0.0032*std; std ~ std/sqrt(2n) = 0.0022*std. Allow ~5 s.e.
    assert.ok(Math.abs(m) < 0.016 * std, `mean ${m} (std ${std})`);
    assert.ok(Math.abs(sd - std) < 0.011 * std, `std ${sd} (want ${std})`);
    // Tails of a normal: P(|z| > 2) = 0.0455, so ~4550 +- 66 of 1e5.
    const tails = x.filter((v) => Math.abs(v) > 2 * std).length;
    assert.ok(tails > 4200 && tails < 4900, `|z| > 2 count ${tails}`);
  }
});

test('Rng.permutation is a permutation of 0..n-1 and differs between draws', () => {
  const r = new Rng(8);
  for (const n of [1, 2, 10, 1000]) {
    const p = r.permutation(n);
    assert.equal(p.length, n);
    assert.deepEqual(
      Array.from(p).sort((a, b) => a - b),
      Array.from({ length: n }, (_, i) => i),
    );
  }
  const p1 = Array.from(r.permutation(1000));
  const p2 = Array.from(r.permutation(1000));
  assert.notDeepEqual(p1, p2);
  assert.ok(p1.filter((v, i) => v === i).length < 10, 'not (nearly) the identity');
  // Uniform: over 20000 permutations of 3 each of the 6 orders has ~3333 +- 53 draws.
  const counts = new Map<string, number>();
  for (let i = 0; i < 20000; i++) {
    const k = Array.from(r.permutation(3)).join('');
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  assert.equal(counts.size, 6);
  for (const [k, c] of counts) assert.ok(c > 3050 && c < 3620, `order ${k}: ${c}`);
});

test('foldD: applyD on the folded kernels gives the same logits and features, bit for bit, and the same input gradient', () => {
  const model = mnistMlp({ inputDim: 784, numClasses: 10 });
  const d = model.createD(new Rng(5));
  const x = tf.tensor2d(new Rng(6).fillUniform(new Float32Array(7 * 784)), [7, 784]);
  const folded = model.foldD!(d.vars);
  // Same noise for both passes: two Rngs in the same state.
  const plain = model.applyD(d.vars, x, { noise: new Rng(9) });
  const viaFold = model.applyD(folded, x, { noise: new Rng(9) });
  assert.deepEqual(Array.from(viaFold.logits.dataSync()), Array.from(plain.logits.dataSync()));
  assert.deepEqual(Array.from(viaFold.features.dataSync()), Array.from(plain.features.dataSync()));
  // The G step's path: the gradient reaches the input through the folded kernels.
  const dx = (dd: typeof folded) =>
    tf.grad((xx: tf.Tensor) => model.applyD(dd, xx as tf.Tensor2D, { noise: null }).features.mean())(x);
  const [a, b] = [dx(d.vars), dx(folded)];
  assert.deepEqual(Array.from(b.dataSync()), Array.from(a.dataSync()));
  assert.ok(a.abs().sum().dataSync()[0] > 0, 'the input gradient is 0');
  tf.dispose([x, plain.logits, plain.features, viaFold.logits, viaFold.features, a, b]);
  for (let i = 0; i < 6; i++) folded[`l${i}.W`].dispose();
  disposeParams(d);
});

test('Identity (tf.clone) shares the buffer on wasm: same values, and the source outlives a disposed clone and vice versa', () => {
  const a = tf.tensor1d([1, 2, 3]);
  const c = a.clone();
  assert.equal(c.dataId, a.dataId, 'clone copied the buffer');
  assert.deepEqual(Array.from(c.dataSync()), [1, 2, 3]);
  c.dispose();
  assert.deepEqual(Array.from(a.dataSync()), [1, 2, 3]);
  const c2 = a.clone();
  a.dispose();
  assert.deepEqual(Array.from(c2.dataSync()), [1, 2, 3]);
  c2.dispose();
});
