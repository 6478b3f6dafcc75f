/**
 * The routes to every core, measured side by side on the paper's MNIST step (ms per iteration,
 * the real Trainer, one warm-up epoch each):
 *
 *   A. tfjs only: one wasm thread, no native addon (semigan before the addon).
 *   B. the ceiling of data-parallel workers: two processes at once, each training on half the
 *      batch (50 + 50 + 50 rows) on one wasm thread. A real data-parallel step would add the
 *      gradient exchange and synchronised batch statistics on top, so this is a lower bound on
 *      its time per full-batch iteration.
 *   C. the native addon: OpenBLAS matMuls on N threads plus the native Adam/EMA/Sum/noise.
 *   D. the native addon with --matmul wasm: tfjs's matMuls, native bit-identical rest.
 *
 *   npx tsc -p . && node dist/scripts/bench/routes.js [--iters 30] [--threads 2]
 *
 * Each route runs in child processes one after another (never two routes at once). Prints a
 * table and one JSON line; asserts nothing.
 */
import { spawn } from 'node:child_process';
import { availableParallelism, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { initBackend, type MatMulChoice } from '../../src/backend.js';
import { positiveIntOption, scriptArgs } from '../lib/args.js';
import { benchConfig, loadBenchData, median, timeIterations } from '../lib/trainer_timing.js';

const { values } = scriptArgs({
  options: {
    iters: { type: 'string', default: '30' },
    threads: { type: 'string', default: String(availableParallelism()) },
    child: { type: 'string' }, // internal: "batch,threads,matmul"
  },
});
const iters = positiveIntOption(values, 'iters');

if (values.child) {
  const [batch, threads, matmul] = values.child.split(',');
  const backend = await initBackend('wasm', { threads: Number(threads), matmul: matmul as MatMulChoice });
  const config = benchConfig({ batchSize: Number(batch) });
  const timing = await timeIterations(config, loadBenchData(config), { iters });
  process.stdout.write(
    JSON.stringify({ ms: median(timing.ms), threads: backend.threads, matmul: backend.matmul }) + '\n',
  );
  process.exit(0);
}

const SELF = fileURLToPath(import.meta.url);
function child(
  batch: number,
  threads: number,
  matmul: MatMulChoice,
  env: NodeJS.ProcessEnv,
): Promise<{ ms: number; threads: number; matmul: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [SELF, '--iters', String(iters), '--child', `${batch},${threads},${matmul}`], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    p.stdout.on('data', (b) => (out += b));
    p.on('close', (code) =>
      code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop()!)) : reject(new Error(`child exited ${code}`)),
    );
  });
}

const threads = positiveIntOption(values, 'threads');
const noAddon = { SEMIGAN_NATIVE_ADDON: '/nonexistent/semigan_native.node' };
console.log(
  `# ${availableParallelism()} cores, loadavg ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}; ${iters} timed iterations per route`,
);
const a = await child(100, 1, 'wasm', noAddon);
const b = await Promise.all([child(50, 1, 'wasm', noAddon), child(50, 1, 'wasm', noAddon)]);
const c = await child(100, threads, 'auto', {});
const d = await child(100, 1, 'wasm', {});
const bMs = Math.max(b[0].ms, b[1].ms);
const rows: [string, number, string][] = [
  ['A. tfjs only, 1 wasm thread (before)', a.ms, '1'],
  ['B. data-parallel ceiling: 2 processes x half batch, at once', bMs, '2 x 1'],
  [`C. native addon, OpenBLAS matMuls`, c.ms, String(c.threads)],
  ['D. native addon, --matmul wasm (bit-exact with A)', d.ms, '1'],
];
console.log('\n| route | ms/iter (median) | threads | vs A |');
console.log('|---|---:|---:|---:|');
for (const [name, ms, th] of rows) console.log(`| ${name} | ${ms.toFixed(1)} | ${th} | ${(a.ms / ms).toFixed(2)}x |`);
console.log(
  JSON.stringify({
    bench: 'routes',
    iters,
    a_ms: a.ms,
    b_ms: bMs,
    b_each_ms: b.map((r) => r.ms),
    c_ms: c.ms,
    c_threads: c.threads,
    d_ms: d.ms,
    loadavg: loadavg()[0],
  }),
);
