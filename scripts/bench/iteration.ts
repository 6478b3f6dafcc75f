/**
 * Milliseconds per full training iteration (D step on 100 labeled + 100 unlabeled + 100
 * generated rows, then the G step) of the paper's MNIST model on wasm, with tfjs's own MatMul
 * gradient and with our explicit-transpose one, in one process; plus the share of an iteration
 * spent generating noise with our Rng.
 *
 *   npx tsc -p . && node dist/scripts/bench/iteration.js [--iters 20] [--rounds 2] [--train-limit 6000]
 *
 * The variants alternate (default, explicit, default, explicit, ...) so that a change in machine
 * load hits both alike; every round trains a fresh Trainer (same seed) with one warm-up epoch.
 * Prints figures, asserts nothing.
 */
import * as tf from '@tensorflow/tfjs';
import { cpus, loadavg } from 'node:os';
import { positiveIntOption, scriptArgs } from '../lib/args.js';
import { initBackend } from '../../src/backend.js';
import { explicitTransposeMatMulGrad, useExplicitTransposeMatMulGrad } from '../../src/nn/matmul_grad.js';
import {
  benchConfig,
  loadBenchData,
  median,
  quantile,
  timeFillNormal,
  timeIterations,
  wasmInfo,
  type IterationTiming,
} from '../lib/trainer_timing.js';

// tfjs registers its gradients when it is imported; initBackend('wasm') replaces the MatMul one.
// Keep tfjs's own config so that both can be switched in and out by the global registry.
const TFJS_MATMUL_GRAD = tf.getGradient(tf.BatchMatMul);

const { values } = scriptArgs({
  options: {
    iters: { type: 'string', default: '20' }, // timed iterations per variant
    rounds: { type: 'string', default: '2' }, // alternations of the two variants
    'train-limit': { type: 'string', default: '6000' },
    'iters-per-epoch': { type: 'string', default: '11' },
  },
});
const int = (name: keyof typeof values) => positiveIntOption(values, name);

const VARIANTS = [
  {
    key: 'default',
    label: 'tfjs default MatMul grad',
    use: () => tf.registerGradient(TFJS_MATMUL_GRAD),
    grad: () => TFJS_MATMUL_GRAD,
  },
  {
    key: 'explicit',
    label: 'explicit-transpose MatMul grad',
    use: useExplicitTransposeMatMulGrad,
    grad: () => explicitTransposeMatMulGrad,
  },
] as const;

const fmt = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '-');

async function main(): Promise<void> {
  if (!TFJS_MATMUL_GRAD || TFJS_MATMUL_GRAD === explicitTransposeMatMulGrad) {
    throw new Error("could not capture tfjs's own MatMul gradient (already replaced at import time?)");
  }
  const iters = int('iters');
  const rounds = int('rounds');
  const itersPerEpoch = int('iters-per-epoch');
  const backend = await initBackend('wasm');
  const config = benchConfig({ trainLimit: int('train-limit') });
  const data = loadBenchData(config);

  console.log(
    `# semigan iteration benchmark: ${config.preset}, mode ${config.mode}, batch ${config.batchSize} labeled + ${config.batchSize} unlabeled + ${config.batchSize} generated, then G step`,
  );
  console.log(`# ${await wasmInfo()} (${backend.reason}); data ${data.summaryText}`);
  console.log(
    `# node ${process.version}, ${cpus().length} cores, loadavg ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
  console.log(
    `# ${rounds} rounds x ${VARIANTS.length} variants, ~${Math.ceil(iters / rounds)} timed iterations each after a warm-up epoch of ${itersPerEpoch}`,
  );

  const results: Record<string, IterationTiming[]> = { default: [], explicit: [] };
  for (let r = 1; r <= rounds; r++) {
    for (const v of VARIANTS) {
      v.use();
      if (tf.getGradient(tf.BatchMatMul) !== v.grad())
        throw new Error(`registering the ${v.key} MatMul gradient did not take effect`);
      const t0 = performance.now();
      const timing = await timeIterations(config, data, { iters: Math.ceil(iters / rounds), itersPerEpoch });
      results[v.key].push(timing);
      console.log(
        `#   round ${r} ${v.key.padEnd(8)} median ${fmt(median(timing.ms))} ms over ${timing.ms.length} iterations (${((performance.now() - t0) / 1000).toFixed(1)} s incl. warm-up)`,
      );
    }
  }
  useExplicitTransposeMatMulGrad(); // leave the registry as initBackend set it

  const all = (key: string, f: (t: IterationTiming) => number[]) => results[key].flatMap(f);
  const rows = VARIANTS.map((v) => {
    const ms = all(v.key, (t) => t.ms);
    return { label: v.label, ms, med: median(ms) };
  });
  const w = Math.max(...rows.map((r) => r.label.length), 'variant'.length);
  console.log('');
  console.log(`| ${'variant'.padEnd(w)} | median ms/iter |    p25 |    p75 |    min |  n |`);
  console.log(`|${'-'.repeat(w + 2)}|---------------:|-------:|-------:|-------:|---:|`);
  for (const r of rows) {
    console.log(
      `| ${r.label.padEnd(w)} | ${fmt(r.med).padStart(14)} | ${fmt(quantile(r.ms, 0.25)).padStart(6)} | ${fmt(quantile(r.ms, 0.75)).padStart(6)} | ${fmt(Math.min(...r.ms)).padStart(6)} | ${String(r.ms.length).padStart(2)} |`,
    );
  }
  const [def, exp] = rows;
  const ratio = def.med / exp.med;
  console.log('');
  console.log(
    `ratio default / explicit-transpose: ${ratio.toFixed(2)}x (explicit saves ${fmt(def.med - exp.med)} ms per iteration)`,
  );

  // Noise: measured inside the explicit-variant iterations (what training runs), and standalone.
  const ex = results.explicit[0];
  const normalMs = all('explicit', (t) => t.normalMs);
  const uniformMs = all('explicit', (t) => t.uniformMs);
  const standalone = median(timeFillNormal(ex.normalsPerIter));
  const share = (x: number) => `${((100 * x) / exp.med).toFixed(1)}%`;
  console.log('');
  console.log(
    `noise per iteration: ${ex.normalsPerIter} normals (Rng.fillNormal) + ${ex.uniformsPerIter} uniforms (z)`,
  );
  console.log(
    `  in training  : fillNormal ${fmt(median(normalMs), 2)} ms + fillUniform ${fmt(median(uniformMs), 2)} ms per iteration (median) = ${share(median(normalMs) + median(uniformMs))} of the explicit-variant iteration`,
  );
  console.log(
    `  standalone   : fillNormal of ${ex.normalsPerIter} values ${fmt(standalone, 2)} ms (median of 20) = ${share(standalone)}`,
  );
  console.log('  (excludes turning the noise into tensors and adding it, which is counted as tensor work)');

  console.log('');
  console.log(
    JSON.stringify({
      bench: 'iteration',
      default_ms_median: def.med,
      explicit_ms_median: exp.med,
      ratio,
      n: [def.ms.length, exp.ms.length],
      normals_per_iter: ex.normalsPerIter,
      noise_ms_median: median(normalMs) + median(uniformMs),
      fill_normal_standalone_ms: standalone,
      train_limit: config.trainLimit,
      loadavg: loadavg()[0],
    }),
  );
}

main().catch((e) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : e);
  process.exit(1);
});
