/**
 * Pixels as bytes until a batch is gathered, and the sharded store on disk: the same floats as
 * the old float32 path, the same batches from memory and from disk across shard boundaries, a
 * killed decode resumed without redoing finished shards, damaged shards found and redone, a
 * changed file re-decoding only its shard.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  truncateSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { readIdxImages } from '../../src/data/sources/idx.js';
import { loadBuiltin } from '../../src/data/sources/builtin.js';
import { mnistDataDir } from '../../src/package_paths.js';
import { allRows, memoryRows, RowsBuilder, rowRange } from '../../src/data/rows.js';
import { scanImageFolder } from '../../src/data/sources/image_folder.js';
import { decodeImages, decodeSummary, type DecodeOptions } from '../../src/data/images/decode.js';
import { ShardRows } from '../../src/data/store/shard_rows.js';
import { npyHeader, parseNpyHeader } from '../../src/data/store/npy.js';
import { decodeProgress } from '../../src/data/images/store_plan.js';

let tmp: string;
const images = readIdxImages(join(mnistDataDir()!, 't10k-images-idx3-ubyte')).pixels;
const px = (i: number) => images.subarray(i * 784, (i + 1) * 784);
const N = 22; // files in the test folder: 6 shards of 4 files, the last one short

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'semigan-store-'));
  for (let i = 0; i < N; i++) {
    const dir = join(tmp, 'digits', i < 6 ? `c${i % 2}` : 'unlabeled');
    mkdirSync(dir, { recursive: true });
    await sharp(Buffer.from(px(i)), { raw: { width: 28, height: 28, channels: 1 } })
      .toColourspace('b-w')
      .png()
      .toFile(join(dir, `${i}.png`));
  }
});
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A permutation of 0..n-1 (fixed). */
const shuffled = (n: number) => Int32Array.from({ length: n }, (_, i) => (i * 7 + 3) % n);

test('bytes gathered as floats equal the float32 path (v / 255) on real MNIST, across chunk boundaries', () => {
  const { train } = loadBuiltin('mnist');
  const rows = Int32Array.from({ length: 300 }, (_, i) => (i * 7919) % train.n);
  const got = train.x.gather(rows);
  const idx = readIdxImages(join(mnistDataDir()!, 'train-images-idx3-ubyte')).pixels;
  const want = new Float32Array(rows.length * 784);
  rows.forEach((r, i) => {
    for (let j = 0; j < 784; j++) want[i * 784 + j] = idx[r * 784 + j] / 255;
  });
  assert.deepEqual(got, want);
  assert.equal(train.x.kind, 'u8');
  assert.equal(train.x.residentBytes, 60_000 * 784, 'a byte per pixel, not four');

  // Chunks of 3 rows (a tiny chunk size) give the same rows as one chunk; so does the builder.
  const bytes = idx.subarray(0, 20 * 784);
  const one = memoryRows(bytes, 784);
  const small = memoryRows(bytes, 784, 3 * 784);
  const built = new RowsBuilder('u8', 784, 0, 3 * 784);
  for (let s = 0; s < 20; s += 7) built.append(bytes.subarray(s * 784, Math.min(20, s + 7) * 784));
  const order = shuffled(20);
  for (const r of [small, built.finish()]) {
    assert.deepEqual(r.gather(order), one.gather(order));
    assert.deepEqual(r.gatherRaw(order), one.gatherRaw(order));
  }
  assert.deepEqual(rowRange(small, 5, 9), one.gather([5, 6, 7, 8]));
  assert.throws(() => one.gather([20]), /row 20 out of range 0..19/);
});

test('.npy headers: numpy layout (64-byte aligned, uint8, C order) and what is refused', () => {
  const h = npyHeader([5, 32, 32, 3]);
  assert.equal(h.length % 64, 0);
  assert.equal(
    h.toString('latin1', 10, h.length).trimEnd(),
    "{'descr': '|u1', 'fortran_order': False, 'shape': (5, 32, 32, 3), }",
  );
  assert.deepEqual(parseNpyHeader(h), { shape: [5, 32, 32, 3], dataOffset: h.length });
  assert.deepEqual(parseNpyHeader(npyHeader([7])), { shape: [7], dataOffset: 128 });
  assert.match(parseNpyHeader(Buffer.from('PK\x03\x04 a zip')) as string, /not a .npy file/);
  const f4 = Buffer.from(h);
  f4.write("'<f4'", f4.indexOf("'|u1'"), 'latin1');
  assert.match(parseNpyHeader(f4) as string, /holds <f4, expected uint8/);
});

const opts = (o: Partial<DecodeOptions> = {}): DecodeOptions => ({
  size: null,
  channels: null,
  cacheDir: join(tmp, 'cache'),
  shardBytes: 4 * 784,
  ...o,
});

test('the store on disk: the same rows as in memory for any order, across shard boundaries, prefetched or not', async () => {
  const list = scanImageFolder(join(tmp, 'digits'));
  const mem = await decodeImages(list.entries, opts({ cacheDir: null }));
  const disk = await decodeImages(list.entries, opts({ memoryBytes: 0 }));
  assert.equal(mem.inMemory, true);
  assert.equal(disk.inMemory, false);
  assert.ok(disk.rows instanceof ShardRows);
  assert.deepEqual([disk.shards.decoded, disk.shards.files, disk.shardPaths.length], [6, 4, 6]);
  const order = shuffled(N);
  assert.deepEqual(disk.rows.gather(order), mem.rows.gather(order));
  // Prefetched by the reader thread, then gathered.
  await disk.rows.prefetch(order.subarray(0, 10));
  assert.deepEqual(disk.rows.gather(order.subarray(0, 10)), mem.rows.gather(order.subarray(0, 10)));
  assert.ok(disk.rows.residentBytes >= 10 * 784);
  assert.deepEqual(disk.rows.gatherRaw(order), mem.rows.gatherRaw(order));
  // From the store, held in memory: a hit, the same rows.
  const again = await decodeImages(list.entries, opts());
  assert.deepEqual([again.cacheHit, again.inMemory, again.shards.reused], [true, true, 6]);
  assert.deepEqual(allRows(again.rows), allRows(mem.rows));
  // Each shard is a .npy numpy reads: header, then [rows, 28, 28, 1] bytes.
  const npy = readFileSync(disk.shardPaths[1]);
  const layout = parseNpyHeader(npy);
  assert.deepEqual(layout, { shape: [4, 28, 28, 1], dataOffset: 128 });
  const row5 = list.entries.at(mem.kept[5])!.path.match(/(\d+)\.png$/)![1];
  assert.deepEqual(npy.subarray(128 + 784, 128 + 2 * 784), Buffer.from(px(Number(row5))));
  await (disk.rows as ShardRows).close();
});

test('a decode killed half way resumes at the first shard without a record; damaged shards are found and redone', async () => {
  const cacheDir = join(tmp, 'cache-resume');
  const list = scanImageFolder(join(tmp, 'digits'));
  const full = await decodeImages(list.entries, opts({ cacheDir }));
  // What a kill after three shards leaves: records for shards 0-2 only (a record is written last).
  for (const p of full.shardPaths.slice(3)) rmSync(p.replace(/\.npy$/, '.json'));
  const resumed = await decodeImages(list.entries, opts({ cacheDir }));
  assert.deepEqual([resumed.shards.reused, resumed.shards.decoded, resumed.decodedFiles], [3, 3, 10]);
  assert.match(
    decodeSummary(resumed),
    /^decoded 10 of 22 images in \d+\.\d s \([\d,]+\/s\); 3 shard\(s\) of 4 files came from the decode cache$/,
  );
  assert.deepEqual(allRows(resumed.rows), allRows(full.rows));

  // A flipped byte: found by its checksum, decoded again, rewritten.
  const npy = full.shardPaths[2];
  const bytes = readFileSync(npy);
  bytes[bytes.length - 1] ^= 0xff;
  writeFileSync(npy, bytes);
  const fixed = await decodeImages(list.entries, opts({ cacheDir }));
  assert.equal(fixed.cacheDamaged, `${npy} does not match its checksum (changed after it was written)`);
  assert.deepEqual([fixed.shards.reused, fixed.shards.decoded], [5, 1]);
  assert.deepEqual(allRows(fixed.rows), allRows(full.rows));
  // Cut short: found by its size.
  truncateSync(npy, 100);
  const cut = await decodeImages(list.entries, opts({ cacheDir }));
  assert.match(cut.cacheDamaged!, /holds 100 bytes, \d+ expected \(truncated\?\)/);
  assert.deepEqual(allRows(cut.rows), allRows(full.rows));
  const clean = await decodeImages(list.entries, opts({ cacheDir }));
  assert.deepEqual([clean.cacheHit, clean.cacheDamaged], [true, undefined]);
  // A record written by another format version is not read: that shard is decoded again.
  const record = full.shardPaths[4].replace(/\.npy$/, '.json');
  writeFileSync(record, readFileSync(record, 'utf8').replace(/"version":\d+/, '"version":99'));
  const other = await decodeImages(list.entries, opts({ cacheDir }));
  assert.deepEqual([other.shards.reused, other.shards.decoded, other.cacheDamaged], [5, 1, undefined]);
  assert.deepEqual(allRows(other.rows), allRows(full.rows));
});

test('a changed file re-decodes only its shard: its new pixels, never a mix of old and new', async () => {
  const cacheDir = join(tmp, 'cache-change');
  const dir = join(tmp, 'changing');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'c0'), { recursive: true });
  mkdirSync(join(dir, 'c1'), { recursive: true });
  const put = (i: number, digit: number) =>
    sharp(Buffer.from(px(digit)), { raw: { width: 28, height: 28, channels: 1 } })
      .toColourspace('b-w')
      .png()
      .toFile(join(dir, `c${i % 2}`, `${i}.png`));
  for (let i = 0; i < 12; i++) await put(i, i);
  const first = await decodeImages(scanImageFolder(dir).entries, opts({ cacheDir }));
  assert.equal(first.shards.decoded, 3);
  await put(5, 40); // another image under the same name
  utimesSync(join(dir, 'c1', '5.png'), 1_700_000_000, 1_700_000_000);
  const list = scanImageFolder(dir);
  const second = await decodeImages(list.entries, opts({ cacheDir }));
  assert.deepEqual([second.shards.reused, second.shards.decoded], [2, 1]);
  const row = Array.from({ length: list.entries.length }, (_, i) => list.entries.at(i)!.id).indexOf('c1/5.png');
  assert.deepEqual(second.rows.gatherRaw([row]), Uint8Array.from(px(40)));
  // A file added at the end: the earlier shards stay.
  await put(12, 12);
  const third = await decodeImages(scanImageFolder(dir).entries, opts({ cacheDir }));
  assert.deepEqual([third.shards.reused, third.shards.decoded, third.kept.length], [3, 1, 13]);
  // A file removed from the middle: its shard and the later ones (shifted) are decoded again.
  rmSync(join(dir, 'c0', '6.png'));
  const fourthList = scanImageFolder(dir);
  const fourth = await decodeImages(fourthList.entries, opts({ cacheDir }));
  assert.deepEqual([fourth.shards.reused, fourth.shards.decoded, fourth.kept.length], [1, 2, 12]);
  const ids = Array.from({ length: fourthList.entries.length }, (_, i) => fourthList.entries.at(i)!.id);
  assert.ok(!ids.includes('c0/6.png'));
  assert.deepEqual(fourth.rows.gatherRaw([ids.indexOf('c0/8.png')]), Uint8Array.from(px(8)));
  assert.ok(readdirSync(cacheDir).some((f) => f.startsWith('plan-')));
});

test('a store that cannot be written: a warning when the set fits in memory, else a one-line error', async () => {
  const list = scanImageFolder(join(tmp, 'digits'));
  const notADir = join(tmp, 'a-file');
  writeFileSync(notADir, 'not a directory');
  const mem = await decodeImages(list.entries, opts({ cacheDir: notADir }));
  assert.match(mem.cacheWarning!, /^could not write the decode cache in .*a-file \(.*\); the next run decodes again$/);
  assert.deepEqual([mem.inMemory, mem.shardPaths, mem.rows.n], [true, [], N]);
  await assert.rejects(
    decodeImages(list.entries, opts({ cacheDir: notADir, memoryBytes: 0 })),
    /could not write the decode store in .*a-file \(.*\); the 22 images need 17 KiB of disk there \(set \$SEMIGAN_CACHE_DIR to another disk\)/,
  );
});

test('decode progress: a line every 10 s with files/s and the time left', () => {
  const lines: string[] = [];
  let t = 0;
  const progress = decodeProgress(
    (l) => lines.push(l),
    () => t,
  );
  progress('decode', 1, 1000); // starts the clock
  t = 5_000;
  progress('decode', 300, 1000); // too soon
  t = 10_000;
  progress('decode', 500, 1000);
  t = 10_500;
  progress('decode', 1000, 1000); // done: no line
  assert.deepEqual(lines, ['decoding: 500 of 1,000 files (50/s, 10s left)']);
});
