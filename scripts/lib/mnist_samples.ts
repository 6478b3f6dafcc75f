/**
 * Real MNIST test images as the kinds of files users bring: PNG files in class folders, and a
 * tabular CSV of 7x7 average-pooled pixels. Used by scripts/tools/make_samples.ts and by the tests.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import sharp from 'sharp';
import { loadBuiltin } from '../../src/data/sources/builtin.js';
import type { Dataset } from '../../src/data/dataset.js';
import { mnistDataDir } from '../../src/package_paths.js';

export const MNIST_DIR = mnistDataDir()!;

let cached: Dataset | null = null;
/** The 10,000 MNIST test images. */
export function mnistTest(): Dataset {
  cached ??= loadBuiltin('mnist', { dataDir: MNIST_DIR }).test;
  return cached;
}

/** Image i's bytes (0..255), 28 x 28 row-major. */
export const mnistBytes = (i: number) => mnistTest().x.gatherRaw([i]) as Uint8Array;

/** Write MNIST test image `i` as a 28x28 grayscale PNG. */
export async function writeMnistPng(path: string, i: number): Promise<void> {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(
    path,
    await sharp(Buffer.from(mnistBytes(i)), { raw: { width: 28, height: 28, channels: 1 } })
      .toColourspace('b-w')
      .png()
      .toBuffer(),
  );
}

/** Names of the 49 pooled-pixel columns, p<row>_<col>. */
export const POOLED_COLUMNS = Array.from({ length: 49 }, (_, j) => `p${Math.floor(j / 7)}_${j % 7}`);

/**
 * CSV text: header `name,p0_0..p6_6,digit`, one row per image 0..n-1 with its 4x4-pooled pixels
 * (4 decimals); the digit is given for rows where `labeled(i)` and empty otherwise.
 */
export function pooledMnistCsv(n: number, labeled: (i: number) => boolean): string {
  const d = mnistTest();
  const lines = [['name', ...POOLED_COLUMNS, 'digit'].join(',')];
  for (let i = 0; i < n; i++) {
    const px = d.x.gather([i]);
    const f = POOLED_COLUMNS.map((_, j) => {
      const [r, c] = [Math.floor(j / 7), j % 7];
      let s = 0;
      for (let y = 0; y < 4; y++) for (let x = 0; x < 4; x++) s += px[(r * 4 + y) * 28 + c * 4 + x];
      return (s / 16).toFixed(4);
    });
    lines.push([`img${i}`, ...f, labeled(i) ? String(d.y[i]) : ''].join(','));
  }
  return lines.join('\n') + '\n';
}
