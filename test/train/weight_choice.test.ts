/**
 * The exported weight set and temperature: chosen on validation rows by hand-made logits, and,
 * in a real tiny run, from the validation rows only (a test set of noise changes nothing).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '../../src/backend.js';
import { prepareData, type TrainData } from '../../src/data/prepare.js';
import { buildModelForConfig } from '../../src/models/presets.js';
import { validateConfig } from '../../src/train/config.js';
import { Trainer } from '../../src/train/trainer.js';
import { chooseExport, type ValidationLogits, type WeightSet } from '../../src/train/weight_choice.js';
import { fitTemperature } from '../../src/eval/calibration.js';
import { readCheckpoint } from '../../src/train/checkpoint.js';
import { loadExportedDiscriminator, type CheckpointMeta } from '../../src/train/run_dir.js';
import * as tf from '@tensorflow/tfjs';
import { Classifier } from '../../src/export/classifier.js';
import { OnnxClassifier } from '../../src/export/onnx_classifier.js';
import { cleanError, ok, runCli } from '../lib/cli.js';
import { trainTiny, WASM_1 } from '../lib/tiny_run.js';
import { allRows, memoryRows } from '../../src/data/rows.js';

const dirs: string[] = [];
const tempDir = (prefix: string) => (dirs.push(mkdtempSync(join(tmpdir(), prefix))), dirs.at(-1)!);
before(async () => {
  await initBackend('wasm');
});
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** Validation logits per weight set from fixed rows (k = 2). */
const fixed =
  (rows: Partial<Record<WeightSet, number[]>>, labels: number[]): ValidationLogits =>
  (w) => ({ logits: Float32Array.from(rows[w]!), labels: Int32Array.from(labels), k: 2 });

test('chooseExport: fewer validation errors wins, a tie keeps the averaged weights, none: averaged at T 1', () => {
  const labels = [0, 1, 1];
  // averaged: rows predict 0, 0, 0 -> 2 errors; current: 0, 1, 0 -> 1 error.
  const c = chooseExport(fixed({ averaged: [2, 0, 1, 0, 3, 1], current: [2, 0, 0, 1, 3, 1] }, labels));
  assert.equal(c.weights, 'current');
  assert.deepEqual(c.valErrors, { averaged: 2, current: 1 });
  assert.equal(c.valRows, 3);
  assert.equal(
    c.temperature,
    fitTemperature(Float32Array.from([2, 0, 0, 1, 3, 1]), Int32Array.from(labels), 2).temperature,
  );
  assert.match(c.reason, /^2 validation errors of 3 with the averaged weights, 1 with the current ones; temperature/);
  const tie = chooseExport(fixed({ averaged: [2, 0, 0, 1, 3, 1], current: [2, 0, 0, 1, 3, 1] }, labels));
  assert.equal(tie.weights, 'averaged');
  assert.match(tie.reason, /\(a tie keeps the averaged\)/);
  assert.deepEqual(chooseExport(null), {
    weights: 'averaged',
    reason: 'no validation rows (--val N): the averaged weights, the default',
    valRows: 0,
    temperature: 1,
  });
});

test('a run chooses on its validation rows only: a test set of noise gives the same choice', async () => {
  const tmp = tempDir('semigan-choice-');
  const config = validateConfig({
    trainLimit: 400,
    testLimit: 50,
    itersPerEpoch: 3,
    batchSize: 10,
    epochs: 1,
    val: 30,
    backend: 'wasm',
    seed: 2,
  });
  const data = prepareData(config);
  assert.equal(data.val!.length, 30);
  const noisy: TrainData = {
    ...data,
    test: {
      ...data.test,
      x: memoryRows(
        allRows(data.test.x).map((_, i) => ((i * 7919) % 101) / 101),
        data.test.x.dim,
      ),
      y: data.test.y.map(() => 3),
    },
  };
  const choices = [];
  for (const [name, d] of [
    ['real', data],
    ['noise', noisy],
  ] as const) {
    const c = { ...config, out: join(tmp, name) };
    const t = new Trainer(c, buildModelForConfig(c, d.train.shape, d.train.classes.length), d, {
      log: () => {},
      progressStream: { write: () => true },
    });
    t.initialize();
    const result = await t.run();
    const v = t.validationLogits()!('averaged');
    assert.deepEqual(
      v.labels,
      Int32Array.from(data.val!, (r) => data.train.y[r]),
      'the labels it reads are the validation rows of the training set',
    );
    choices.push({ weights: result.weights, temperature: result.temperature, reason: result.weightsReason });
    t.dispose();
  }
  assert.deepEqual(choices[1], choices[0]);
  assert.match(choices[0].reason, /validation errors of 30/);
});

test('calibrate RUN --val N records the choice in the checkpoint, config.json and result.json; export applies it', async () => {
  const tmp = tempDir('semigan-calibrate-');
  const run = join(tmp, 'run');
  await trainTiny(run);
  const before = JSON.parse(readFileSync(join(run, 'result.json'), 'utf8'));
  assert.deepEqual([before.weights, before.temperature], ['averaged', 1]);
  const r = ok(await runCli(['calibrate', run, '--val', '20', '--json', ...WASM_1]));
  const choice = JSON.parse(r.stdout);
  assert.equal(choice.valRows, 20);
  assert.ok(choice.temperature > 0 && choice.temperature !== 1);
  assert.deepEqual(readCheckpoint<CheckpointMeta>(join(run, 'checkpoint.bin')).meta.exportChoice, choice);
  assert.deepEqual(JSON.parse(readFileSync(join(run, 'config.json'), 'utf8')).exported, choice);
  const after = JSON.parse(readFileSync(join(run, 'result.json'), 'utf8'));
  assert.deepEqual(
    [after.weights, after.temperature, after.weightsReason],
    [choice.weights, choice.temperature, choice.reason],
  );
  // The export divides the logits by the temperature: its metadata says so and the self-check passed.
  const model = join(tmp, 'model');
  ok(await runCli(['export', run, '--out', model, ...WASM_1]));
  const meta = JSON.parse(readFileSync(join(model, 'metadata.json'), 'utf8'));
  assert.equal(meta.postprocessing.temperature, choice.temperature);
  assert.equal(meta.metrics.weights, choice.weights);
  // tfjs and ONNX give the same tempered logits: D's (the chosen set, noise off) divided by T.
  const ckpt = readCheckpoint<CheckpointMeta>(join(run, 'checkpoint.bin'));
  const { model: gan, weights } = loadExportedDiscriminator(ckpt);
  const x = Float32Array.from({ length: 5 * 784 }, (_, i) => ((i * 37) % 255) / 255);
  const d = tf.tidy(() => gan.applyD(weights, tf.tensor2d(x, [5, 784]), { noise: null }).logits.dataSync());
  tf.dispose(Object.values(weights));
  const tfjs = await Classifier.load(model);
  const onnx = await OnnxClassifier.load(model);
  const [a, b] = [tfjs.predictLogits(x, 5), await onnx.predictLogits(x, 5)];
  for (let i = 0; i < d.length; i++) {
    assert.ok(Math.abs(a[i] - d[i] / choice.temperature) < 1e-4, `tfjs logit ${i}`);
    assert.ok(Math.abs(b[i] - a[i]) < 1e-4, `onnx logit ${i}`);
  }
  tfjs.dispose();
  onnx.dispose();
  assert.equal(
    cleanError(await runCli(['calibrate', run, '--val', '7', ...WASM_1])),
    'error: --val 7 is not divisible by the 10 classes; use a multiple of 10 (the same number from each class)',
  );
});
