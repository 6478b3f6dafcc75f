/**
 * Milliseconds per training iteration (D step on 100 labeled + 100 unlabeled + 100 generated
 * rows, then the G step) of each model preset on MNIST (28x28x1) with wasm, in one process, plus
 * each preset's parameter counts. Same Trainer, data and seed for every preset.
 *
 *   npx tsc -p . && node dist/scripts/bench/presets.js [--presets mnist-mlp,conv-small,conv-large] [--iters 10] [--rounds 2] [--torch]
 *
 * A preset may carry its own widths, e.g. --presets mnist-mlp,conv-small,conv-small:d=8/16/16/32:g=32/16
 * (d: --d-widths, g: --g-widths, '/' between widths); such variants have no PyTorch reference.
 *
 * --torch: after each conv preset in each round, the PyTorch reference of that preset
 * (scripts/bench/torch_conv_step.py: the same layers and batch, as many iterations, threads =
 * semigan's); "vs PyTorch" is the median of the rounds' ratios. SEMIGAN_CONV=wasm times the convs
 * on tfjs's own kernels (as before the native convs).
 *
 * Presets alternate within each round so that a change in machine load hits all alike; every
 * round trains a fresh Trainer with one warm-up epoch. conv-large (the paper's CIFAR model) is
 * ~100x slower than mnist-mlp (~30 s per iteration here), so it gets few timed iterations
 * (--large-iters). Prints figures,
 * asserts nothing.
 */
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { resolve } from 'node:path';
import { PACKAGE_ROOT } from '../../src/package_paths.js';
import { failUsage, positiveIntOption, scriptArgs } from '../lib/args.js';
import { initBackend } from '../../src/backend.js';
import { buildModelForConfig } from '../../src/models/presets.js';
import type { TrainConfig } from '../../src/train/config.js';
import { Rng } from '../../src/rng.js';
import { disposeParams, type Params } from '../../src/nn/params.js';
import { benchConfig, loadBenchData, median, quantile, timeIterations, wasmInfo } from '../lib/trainer_timing.js';

const { values } = scriptArgs({
  options: {
    presets: { type: 'string', default: 'mnist-mlp,conv-small,conv-large' },
    iters: { type: 'string', default: '10' }, // timed iterations per preset (conv-large: --large-iters)
    'large-iters': { type: 'string', default: '2' },
    rounds: { type: 'string', default: '2' },
    'train-limit': { type: 'string', default: '2000' },
    torch: { type: 'boolean', default: false }, // also time scripts/bench/torch_conv_step.py per conv preset
    python: { type: 'string', default: '/usr/bin/python3' },
  },
});
const TORCH_SCRIPT = resolve(PACKAGE_ROOT, 'scripts', 'bench', 'torch_conv_step.py');

/** ms/iter of the PyTorch reference for a conv preset, or why it could not run. */
function torchStep(preset: string, shape: number[], iters: number, threads: number): number | string {
  const run = spawnSync(
    values.python!,
    [
      TORCH_SCRIPT,
      '--preset',
      preset,
      '--shape',
      shape.join(','),
      '--iters',
      String(iters),
      '--threads',
      String(threads),
    ],
    { encoding: 'utf8' },
  );
  const line = run.stdout?.trim().split('\n').pop() ?? '';
  if (run.status !== 0 || !line.startsWith('{'))
    return `exit ${run.status}: ${(run.stderr || run.error?.message || '').trim().split('\n').pop()}`;
  return (JSON.parse(line) as { iter_ms_median: number }).iter_ms_median;
}
/** `preset[:d=W/W/...][:g=W/W/...]`: a preset and the widths it trains with. */
function presetVariant(entry: string): Partial<TrainConfig> {
  const [preset, ...parts] = entry.split(':');
  const widths: Partial<TrainConfig> = {};
  for (const part of parts) {
    const m = /^([dg])=(\d+(?:\/\d+)*)$/.exec(part);
    if (!m) failUsage(`--presets: '${part}' in '${entry}' is not d=W/W/... or g=W/W/... (D's or G's widths)`);
    widths[m[1] === 'd' ? 'dWidths' : 'gWidths'] = m[2].split('/').map(Number);
  }
  return { preset, ...widths };
}
const int = (name: keyof typeof values) => positiveIntOption(values, name);
const fmt = (x: number, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '-');
const count = (p: Params, names = Object.keys(p.vars)) => names.reduce((s, n) => s + p.vars[n].size, 0);

async function main(): Promise<void> {
  const presets = String(values.presets).split(',');
  const variants = new Map(presets.map((p) => [p, presetVariant(p)]));
  const rounds = int('rounds');
  const backend = await initBackend('wasm');
  const base = benchConfig({ trainLimit: int('train-limit'), testLimit: 100 });
  const data = loadBenchData(base);

  console.log(
    `# semigan preset benchmark: batch ${base.batchSize} labeled + ${base.batchSize} unlabeled + ${base.batchSize} generated, then G step; data ${data.summaryText}`,
  );
  console.log(
    `# ${await wasmInfo()} (${backend.reason}; ${backend.threadsReason}); node ${process.version}, ${cpus().length} cores, loadavg ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );

  const params: Record<string, string> = {};
  for (const preset of presets) {
    const config = benchConfig({ ...base, ...variants.get(preset) });
    const model = buildModelForConfig(config, data.train.shape, data.train.classes.length);
    const rng = new Rng(1);
    const [d, g] = [model.createD(rng), model.createG(rng)];
    params[preset] = `D ${count(d)} (${count(d, d.trainable)} trained), G ${count(g)}`;
    disposeParams(d);
    disposeParams(g);
  }

  const ms: Record<string, number[]> = Object.fromEntries(presets.map((p) => [p, []]));
  const torchRatios: Record<string, number[]> = Object.fromEntries(presets.map((p) => [p, []]));
  const torchMs: Record<string, number[]> = Object.fromEntries(presets.map((p) => [p, []]));
  for (let r = 1; r <= rounds; r++) {
    for (const preset of presets) {
      const variant = variants.get(preset)!;
      const large = variant.preset === 'conv-large';
      const iters = Math.ceil((large ? int('large-iters') : int('iters')) / rounds);
      const t0 = performance.now();
      const timing = await timeIterations(benchConfig({ ...base, ...variant }), data, {
        iters,
        itersPerEpoch: large ? Math.max(2, iters + 1) : 11,
      });
      ms[preset].push(...timing.ms);
      console.log(
        `#   round ${r} ${preset.padEnd(10)} median ${fmt(median(timing.ms))} ms over ${timing.ms.length} iterations (${((performance.now() - t0) / 1000).toFixed(1)} s incl. warm-up)`,
      );
      if (values.torch && preset.startsWith('conv-') && !variant.dWidths && !variant.gWidths) {
        const t = torchStep(preset, data.train.shape, iters, backend.threads);
        if (typeof t === 'string') throw new Error(`PyTorch reference for ${preset}: ${t}`);
        torchMs[preset].push(t);
        torchRatios[preset].push(median(timing.ms) / t);
        console.log(`#   round ${r} ${preset.padEnd(10)} PyTorch ${fmt(t)} ms (${backend.threads} threads)`);
      }
    }
  }

  const ref = presets.includes('mnist-mlp') ? median(ms['mnist-mlp']) : NaN;
  const w = Math.max(...presets.map((p) => p.length), 'preset'.length);
  console.log('');
  console.log(
    `| ${'preset'.padEnd(w)} | median ms/iter |    p25 |    p75 |  n | vs mnist-mlp | PyTorch ms/iter | vs PyTorch | parameters (${tf.getBackend()}) |`,
  );
  console.log(
    `|${'-'.repeat(w + 2)}|---------------:|-------:|-------:|---:|-------------:|----------------:|-----------:|---|`,
  );
  for (const p of presets) {
    const m = median(ms[p]);
    console.log(
      `| ${p.padEnd(w)} | ${fmt(m).padStart(14)} | ${fmt(quantile(ms[p], 0.25)).padStart(6)} | ${fmt(quantile(ms[p], 0.75)).padStart(6)} | ${String(ms[p].length).padStart(2)} | ${(fmt(m / ref, 2) + 'x').padStart(12)} | ${fmt(median(torchMs[p])).padStart(15)} | ${(torchRatios[p].length ? fmt(median(torchRatios[p]), 2) + 'x' : '-').padStart(10)} | ${params[p]} |`,
    );
  }
  console.log('');
  console.log(
    JSON.stringify({
      bench: 'presets',
      ms_median: Object.fromEntries(presets.map((p) => [p, median(ms[p])])),
      n: Object.fromEntries(presets.map((p) => [p, ms[p].length])),
      ...(values.torch ? { torch_ms_median: Object.fromEntries(presets.map((p) => [p, median(torchMs[p])])) } : {}),
      vs_torch: Object.fromEntries(presets.map((p) => [p, median(torchRatios[p])])),
      loadavg: loadavg()[0],
    }),
  );
}

main().catch((e) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : e);
  process.exit(1);
});
