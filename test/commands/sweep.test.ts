/**
 * `semigan sweep` on a slice of real MNIST: one run per seed, the summary's mean ± std equal to
 * the figures computed here from each seed's metrics.jsonl, a resumed sweep keeping a finished
 * seed untouched, and bad options as one-line errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readMetrics } from '../../src/train/run_dir.js';
import { formatSummary, parseSeeds, stat, summarize, type SweepSummary } from '../../src/train/sweep_summary.js';
import { ok, runCli } from '../lib/cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'semigan-sweep-'));
const QUICK = ['--train-limit', '500', '--test-limit', '100', '--iters-per-epoch', '3', '--backend', 'wasm'];

test('stat and parseSeeds by hand', () => {
  const s = stat([72, 79]);
  assert.equal(s.mean, 75.5);
  assert.ok(Math.abs(s.std - Math.sqrt(24.5)) < 1e-12); // sample std: ((3.5^2 + 3.5^2) / 1)^0.5
  assert.deepEqual([s.min, s.max], [72, 79]);
  assert.equal(stat([5]).std, 0);
  assert.deepEqual(parseSeeds('1-3,8,2'), [1, 2, 3, 8]);
  for (const bad of ['', '3-1', '-1', 'a', '1-2000']) assert.throws(() => parseSeeds(bad), /--seeds/);
});

test('summarize: the tail average over the seeds that have one by each epoch, its own column', () => {
  const dir = join(tmp, 'tail-sweep');
  const line = (epoch: number, errors: number, tail?: number) =>
    JSON.stringify({
      epoch,
      test_errors: errors,
      test_errors_current: errors + 1,
      test_acc: 1 - errors / 100,
      test_acc_current: 1 - (errors + 1) / 100,
      ...(tail === undefined ? {} : { test_errors_tail: tail }),
    });
  for (const [seed, lines] of [
    [1, [line(1, 10), line(2, 8, 6)]],
    [2, [line(1, 12), line(2, 9)]],
  ] as const) {
    mkdirSync(join(dir, `seed-${seed}`), { recursive: true });
    writeFileSync(join(dir, `seed-${seed}`, 'metrics.jsonl'), lines.join('\n') + '\n');
  }
  const s = summarize(dir, [1, 2]);
  assert.equal(s.epochs[0].errorsTail, undefined);
  assert.deepEqual(s.epochs[1].errorsTail, { ...stat([6]), seeds: 1 });
  const table = formatSummary(s).split('\n');
  assert.ok(table.some((l) => l.includes('errors, tail average (seeds) |')));
  assert.ok(table.find((l) => l.startsWith('| 1 | 2 |'))!.endsWith('| - |'));
  assert.ok(table.find((l) => l.startsWith('| 2 | 2 |'))!.endsWith('| 6.0 ± 0.0 (1) |'));
});

test('a 2-seed sweep: each seed its own run (seed and seed-data), the summary from their metrics; resume keeps a finished seed', async () => {
  const out = join(tmp, 'sw');
  const r = ok(
    await runCli(['sweep', '--seeds', '1-2', '--out', out, '--epochs', '2', '--jobs', '2', '--json', ...QUICK]),
  );
  const summary = JSON.parse(r.stdout.trim()) as SweepSummary;
  const m1 = readMetrics(join(out, 'seed-1'));
  const m2 = readMetrics(join(out, 'seed-2'));
  assert.deepEqual([m1.length, m2.length], [2, 2]);
  for (const e of [0, 1]) {
    const want = stat([m1[e].test_errors, m2[e].test_errors]);
    assert.deepEqual(summary.epochs[e].errors, want);
    assert.deepEqual(summary.epochs[e].errorsCurrent, stat([m1[e].test_errors_current, m2[e].test_errors_current]));
  }
  assert.deepEqual(JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')), summary);
  const cfg = (s: number) => JSON.parse(readFileSync(join(out, `seed-${s}`, 'config.json'), 'utf8'));
  assert.deepEqual([cfg(1).seed, cfg(1).seedData, cfg(2).seed, cfg(2).seedData], [1, 1, 2, 2]);

  // Seed 2 "was killed": no run left. Resume retrains it and keeps seed 1 as it was.
  const before = statSync(join(out, 'seed-1', 'checkpoint.bin')).mtimeMs;
  rmSync(join(out, 'seed-2'), { recursive: true });
  const again = ok(await runCli(['sweep', '--out', out, '--resume', '--json']));
  assert.match(again.stderr, /\[seed 1\] finished earlier \(2 epochs\): kept/);
  assert.equal(statSync(join(out, 'seed-1', 'checkpoint.bin')).mtimeMs, before);
  assert.equal(readMetrics(join(out, 'seed-2')).length, 2);
  // evaluate of the sweep directory prints the table.
  const table = ok(await runCli(['evaluate', out])).stdout;
  assert.match(table, /^seeds 1, 2: test errors per epoch/);
  assert.match(table, /\| 2 \| 2 \| /);

  // A supervised baseline sweep beside it: its mean errors and the ratio, per epoch.
  const sup = join(tmp, 'sw-sup');
  ok(await runCli(['sweep', '--seeds', '1', '--out', sup, '--epochs', '1', '--mode', 'supervised', ...QUICK]));
  const s1 = readMetrics(join(sup, 'seed-1'))[0].test_errors;
  const withBase = ok(await runCli(['evaluate', out, '--baseline', sup])).stdout.split('\n');
  const mean1 = (m1[0].test_errors + m2[0].test_errors) / 2;
  const row1 = withBase.find((l) => l.startsWith('| 1 | 2 |'))!;
  assert.ok(row1.endsWith(`| ${s1.toFixed(1)} ± 0.0 (1) | ${(mean1 / s1).toFixed(2)}x |`), row1);
  assert.ok(withBase.find((l) => l.startsWith('| 2 | 2 |'))!.endsWith('| - | - |'), 'epoch 2 has no baseline');
  const notSweep = await runCli(['evaluate', out, '--baseline', join(out, 'seed-1')]);
  assert.equal(notSweep.code, 1);
  assert.match(notSweep.stderr.trim(), /--baseline .*seed-1: not a sweep directory \(no sweep.json\)/);
});

test('sweep: bad options are one-line errors naming the flag', async () => {
  const out = join(tmp, 'sw'); // exists from the test above, or not: both cases are errors here
  for (const [args, msg] of [
    [['--seeds', '5-1', '--out', join(tmp, 'x')], /--seeds "5-1": expected/],
    [['--jobs', '0', '--out', join(tmp, 'x')], /--jobs 0: expected a positive integer/],
    [['--out', join(tmp, 'x'), '--seed', '3'], /--seed is set by the sweep for each seed/],
    [['--out', join(tmp, 'nothing-here'), '--resume'], /no sweep there/],
    [['--out', out, '--seeds', '1'], /already holds a sweep; continue it with --resume/],
  ] as [string[], RegExp][]) {
    const r = await runCli(['sweep', ...args, ...QUICK]);
    assert.equal(r.code, 1, args.join(' '));
    assert.match(r.stderr.trim().split('\n').pop()!, msg);
  }
});
