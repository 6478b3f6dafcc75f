/**
 * The native layer kernels (src/nn/native_layers.ts) against the tfjs ops they replace, bit for
 * bit: weight norm, dense with bias and ReLU, Gaussian noise, each forward and backward, and a
 * whole D pass of the paper's model.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend.js';
import { Rng } from '../../src/rng.js';
import { loadNative } from '../../src/nn/native_addon.js';
import { batchNormSoftplus, dense, useNativeLayers } from '../../src/nn/native_layers.js';
import { weightNormKernel } from '../../src/nn/weight_norm.js';
import { gaussianNoise } from '../../src/nn/noise.js';
import { mnistMlp } from '../../src/models/mnist_mlp.js';
import { discriminatorLosses, type DiscriminatorLossSpec } from '../../src/train/losses.js';

const native = loadNative();
const skip = !native.ok && 'the native addon is not built here';
const normal = (rng: Rng, shape: number[], std = 1) =>
  tf.tensor(rng.fillNormal(new Float32Array(shape.reduce((a, b) => a * b, 1)), std), shape);

/** f's value and gradients with the native kernels, then with tfjs ops: [native, tfjs]. */
function bothWays(f: () => tf.Tensor[]): [Float32Array[], Float32Array[]] {
  assert.ok(native.ok);
  const run = () =>
    tf
      .tidy(() => f())
      .map((t) => {
        const d = t.dataSync() as Float32Array;
        t.dispose();
        return d;
      });
  useNativeLayers(native.addon);
  const mine = run();
  useNativeLayers(null);
  const theirs = run();
  useNativeLayers(native.addon);
  return [mine, theirs];
}

function assertBitIdentical(mine: Float32Array[], theirs: Float32Array[], what: string): void {
  assert.equal(mine.length, theirs.length);
  for (let i = 0; i < mine.length; i++) {
    assert.equal(mine[i].length, theirs[i].length, `${what}, output ${i}: length`);
    const a = new Uint32Array(mine[i].buffer, mine[i].byteOffset, mine[i].length);
    const b = new Uint32Array(theirs[i].buffer, theirs[i].byteOffset, theirs[i].length);
    const bad = a.findIndex((x, j) => x !== b[j]);
    assert.equal(bad, -1, `${what}, output ${i}: element ${bad} is ${mine[i][bad]}, tfjs gives ${theirs[i][bad]}`);
  }
}

/** Each element within `tol` of tfjs's, relative to max(1, |tfjs's value|). */
function assertClose(mine: Float32Array[], theirs: Float32Array[], tol: number, what: string): void {
  mine.forEach((m, i) =>
    m.forEach((v, j) =>
      assert.ok(
        Math.abs(v - theirs[i][j]) <= tol * Math.max(1, Math.abs(theirs[i][j])),
        `${what}, output ${i}[${j}]: ${v}, tfjs ${theirs[i][j]}`,
      ),
    ),
  );
}

test('weight norm: kernel and gradients bit-identical to the tfjs ops', { skip }, async () => {
  await initBackend('wasm', { threads: 2 });
  const rng = new Rng(3);
  for (const [rows, cols] of [
    [784, 1000],
    [250, 10],
    [3, 5],
    [1, 7],
  ]) {
    const v = normal(rng, [rows, cols], 0.1) as tf.Tensor2D;
    const g = normal(rng, [cols]).abs().add(0.5) as tf.Tensor1D;
    const dw = normal(rng, [rows, cols]);
    const [mine, theirs] = bothWays(() => [
      weightNormKernel(v, g),
      ...tf.grads((a, b) =>
        weightNormKernel(a as tf.Tensor2D, b as tf.Tensor1D)
          .mul(dw)
          .sum(),
      )([v, g]),
    ]);
    assertBitIdentical(mine, theirs, `weight norm of [${rows}, ${cols}]`);
  }
});

test('dense with bias, ReLU, linear or sigmoid: output and the three gradients as the tfjs ops', { skip }, async () => {
  await initBackend('wasm', { threads: 2 });
  const rng = new Rng(4);
  for (const [rows, nin, nout] of [
    [300, 784, 1000],
    [100, 250, 10],
    [2, 3, 5],
  ])
    for (const activation of ['relu', 'linear', 'sigmoid'] as const) {
      const x = normal(rng, [rows, nin]) as tf.Tensor2D;
      const w = normal(rng, [nin, nout], 0.1) as tf.Tensor2D;
      const b = normal(rng, [nout]) as tf.Tensor1D;
      const dy = normal(rng, [rows, nout]);
      const [mine, theirs] = bothWays(() => [
        dense(x, w, b, activation),
        ...tf.grads((a, k, c) =>
          dense(a as tf.Tensor2D, k as tf.Tensor2D, c as tf.Tensor1D, activation)
            .mul(dy)
            .sum(),
        )([x, w, b]),
      ]);
      const what = `${activation} dense [${rows}, ${nin}] x [${nin}, ${nout}]`;
      // Bit for bit, but for the sigmoid's exp (C's against wasm's): its ~1e-7 relative
      // differences summed over up to 784 products in the gradients' matMuls.
      if (activation === 'sigmoid') assertClose(mine, theirs, 1e-5, what);
      else assertBitIdentical(mine, theirs, what);
    }
});

test('dense: the backward pass runs only the matMuls the tape needs', { skip }, async () => {
  await initBackend('wasm', { threads: 2 });
  const rng = new Rng(5);
  const x = normal(rng, [50, 40]) as tf.Tensor2D;
  const w = normal(rng, [40, 30]) as tf.Tensor2D;
  const b = normal(rng, [30]) as tf.Tensor1D;
  const matMuls = async (f: () => void) => {
    const names = (await tf.profile(() => tf.tidy(f))).kernels.map((k) => k.name);
    assert.ok(names.includes('SemiganDense') && names.includes('SemiganActGrad'), names.join(' '));
    return names.filter((k) => k === 'BatchMatMul').length;
  };
  // w's gradient only (x is data), then x's only (D fixed in G's step): one matMul each.
  assert.equal(await matMuls(() => void tf.grad((k) => dense(x, k as tf.Tensor2D, b, 'relu').sum())(w)), 1);
  assert.equal(await matMuls(() => void tf.grad((a) => dense(a as tf.Tensor2D, w, b, 'relu').sum())(x)), 1);
  assert.equal(
    await matMuls(() => void tf.grads((a, k) => dense(a as tf.Tensor2D, k as tf.Tensor2D, b, 'relu').sum())([x, w])),
    2,
  );
});

test(
  'Gaussian noise: the same draws as the tfjs path from the same seed, gradient passed through',
  { skip },
  async () => {
    await initBackend('wasm', { threads: 2 });
    const x = normal(new Rng(6), [300, 784]);
    const dy = normal(new Rng(7), [300, 784]);
    let seed = 0;
    const [mine, theirs] = bothWays(() => {
      const rng = new Rng(8 + seed++ * 0); // the same seed both ways
      return [gaussianNoise(x, 0.3, rng), tf.grad((a) => gaussianNoise(a, 0.5, rng).mul(dy).sum())(x)];
    });
    assertBitIdentical(mine, theirs, 'noise on [300, 784]');
    // The noise is there: its moments (std 0.3 over 235,200 draws: the mean within 5 standard errors).
    const diff = mine[0].map((v, i) => v - x.dataSync()[i]);
    const mean = diff.reduce((s, v) => s + v, 0) / diff.length;
    const std = Math.sqrt(diff.reduce((s, v) => s + (v - mean) ** 2, 0) / diff.length);
    assert.ok(Math.abs(mean) < (5 * 0.3) / Math.sqrt(diff.length), `mean ${mean}`);
    assert.ok(Math.abs(std - 0.3) < 0.003, `std ${std}`);
    assert.deepEqual(Array.from(mine[1]), Array.from(dy.dataSync()));
  },
);

test(
  "the paper's D: loss gradients of a noisy pass bit-identical with and without the native layers",
  { skip },
  async () => {
    await initBackend('wasm', { threads: 2 });
    const model = mnistMlp({ inputDim: 784, numClasses: 10 });
    const d = model.createD(new Rng(9));
    const x = normal(new Rng(10), [300, 784]).sigmoid() as tf.Tensor2D;
    model.initD(d, x.slice([0, 0], [100, -1]), { noise: new Rng(11) });
    const names = d.trainable;
    const [mine, theirs] = bothWays(() => {
      const rng = new Rng(12);
      const { grads, value } = tf.variableGrads(
        () => {
          const { logits, features } = model.applyD(d.vars, x, { noise: rng });
          return logits.logSumExp(1).mean().add(features.square().mean()) as tf.Scalar;
        },
        names.map((n) => d.vars[n]),
      );
      return [value, ...names.map((n) => grads[d.vars[n].name])];
    });
    assertBitIdentical(mine, theirs, "D's loss and gradients");
  },
);

test(
  "G's batch norm + softplus: value and gradients equal to the tfjs ops within float32 rounding",
  { skip },
  async () => {
    await initBackend('wasm', { threads: 2 });
    const rng = new Rng(13);
    for (const [rows, cols] of [
      [100, 500],
      [2, 3],
      [7, 1],
    ]) {
      const h = normal(rng, [rows, cols], 3).add(1) as tf.Tensor2D;
      const shift = normal(rng, [cols]) as tf.Tensor1D;
      const dy = normal(rng, [rows, cols]);
      const [mine, theirs] = bothWays(() => [
        batchNormSoftplus(h, shift),
        ...tf.grads((a, b) =>
          batchNormSoftplus(a as tf.Tensor2D, b as tf.Tensor1D)
            .mul(dy)
            .sum(),
        )([h, shift]),
      ]);
      // Outputs are O(1) and gradients O(1/std): float32's epsilon (1.2e-7) times a few operations.
      mine.forEach((m, i) => {
        const scale = Math.max(...theirs[i].map(Math.abs));
        const worst = m.reduce((w, v, j) => Math.max(w, Math.abs(v - theirs[i][j])), 0);
        assert.ok(
          worst <= 2e-6 * Math.max(scale, 1),
          `[${rows}, ${cols}] output ${i}: off by ${worst} (scale ${scale})`,
        );
      });
    }
  },
);

test(
  "D's losses in one native call: total, parts and the total's gradient equal to the tfjs ops",
  { skip },
  async () => {
    await initBackend('wasm', { threads: 2 });
    const rng = new Rng(14);
    const labels = tf.tensor1d([3, 0, 9, 9, 1, 4, 0], 'int32');
    const base = {
      labeled: 7,
      unlabeled: 5,
      generated: 7,
      secondLook: null,
      realTarget: 1,
      unlabeledWeight: 1,
      entropy: 0,
      consistency: 0,
    };
    const cases: [string, DiscriminatorLossSpec, number][] = [
      ['paper', base, 19],
      ['ct: entropy, consistency on a second look', { ...base, secondLook: 19, entropy: 0.1, consistency: 0.3 }, 24],
      ['label smoothing, unlabeled weight, VAT rows after', { ...base, realTarget: 0.9, unlabeledWeight: 0.5 }, 24],
      ['supervised only', { ...base, unlabeled: 0, generated: 0 }, 7],
    ];
    for (const [what, spec, rows] of cases) {
      const logits = normal(rng, [rows, 10], 3) as tf.Tensor2D;
      const [mine, theirs] = bothWays(() => {
        const { total, parts } = discriminatorLosses(logits, labels, spec);
        const grad = tf.grad((l) => discriminatorLosses(l as tf.Tensor2D, labels, spec).total.mul(1.7))(logits);
        return [total, parts, grad];
      });
      mine.forEach((m, i) =>
        m.forEach((v, j) =>
          assert.ok(
            Math.abs(v - theirs[i][j]) <= 3e-6 * Math.max(1, Math.abs(theirs[i][j])),
            `${what}, output ${i}[${j}]: ${v}, tfjs ${theirs[i][j]}`,
          ),
        ),
      );
    }
  },
);
