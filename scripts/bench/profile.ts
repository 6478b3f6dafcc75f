/**
 * Per-kernel profile of training iterations (tf.profile) of a recipe and preset on MNIST on wasm:
 * which kernels take the step's time, how often they run, and how much of the wall time is
 * spent outside kernels (JavaScript: batch gathering, noise, tensor bookkeeping).
 *
 *   npx tsc -p . && node dist/scripts/bench/profile.js [--iters 11] [--threads N] [--top 15] [--recipe ct] [--preset conv-small]
 *   SEMIGAN_CONV=wasm node dist/scripts/bench/profile.js --preset conv-small   # convs on tfjs's kernels
 *
 * One warm-up epoch of `iters` iterations, then one profiled epoch of `iters` iterations. The
 * profiled epoch ends with the evaluation of 100 test images (two forward passes; a few kernel
 * calls of the whole, named in the output).
 */
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '../../src/backend.js';
import { buildModelForConfig } from '../../src/models/presets.js';
import { validateConfig, type TrainConfig } from '../../src/train/config.js';
import { Trainer } from '../../src/train/trainer.js';
import { benchConfig, loadBenchData } from '../lib/trainer_timing.js';
import { positiveIntOption, scriptArgs } from '../lib/args.js';

const { values } = scriptArgs({
  options: {
    iters: { type: 'string', default: '11' },
    threads: { type: 'string' },
    top: { type: 'string', default: '15' },
    recipe: { type: 'string', default: 'paper' }, // a train --recipe (paper, ct)
    preset: { type: 'string', default: 'mnist-mlp' }, // a train --preset (conv-small, ...)
  },
});
const iters = positiveIntOption(values, 'iters');
const top = positiveIntOption(values, 'top');

const backend = await initBackend('wasm', { threads: values.threads ? positiveIntOption(values, 'threads') : null });
console.log(`# ${backend.name}: ${backend.threadsReason}`);
const out = mkdtempSync(join(tmpdir(), 'semigan-profile-'));
const base = benchConfig({
  testLimit: 100,
  recipe: values.recipe as TrainConfig['recipe'],
  preset: values.preset as TrainConfig['preset'],
});
const data = loadBenchData(base);
const quiet = { write: () => true, isTTY: false };
try {
  const config = validateConfig({ ...base, epochs: 1, itersPerEpoch: iters, out });
  const model = buildModelForConfig(config, data.train.shape, data.train.classes.length);
  const trainer = new Trainer(config, model, data, { log: () => {}, progressStream: quiet });
  trainer.initialize();
  await trainer.run(); // warm-up epoch

  let wallStart = 0;
  let wallEnd = 0;
  const timed = new Trainer(validateConfig({ ...config, epochs: 2 }), model, data, {
    log: () => {},
    progressStream: quiet,
    onIteration: (_e, i) => {
      if (i === iters) wallEnd = performance.now();
    },
  });
  timed.restore(trainer.checkpoint());
  trainer.dispose();
  wallStart = performance.now();
  const info = await tf.profile(async () => {
    await timed.run();
  });
  timed.dispose();

  const byKernel = new Map<string, { calls: number; ms: number }>();
  for (const k of info.kernels) {
    const e = byKernel.get(k.name) ?? { calls: 0, ms: 0 };
    e.calls++;
    e.ms += Number(k.kernelTimeMs) || 0;
    byKernel.set(k.name, e);
  }
  const total = [...byKernel.values()].reduce((s, e) => s + e.ms, 0);
  const wall = wallEnd - wallStart;
  console.log(
    `# ${iters} profiled iterations: wall ${wall.toFixed(0)} ms (${(wall / iters).toFixed(1)} ms/iter), kernels ${total.toFixed(0)} ms, ${(info.kernels.length / iters).toFixed(0)} kernel calls/iter`,
  );
  console.log(
    `# outside kernels (JavaScript, noise, bookkeeping): ~${Math.max(0, wall - total).toFixed(0)} ms (${((100 * Math.max(0, wall - total)) / wall).toFixed(0)}% of wall)`,
  );
  console.log('');
  console.log('| kernel | calls | ms | share of kernel time | us/call |');
  console.log('|---|---:|---:|---:|---:|');
  const rows = [...byKernel.entries()].sort((a, b) => b[1].ms - a[1].ms);
  for (const [name, e] of rows.slice(0, top)) {
    console.log(
      `| ${name} | ${e.calls} | ${e.ms.toFixed(0)} | ${((100 * e.ms) / total).toFixed(1)}% | ${((1000 * e.ms) / e.calls).toFixed(0)} |`,
    );
  }
  const rest = rows.slice(top).reduce((s, [, e]) => s + e.ms, 0);
  console.log(
    `| (${Math.max(0, rows.length - top)} others) | | ${rest.toFixed(0)} | ${((100 * rest) / total).toFixed(1)}% | |`,
  );
  console.log(
    JSON.stringify({
      bench: 'profile',
      threads: backend.threads,
      iters,
      wall_ms_per_iter: wall / iters,
      kernel_ms_per_iter: total / iters,
      calls_per_iter: info.kernels.length / iters,
      top: rows.slice(0, top).map(([name, e]) => ({ name, calls: e.calls, ms: e.ms })),
    }),
  );
} finally {
  rmSync(out, { recursive: true, force: true });
}
