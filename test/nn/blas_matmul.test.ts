/**
 * The OpenBLAS matMul kernels (src/nn/blas_matmul.ts + src/native/semigan_native.c) against
 * float64 matMuls computed here and against tfjs's own wasm kernels, and the fallback to one
 * wasm thread when the addon cannot load. Kernel registration is global, so this file (its own
 * process under node --test) is the one that switches between the two.
 *
 * Where OpenBLAS is installed (CI installs it with scripts/install_system_deps.sh), the addon
 * must have been built by `npm ci`: a missing addon there is a failure, not a skip.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend.js';
import { Rng } from '../../src/rng.js';
import { useOpenBlasMatMul, useWasmMatMul } from '../../src/nn/blas_matmul.js';
import { loadNative } from '../../src/nn/native_addon.js';

const OPENBLAS_INSTALLED = [
  '/usr/include/cblas.h',
  '/usr/include/x86_64-linux-gnu/cblas.h',
  '/usr/include/aarch64-linux-gnu/cblas.h',
].some(existsSync);
const blas = loadNative();
const needsAddon = {
  skip: !blas.ok && !OPENBLAS_INSTALLED ? `OpenBLAS not installed here (${blas.ok ? '' : blas.why})` : false,
};

test(
  'the addon is built wherever OpenBLAS is installed',
  { skip: !OPENBLAS_INSTALLED && 'OpenBLAS not installed here' },
  () => {
    assert.ok(blas.ok, blas.ok ? '' : blas.why);
    assert.match(blas.addon.describe(), /OpenBLAS/);
  },
);

const rng = new Rng(11);
const normal = (shape: number[]) =>
  tf.tensor(rng.fillNormal(new Float32Array(shape.reduce((x, y) => x * y, 1))), shape);

/** out[..., i, j] = sum_l A[..., i, l] B[..., l, j] in float64, with A, B the (transposed) operands; batch 1 broadcasts. */
function reference(
  a: tf.Tensor,
  b: tf.Tensor,
  tA: boolean,
  tB: boolean,
): { data: Float64Array; shape: number[]; bound: Float64Array } {
  const ra = a.shape.length;
  const rb = b.shape.length;
  const [m, k] = tA ? [a.shape[ra - 1], a.shape[ra - 2]] : [a.shape[ra - 2], a.shape[ra - 1]];
  const n = tB ? b.shape[rb - 2] : b.shape[rb - 1];
  const batchA = a.size / (m * k);
  const batchB = b.size / (k * n);
  const batch = Math.max(batchA, batchB);
  const outer = (batchA >= batchB ? a : b).shape.slice(0, -2);
  const av = a.dataSync();
  const bv = b.dataSync();
  const out = new Float64Array(batch * m * n);
  const bound = new Float64Array(batch * m * n); // k * eps32 * sum |a_l b_l|: float32 summation in any order stays within it
  for (let p = 0; p < batch; p++) {
    const ao = (batchA === 1 ? 0 : p) * m * k;
    const bo = (batchB === 1 ? 0 : p) * k * n;
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let s = 0;
        let abs = 0;
        for (let l = 0; l < k; l++) {
          const t = av[ao + (tA ? l * m + i : i * k + l)] * bv[bo + (tB ? j * k + l : l * n + j)];
          s += t;
          abs += Math.abs(t);
        }
        out[p * m * n + i * n + j] = s;
        bound[p * m * n + i * n + j] = k * 2 ** -24 * abs;
      }
  }
  return { data: out, shape: [...outer, m, n], bound };
}

/** Every element within the float32 summation bound of the float64 reference. */
function assertWithinRounding(got: tf.Tensor, want: ReturnType<typeof reference>, what: string): void {
  assert.deepEqual(got.shape, want.shape, `${what}: shape`);
  const g = got.dataSync();
  for (let i = 0; i < g.length; i++) {
    const err = Math.abs(g[i] - want.data[i]);
    if (!(err <= want.bound[i]))
      assert.fail(`${what}: element ${i} is ${g[i]}, float64 gives ${want.data[i]} (bound ${want.bound[i]})`);
  }
}

function assertClose(
  got: tf.Tensor,
  want: { data: Float64Array | Float32Array; shape: number[] },
  what: string,
  tol = 1e-5,
): void {
  assert.deepEqual(got.shape, want.shape, `${what}: shape`);
  const g = got.dataSync();
  let worst = 0;
  for (let i = 0; i < g.length; i++)
    worst = Math.max(worst, Math.abs(g[i] - want.data[i]) / (1 + Math.abs(want.data[i])));
  assert.ok(worst < tol, `${what}: largest relative difference ${worst} (tolerance ${tol})`);
}

test(
  'BatchMatMul on OpenBLAS equals a float64 matMul (within float32 rounding) for every transpose and batch layout',
  needsAddon,
  async () => {
    await initBackend('wasm', { threads: 2 });
    assert.ok(blas.ok);
    const [m, k, n] = [37, 300, 29]; // large enough that OpenBLAS splits the work between threads
    const layouts: [number[], number[]][] = [
      [[], []],
      [[3], [3]],
      [[3], [1]], // b broadcast over a's batch
      [[1], [4]],
      [
        [2, 3],
        [2, 3],
      ],
    ];
    for (const [ba, bb] of layouts)
      for (const tA of [false, true])
        for (const tB of [false, true]) {
          const a = normal([...ba, ...(tA ? [k, m] : [m, k])]);
          const b = normal([...bb, ...(tB ? [n, k] : [k, n])]);
          const got = tf.matMul(a, b, tA, tB);
          assertWithinRounding(got, reference(a, b, tA, tB), `batch [${ba}]x[${bb}] tA=${tA} tB=${tB}`);
          tf.dispose([a, b, got]);
        }
    // Large enough (>= 100M multiply-adds) to run on both threads, and with m = 1 (the wasm kernel).
    for (const [m2, k2, n2] of [
      [400, 512, 512],
      [1, 300, 29],
    ]) {
      const a = normal([m2, k2]);
      const b = normal([k2, n2]);
      assertWithinRounding(tf.matMul(a, b), reference(a, b, false, false), `[${m2}, ${k2}] x [${k2}, ${n2}]`);
    }
  },
);

test(
  '_FusedMatMul on OpenBLAS (bias + relu / leaky relu / linear) equals the wasm kernel; prelu falls back to it',
  needsAddon,
  async () => {
    await initBackend('wasm', { threads: 2 });
    assert.ok(blas.ok);
    const a = normal([50, 64]);
    const b = normal([64, 33]);
    const bias = normal([33]);
    const prelu = normal([33]);
    const cases = [
      { activation: 'linear' as const },
      { activation: 'relu' as const },
      { activation: 'leakyrelu' as const, leakyreluAlpha: 0.2 },
      { activation: 'prelu' as const, preluActivationWeights: prelu },
      { activation: 'sigmoid' as const },
    ];
    const fused = (c: (typeof cases)[number], withBias: boolean) =>
      tf.fused.matMul({ a, b, bias: withBias ? bias : undefined, transposeB: false, ...c });
    const outputs: Float32Array[][] = [];
    for (const useBlas of [true, false]) {
      if (useBlas) useOpenBlasMatMul(blas.addon, 2);
      else useWasmMatMul();
      outputs.push(cases.flatMap((c) => [true, false].map((wb) => fused(c, wb).dataSync() as Float32Array)));
    }
    useOpenBlasMatMul(blas.addon, 2);
    outputs[0].forEach((got, i) =>
      assertClose(tf.tensor(got, [50, 33]), { data: outputs[1][i], shape: [50, 33] }, `case ${i}`),
    );
    // And leaky relu by hand: max(x, 0.2 x) of a + bias.
    const lin = reference(a, b, false, false);
    const bv = bias.dataSync();
    const want = lin.data.map((x, i) => {
      const y = x + bv[i % 33];
      return y > 0 ? y : 0.2 * y;
    });
    assertClose(fused(cases[2], true), { data: want, shape: [50, 33] }, 'leaky relu by hand');
  },
);

test('setThreads: the addon reports what it was given', needsAddon, () => {
  assert.ok(blas.ok);
  useOpenBlasMatMul(blas.addon, 1);
  assert.equal(blas.addon.getThreads(), 1);
  useOpenBlasMatMul(blas.addon, 2);
  assert.equal(blas.addon.getThreads(), 2);
});

test('the addon refuses operands outside the heap instead of reading past it', needsAddon, () => {
  assert.ok(blas.ok);
  const heap = new ArrayBuffer(1024);
  assert.throws(
    () => blas.addon.matmul(heap, 0, 512, 1000, 1, 1, 4, 4, 4, false, false, -1, 0, 0, 1),
    /outside the heap/,
  );
  assert.throws(() => blas.addon.matmul(heap, 0, 64, 128, 1, 1, 4, 4, 0, false, false, -1, 0, 0, 1), /bad shape/);
  blas.addon.matmul(heap, 0, 64, 128, 1, 1, 4, 4, 4, false, false, -1, 0, 0, 1); // inside: fine
});

test('a missing or broken addon: one wasm thread and the reason, never a crash', async () => {
  const missing = loadNative('/nonexistent/semigan_native.node');
  assert.equal(missing.ok, false);
  assert.match(missing.ok ? '' : missing.why, /not built/);

  const dir = mkdtempSync(join(tmpdir(), 'semigan-blas-'));
  const broken = join(dir, 'semigan_native.node');
  writeFileSync(broken, 'not a shared library');
  const info = await initBackend('wasm', { threads: 2, nativeAddon: broken });
  assert.equal(info.name, 'wasm');
  assert.equal(info.threads, 1);
  assert.match(
    info.threadsReason,
    /^1 thread \(native kernels addon did not load: .+; wasm runs one thread in Node\)$/,
  );
  // The wasm kernels still multiply correctly.
  const a = normal([8, 5]);
  const b = normal([5, 3]);
  assertWithinRounding(tf.matMul(a, b), reference(a, b, false, false), 'fallback matMul');
});
