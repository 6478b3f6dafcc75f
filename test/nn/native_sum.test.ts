/**
 * The native Sum over leading axes (src/nn/native_sum.ts) against tfjs's own wasm Sum kernel,
 * bit for bit, and the reductions it leaves to that kernel.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend.js';
import { Rng } from '../../src/rng.js';
import { loadNative } from '../../src/nn/native_addon.js';
import { useNativeSum, useWasmSum } from '../../src/nn/native_sum.js';

const native = loadNative();
const rng = new Rng(5);

test(
  'Sum over leading axes: bit-identical to the wasm kernel, with keepDims and negative axes',
  { skip: !native.ok && 'the native addon is not built here' },
  async () => {
    await initBackend('wasm');
    assert.ok(native.ok);
    const cases: [number[], number | number[], boolean][] = [
      [[784, 1000], 0, false],
      [[300, 250], 0, true],
      [[300, 10], -2, false],
      [[2, 3, 40], [0, 1], false],
      [[2, 3, 40], [1, 0], true],
      [[5, 7], 1, false], // inner axis: the original kernel
      [[4, 5, 6], [0, 2], false], // not leading: the original kernel
      [[6, 5], [0, 1], false], // every axis: the original kernel
    ];
    for (const [shape, axis, keepDims] of cases) {
      const x = tf.tensor(rng.fillNormal(new Float32Array(shape.reduce((a, b) => a * b, 1)), 3), shape);
      useWasmSum();
      const ref = tf.sum(x, axis, keepDims);
      useNativeSum(native.addon);
      const ours = tf.sum(x, axis, keepDims);
      const what = `sum of [${shape}] over ${JSON.stringify(axis)}${keepDims ? ' (keepDims)' : ''}`;
      assert.deepEqual(ours.shape, ref.shape, what);
      assert.deepEqual(
        new Uint32Array((ours.dataSync() as Float32Array).slice().buffer),
        new Uint32Array((ref.dataSync() as Float32Array).slice().buffer),
        what,
      );
      tf.dispose([x, ref, ours]);
    }
    // An int32 sum still works (the original kernel).
    assert.deepEqual(Array.from(tf.sum(tf.tensor2d([1, 2, 3, 4], [2, 2], 'int32'), 0).dataSync()), [4, 6]);
  },
);
