/**
 * Adam and the EMA of D's weights against hand-computed values: the official improved-gan update
 * (eps inside the square root) and the bias-corrected weighted mean of past weights.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend.js';
import { makeParams } from '../../src/nn/params.js';
import { Adam } from '../../src/train/adam.js';
import { decayAt, Ema } from '../../src/train/ema.js';

const close = (got: ArrayLike<number>, want: number[], tol: number, what: string) =>
  want.forEach((w, i) =>
    assert.ok(Math.abs(got[i] - w) <= tol * (1 + Math.abs(w)), `${what}[${i}]: ${got[i]} vs ${w}`),
  );

for (const native of [false, true]) {
  test(`Adam: two steps by hand (beta1 0.5, beta2 0.999, eps inside the sqrt)${native ? ', native updates' : ', tfjs ops'}`, async () => {
    await initBackend('wasm', native ? {} : { nativeAddon: '/nonexistent/semigan_native.node' });
    const p = makeParams({ w: tf.tensor1d([1, -2, 0.5]) }, ['w']);
    const adam = new Adam(p, { beta1: 0.5, beta2: 0.999, epsilon: 1e-8 });
    const steps = [
      [0.2, -0.4, 0],
      [0.1, 0.3, -1],
    ];
    // By hand: m_t = 0.5 m + 0.5 g; v_t = 0.999 v + 0.001 g^2; p -= lr * (m / (1 - 0.5^t)) / sqrt(v / (1 - 0.999^t) + eps).
    let m = [0, 0, 0];
    let v = [0, 0, 0];
    let w = [1, -2, 0.5];
    steps.forEach((g, t) => {
      tf.tidy(() => adam.apply({ w: tf.tensor1d(g) }, 0.01));
      m = m.map((mi, i) => 0.5 * mi + 0.5 * g[i]);
      v = v.map((vi, i) => 0.999 * vi + 0.001 * g[i] * g[i]);
      const c1 = 1 - 0.5 ** (t + 1);
      const c2 = 1 - 0.999 ** (t + 1);
      w = w.map((wi, i) => wi - (0.01 * (m[i] / c1)) / Math.sqrt(v[i] / c2 + 1e-8));
      close(p.vars.w.dataSync(), w, 1e-6, `w after step ${t + 1}`);
      close(adam.state.m.w.dataSync(), m, 1e-6, `m after step ${t + 1}`);
      close(adam.state.v.w.dataSync(), v, 1e-6, `v after step ${t + 1}`);
    });
    // The first step moves every parameter with a non-zero gradient by ~lr, whatever its size.
    assert.equal(adam.state.t, 2);
    assert.throws(() => adam.apply({}, 0.01), /Adam: no gradient for w/);
    adam.dispose();
    p.vars.w.dispose();
  });

  test(`EMA: the bias-corrected average is the weighted mean of past weights${native ? ', native updates' : ', tfjs ops'}`, async () => {
    await initBackend('wasm', native ? {} : { nativeAddon: '/nonexistent/semigan_native.node' });
    const p = makeParams({ w: tf.tensor1d([0, 0]), fixed: tf.tensor1d([7]) }, ['w']);
    const ema = new Ema(p, 0.9);
    const history = [
      [1, 2],
      [3, -2],
      [5, 0],
    ];
    for (const h of history) {
      p.vars.w.assign(tf.tensor1d(h));
      ema.update();
    }
    // weights 0.1 * 0.9^(3 - s) for s = 1..3, divided by their sum 1 - 0.9^3.
    const wts = [0.1 * 0.81, 0.1 * 0.9, 0.1];
    const mean = [0, 1].map((j) => history.reduce((s, h, i) => s + wts[i] * h[j], 0) / (1 - 0.9 ** 3));
    const avg = ema.averaged();
    close(avg.w.dataSync(), mean, 1e-6, 'averaged w');
    assert.deepEqual(Array.from(avg.fixed.dataSync()), [7]); // not trained: its current value
    tf.dispose(Object.values(avg));
    ema.dispose();
    for (const t of Object.values(p.vars)) t.dispose();
  });
}

test('EMA with --ema-warmup: decay min(d, (1 + t) / (10 + t)) at update t, and the matching bias correction', async () => {
  await initBackend('wasm');
  const p = makeParams({ w: tf.tensor1d([0]) }, ['w']);
  const ema = new Ema(p, 0.9, true);
  const history = [4, -2, 10];
  for (const h of history) {
    p.vars.w.assign(tf.tensor1d([h]));
    ema.update();
  }
  // By hand: decays 1/10, 2/11, 3/12 (all below 0.9); shadow = sum_s h_s (1 - d_s) prod_{t > s} d_t.
  const d = [0.1, 2 / 11, 0.25];
  let shadow = 0;
  history.forEach((h, s) => (shadow = shadow * d[s] + h * (1 - d[s])));
  const remaining = d[0] * d[1] * d[2];
  const avg = ema.averaged();
  close(ema.shadow.w.dataSync(), [shadow], 1e-6, 'shadow');
  close(avg.w.dataSync(), [shadow / (1 - remaining)], 1e-6, 'averaged');
  // Later updates reach the cap: min(0.9, 101/110) = 0.9; without warm-up the decay is constant.
  assert.equal(decayAt(0.9, true, 100), 0.9);
  assert.equal(decayAt(0.9, false, 0), 0.9);
  tf.dispose(Object.values(avg));
  ema.dispose();
  p.vars.w.dispose();
});
