/**
 * Image augmentation for the image track: each row shifted by a random whole number of pixels
 * in [-maxShift, maxShift] on each axis (the vacated border filled with 0, the background of
 * MNIST-like data), optionally mirrored left-right. Not permutation-invariant: it knows which
 * pixels are neighbours, so its figures never sit beside the paper's permutation-invariant ones.
 */
import type { Rng } from '../rng.js';

export interface Shift {
  dy: number;
  dx: number;
  flip: boolean;
}

/**
 * One row [h, w, c] (row-major HWC) moved by `s`: out[y][x] = in[y - dy][x' - dx], where x' is
 * x mirrored (w - 1 - x) when flipping; pixels shifted in from outside are 0.
 */
export function shiftImage(
  row: Float32Array,
  shape: readonly [number, number, number],
  s: Shift,
  out: Float32Array,
): void {
  const [h, w, c] = shape;
  out.fill(0);
  for (let y = 0; y < h; y++) {
    const sy = y - s.dy;
    if (sy < 0 || sy >= h) continue;
    for (let x = 0; x < w; x++) {
      const xm = s.flip ? w - 1 - x : x;
      const sx = xm - s.dx;
      if (sx < 0 || sx >= w) continue;
      for (let k = 0; k < c; k++) out[(y * w + x) * c + k] = row[(sy * w + sx) * c + k];
    }
  }
}

/** A random shift per row: dy, dx uniform in [-maxShift, maxShift]; a coin per row for the flip. */
export function randomShifts(n: number, maxShift: number, flip: boolean, rng: Rng): Shift[] {
  const span = 2 * maxShift + 1;
  return Array.from({ length: n }, () => ({
    dy: rng.int(span) - maxShift,
    dx: rng.int(span) - maxShift,
    flip: flip && rng.int(2) === 1,
  }));
}

/** Rows [n, dim] moved by one random shift each (a new array). */
export function augmentRows(
  x: Float32Array,
  shape: readonly [number, number, number],
  maxShift: number,
  flip: boolean,
  rng: Rng,
): Float32Array {
  const dim = shape[0] * shape[1] * shape[2];
  const n = x.length / dim;
  const out = new Float32Array(x.length);
  const shifts = randomShifts(n, maxShift, flip, rng);
  for (let i = 0; i < n; i++)
    shiftImage(x.subarray(i * dim, (i + 1) * dim), shape, shifts[i], out.subarray(i * dim, (i + 1) * dim));
  return out;
}
