/**
 * The native ziggurat fill (the addon, wedges included; JavaScript for the tail) draws exactly the
 * numbers of the JavaScript-only Rng, and leaves the generator in the same state.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng, useNativeNormal } from '../../src/rng.js';
import { loadNative } from '../../src/nn/native_addon.js';

const native = loadNative();

test(
  'Rng.fillNormal with the native sampler: the same bits and the same next state as JavaScript alone',
  { skip: !native.ok && 'the native addon is not built here' },
  () => {
    assert.ok(native.ok);
    const draw = (useIt: boolean) => {
      useNativeNormal(useIt ? native.addon : null);
      const rng = new Rng(42);
      const outs = [1, 7, 100_000, 1_000_000, 4_000_000].map((n, i) =>
        rng.fillNormal(new Float32Array(n), [1, 0.3, 0.5, 2, 1][i]),
      );
      return { bits: outs.map((o) => new Uint32Array(o.buffer)), state: rng.getState(), next: rng.uniform() };
    };
    const js = draw(false);
    const ours = draw(true);
    useNativeNormal(null);
    js.bits.forEach((b, i) => {
      let differing = 0;
      for (let j = 0; j < b.length; j++) if (b[j] !== ours.bits[i][j]) differing++;
      assert.equal(differing, 0, `fill ${i} (${b.length} values): ${differing} differ`);
    });
    assert.deepEqual(ours.state, js.state);
    assert.equal(ours.next, js.next);
    // The million values did take the slow path (tail and wedges) many times: |x| > 3.44 happens.
    const big = new Float32Array(js.bits[3].buffer).filter((x) => Math.abs(x) > 2 * 3.44);
    assert.ok(big.length > 0, 'no draw from the tail');
  },
);
