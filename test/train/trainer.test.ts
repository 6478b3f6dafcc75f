/**
 * Training end to end on small slices of real MNIST: exact resume of the Trainer in-process, and
 * the CLI (train, evaluate, SIGKILL + resume, --max-minutes, bad input). Runs are kept tiny
 * (a few dozen iterations) so the file stays fast on a loaded 2-core machine.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  truncateSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { initBackend } from '../../src/backend.js';
import { prepareData } from '../../src/data/prepare.js';
import { buildModelForConfig } from '../../src/models/presets.js';
import { validateConfig, type TrainConfig } from '../../src/train/config.js';
import { Trainer } from '../../src/train/trainer.js';
import type { CheckpointMeta, EpochMetrics, TrainResult } from '../../src/train/run_dir.js';
import { readCheckpoint, type Checkpoint } from '../../src/train/checkpoint.js';
import type { ClassificationReport } from '../../src/eval/metrics.js';
import { mnistDataDir } from '../../src/package_paths.js';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
const MNIST_DIR = mnistDataDir()!;

let tmp: string;
before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'semigan-train-'));
  await initBackend('wasm');
});
after(() => rmSync(tmp, { recursive: true, force: true }));

// ---------------------------------------------------------------------------------------------
// helpers

interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run the built CLI; resolves when it exits. `onStderr` sees stderr as it arrives (with the child). */
function runCli(
  args: string[],
  onStderr?: (all: string, kill: (s: NodeJS.Signals) => void) => void,
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => (stdout += b));
    child.stderr.on('data', (b) => {
      stderr += b;
      onStderr?.(stderr, (s) => child.kill(s));
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** The single JSON result line on stdout of a successful run. */
function resultOf(r: CliResult): TrainResult {
  assert.equal(r.code, 0, `exit code ${r.code}; stderr:\n${r.stderr}`);
  const lines = r.stdout.split('\n').filter((l) => l.trim());
  assert.equal(lines.length, 1, `one JSON line on stdout, got:\n${r.stdout}`);
  return JSON.parse(lines[0]);
}

const readMetrics = (dir: string): EpochMetrics[] =>
  existsSync(join(dir, 'metrics.jsonl'))
    ? readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l))
    : [];

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const ckptOf = (dir: string) => readCheckpoint<CheckpointMeta>(join(dir, 'checkpoint.bin'));

/** Every stored tensor identical, byte for byte. */
function assertSameTensors(a: Checkpoint<CheckpointMeta>, b: Checkpoint<CheckpointMeta>, what: string): void {
  assert.deepEqual(Object.keys(a.tensors).sort(), Object.keys(b.tensors).sort(), `${what}: tensor names`);
  for (const [name, t] of Object.entries(a.tensors)) {
    const u = b.tensors[name];
    assert.deepEqual(u.shape, t.shape, `${what}: ${name} shape`);
    assert.equal(u.data.constructor, t.data.constructor, `${what}: ${name} dtype`);
    const x = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    const y = Buffer.from(u.data.buffer, u.data.byteOffset, u.data.byteLength);
    assert.ok(x.equals(y), `${what}: ${name} differs`);
  }
}

const COUNTERS = ['epoch', 'epochIter', 'step', 'rng', 'adamD', 'adamG', 'emaSteps'] as const;
/** The counters of a checkpoint; the RNG words as uint32 (Rng.getState may report a word as its signed int32 alias). */
const counters = (c: Checkpoint<CheckpointMeta>) =>
  Object.fromEntries(COUNTERS.map((k) => [k, k === 'rng' ? c.meta.rng.map((w) => w >>> 0) : c.meta[k]]));
const u32 = (s: number[]) => s.map((w) => w >>> 0);

// ---------------------------------------------------------------------------------------------
// (a) in-process Trainer

test('Trainer: checkpoint -> restore is exact, and interrupted/resumed training equals uninterrupted training; no tensor leaks', async () => {
  const base: Partial<TrainConfig> = {
    trainLimit: 300,
    testLimit: 100,
    itersPerEpoch: 3,
    batchSize: 20,
    mode: 'gan',
    epochs: 2,
    backend: 'wasm',
    seed: 5,
    recipe: 'paper', // a budget alone would bring the budget recipe; A and B must train alike
  };
  const cfg = (over: Partial<TrainConfig>) => validateConfig({ ...base, ...over });
  const data = prepareData(cfg({}));
  assert.equal(data.train.n, 300);
  assert.equal(data.labeled.length, 100);
  const io = { log: () => {}, progressStream: { write: () => true } };
  const make = (config: Readonly<TrainConfig>) =>
    new Trainer(config, buildModelForConfig(config, data.train.shape, data.train.classes.length), data, io);
  const dir = (n: string) => join(tmp, `inproc-${n}`);

  // A: 2 epochs x 3 iterations straight through.
  const tensorsAtStart = tf.memory().numTensors;
  const a = make(cfg({ out: dir('a') }));
  a.initialize();
  let n0 = tf.memory().numTensors;
  const resA = await a.run();
  assert.equal(tf.memory().numTensors, n0, 'A: tensors after 2 epochs = before');
  assert.equal(resA.step, 6);
  assert.equal(resA.epochs, 2);
  const finalA = a.checkpoint();

  // B: same config but a time budget that every iteration exceeds, so each run() call does exactly one
  // iteration (plus the epoch's end when it reaches it) and stops mid-epoch with a checkpoint.
  const b = make(cfg({ out: dir('b'), maxMinutes: 1e-9 }));
  b.initialize();
  n0 = tf.memory().numTensors;
  const r1 = await b.run();
  assert.equal(tf.memory().numTensors, n0, 'B: tensors after one iteration = before');
  assert.equal(r1.stoppedEarly, true);
  assert.deepEqual([b.epoch, b.epochIter, b.step], [0, 1, 1]);
  assert.equal(r1.epochs, 1 / 3);

  // The file written at the stop holds exactly B's live state, mid-epoch orders included.
  const ck1 = ckptOf(dir('b'));
  assertSameTensors(ck1, b.checkpoint(), 'file vs live B');
  assert.deepEqual(counters(ck1), {
    epoch: 0,
    epochIter: 1,
    step: 1,
    rng: u32(b.rng.getState()),
    adamD: 1,
    adamG: 1,
    emaSteps: 1,
  });
  assert.deepEqual(ck1.tensors['orders/lab'].shape, [3 * 20]);

  // C: a fresh trainer (never initialized) restored from that file is identical to it.
  const c = make(cfg({ out: dir('c') }));
  c.restore(ck1);
  const ckC = c.checkpoint();
  assertSameTensors(ckC, ck1, 'restored C vs checkpoint');
  assert.deepEqual(counters(ckC), counters(ck1));
  assert.equal(ckC.meta.seconds, ck1.meta.seconds);

  // Continue both: B a step or two per call, C to the end in one call.
  const stepsAfterCall = [b.step];
  while (b.epoch < 2) {
    const n = tf.memory().numTensors;
    const r = await b.run();
    stepsAfterCall.push(b.step);
    assert.equal(tf.memory().numTensors, n, `B: tensors after call ${stepsAfterCall.length} = before`);
    assert.equal(r.stoppedEarly, b.epoch < 2);
  }
  // Every call stops after its first iteration; one that ends an epoch (3 and 6) goes through the
  // epoch's end (metrics, checkpoint) and stops there, at the boundary, not in the next epoch.
  assert.deepEqual(stepsAfterCall, [1, 2, 3, 4, 5, 6]);
  n0 = tf.memory().numTensors;
  const resC = await c.run();
  assert.equal(tf.memory().numTensors, n0, 'C: tensors after run = before');

  const finalB = b.checkpoint();
  const finalC = c.checkpoint();
  assertSameTensors(finalB, finalA, 'B (interrupted every iteration) vs A');
  assertSameTensors(finalC, finalA, 'C (restored after 1 iteration) vs A');
  for (const f of [finalB, finalC]) assert.deepEqual(counters(f), counters(finalA));
  assert.deepEqual(counters(finalA), {
    epoch: 2,
    epochIter: 0,
    step: 6,
    rng: u32(a.rng.getState()),
    adamD: 6,
    adamG: 6,
    emaSteps: 6,
  });
  assert.equal(resC.accuracy, resA.accuracy);
  assert.equal(resC.errors, resA.errors);
  // Each run's per-epoch metrics: A and C agree on the test accuracy of epoch 2.
  assert.equal(readMetrics(dir('c')).at(-1)!.test_acc, readMetrics(dir('a')).at(-1)!.test_acc);
  // The parameters did move (the comparison above is not between untouched initial weights).
  const moved = ck1.tensors['d/l0.v'].data.some((v, i) => v !== finalA.tensors['d/l0.v'].data[i]);
  assert.ok(moved, 'D changed between iteration 1 and iteration 6');

  for (const t of [a, b, c]) t.dispose();
  assert.equal(
    tf.memory().numTensors,
    tensorsAtStart,
    'no tensors left after disposing all trainers (restore included)',
  );
});

// ---------------------------------------------------------------------------------------------
// (b) CLI end to end

test('CLI: train on 2000 MNIST images beats chance widely, writes its run dir, and evaluate agrees', async () => {
  const out = join(tmp, 'e2e');
  const r = await runCli([
    'train',
    '--backend',
    'wasm',
    '--train-limit',
    '2000',
    '--test-limit',
    '1000',
    '--epochs',
    '2',
    '--iters-per-epoch',
    '25',
    '--batch-size',
    '50',
    '--ema-decay',
    '0.95',
    '--out',
    out,
  ]);
  const res = resultOf(r);
  // 10 classes: chance is 0.1; 100 labels + 2000 unlabeled images after 50 steps reach ~0.7.
  assert.ok(res.accuracy > 0.5, `accuracy ${res.accuracy}`);
  assert.equal(res.n, 1000);
  assert.equal(res.errors, 1000 - Math.round(res.accuracy * 1000));
  assert.equal(res.epochs, 2);
  assert.equal(res.step, 50);
  assert.equal(res.stoppedEarly, false);
  assert.equal(res.out, out);
  assert.deepEqual(JSON.parse(readFileSync(join(out, 'result.json'), 'utf8')), res);
  assert.match(r.stderr, /^backend: wasm/m);

  const metrics = readMetrics(out);
  assert.equal(metrics.length, 2);
  assert.deepEqual(
    metrics.map((m) => [m.epoch, m.step, m.n_test]),
    [
      [1, 25, 1000],
      [2, 50, 1000],
    ],
  );
  assert.equal(metrics[1].test_acc, res.accuracy);
  for (const m of metrics) for (const [k, v] of Object.entries(m)) assert.ok(Number.isFinite(v), `metrics ${k} = ${v}`);

  const ck = ckptOf(out);
  assert.deepEqual([ck.meta.epoch, ck.meta.epochIter, ck.meta.step], [2, 0, 50]);
  assert.equal(ck.meta.config.trainLimit, 2000);

  // 10 x 10 samples of 28 x 28 with 2 px padding, drawn 3x: (10 * 30 + 2) * 3 = 906 px square.
  for (const f of ['epoch-001.png', 'epoch-002.png']) {
    const png = join(out, 'samples', f);
    const meta = await sharp(png).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ['png', 906, 906], f);
    const stats = await sharp(png).stats();
    assert.ok(stats.channels[0].stdev > 10, `${f}: the samples are not a blank image`);
  }
  const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
  assert.equal(config.epochs, 2);

  const ev = await runCli(['evaluate', out, '--json', '--backend', 'wasm']);
  assert.equal(ev.code, 0, ev.stderr);
  const rep: ClassificationReport = JSON.parse(ev.stdout);
  assert.equal(rep.accuracy, res.accuracy);
  assert.equal(rep.errors, res.errors);
  assert.equal(rep.n, 1000);
  assert.equal(rep.perClass.length, 10);
  assert.equal(
    rep.perClass.reduce((s, c) => s + c.support, 0),
    1000,
  );
  assert.equal(rep.confusion.length, 10);
  assert.equal(
    rep.confusion.flat().reduce((s, v) => s + v, 0),
    1000,
  );
  assert.equal(
    rep.confusion.reduce((s, row, i) => s + row[i], 0),
    1000 - rep.errors,
  );
});

// ---------------------------------------------------------------------------------------------
// (c) SIGKILL mid-run, then resume

test('CLI: SIGKILL during epoch 2 leaves a loadable checkpoint; --resume completes the run', async () => {
  const out = join(tmp, 'killed');
  const args = [
    'train',
    '--backend',
    'wasm',
    '--train-limit',
    '500',
    '--test-limit',
    '100',
    '--batch-size',
    '10',
    '--iters-per-epoch',
    '8',
    '--epochs',
    '3',
    '--out',
    out,
  ];
  let killedAt = '';
  const r = await runCli(args, (stderr, kill) => {
    // Two iterations into epoch 2: epoch 1's metrics line, checkpoint and samples are on disk.
    if (!killedAt && /^epoch 2\/3 2\/8 /m.test(stderr)) {
      killedAt = stderr;
      kill('SIGKILL');
    }
  });
  assert.ok(killedAt, `the run reached epoch 2; stderr:\n${r.stderr}`);
  assert.equal(r.signal, 'SIGKILL', 'the run was killed, not finished');
  assert.equal(r.stdout, '');

  const ck = ckptOf(out);
  assert.ok(ck.meta.epoch >= 1, `checkpoint epoch ${ck.meta.epoch}`);
  assert.equal(ck.meta.epoch, 1);
  assert.equal(ck.meta.step, 8);
  assert.deepEqual(
    readMetrics(out).map((m) => m.epoch),
    [1],
  );

  // A fresh run into the same --out is refused (it would mix two runs' files).
  assertCleanError(await runCli(args), new RegExp(`${esc(out)} already holds a run; continue it with --resume`));
  assert.equal(ckptOf(out).meta.step, 8, 'the refused run left the checkpoint alone');
  // Only --epochs, --max-minutes and --backend may accompany --resume.
  const bad = await runCli(['train', '--resume', out, '--lr', '0.1']);
  assertCleanError(bad, /--resume takes the run's saved config.*--lr/);

  const res = resultOf(await runCli(['train', '--resume', out, '--epochs', '3', '--backend', 'wasm']));
  assert.equal(res.epochs, 3);
  assert.equal(res.step, 24);
  assert.equal(res.stoppedEarly, false);
  assert.deepEqual(
    readMetrics(out).map((m) => [m.epoch, m.step]),
    [
      [1, 8],
      [2, 16],
      [3, 24],
    ],
  );
  assert.deepEqual([ckptOf(out).meta.epoch, ckptOf(out).meta.step], [3, 24]);
  assert.ok(existsSync(join(out, 'samples', 'epoch-003.png')));
});

// ---------------------------------------------------------------------------------------------
// (d) --max-minutes

test('CLI: --max-minutes stops mid-epoch with a checkpoint and a valid result; resume completes', async () => {
  const out = join(tmp, 'budget');
  // 0.0002 min = 12 ms: the budget is checked after each iteration, so the run stops after the first one or
  // few; the 64 iterations of an epoch take ~1.1 s here (the 16 of an earlier version fitted in 0.3 s).
  const r = await runCli([
    'train',
    '--backend',
    'wasm',
    '--train-limit',
    '500',
    '--test-limit',
    '100',
    '--batch-size',
    '10',
    '--iters-per-epoch',
    '64',
    '--epochs',
    '1',
    '--max-minutes',
    '0.0002',
    '--recipe',
    'paper', // constant lr: the budget is a stop here (plans are schedule.test's)
    '--labels-per-class',
    '5',
    '--out',
    out,
  ]);
  const res = resultOf(r);
  assert.equal(res.stoppedEarly, true);
  assert.ok(res.step >= 1 && res.step < 64, `stopped after ${res.step} iterations`);
  assert.equal(res.epochs, res.step / 64);
  assert.equal(res.n, 100);
  assert.ok(res.accuracy >= 0 && res.accuracy <= 1);
  assert.equal(res.errors, 100 - Math.round(res.accuracy * 100));
  assert.deepEqual(JSON.parse(readFileSync(join(out, 'result.json'), 'utf8')), res);
  assert.match(r.stderr, /time budget of 0.0002 min spent after \d+\/64 iterations/);
  assert.deepEqual(readMetrics(out), [], 'no epoch finished, so no metrics line');

  const ck = ckptOf(out);
  // --labels-per-class alone (no --labels) is honoured: 5 per class x 10 classes.
  assert.deepEqual([ck.meta.data.labeled, ck.meta.data.labelsPerClass, ck.meta.config.labels], [50, 5, null]);
  assert.equal(ck.meta.epoch, 0);
  assert.ok(ck.meta.epochIter > 0);
  assert.equal(ck.meta.epochIter, res.step);
  assert.deepEqual(ck.tensors['orders/lab'].shape, [64 * 10], 'the epoch in progress keeps its minibatch order');

  // The saved budget would stop the resumed run again after 12 ms; give it a new one.
  const done = resultOf(
    await runCli(['train', '--resume', out, '--epochs', '1', '--max-minutes', '10', '--backend', 'wasm']),
  );
  assert.equal(done.stoppedEarly, false);
  assert.equal(done.epochs, 1);
  assert.equal(done.step, 64);
  assert.deepEqual(
    readMetrics(out).map((m) => [m.epoch, m.step]),
    [[1, 64]],
  );
  assert.deepEqual([ckptOf(out).meta.epoch, ckptOf(out).meta.epochIter], [1, 0]);
});

// ---------------------------------------------------------------------------------------------
// (e) bad input

/** Exit code 1, nothing on stdout, exactly one `error: ` line (the last), no stack trace. */
function assertCleanError(r: CliResult, re: RegExp): string {
  assert.equal(r.code, 1, `exit code ${r.code}; stderr:\n${r.stderr}`);
  assert.equal(r.stdout, '');
  assert.ok(!r.stderr.includes('    at '), `stack trace on stderr:\n${r.stderr}`);
  const lines = r.stderr.split('\n').filter((l) => l.trim());
  const errors = lines.filter((l) => l.startsWith('error: '));
  assert.equal(errors.length, 1, `one error line:\n${r.stderr}`);
  assert.equal(lines.at(-1), errors[0], 'the error line is the last line');
  assert.match(errors[0], re);
  return errors[0];
}

test('CLI: bad input gives a one-line error, exit code 1, no stack trace', async () => {
  const empty = join(tmp, 'empty');
  mkdirSync(empty);
  const trunc = join(tmp, 'truncated-mnist');
  mkdirSync(trunc);
  for (const f of readdirSync(MNIST_DIR)) copyFileSync(join(MNIST_DIR, f), join(trunc, f));
  const truncFile = join(trunc, 't10k-labels-idx1-ubyte');
  truncateSync(truncFile, 1000); // 8-byte header + 992 of 10000 labels
  // One --out each: two trainers on one directory would meet its lock (test/train/run_safety.test.ts).
  const outs: string[] = [];
  const train = (...a: string[]) => {
    outs.push(join(tmp, `bad-out-${outs.length}`));
    return ['train', '--backend', 'wasm', '--out', outs[outs.length - 1], ...a];
  };

  const cases: [string[], RegExp][] = [
    [train('--dataset', 'nope'), /--data "nope": expected mnist, fashion-mnist, images:DIR/],
    [train('--preset', 'nope'), /unknown preset 'nope'.*mnist-mlp/],
    [train('--labels', '105'), /--labels 105 is not divisible by the 10 classes/],
    [train('--labels-per-class', '100000'), /--labels-per-class 100000 but class '\d' has only \d+ training examples/],
    [['train', '--resume', empty], new RegExp(`${esc(empty)} is not a semigan run: it has no checkpoint\\.bin`)],
    [
      train('--dataset', 'fashion-mnist', '--data-dir', empty),
      new RegExp(`fashion-mnist: ${esc(empty)} is missing train-images-idx3-ubyte`),
    ],
    [
      train('--data-dir', trunc),
      new RegExp(`${esc(truncFile)}: truncated: dims \\[10000\\] need 10000 payload bytes, found 992`),
    ],
  ];
  // Two at a time: each is a short process, mostly start-up and reading MNIST.
  const results: CliResult[] = [];
  for (let i = 0; i < cases.length; i += 2)
    results.push(...(await Promise.all(cases.slice(i, i + 2).map(([args]) => runCli(args)))));
  for (const [i, [args, re]] of cases.entries()) {
    assert.doesNotThrow(() => assertCleanError(results[i], re), `${args.join(' ')}`);
  }
  for (const out of outs) assert.ok(!existsSync(join(out, 'checkpoint.bin')));
});

test('CLI: a loss that turns non-finite (--lr 1e30) stops with an error naming the last good checkpoint', async () => {
  const out = join(tmp, 'nan');
  // Step 1's loss is computed with the initial weights (finite); Adam's first update moves every weight
  // by ~lr = 1e30, step 2's loss is ~1e30, and by step 3 float32 overflows (Inf - Inf = NaN). One
  // iteration per epoch, so each finite step leaves a checkpoint behind.
  const r = await runCli([
    'train',
    '--backend',
    'wasm',
    '--lr',
    '1e30',
    '--train-limit',
    '200',
    '--test-limit',
    '50',
    '--batch-size',
    '10',
    '--iters-per-epoch',
    '1',
    '--epochs',
    '4',
    '--out',
    out,
  ]);
  const path = join(out, 'checkpoint.bin');
  const line = assertCleanError(
    r,
    /loss_(lab|unl|gen) became (NaN|-?Infinity) at epoch (\d+), iteration 1; training stopped/,
  );
  const failedEpoch = Number(line.match(/at epoch (\d+)/)![1]);
  const m = line.match(/the last good checkpoint is (.+) \(epoch (\d+)\)/);
  assert.ok(m, `names the last good checkpoint: ${line}`);
  assert.equal(m[1], path);
  const ck = readCheckpoint<CheckpointMeta>(path);
  assert.equal(Number(m[2]), ck.meta.epoch);
  assert.ok(ck.meta.epoch >= 1);
  assert.equal(failedEpoch, ck.meta.epoch + 1, 'the checkpoint is the one just before the failing epoch');
  assert.equal(readMetrics(out).length, ck.meta.epoch);
  for (const mt of readMetrics(out))
    assert.ok(Number.isFinite(mt.loss_lab) && Number.isFinite(mt.loss_unl), 'logged losses were finite');
});
