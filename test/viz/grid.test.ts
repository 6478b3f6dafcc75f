import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { GRID_BACKGROUND, gridLayout, writeImageGrid } from '../../src/viz/grid.js';
import { atomicWriteFile } from '../../src/fsutil.js';
import { createProgress, formatDuration } from '../../src/train/progress.js';

async function withTempDir(fn: (dir: string) => Promise<void>) {
  const dir = await mkdtemp(join(tmpdir(), 'semigan-grid-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function readRaw(path: string) {
  const { data, info } = await sharp(path).raw().toBuffer({ resolveWithObject: true });
  return { data, ...info };
}

test('writeImageGrid tiles 4 grayscale 2x2 images in a 2x2 grid with exact pixels', async () => {
  // Image i, pixel (y, x) = (4i + 2y + x) / 15, which is exactly 17 * (4i + 2y + x) in 0..255.
  const images = new Float32Array(4 * 4).map((_, k) => k / 15);
  await withTempDir(async (dir) => {
    const path = join(dir, 'grid.png');
    await writeImageGrid(path, images, [2, 2, 1], { rows: 2, cols: 2, pad: 1 });
    const img = await readRaw(path);
    // width = cols * (w + pad) + pad = 2 * 3 + 1 = 7; same for height.
    assert.deepEqual([img.width, img.height], [7, 7]);
    const px = (x: number, y: number) => img.data[(y * img.width + x) * img.channels];
    for (let i = 0; i < 4; i++) {
      const x0 = 1 + (i % 2) * 3;
      const y0 = 1 + Math.floor(i / 2) * 3;
      for (let y = 0; y < 2; y++)
        for (let x = 0; x < 2; x++) assert.equal(px(x0 + x, y0 + y), 17 * (4 * i + 2 * y + x));
    }
    // Padding: border, and the gap between cells.
    for (const [x, y] of [
      [0, 0],
      [3, 1],
      [1, 3],
      [6, 6],
    ])
      assert.equal(px(x, y), GRID_BACKGROUND);
    assert.deepEqual(await readdir(dir), ['grid.png']);
  });
});

test('writeImageGrid: RGB, clipping, NaN, and empty cells', async () => {
  // 2 RGB 2x2 images in a 1x3 grid; image 0 has out-of-range values.
  const img0 = [-0.5, 0.5, 1.5, NaN, 1, 0, 0, 0, 0, 0, 0, 0];
  const img1 = new Array(12).fill(1);
  await withTempDir(async (dir) => {
    const path = join(dir, 'rgb.png');
    await writeImageGrid(path, new Float32Array([...img0, ...img1]), [2, 2, 3], { rows: 1, cols: 3, pad: 2 });
    const img = await readRaw(path);
    assert.equal(img.channels, 3);
    assert.deepEqual([img.width, img.height], [3 * 4 + 2, 1 * 4 + 2]);
    const rgb = (x: number, y: number) => [...img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3)];
    assert.deepEqual(rgb(2, 2), [0, 128, 255]); // clipped, 0.5 * 255 = 127.5 rounds to 128
    assert.deepEqual(rgb(3, 2), [0, 255, 0]); // NaN -> 0
    assert.deepEqual(rgb(6, 3), [255, 255, 255]); // image 1 at x0 = 2 + 4
    assert.deepEqual(rgb(10, 2), [GRID_BACKGROUND, GRID_BACKGROUND, GRID_BACKGROUND]); // empty third cell
  });
});

test('gridLayout defaults fit the image count, capped at 10x10', () => {
  assert.deepEqual(gridLayout(4, [28, 28, 1]), { rows: 1, cols: 4, pad: 2, width: 4 * 30 + 2, height: 32 });
  const big = gridLayout(250, [28, 28, 1]);
  assert.deepEqual([big.rows, big.cols], [10, 10]);
  assert.throws(() => gridLayout(4, [2, 2, 1], { cols: 0 }), RangeError);
});

test('atomicWriteFile replaces existing content and leaves no temp files', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'ckpt.json');
    await writeFile(path, 'old content that is longer than the new one');
    await atomicWriteFile(path, '{"a":1}');
    assert.equal(await readFile(path, 'utf8'), '{"a":1}');
    await Promise.all([atomicWriteFile(path, Buffer.from('x')), atomicWriteFile(join(dir, 'other'), 'y')]);
    assert.equal(await readFile(path, 'utf8'), 'x');
    assert.deepEqual((await readdir(dir)).sort(), ['ckpt.json', 'other']);
    // A failed write (missing directory) throws and leaves nothing behind.
    await assert.rejects(atomicWriteFile(join(dir, 'missing', 'f'), 'z'), { code: 'ENOENT' });
    assert.deepEqual((await readdir(dir)).sort(), ['ckpt.json', 'other']);
  });
});

/** A write-stream stand-in plus a clock advanced by hand. */
function fakeStream(isTTY: boolean) {
  const chunks: string[] = [];
  return { chunks, stream: { isTTY, write: (s: string) => chunks.push(s) } };
}

test('progress on a non-TTY prints plain lines every ~10% with counts, times and stats', () => {
  const { chunks, stream } = fakeStream(false);
  let t = 0;
  const p = createProgress({ total: 20, label: 'epoch 3/10', stream, now: () => t });
  for (let i = 1; i <= 20; i++) {
    t += 1500; // 1.5 s per iteration
    p.tick(i, { loss_lab: 0.0123, loss_gen: 2 });
  }
  p.done('epoch 3/10 done in 30s');
  assert.equal(chunks.length, 11); // every 2 iterations + summary
  assert.ok(chunks.every((c) => c.endsWith('\n') && !c.includes('\r') && !c.includes('[')));
  assert.equal(chunks[0], 'epoch 3/10 2/20 3s<27s 1.50s/it loss_lab 0.012 loss_gen 2\n');
  assert.equal(chunks[9], 'epoch 3/10 20/20 30s<0s 1.50s/it loss_lab 0.012 loss_gen 2\n');
  assert.equal(chunks[10], 'epoch 3/10 done in 30s\n');
});

test('progress on a non-TTY: a line at least every minute for slow iterations, and the run-level suffix', () => {
  const { chunks, stream } = fakeStream(false);
  let t = 0;
  const p = createProgress({
    total: 100,
    label: 'epoch 1/3',
    stream,
    now: () => t,
    suffix: (i, perIt) => `run ${formatDuration(perIt * (100 - i) + 2 * 100 * perIt)} left`,
  });
  for (let i = 1; i <= 3; i++) {
    t += 40_000; // 40 s per iteration: 10% of the epoch would be 400 s between lines
    p.tick(i, {});
  }
  // 40 s: nothing yet; 80 s: a line (60 s since the start); 120 s: 40 s since the last, nothing.
  assert.deepEqual(chunks, ['epoch 1/3 2/100 1m20s<1h05m 40.00s/it run 3h18m left\n']);
});

test('progress on a TTY redraws one bar line at most every 200 ms and done() clears it', () => {
  const { chunks, stream } = fakeStream(true);
  let t = 0;
  const p = createProgress({ total: 100, label: 'epoch 1/1', stream, now: () => t });
  for (let i = 1; i <= 100; i++) {
    t += 50; // 4 ticks per redraw window
    p.tick(i, { loss: 0.5 });
  }
  p.done('summary');
  const draws = chunks.slice(0, -2);
  assert.ok(draws.length >= 25 && draws.length <= 27, `${draws.length} redraws`);
  assert.ok(draws.every((c) => c.startsWith('\r') && !c.includes('\n')));
  assert.equal(draws.at(-1), '\repoch 1/1 [####################] 100/100 5s<0s 50.0ms/it loss 0.500\x1b[K');
  assert.deepEqual(chunks.slice(-2), ['\r\x1b[K', 'summary\n']);
});

test('formatDuration', () => {
  assert.deepEqual([38, 72, 3600 + 5 * 60 + 10, NaN].map(formatDuration), ['38s', '1m12s', '1h05m', '?']);
});
