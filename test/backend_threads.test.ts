/**
 * Training on OpenBLAS matMuls with 2 threads against the single-threaded wasm path (--matmul
 * wasm), the start-up line that says which one runs, the fallback when the addon cannot load,
 * and bad --threads values. Real CLI runs on a slice of real MNIST.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadNative } from '../src/nn/native_addon.js';
import type { EpochMetrics } from '../src/train/run_dir.js';
import { ok, runCli } from './lib/cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'semigan-threads-'));
const blas = loadNative();
// One iteration per "epoch": metrics.jsonl then holds the losses of every step.
const QUICK = [
  'train',
  '--dataset',
  'mnist',
  '--labels',
  '100',
  '--train-limit',
  '1000',
  '--test-limit',
  '100',
  '--iters-per-epoch',
  '1',
  '--epochs',
  '4',
  '--backend',
  'wasm',
];

async function train(
  name: string,
  extra: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ metrics: EpochMetrics[]; stderr: string; config: Record<string, unknown> }> {
  const out = join(tmp, name);
  const r = ok(await runCli([...QUICK, '--out', out, ...extra], env));
  const metrics = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as EpochMetrics);
  return { metrics, stderr: r.stderr, config: JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) };
}

const relDiff = (a: number, b: number) => Math.abs(a - b) / Math.max(1e-12, Math.abs(b));

test(
  '2 OpenBLAS threads train like the 1-thread wasm path: the same first step to float32 rounding, finite and close after 4',
  { skip: !blas.ok && 'the OpenBLAS addon is not built here' },
  async () => {
    const [single, multi] = await Promise.all([
      train('wasm', ['--matmul', 'wasm']),
      train('blas2', ['--threads', '2']),
    ]);
    assert.match(single.stderr, /; 1 thread \(--matmul wasm; wasm runs one thread in Node\)/);
    assert.match(multi.stderr, /; 2 threads for matMuls \(--threads; OpenBLAS [^)]*\)/);
    assert.deepEqual(
      [single.config.threadsUsed, single.config.matmulUsed, multi.config.threadsUsed, multi.config.matmulUsed],
      [1, 'wasm', 2, 'openblas'],
    );
    assert.equal(multi.metrics.length, 4);
    for (const m of multi.metrics)
      for (const k of ['loss_lab', 'loss_unl', 'loss_gen'] as const)
        assert.ok(Number.isFinite(m[k]), `${k} at step ${m.epoch}: ${m[k]}`);
    // Step 1 sees identical weights and batches: only the matMuls' summation order differs, a few
    // float32 ulps of sums over <= 1000 terms (measured ~3e-7 relative).
    for (const k of ['loss_lab', 'loss_unl', 'loss_gen'] as const) {
      const d = relDiff(multi.metrics[0][k], single.metrics[0][k]);
      assert.ok(d < 1e-5, `${k} of step 1: ${multi.metrics[0][k]} vs ${single.metrics[0][k]} (relative ${d})`);
    }
    // Then Adam's early steps (~lr * sign(g)) amplify those differences in near-zero gradients; after
    // 4 steps they were 0.2% here. 2% allows for another CPU's kernels and still catches a wrong matMul,
    // which changes the losses by far more from the first step on.
    for (const k of ['loss_lab', 'loss_unl', 'loss_gen'] as const) {
      const d = relDiff(multi.metrics[3][k], single.metrics[3][k]);
      assert.ok(d < 0.02, `${k} of step 4: ${multi.metrics[3][k]} vs ${single.metrics[3][k]} (relative ${d})`);
    }
  },
);

test('an addon that cannot load: training runs on 1 wasm thread and says why, in one line', async () => {
  const r = await train('fallback', ['--epochs', '1'], {
    SEMIGAN_NATIVE_ADDON: join(tmp, 'missing', 'semigan_native.node'),
  });
  assert.match(
    r.stderr,
    /^backend: wasm \([^\n]*\); 1 thread \(native kernels addon not built: run scripts\/install_system_deps.sh as root \(Debian\/Ubuntu: OpenBLAS\), then npm run build:native; wasm runs one thread in Node\)$/m,
  );
  assert.equal(r.config.threadsUsed, 1);
  assert.ok(Number.isFinite(r.metrics[0].loss_lab));
  // Asking for OpenBLAS by name is an error instead.
  const forced = await runCli([...QUICK, '--out', join(tmp, 'forced'), '--matmul', 'openblas'], {
    SEMIGAN_NATIVE_ADDON: join(tmp, 'missing.node'),
  });
  assert.equal(forced.code, 1);
  assert.match(forced.stderr, /^error: --matmul openblas: native kernels addon not built/m);
  assert.doesNotMatch(forced.stderr, /\n\s+at .+:\d+:\d+/);
});

test(
  'more threads than cores is allowed, with a note',
  { skip: !blas.ok && 'the OpenBLAS addon is not built here' },
  async () => {
    const r = await train('many', ['--epochs', '1', '--threads', '8']);
    assert.match(r.stderr, /8 threads for matMuls \(--threads; more than the \d+ cores?, threads will share them;/);
  },
);

test('--threads 0, -1, 1.5 and abc: one line naming the flag and the range, for every command', async () => {
  for (const [cmd, v] of [
    ['train', '0'],
    ['train', '-1'],
    ['evaluate', 'abc'],
    ['predict', '1.5'],
    ['serve', '0'],
  ]) {
    const args =
      cmd === 'train' ? [cmd, '--threads', v] : [cmd, tmp, ...(cmd === 'predict' ? ['x.png'] : []), '--threads', v];
    const r = await runCli(args);
    assert.equal(r.code, 1, `${cmd} --threads ${v}`);
    assert.equal(
      r.stderr.split('\n')[0],
      `error: option '--threads <n>' argument '${v}' is invalid. expected a positive integer from 1 to 256 (threads for matMuls; this machine has ${(await import('node:os')).availableParallelism()} cores).`,
    );
    assert.doesNotMatch(r.stderr, /\n\s+at .+:\d+:\d+/);
  }
});

const dnnl = blas.ok && blas.addon.convRoutes().startsWith('onednn');

test(
  'conv-small: convs natively on 2 threads train like tfjs wasm convs on 1, and the start-up line names the route',
  { skip: !blas.ok && 'the native addon is not built here' },
  async () => {
    const conv = ['--preset', 'conv-small'];
    const [wasm, native] = await Promise.all([
      train('conv-wasm', [...conv, '--threads', '1'], { SEMIGAN_CONV: 'wasm' }),
      train('conv-native', [...conv, '--threads', '2']),
    ]);
    const engine = dnnl ? 'oneDNN [\\d.]+' : 'im2col \\+ OpenBLAS';
    assert.match(native.stderr, new RegExp(`2 threads for matMuls [^\\n]*, convs on 2 threads \\(${engine}\\), other`));
    assert.match(wasm.stderr, /1 thread for matMuls [^\n]*, convs on 1 wasm thread, other/);
    assert.deepEqual([wasm.config.convUsed, native.config.convUsed], ['wasm', dnnl ? 'onednn' : 'im2col']);
    // As for the matMuls above: step 1 differs by summation order only (convs sum <= 600 products
    // per output; measured ~1e-7 relative), after 4 Adam steps by a few tenths of a percent.
    for (const k of ['loss_lab', 'loss_unl', 'loss_gen'] as const) {
      const d1 = relDiff(native.metrics[0][k], wasm.metrics[0][k]);
      assert.ok(d1 < 1e-5, `${k} of step 1: ${native.metrics[0][k]} vs ${wasm.metrics[0][k]} (relative ${d1})`);
      const d4 = relDiff(native.metrics[3][k], wasm.metrics[3][k]);
      assert.ok(d4 < 0.02, `${k} of step 4: ${native.metrics[3][k]} vs ${wasm.metrics[3][k]} (relative ${d4})`);
    }
  },
);

test(
  'SEMIGAN_CONV: im2col runs that route; an unknown route, or a native route with --matmul wasm, is one line',
  { skip: !blas.ok && 'the native addon is not built here' },
  async () => {
    const im2col = await train('conv-im2col', ['--preset', 'conv-small', '--epochs', '1'], { SEMIGAN_CONV: 'im2col' });
    assert.match(im2col.stderr, /, convs on \d+ threads? \(im2col \+ OpenBLAS\), other/);
    assert.equal(im2col.config.convUsed, 'im2col');
    const bad = await runCli([...QUICK, '--out', join(tmp, 'conv-bad')], { SEMIGAN_CONV: 'gpu' });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^error: SEMIGAN_CONV=gpu: expected one of auto, onednn, im2col, wasm$/m);
    assert.doesNotMatch(bad.stderr, /\n\s+at .+:\d+:\d+/);
    const mixed = await runCli([...QUICK, '--out', join(tmp, 'conv-mixed'), '--matmul', 'wasm'], {
      SEMIGAN_CONV: 'im2col',
    });
    assert.equal(mixed.code, 1);
    assert.match(
      mixed.stderr,
      /^error: --matmul wasm keeps tfjs's own kernels; it cannot be combined with conv route im2col$/m,
    );
  },
);
