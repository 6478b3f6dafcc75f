/**
 * The terms beyond the paper (--consistency, --entropy, --pull-away) against closed forms and
 * hand-computed values, and in the Trainer: off by default (the paper's numbers unchanged), on
 * they train with finite losses.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend.js';
import { prepareData } from '../../src/data/prepare.js';
import { buildModelForConfig } from '../../src/models/presets.js';
import { mnistMlp } from '../../src/models/mnist_mlp.js';
import { validateConfig } from '../../src/train/config.js';
import { conditionalEntropy, consistencyLoss, pullAwayLoss } from '../../src/train/losses.js';
import { readMetrics } from '../../src/train/run_dir.js';
import { Trainer } from '../../src/train/trainer.js';

const scalar = (t: tf.Scalar) => {
  const v = t.dataSync()[0];
  t.dispose();
  return v;
};
const near = (got: number, want: number, tol: number, what: string) =>
  assert.ok(Math.abs(got - want) <= tol, `${what}: ${got} vs ${want}`);

/** A few iterations on a slice of real MNIST. */
const TINY_RUN = {
  dataset: 'mnist',
  labels: 100,
  trainLimit: 1000,
  testLimit: 100,
  epochs: 1,
  backend: 'wasm',
  preset: 'mnist-mlp',
} as const;

test('conditional entropy: log K for equal logits, ~0 for a confident row, a 2-class row by hand; finite at huge logits', async () => {
  await initBackend('wasm');
  near(scalar(conditionalEntropy(tf.zeros([3, 10]) as tf.Tensor2D)), Math.log(10), 1e-6, 'uniform over 10');
  near(scalar(conditionalEntropy(tf.tensor2d([[50, 0, 0]]))), 0, 1e-6, 'confident');
  // p = sigmoid(1), 1 - p: H = -(p log p + (1 - p) log(1 - p)).
  const p = 1 / (1 + Math.exp(-1));
  near(
    scalar(conditionalEntropy(tf.tensor2d([[1, 0]]))),
    -(p * Math.log(p) + (1 - p) * Math.log(1 - p)),
    1e-6,
    '2 classes',
  );
  // The mean over rows: (log 4 + 0) / 2.
  near(
    scalar(
      conditionalEntropy(
        tf.tensor2d([
          [0, 0, 0, 0],
          [1e4, 0, 0, 0],
        ]),
      ),
    ),
    Math.log(4) / 2,
    1e-5,
    'mean of two rows',
  );
});

test('consistency: 0 for identical passes and for shifted logits (same softmax); two rows by hand', async () => {
  await initBackend('wasm');
  const a = tf.tensor2d([
    [1, 2, 3],
    [0, -1, 4],
  ]);
  near(scalar(consistencyLoss(a, a)), 0, 1e-12, 'identical');
  near(scalar(consistencyLoss(a, a.add(5) as tf.Tensor2D)), 0, 1e-7, 'shifted');
  // Row 1: p = (1/2, 1/2) vs (1, 0) -> (1/4 + 1/4); row 2: equal -> 0. Mean over 2 rows x 2 classes = 1/8.
  near(
    scalar(
      consistencyLoss(
        tf.tensor2d([
          [0, 0],
          [3, 1],
        ]),
        tf.tensor2d([
          [60, 0],
          [3, 1],
        ]),
      ),
    ),
    1 / 8,
    1e-6,
    'by hand',
  );
});

test('pull-away: 0 for orthogonal features, 1 for parallel ones, scale-free; three rows by hand', async () => {
  await initBackend('wasm');
  near(scalar(pullAwayLoss(tf.eye(4) as tf.Tensor2D)), 0, 1e-7, 'orthogonal');
  near(
    scalar(
      pullAwayLoss(
        tf.tensor2d([
          [1, 2],
          [2, 4],
          [-3, -6],
        ]),
      ),
    ),
    1,
    1e-6,
    'parallel',
  );
  // f = (1,0), (1,1), (0,2): cos^2 = 1/2 (1-2), 0 (1-3), 1/2 (2-3); each pair twice over 3*2 ordered pairs.
  near(
    scalar(
      pullAwayLoss(
        tf.tensor2d([
          [1, 0],
          [1, 1],
          [0, 2],
        ]),
      ),
    ),
    (2 * (0.5 + 0 + 0.5)) / 6,
    1e-6,
    'by hand',
  );
  near(
    scalar(
      pullAwayLoss(
        tf.tensor2d([
          [3, 4],
          [30, 40],
        ]),
      ),
    ),
    1,
    1e-6,
    'scale',
  );
  assert.equal(scalar(pullAwayLoss(tf.tensor2d([[1, 2]]))), 0); // one row: no pairs
});

test('Trainer: the terms are off by default (the paper recipe), and on they train with finite losses', async () => {
  await initBackend('wasm');
  const base = { ...TINY_RUN, itersPerEpoch: 3 } as const;
  assert.deepEqual(
    [validateConfig({}).consistency, validateConfig({}).entropy, validateConfig({}).pullAway],
    [0, 0, 0],
  );
  const run = async (extra: Record<string, number>) => {
    const config = validateConfig({ ...base, ...extra, out: mkdtempSync(join(tmpdir(), 'semigan-beyond-')) });
    const data = prepareData(config);
    const t = new Trainer(config, buildModelForConfig(config, data.train.shape, 10), data, {
      log: () => {},
      progressStream: { write: () => true, isTTY: false },
    });
    t.initialize();
    await t.run();
    t.dispose();
    return readMetrics(config.out)[0];
  };
  const paper = await run({});
  const all = await run({ consistency: 0.1, entropy: 0.1, pullAway: 0.8 });
  for (const k of ['loss_lab', 'loss_unl', 'loss_gen'] as const) assert.ok(Number.isFinite(all[k]), `${k}: ${all[k]}`);
  // The first D step's logged losses exclude the new terms but its update includes them: the runs part ways.
  assert.notEqual(all.loss_unl, paper.loss_unl);
});

test('Trainer: the consistency term compares two looks at the same unlabeled rows (0 without noise, live with it)', async () => {
  await initBackend('wasm');
  const base = { ...TINY_RUN, itersPerEpoch: 1 } as const;
  // D's weights after one D step (and one G step, which does not touch them).
  const dAfterOneStep = async (consistency: number, noise: number) => {
    const config = validateConfig({ ...base, consistency, out: mkdtempSync(join(tmpdir(), 'semigan-ct-')) });
    const data = prepareData(config);
    const model = mnistMlp({ inputDim: 784, numClasses: 10, inputNoise: noise, hiddenNoise: noise });
    const t = new Trainer(config, model, data, { log: () => {}, progressStream: { write: () => true, isTTY: false } });
    t.initialize();
    await t.run();
    const w = t.checkpoint().tensors['d/l4.v'].data as Float32Array;
    t.dispose();
    return w;
  };
  const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
  // Noise-free D: both looks give the same softmax, the term and its gradient are 0, so the step
  // equals the step without it (up to float rounding). Slicing any other rows as the second look
  // would add a gradient and move the weights by ~lr.
  const plain = await dAfterOneStep(0, 0);
  assert.ok(maxDiff(plain, await dAfterOneStep(0.1, 0)) < 1e-6, 'noise-free: the term changed the step');
  // With the paper's noise the two looks differ and the term's weight changes the step (both runs
  // draw the same noise: the same rows go through D).
  assert.ok(maxDiff(await dAfterOneStep(0.1, 0.3), await dAfterOneStep(10, 0.3)) > 1e-4, 'noisy: the term did nothing');
});

test('--recipe: ct sets consistency, entropy and the warm-up; explicit options win; paper is the defaults', () => {
  const ct = validateConfig({ recipe: 'ct' });
  assert.deepEqual([ct.consistency, ct.entropy, ct.emaWarmup], [0.1, 0.1, true]);
  const mine = validateConfig({ recipe: 'ct', entropy: 0, consistency: 0.3 });
  assert.deepEqual([mine.consistency, mine.entropy, mine.emaWarmup], [0.3, 0, true]);
  assert.deepEqual({ ...validateConfig({ recipe: 'paper' }) }, { ...validateConfig({}) });
  assert.throws(
    () => validateConfig({ recipe: 'best' }),
    (e: Error) => e.message === '--recipe must be one of paper, ct, ct-tail; received "best"',
  );
});
