import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { writeCurvesPng, type CurvePoint } from '../../src/viz/curves.js';
import { writeImageGrid } from '../../src/viz/grid.js';

const point = (epoch: number): CurvePoint => ({
  epoch,
  test_acc: 0.5 + epoch / 100,
  test_acc_current: 0.5 + epoch / 120,
  loss_lab: 1 / epoch,
  loss_unl: 0.5,
  loss_gen: 2,
  epoch_seconds: 30,
});

test("an epoch's curves and sample grid leave nothing in libvips' cache (it only grew a run's memory)", async () => {
  const dir = await mkdtemp(join(tmpdir(), 'semigan-curves-'));
  try {
    const metrics: CurvePoint[] = [];
    for (let epoch = 1; epoch <= 5; epoch++) {
      metrics.push(point(epoch));
      await writeCurvesPng(join(dir, 'curves.png'), { name: 'run', metrics });
      await writeImageGrid(join(dir, `epoch-${epoch}.png`), new Float32Array(4 * 16).fill(epoch / 5), [4, 4, 1], {
        rows: 2,
        cols: 2,
      });
    }
    // With the cache on (sharp's default), 3 SVG renders alone leave ~21 operations in it.
    const cache = sharp.cache();
    assert.deepEqual([cache.items.current, cache.items.max, cache.memory.max], [0, 0, 0]);
    assert.deepEqual((await sharp(join(dir, 'curves.png')).metadata()).format, 'png');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
