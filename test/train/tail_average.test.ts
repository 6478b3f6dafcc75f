/**
 * --tail-average: the uniform average of D over the plan's tail. The mean against hand-computed
 * values, the progress that starts it, the choice among three weight sets, a real tiny run whose
 * average equals the mean of D's weights at the sampled epoch ends, exact resume, and a budget
 * that ends mid-epoch.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend.js';
import { prepareData } from '../../src/data/prepare.js';
import { buildModelForConfig } from '../../src/models/presets.js';
import { validateConfig, type TrainConfig } from '../../src/train/config.js';
import { Trainer } from '../../src/train/trainer.js';
import { runProgress, TailAverage } from '../../src/train/tail_average.js';
import { chooseExport } from '../../src/train/weight_choice.js';
import type { Checkpoint } from '../../src/train/checkpoint.js';
import { loadExportedDiscriminator, readMetrics, type CheckpointMeta } from '../../src/train/run_dir.js';
import { cleanError, ok, runCli } from '../lib/cli.js';
import { trainTiny, WASM_1 } from '../lib/tiny_run.js';

let tmp: string;
before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'semigan-tail-'));
  await initBackend('wasm');
});
after(() => rmSync(tmp, { recursive: true, force: true }));

const values = (t: tf.Tensor) => Array.from(t.dataSync());

test('TailAverage: the mean of its samples, the current weights as one more on request; fixed weights kept', () => {
  const avg = new TailAverage(['w'], () => [2], 0.5);
  for (const w of [
    [1, 2],
    [3, 6],
    [5, 1],
  ])
    avg.add({ w: tf.tensor(w) });
  assert.equal(avg.samples, 3);
  assert.deepEqual(values(avg.mean.w), [3, 3]);
  const current = { w: tf.tensor([7, 7]), fixed: tf.tensor([9]) };
  const out = avg.averaged(current);
  assert.deepEqual([values(out.w), values(out.fixed)], [[3, 3], [9]]);
  // (3 * 3 + 7) / 4 = 4
  assert.deepEqual(values(avg.averaged(current, true).w), [4, 4]);
});

test('runProgress: the share of --epochs or of the budget, whichever is further; an open plan counts time only', () => {
  assert.equal(runProgress({ epochs: 10, maxMinutes: null, open: false }, 4, 1e6), 0.4);
  assert.equal(runProgress({ epochs: 10, maxMinutes: 2, open: false }, 4, 90), 0.75);
  assert.equal(runProgress({ epochs: 10, maxMinutes: 2, open: false }, 9, 90), 0.9);
  assert.equal(runProgress({ epochs: 100_000, maxMinutes: 2, open: true }, 99_999, 30), 0.25);
  assert.equal(runProgress({ epochs: 10, maxMinutes: 1, open: false }, 1, 600), 1);
});

test('chooseExport over three sets: the default first, fewest validation errors win, a tie keeps the earlier', () => {
  const labels = Int32Array.from([0, 1, 1]);
  // Rows predicting [0, 0, 0] (2 errors), [0, 1, 0] (1) and [0, 1, 1] (0).
  const rows = { two: [2, 0, 1, 0, 3, 1], one: [2, 0, 0, 1, 3, 1], none: [2, 0, 0, 1, 1, 3] };
  const of = (r: Record<string, number[]>) => (w: string) => ({ logits: Float32Array.from(r[w]), labels, k: 2 });
  const sets = ['tail', 'averaged', 'current'] as const;
  const tie = chooseExport(of({ tail: rows.one, averaged: rows.one, current: rows.two }), sets);
  assert.deepEqual([tie.weights, tie.valErrors], ['tail', { tail: 1, averaged: 1, current: 2 }]);
  assert.match(
    tie.reason,
    /^1 validation errors of 3 with the tail-averaged weights, 1 with the averaged ones, 2 with the current ones \(a tie keeps the tail-averaged\); temperature/,
  );
  const current = chooseExport(of({ tail: rows.two, averaged: rows.one, current: rows.none }), sets);
  assert.equal(current.weights, 'current');
  assert.doesNotMatch(current.reason, /a tie/);
  assert.deepEqual(chooseExport(null, sets), {
    weights: 'tail',
    reason: 'no validation rows (--val N): the tail-averaged weights, the default',
    valRows: 0,
    temperature: 1,
  });
});

const io = { log: () => {}, progressStream: { write: () => true } };
const base: Partial<TrainConfig> = {
  trainLimit: 300,
  testLimit: 100,
  itersPerEpoch: 3,
  batchSize: 20,
  epochs: 4,
  tailAverage: 0.5,
  backend: 'wasm',
  seed: 3,
  recipe: 'paper',
};

test('a tiny run averages D at the ends of epochs 2-4 of 4 (from half the plan), exports that mean, resumes exactly', async () => {
  const config = validateConfig({ ...base, out: join(tmp, 'a') });
  const data = prepareData(config);
  const make = (c: Readonly<TrainConfig>, onIteration?: (e: number, i: number) => void) =>
    new Trainer(c, buildModelForConfig(c, data.train.shape, data.train.classes.length), data, { ...io, onIteration });
  const atEpochEnd: Record<string, Float32Array>[] = [];
  let midEpoch3: Checkpoint<CheckpointMeta> | null = null;
  const a: Trainer = make(config, (e, i) => {
    if (i === 3)
      atEpochEnd.push(Object.fromEntries(a.d.trainable.map((n) => [n, Float32Array.from(a.d.vars[n].dataSync())])));
    if (e === 3 && i === 1) midEpoch3 = a.checkpoint();
  });
  a.initialize();
  const result = await a.run();
  assert.equal(atEpochEnd.length, 4);
  assert.equal(a.tail!.samples, 3);
  for (const n of a.d.trainable) {
    const mean = atEpochEnd[1][n].map((_, j) => (atEpochEnd[1][n][j] + atEpochEnd[2][n][j] + atEpochEnd[3][n][j]) / 3);
    const got = a.tail!.mean[n].dataSync();
    const worst = mean.reduce((m, v, j) => Math.max(m, Math.abs(v - got[j])), 0);
    assert.ok(worst < 1e-6, `${n}: tail mean off by ${worst}`);
  }
  // The metrics of epoch 1 have no tail figure, epochs 2-4 do; the run exports the tail average.
  const metrics = readMetrics(config.out);
  assert.deepEqual(
    metrics.map((m) => m.test_errors_tail),
    [undefined, metrics[1].test_errors_tail, metrics[2].test_errors_tail, metrics[3].test_errors_tail],
  );
  assert.ok(metrics.slice(1).every((m) => Number.isInteger(m.test_errors_tail)));
  assert.deepEqual(
    [result.weights, result.errorsExported, result.errorsTail],
    ['tail', metrics[3].test_errors_tail, metrics[3].test_errors_tail],
  );
  assert.match(result.weightsReason, /the tail-averaged weights, the default/);

  // Restored in epoch 3 (after the epoch-2 sample) and run to the end: the same tail, tensor for tensor.
  const c = make(validateConfig({ ...base, out: join(tmp, 'c') }));
  c.restore(midEpoch3!);
  assert.equal(c.tail!.samples, 1);
  await c.run();
  for (const n of a.d.trainable) assert.deepEqual(values(c.tail!.mean[n]), values(a.tail!.mean[n]), n);

  // What the checkpoint exports is that mean.
  const { weights } = loadExportedDiscriminator(a.checkpoint());
  for (const n of a.d.trainable) assert.deepEqual(values(weights[n]), values(a.tail!.mean[n]), n);
  tf.dispose(Object.values(weights));
  a.dispose();
  c.dispose();
});

test('a budget that ends mid-epoch in the tail counts the final weights without storing them as a sample', async () => {
  const config = validateConfig({ ...base, maxMinutes: 1e-9, out: join(tmp, 'budget') });
  const data = prepareData(config);
  const t = new Trainer(config, buildModelForConfig(config, data.train.shape, data.train.classes.length), data, io);
  t.initialize();
  const r = await t.run();
  assert.deepEqual([r.stoppedEarly, t.epochIter, r.weights], [true, 1, 'tail']);
  const ckpt = t.checkpoint();
  assert.deepEqual([ckpt.meta.tailSamples, ckpt.meta.tailWithCurrent], [0, true]);
  assert.ok(
    ckpt.tensors['tail/l0.v'].data.every((v) => v === 0),
    'no sample stored',
  );
  // No sample yet: the final weights alone, i.e. the current ones.
  const tail = loadExportedDiscriminator(ckpt, 'tail').weights;
  for (const n of t.d.trainable) assert.deepEqual(values(tail[n]), values(t.d.vars[n]), n);
  tf.dispose(Object.values(tail));
  // Training on: the flag is the end's, not state.
  await t.run();
  assert.equal(t.checkpoint().meta.tailWithCurrent, true);
  assert.equal(t.tail!.samples, 0);
  t.dispose();
});

test('CLI: --tail-average trains, exports the tail average and says so; a share outside (0, 1) is a one-line error', async () => {
  const run = join(tmp, 'cli');
  await trainTiny(run, ['--tail-average', '0.5']);
  const model = join(tmp, 'cli-model');
  ok(await runCli(['export', run, '--out', model, '--format', 'tfjs', ...WASM_1]));
  const meta = JSON.parse(readFileSync(join(model, 'metadata.json'), 'utf8'));
  assert.equal(meta.metrics.weights, 'tail');
  assert.deepEqual(meta.metrics.test, meta.metrics.testTailAveragedWeights);
  assert.match(meta.training.weights, /^uniform average of D's weights over 1 samples from 0.5 of the plan on/);
  assert.match(
    cleanError(await runCli(['train', '--tail-average', '1.5', ...WASM_1])),
    /--tail-average must be a fraction in \(0, 1\); received 1\.5/,
  );
});
