/**
 * The native in-place Adam and EMA updates (src/nn/in_place_updates.ts) give bit-identical
 * numbers to the tfjs ops they replace, over many steps; tensors shared with another tensor are
 * never written in place. Real Adam / Ema objects, switched between the two paths.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend.js';
import { Rng } from '../../src/rng.js';
import { makeParams, type Params } from '../../src/nn/params.js';
import { emaInPlace, useInPlaceUpdates } from '../../src/nn/in_place_updates.js';
import { loadNative } from '../../src/nn/native_addon.js';
import { Adam } from '../../src/train/adam.js';
import { Ema } from '../../src/train/ema.js';

const native = loadNative();
const skip = { skip: !native.ok && 'the native addon is not built here' };

/** Two identical parameter sets: a [300, 200] matrix and a [200] vector. */
function params(seed: number): Params {
  const rng = new Rng(seed);
  return makeParams(
    {
      w: tf.tensor2d(rng.fillNormal(new Float32Array(300 * 200), 0.1), [300, 200]),
      b: tf.tensor1d(rng.fillNormal(new Float32Array(200), 0.1)),
      fixed: tf.ones([3]),
    },
    ['w', 'b'],
  );
}

const bits = (t: tf.Tensor): Uint32Array => new Uint32Array((t.dataSync() as Float32Array).slice().buffer);

/**
 * 20 Adam steps (random gradients, varying lr) + EMA updates; the final state, as bits. After
 * every step w is used as a matMul's weights, as G's plain dense layers use theirs: XNNPACK keeps
 * a packed copy of such weights, which must follow every update.
 */
function run(inPlace: boolean): Uint32Array[] {
  useInPlaceUpdates(inPlace && native.ok ? native.addon : null);
  const p = params(3);
  const adam = new Adam(p, { beta1: 0.5, beta2: 0.999, epsilon: 1e-8 });
  const ema = new Ema(p, 0.9999);
  const rng = new Rng(9);
  const x = tf.tensor2d(new Rng(4).fillNormal(new Float32Array(8 * 300)), [8, 300]);
  const products: Uint32Array[] = [];
  for (let step = 0; step < 20; step++) {
    tf.tidy(() => {
      const grads = {
        w: tf.tensor2d(rng.fillNormal(new Float32Array(300 * 200), step % 3 === 0 ? 1e-6 : 1), [300, 200]),
        b: tf.tensor1d(rng.fillNormal(new Float32Array(200))),
      };
      adam.apply(grads, 0.003 * (1 - step / 40));
    });
    ema.update();
    const product = tf.matMul(x, p.vars.w);
    products.push(bits(product));
    product.dispose();
  }
  x.dispose();
  const out = [
    p.vars.w,
    p.vars.b,
    adam.state.m.w,
    adam.state.v.w,
    adam.state.m.b,
    adam.state.v.b,
    ema.shadow.w,
    ema.shadow.b,
  ].map(bits);
  out.push(...products);
  adam.dispose();
  ema.dispose();
  for (const v of Object.values(p.vars)) v.dispose();
  return out;
}

test(
  'native in-place Adam + EMA: bit-identical to the tfjs ops after 20 steps, and so are matMuls with the updated weights; no tensor leaks',
  skip,
  async () => {
    await initBackend('wasm', { matmul: 'wasm' });
    const before = tf.memory();
    const ref = run(false);
    const ours = run(true);
    assert.equal(tf.memory().numTensors, before.numTensors);
    assert.equal(tf.memory().numBytes, before.numBytes);
    const names = [
      'w',
      'b',
      'm.w',
      'v.w',
      'm.b',
      'v.b',
      'ema.w',
      'ema.b',
      ...Array.from({ length: 20 }, (_, i) => `x w after step ${i + 1}`),
    ];
    ref.forEach((r, i) => {
      const o = ours[i];
      let differing = 0;
      for (let j = 0; j < r.length; j++) if (r[j] !== o[j]) differing++;
      assert.equal(differing, 0, `${names[i]}: ${differing} of ${r.length} values differ`);
    });
    // And the updates did move the parameters (the comparison is not of two untouched copies).
    assert.notDeepEqual(ref[0], bits(params(3).vars.w));
  },
);

test('a shadow or parameter shared with another tensor is not written in place', skip, async () => {
  await initBackend('wasm');
  useInPlaceUpdates(native.ok ? native.addon : null);
  const s = tf.tidy(() => tf.variable(tf.zeros([4]), false)); // the zeros are freed: s owns its memory
  const p = tf.tensor1d([1, 2, 3, 4]);
  const alias = s.reshape([2, 2]); // shares s's memory (a clone would copy it)
  assert.equal(emaInPlace(s, p, 0.5), false);
  assert.deepEqual(Array.from(alias.dataSync()), [0, 0, 0, 0]);
  alias.dispose();
  assert.equal(emaInPlace(s, p, 0.5), true);
  assert.deepEqual(Array.from(s.dataSync()), [0.5, 1, 1.5, 2]);
  tf.dispose([s, p]);
});
