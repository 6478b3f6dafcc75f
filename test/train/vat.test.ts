/**
 * VAT: the KL term by hand, and on a real (tiny) model the adversarial perturbation has the
 * norm asked for and moves D's class distribution more than random directions of that norm do.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend.js';
import { prepareData } from '../../src/data/prepare.js';
import { gatherRows } from '../../src/data/dataset.js';
import { buildModelForConfig } from '../../src/models/presets.js';
import { validateConfig } from '../../src/train/config.js';
import { classKl, unitRows } from '../../src/train/losses.js';
import { Trainer } from '../../src/train/trainer.js';
import { Rng } from '../../src/rng.js';

before(async () => {
  await initBackend('wasm');
});

test('classKl: KL(softmax(a) || softmax(b)) by hand, 0 for equal logits', () => {
  const a = tf.tensor2d([[Math.log(3), 0]]); // p = (0.75, 0.25)
  const b = tf.tensor2d([[0, 0]]); // q = (0.5, 0.5)
  const want = 0.75 * Math.log(0.75 / 0.5) + 0.25 * Math.log(0.25 / 0.5);
  assert.ok(Math.abs(classKl(a, b).dataSync()[0] - want) < 1e-6);
  assert.ok(Math.abs(classKl(a, a).dataSync()[0]) < 1e-7);
  const u = unitRows(
    tf.tensor2d([
      [3, 4],
      [0, 0],
    ]),
  ).arraySync();
  assert.deepEqual(
    u[0].map((v) => Math.round(v * 1e6) / 1e6),
    [0.6, 0.8],
  );
  assert.deepEqual(u[1], [0, 0]);
  tf.dispose([a, b]);
});

test('the virtual adversary: norm vatEps per row, and a larger KL than random directions of that norm', async () => {
  const config = validateConfig({
    trainLimit: 300,
    testLimit: 20,
    itersPerEpoch: 2,
    batchSize: 20,
    epochs: 1,
    vat: 1,
    vatEps: 2,
    seed: 4,
  });
  const data = prepareData(config);
  const t = new Trainer(config, buildModelForConfig(config, data.train.shape, 10), data, {
    log: () => {},
    progressStream: { write: () => true },
  });
  t.initialize();
  await t.run(); // a trained-a-little D (two steps with the VAT term: it runs, finite)
  const n0 = tf.memory().numTensors;
  tf.tidy(() => {
    const x = tf.tensor2d(
      gatherRows(
        data.train,
        Int32Array.from({ length: 20 }, (_, i) => i),
      ),
      [20, 784],
    );
    const { x: moved, target } = t['virtualAdversary'](x);
    const r = moved.sub(x);
    const norms = r.square().sum(1).sqrt().dataSync();
    for (const v of norms) assert.ok(Math.abs(v - 2) < 1e-3, `row norm ${v}`);
    // Noise-free comparison: the adversarial move against 5 random moves of the same norm.
    const p = t.model.applyD(t.d.vars, x, { noise: null }).logits;
    const klOf = (y: tf.Tensor2D) => classKl(p, t.model.applyD(t.d.vars, y, { noise: null }).logits).dataSync()[0];
    const adv = klOf(moved);
    const rng = new Rng(9);
    const random = Array.from({ length: 5 }, () =>
      klOf(x.add(unitRows(tf.tensor2d(rng.fillNormal(new Float32Array(20 * 784), 1), [20, 784])).mul(2))),
    );
    assert.ok(adv > Math.max(...random), `adversarial KL ${adv} vs random ${random}`);
    assert.equal(target.shape.join(','), '20,10');
  });
  assert.equal(tf.memory().numTensors, n0, 'no tensor leak');
  t.dispose();
});
