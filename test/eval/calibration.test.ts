/** Temperature scaling and the expected calibration error against brute force and hand-computed values. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { calibration, fitTemperature, nllAtTemperature, TEMPERATURE_RANGE } from '../../src/eval/calibration.js';
import { Rng } from '../../src/rng.js';

test('nllAtTemperature matches a hand computation', () => {
  // One row, logits [2, 0], label 0, T = 2: -log(e^1 / (e^1 + e^0)) = log(1 + e^-1).
  const nll = nllAtTemperature(Float32Array.from([2, 0]), Int32Array.from([0]), 2, 2);
  assert.ok(Math.abs(nll - Math.log(1 + Math.exp(-1))) < 1e-12);
});

test('fitTemperature finds the NLL minimum a brute-force search finds', () => {
  // Overconfident logits: 300 rows of 4 classes, scaled by 5, 25% of labels shuffled.
  const rng = new Rng(11);
  const n = 300;
  const k = 4;
  const logits = new Float32Array(n * k);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = Math.floor(rng.uniform() * k);
    for (let j = 0; j < k; j++) logits[i * k + j] = 5 * ((j === c ? 1.5 : 0) + rng.uniform());
    labels[i] = rng.uniform() < 0.25 ? Math.floor(rng.uniform() * k) : c;
  }
  const { temperature, atBound } = fitTemperature(logits, labels, k);
  assert.equal(atBound, false);
  let best = { t: 0, nll: Infinity };
  for (let t = 0.5; t <= 20; t += 0.001) {
    const nll = nllAtTemperature(logits, labels, k, t);
    if (nll < best.nll) best = { t, nll };
  }
  assert.ok(temperature > 1, `overconfident logits need T > 1 (got ${temperature})`);
  assert.ok(Math.abs(temperature - best.t) < 0.002, `bisection ${temperature} vs grid ${best.t}`);
  assert.ok(nllAtTemperature(logits, labels, k, temperature) <= best.nll + 1e-12);
});

test('fitTemperature: every row right with a margin runs to the edge of its range and says so', () => {
  const logits = Float32Array.from([3, 0, 0, 4, 5, 1]);
  const labels = Int32Array.from([0, 1, 0]);
  assert.deepEqual(fitTemperature(logits, labels, 2), { temperature: TEMPERATURE_RANGE[0], atBound: true });
});

test('calibration: ECE and reliability bins by hand', () => {
  // 4 rows, 2 classes; the top probability is sigmoid of the logit gap:
  // gap ln 19 -> 0.95 (right), ln 19 -> 0.95 (wrong), ln 3 -> 0.75 (right), 0 -> 0.5 (argmax class 0, right).
  const l19 = Math.log(19);
  const l3 = Math.log(3);
  const logits = Float32Array.from([l19, 0, l19, 0, l3, 0, 0, 0]);
  const labels = Int32Array.from([0, 1, 0, 0]);
  const { ece, bins } = calibration(logits, labels, 2, 1, 10);
  const expected = 0.25 * Math.abs(1 - 0.5) + 0.25 * Math.abs(1 - 0.75) + 0.5 * Math.abs(0.5 - 0.95);
  assert.ok(Math.abs(ece - expected) < 1e-6, `${ece} vs ${expected}`);
  assert.deepEqual(
    bins.map((b) => b.count),
    [0, 0, 0, 0, 0, 1, 0, 1, 0, 2],
  );
  assert.ok(Math.abs(bins[9].confidence - 0.95) < 1e-6 && bins[9].accuracy === 0.5);
  // T = 2 halves the gaps: 0.95 -> sqrt(19) / (1 + sqrt(19)) = 0.81, 0.75 -> 0.63, 0.5 stays.
  assert.deepEqual(
    calibration(logits, labels, 2, 2, 10).bins.map((b) => b.count),
    [0, 0, 0, 0, 0, 1, 1, 0, 2, 0],
  );
});
