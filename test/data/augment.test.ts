/** The image track's shifts and flips move pixels exactly as specified, on hand-made images. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { augmentRows, randomShifts, shiftImage } from '../../src/data/augment.js';
import { Rng } from '../../src/rng.js';
import { validateConfig } from '../../src/train/config.js';

// A 3 x 4 gray image with pixel (y, x) = 10 y + x + 1.
const img = Float32Array.from({ length: 12 }, (_, i) => 10 * Math.floor(i / 4) + (i % 4) + 1);
const grid = (a: Float32Array, w = 4) =>
  Array.from({ length: a.length / w }, (_, y) => [...a.subarray(y * w, y * w + w)]);

test('shiftImage: down 1 and left 1, zeros shifted in', () => {
  const out = new Float32Array(12);
  shiftImage(img, [3, 4, 1], { dy: 1, dx: -1, flip: false }, out);
  assert.deepEqual(grid(out), [
    [0, 0, 0, 0],
    [2, 3, 4, 0],
    [12, 13, 14, 0],
  ]);
});

test('shiftImage: mirrored left-right, then right 1', () => {
  const out = new Float32Array(12);
  shiftImage(img, [3, 4, 1], { dy: 0, dx: 0, flip: true }, out);
  assert.deepEqual(grid(out), [
    [4, 3, 2, 1],
    [14, 13, 12, 11],
    [24, 23, 22, 21],
  ]);
  shiftImage(img, [3, 4, 1], { dy: 0, dx: 1, flip: true }, out);
  // x' = 3 - x, source column x' - 1: row 0 -> [in[2], in[1], in[0], 0] = [3, 2, 1, 0]
  assert.deepEqual(grid(out)[0], [3, 2, 1, 0]);
});

test("shiftImage keeps each pixel's channels together (RGB)", () => {
  // 1 x 2 RGB: [(1,2,3), (4,5,6)] shifted right by 1 -> [(0,0,0), (1,2,3)]
  const out = new Float32Array(6);
  shiftImage(Float32Array.from([1, 2, 3, 4, 5, 6]), [1, 2, 3], { dy: 0, dx: 1, flip: false }, out);
  assert.deepEqual([...out], [0, 0, 0, 1, 2, 3]);
});

test('augmentRows: shifts in [-N, N], every one reachable, no flip unless asked, applied row by row', () => {
  const shifts = randomShifts(2000, 2, false, new Rng(4));
  const seen = new Set(shifts.map((s) => `${s.dy},${s.dx}`));
  assert.equal(seen.size, 25);
  assert.ok(shifts.every((s) => Math.abs(s.dy) <= 2 && Math.abs(s.dx) <= 2 && !s.flip));
  assert.ok(randomShifts(200, 1, true, new Rng(4)).some((s) => s.flip));
  const two = new Float32Array(24);
  two.set(img, 0);
  two.set(img, 12);
  const out = augmentRows(two, [3, 4, 1], 1, false, new Rng(9));
  const expected = randomShifts(2, 1, false, new Rng(9)); // the same draws
  const row = new Float32Array(12);
  for (let i = 0; i < 2; i++) {
    shiftImage(img, [3, 4, 1], expected[i], row);
    assert.deepEqual([...out.subarray(i * 12, i * 12 + 12)], [...row]);
  }
});

test('config: --augment bounds and --augment-flip needs it', () => {
  assert.throws(() => validateConfig({ augment: 9 }), /--augment must be at most 8; received 9/);
  assert.throws(() => validateConfig({ augment: -1 }), /--augment must be a non-negative integer/);
  assert.throws(() => validateConfig({ augmentFlip: true }), /^.*--augment-flip needs --augment N/);
});
