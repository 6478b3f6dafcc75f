/**
 * Runs against each other and against the machine: one writer per run directory (a lock with the
 * owner's pid, stale locks taken over), --max-minutes with one iteration per epoch, mid-epoch
 * checkpoints and a split epoch's metrics, resume edge cases, stale temp files, and environment
 * failures (a read-only or full file system, a garbage metrics line, a directory for a checkpoint,
 * absurd numbers) each ending in one `error:` line, on small slices of real MNIST.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readCheckpoint } from '../../src/train/checkpoint.js';
import { readMetrics, type CheckpointMeta } from '../../src/train/run_dir.js';
import { unclosedQuoteLine } from '../../src/data/sources/tabular.js';
import { CLI, cleanError, ok, runCli } from '../lib/cli.js';

let tmp: string;
/** Small and quick: 200 training images, batches of 20. */
const SMALL = [
  '--backend',
  'wasm',
  '--threads',
  '1',
  '--train-limit',
  '200',
  '--test-limit',
  '50',
  '--batch-size',
  '20',
];
const train = (...args: string[]) => runCli(['train', ...SMALL, ...args]);

before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'semigan-safety-'));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Start `semigan train ...` and resolve once its run directory is locked. */
function startTrain(args: string[], out: string) {
  const child = spawn(process.execPath, [CLI, 'train', ...SMALL, ...args, '--out', out], { stdio: 'ignore' });
  const exit = new Promise<number | null>((r) => child.once('exit', r));
  const locked = (async () => {
    while (!existsSync(join(out, '.lock'))) await new Promise((r) => setTimeout(r, 20));
  })();
  return { child, exit, locked };
}

test('a second trainer on a run directory in use is refused (--overwrite or --resume); a stale lock is taken over', async () => {
  const out = join(tmp, 'busy');
  const first = startTrain(['--epochs', '1', '--iters-per-epoch', '2000'], out);
  await first.locked;
  try {
    const [over, resume] = await Promise.all([
      train('--epochs', '1', '--iters-per-epoch', '2', '--out', out, '--overwrite'),
      runCli(['train', '--resume', out, '--backend', 'wasm']),
    ]);
    for (const r of [over, resume])
      assert.match(
        cleanError(r),
        new RegExp(
          `${out} is in use by \`semigan train\` \\(pid ${first.child.pid} on .*\\); wait for it to finish or stop it`,
        ),
      );
  } finally {
    first.child.kill('SIGKILL');
    await first.exit;
  }
  // Killed: its lock stays behind, names a dead pid, and is taken over.
  assert.ok(existsSync(join(out, '.lock')));
  ok(await train('--epochs', '1', '--iters-per-epoch', '2', '--out', out, '--overwrite'));
  assert.ok(!existsSync(join(out, '.lock')), 'released at exit');
});

test('--max-minutes stops a run of one iteration per epoch on time', async () => {
  const out = join(tmp, 'budget');
  const t0 = performance.now();
  // The paper recipe's constant lr: the budget is a stop, not a plan (the plan is schedule.test's).
  const r = ok(
    await train(
      '--epochs',
      '100000',
      '--iters-per-epoch',
      '1',
      '--max-minutes',
      '0.05',
      '--recipe',
      'paper',
      '--out',
      out,
    ),
  );
  const seconds = (performance.now() - t0) / 1000;
  const result = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.equal(result.stoppedEarly, true);
  assert.ok(result.epochs >= 1 && result.epochs < 100000, `epochs ${result.epochs}`);
  assert.ok(seconds < 60, `took ${seconds} s for a 3 s budget`);
  assert.match(r.stderr, /time budget of 0\.05 min spent after epoch \d+/);
});

test('a mid-epoch checkpoint (--checkpoint-minutes), SIGKILL, resume: the same epoch metrics as an uninterrupted run', async () => {
  const args = ['--epochs', '1', '--iters-per-epoch', '150', '--seed', '3'];
  const whole = join(tmp, 'whole');
  ok(await train(...args, '--out', whole));
  const split = join(tmp, 'split');
  const run = startTrain([...args, '--checkpoint-minutes', '0.002'], split);
  const ckpt = join(split, 'checkpoint.bin');
  for (;;) {
    await new Promise((r) => setTimeout(r, 50));
    if (existsSync(ckpt)) {
      try {
        if (readCheckpoint<CheckpointMeta>(ckpt).meta.epochIter > 0) break;
      } catch {
        // being replaced right now
      }
    }
  }
  run.child.kill('SIGKILL');
  await run.exit;
  const at = readCheckpoint<CheckpointMeta>(ckpt).meta;
  assert.ok(at.epoch === 0 && at.epochIter > 0 && at.epochIter < 150, `killed at iteration ${at.epochIter}`);
  writeFileSync(join(split, 'checkpoint.bin.tmp-999999-0'), Buffer.alloc(1000)); // as a kill mid-write leaves
  ok(await runCli(['train', '--resume', split, '--backend', 'wasm', '--threads', '1']));
  assert.ok(!existsSync(join(split, 'checkpoint.bin.tmp-999999-0')), 'stale temp file removed');
  const [a] = readMetrics(whole);
  const [b] = readMetrics(split);
  for (const k of ['loss_lab', 'loss_unl', 'loss_gen', 'train_err', 'test_errors', 'test_errors_current'] as const)
    assert.equal(b[k], a[k], `${k}: the split epoch covers all 150 iterations`);
  assert.ok(b.epoch_seconds > 0);
});

test('resume edge cases: fewer --epochs than done, --resume with --overwrite, a garbage metrics line, a directory for a checkpoint', async () => {
  const out = join(tmp, 'three');
  ok(await train('--epochs', '3', '--iters-per-epoch', '1', '--out', out));
  assert.match(
    cleanError(await runCli(['train', '--resume', out, '--epochs', '2', '--backend', 'wasm'])),
    /--epochs 2: .*three has already completed epoch 3; give --epochs 4 or more to continue it/,
  );
  // The advice works, and the epoch count it names is the least that trains anything.
  assert.match(
    cleanError(await runCli(['train', '--resume', out, '--epochs', '3', '--backend', 'wasm'])),
    /give --epochs 4 or more/,
  );
  assert.match(
    cleanError(await runCli(['train', '--resume', out, '--overwrite', '--backend', 'wasm'])),
    /--resume and --overwrite exclude each other/,
  );
  const garbage = join(tmp, 'garbage');
  cpSync(out, garbage, { recursive: true });
  const lines = readFileSync(join(garbage, 'metrics.jsonl'), 'utf8').split('\n');
  lines.splice(1, 0, '{"epoch": 2, "loss_la');
  writeFileSync(join(garbage, 'metrics.jsonl'), lines.join('\n'));
  assert.match(
    cleanError(await runCli(['train', '--resume', garbage, '--epochs', '4', '--backend', 'wasm'])),
    /metrics\.jsonl line 2: not a metrics record \("\{\\"epoch\\": 2, \\"loss_la"\); remove the line/,
  );
  // A last line cut short by a kill mid-append is dropped, and the run goes on.
  const cut = join(tmp, 'cut');
  cpSync(out, cut, { recursive: true });
  writeFileSync(join(cut, 'metrics.jsonl'), '{"epoch": 4, "ste', { flag: 'a' });
  ok(await runCli(['train', '--resume', cut, '--epochs', '4', '--backend', 'wasm', '--threads', '1']));
  assert.deepEqual(
    readMetrics(cut).map((m) => m.epoch),
    [1, 2, 3, 4],
  );
  const dir = join(tmp, 'dir-ckpt');
  cpSync(out, dir, { recursive: true });
  rmSync(join(dir, 'checkpoint.bin'));
  mkdirSync(join(dir, 'checkpoint.bin'));
  assert.match(
    cleanError(await runCli(['evaluate', dir, '--backend', 'wasm'])),
    /checkpoint\.bin is not a file; expected the run's checkpoint/,
  );
});

test('absurd numbers and a CSV quote that never closes: one line naming the flag or the line', async () => {
  assert.match(
    cleanError(await train('--seed', '99999999999999999999', '--out', join(tmp, 'x'))),
    /seed.*at most 4294967295/,
  );
  assert.match(
    cleanError(await train('--epochs', '100000000000000000000', '--out', join(tmp, 'x'))),
    /epochs.*at most 100000/,
  );
  const csv = ['a,b,label', ...Array.from({ length: 40 }, (_, i) => `${i},${i},x`), '"41,41,y', '1,2,x', '3,4,z'].join(
    '\n',
  );
  assert.equal(unclosedQuoteLine(csv), 42);
  const path = join(tmp, 'quote.csv');
  writeFileSync(path, csv + '\n');
  assert.match(
    cleanError(await train('--data', `csv:${path}`, '--label-column', 'label', '--out', join(tmp, 'q'))),
    /quote\.csv:42: malformed CSV: a quoted field opens on this line and is never closed/,
  );
});

/** A tmpfs at a fresh directory (root only); null when mounting is not possible here. */
function mountTmpfs(options: string): string | null {
  const dir = mkdtempSync(join(tmp, 'mnt-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir]);
  return r.status === 0 ? dir : null;
}
const unmount = (dir: string) => spawnSync('umount', ['-l', dir]);

test('a read-only --out fails at once, before the data loads; so does --resume of a run on it', async (t) => {
  const ro = mountTmpfs('ro,size=1m');
  if (!ro) return t.skip('cannot mount a tmpfs here (needs root)');
  try {
    const r = await train('--epochs', '1', '--out', join(ro, 'run'));
    assert.match(
      cleanError(r),
      /ro.*run: cannot write the run directory \(EROFS: read-only file system\); pick a writable --out/,
    );
    assert.doesNotMatch(r.stderr, /^data: /m, 'refused before loading data');
  } finally {
    unmount(ro);
  }
});

test('a full disk at the first checkpoint: the advice (start again with --overwrite) works once there is room', async (t) => {
  const sized = join(tmp, 'sized-first');
  ok(await train('--epochs', '1', '--iters-per-epoch', '1', '--preset', 'conv-small', '--out', sized));
  const bytes = statSync(join(sized, 'checkpoint.bin')).size;
  const full = mountTmpfs(`size=${Math.ceil((0.5 * bytes) / 4096) * 4096}`);
  if (!full) return t.skip('cannot mount a tmpfs here (needs root)');
  try {
    const out = join(full, 'run');
    const args = ['--epochs', '1', '--iters-per-epoch', '1', '--preset', 'conv-small', '--out', out];
    const r = await train(...args);
    assert.match(
      cleanError(r),
      /checkpoint\.bin: writing the checkpoint failed \(ENOSPC: no space left on the device\); no checkpoint was written before, so there is nothing to resume: fix that, then start the run again with --overwrite$/,
    );
    assert.equal(spawnSync('mount', ['-o', `remount,size=${Math.ceil((3 * bytes) / 4096) * 4096}`, full]).status, 0);
    ok(await train(...args, '--overwrite'));
    assert.equal(readCheckpoint<CheckpointMeta>(join(out, 'checkpoint.bin')).meta.epoch, 1);
  } finally {
    unmount(full);
  }
});

test('a full disk while checkpointing: one line, and the previous checkpoint survives', async (t) => {
  const sized = join(tmp, 'sized');
  ok(await train('--epochs', '1', '--iters-per-epoch', '1', '--preset', 'conv-small', '--out', sized));
  const bytes = statSync(join(sized, 'checkpoint.bin')).size;
  // Room for one checkpoint and the small files, not for the second one written next to it.
  const full = mountTmpfs(`size=${Math.ceil((1.5 * bytes) / 4096) * 4096}`);
  if (!full) return t.skip('cannot mount a tmpfs here (needs root)');
  try {
    const out = join(full, 'run');
    const r = await train('--epochs', '3', '--iters-per-epoch', '1', '--preset', 'conv-small', '--out', out);
    assert.match(
      cleanError(r),
      /checkpoint\.bin: writing the checkpoint failed \(ENOSPC: no space left on the device\); the previous checkpoint \(epoch 1\) is intact/,
    );
    assert.equal(readCheckpoint<CheckpointMeta>(join(out, 'checkpoint.bin')).meta.epoch, 1);
  } finally {
    unmount(full);
  }
});
