/**
 * OpenBLAS sgemm through semigan's addon on 1 and on N threads, for the matMul shapes of an MNIST
 * training step and of a server's small batches: back to back (as in a training step) and after
 * an idle gap (as between requests), and whether the two thread counts give the same bits.
 * Behind nn/blas_matmul.ts's PARALLEL_MIN_MACS.
 *
 *   npx tsc -p . && node dist/scripts/bench/blas_threads.js [--threads 2] [--reps 25]
 *
 * Prints figures, asserts nothing.
 */
import { loadNative } from '../../src/nn/native_addon.js';
import { positiveIntOption, scriptArgs } from '../lib/args.js';
import { sgemmGflops } from '../lib/sgemm.js';

const { values } = scriptArgs({
  options: { threads: { type: 'string', default: '2' }, reps: { type: 'string', default: '25' } },
});
const threads = positiveIntOption(values, 'threads');
const reps = positiveIntOption(values, 'reps');
const native = loadNative();
if (!native.ok) {
  console.error(`blas_threads: ${native.why}`);
  process.exit(2);
}
const addon = native.addon;
console.log(`# ${addon.describe()}`);

const MB = 1 << 20;
const heap = new ArrayBuffer(96 * MB);
const all = new Float32Array(heap);
for (let i = 0; i < all.length; i++) all[i] = ((i * 2654435761) % 1000) / 1000 - 0.5;
const [A, B, C] = [0, 32 * MB, 64 * MB];

type Shape = [m: number, n: number, k: number, ta: boolean, tb: boolean];
const mm = ([m, n, k, ta, tb]: Shape, t: number) => addon.matmul(heap, A, B, C, 1, 1, m, n, k, ta, tb, -1, 0, 0, t);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function medianMs(shape: Shape, t: number, gapMs: number): Promise<number> {
  const ms: number[] = [];
  mm(shape, t); // the thread count settles
  for (let r = 0; r < reps; r++) {
    if (gapMs > 0) await sleep(gapMs);
    const t0 = performance.now();
    mm(shape, t);
    ms.push(performance.now() - t0);
  }
  return ms.sort((a, b) => a - b)[Math.floor(reps / 2)];
}

function sameBits(shape: Shape): number {
  const [m, n] = shape;
  mm(shape, 1);
  const one = new Uint32Array(heap, C, m * n).slice();
  mm(shape, threads);
  const many = new Uint32Array(heap, C, m * n);
  return one.reduce((d, x, i) => d + (x !== many[i] ? 1 : 0), 0);
}

const shapes: [string, Shape][] = [
  ['D step, layer 1 forward (300 rows)', [300, 1000, 784, false, false]],
  ['D step, layer 1 weight gradient', [784, 1000, 300, true, false]],
  ['D step, layer 2 input gradient', [300, 1000, 500, false, true]],
  ['G step, layer 1 forward (100 rows)', [100, 1000, 784, false, false]],
  ['D, a 250x250 layer (100 rows)', [100, 250, 250, false, false]],
  ['D step, a 250x250 weight gradient', [250, 250, 300, true, false]],
  ['output layer input gradient (k=10)', [300, 250, 10, false, true]],
  ['serving batch 64, layer 1', [64, 1000, 784, false, false]],
  ['serving batch 16, layer 1', [16, 1000, 784, false, false]],
];

console.log(
  `\n| shape (m x n x k) | what | M MACs | 1 thread, back to back | ${threads} threads | 1 thread, 50 ms idle before | ${threads} threads | elements that differ, 1 vs ${threads} threads |`,
);
console.log('|---|---|---:|---:|---:|---:|---:|---:|');
for (const [what, shape] of shapes) {
  const [m, n, k, ta, tb] = shape;
  const macs = (m * n * k) / 1e6;
  const busy = [await medianMs(shape, 1, 0), await medianMs(shape, threads, 0)];
  const idle = [await medianMs(shape, 1, 50), await medianMs(shape, threads, 50)];
  const f = (x: number) => `${x.toFixed(3)} ms`;
  console.log(
    `| ${m}x${n}x${k}${ta ? ' (A^T)' : ''}${tb ? ' (B^T)' : ''} | ${what} | ${macs.toFixed(1)} | ${f(busy[0])} | ${f(busy[1])} | ${f(idle[0])} | ${f(idle[1])} | ${sameBits(shape)} of ${m * n} |`,
  );
}
console.log(`\nsgemm 1000x1000x1000 on ${threads} threads: ${sgemmGflops(addon, threads).toFixed(0)} GFLOP/s`);
