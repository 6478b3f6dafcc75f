/**
 * Image folders and manifest CSVs on real files (MNIST test images written as PNG/JPEG, some
 * resized, coloured or transparent): labels, order and ids, the most-common size/channel choice,
 * pixels identical to the idx files and to serving's imageToInput, the decode cache (hit without
 * decoding, invalidated by a changed file), every user error naming its file (and CSV line), and
 * --skip-bad dropping and listing unreadable files.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { SemiganError } from '../../src/errors.js';
import { readIdxImages, readIdxLabels } from '../../src/data/sources/idx.js';
import { scanImageFolder } from '../../src/data/sources/image_folder.js';
import { readManifest } from '../../src/data/sources/manifest.js';
import { decodeImages, decodeSummary, skippedSummary, type DecodeOptions } from '../../src/data/images/decode.js';
import { imageDataset, type ImageEntry } from '../../src/data/images/entry.js';
import { probeImages } from '../../src/data/images/probe.js';
import { sha1File, sha1Files } from '../../src/data/images/file_hash.js';
import { naturalCompare } from '../../src/data/natural_sort.js';
import { defaultCacheDir } from '../../src/data/images/decode_cache.js';
import { imageToInput } from '../../src/export/preprocess.js';
import type { ImagePreprocessing } from '../../src/export/metadata.js';
import { mnistDataDir } from '../../src/package_paths.js';
import { allRows } from '../../src/data/rows.js';
import { entryArray } from '../../src/data/images/entry.js';

const MNIST_DIR = mnistDataDir()!;
const N = 50; // images 0..39 labeled, 40..49 unlabeled

let tmp: string;
let cache: string;
let images: Uint8Array; // [N, 784]
let labels: Uint8Array;

const px = (i: number) => images.subarray(i * 784, (i + 1) * 784);
const gray = (data: Uint8Array, w = 28, h = 28) =>
  sharp(Buffer.from(data), { raw: { width: w, height: h, channels: 1 } }).toColourspace('b-w');
const write = (path: string, data: Buffer | string) => {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, data);
};
const pad = (i: number) => String(i).padStart(5, '0');
const opts = (o: Partial<DecodeOptions> = {}): DecodeOptions => ({ size: null, channels: null, cacheDir: cache, ...o });

/** Rejects with a SEMIGAN_ERR_DATA whose message matches every pattern. */
async function dataErr(p: Promise<unknown> | (() => unknown), ...res: (RegExp | string)[]): Promise<string> {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof SemiganError && err.code === 'SEMIGAN_ERR_DATA', `expected a data error, got ${err}`);
  for (const re of res) {
    if (typeof re === 'string') assert.ok(err.message.includes(re), `'${err.message}' should name ${re}`);
    else assert.match(err.message, re);
  }
  assert.doesNotMatch(err.message, /\n\s+at /, 'no stack trace in the message');
  return err.message;
}

/** What serving feeds a model of this shape for these bytes. */
const served = (path: string, [height, width, channels]: number[]) =>
  imageToInput(readFileSync(path), { type: 'image', height, width, channels } as ImagePreprocessing);

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'semigan-images-'));
  cache = join(tmp, 'cache');
  process.env.SEMIGAN_CACHE_DIR = join(tmp, 'default-cache'); // never the user's home
  const img = readIdxImages(join(MNIST_DIR, 't10k-images-idx3-ubyte'));
  images = img.pixels.subarray(0, N * 784);
  labels = readIdxLabels(join(MNIST_DIR, 't10k-labels-idx1-ubyte')).subarray(0, N);

  // mnist/<label>/<index>.png (unpadded names: natural order must still be index order), unlabeled/ for 40..49.
  for (let i = 0; i < N; i++) {
    const folder = i < 40 ? String(labels[i]) : 'unlabeled';
    write(join(tmp, 'mnist', folder, `${i}.png`), await gray(px(i)).png().toBuffer());
  }
  write(join(tmp, 'mnist', '.DS_Store'), 'junk'); // hidden: skipped
  write(join(tmp, 'mnist', '3', '.hidden.png'), 'junk');
  write(join(tmp, 'mnist', 'README.txt'), 'not an image'); // not an image name: ignored, reported

  // mixed/: 20 files, most 28x28 gray; some JPEG, some 32x32 RGB, some 20x30 (h x w) RGBA with transparency.
  for (let i = 0; i < 12; i++)
    write(join(tmp, 'mixed', i % 2 ? 'b' : 'a', `g${pad(i)}.png`), await gray(px(i)).png().toBuffer());
  for (let i = 12; i < 15; i++)
    write(join(tmp, 'mixed', 'a', 'jpeg', `j${pad(i)}.jpg`), await gray(px(i)).jpeg({ quality: 90 }).toBuffer());
  for (let i = 15; i < 18; i++) {
    const rgb = Buffer.alloc(32 * 32 * 3);
    for (let p = 0; p < 32 * 32; p++)
      [rgb[3 * p], rgb[3 * p + 1], rgb[3 * p + 2]] = [200, (p * 7) % 256, px(i)[p % 784]];
    write(
      join(tmp, 'mixed', 'b', `c${pad(i)}.png`),
      await sharp(rgb, { raw: { width: 32, height: 32, channels: 3 } })
        .png()
        .toBuffer(),
    );
  }
  for (let i = 18; i < 20; i++) {
    // Red ink whose alpha is the digit, 30 wide and 20 high.
    const digit = await gray(px(i)).resize(30, 20, { fit: 'fill' }).raw().toBuffer();
    const rgba = Buffer.alloc(30 * 20 * 4);
    for (let p = 0; p < 600; p++) [rgba[4 * p], rgba[4 * p + 3]] = [255, digit[p]];
    write(
      join(tmp, 'mixed', 'a', `t${pad(i)}.png`),
      await sharp(rgba, { raw: { width: 30, height: 20, channels: 4 } })
        .png()
        .toBuffer(),
    );
  }
});

after(() => {
  rmSync(tmp, { recursive: true, force: true });
});

test('natural order: numbers by value, then code units for collation ties', () => {
  const names = ['img10.png', 'img9.png', '10', '2', '1', 'b', 'A', '01', 'a'];
  assert.deepEqual([...names].sort(naturalCompare), ['01', '1', '2', '10', 'a', 'A', 'b', 'img9.png', 'img10.png']);
});

test('image folder: classes natural-sorted, rows in index order, ids, unlabeled folder, hidden and non-image files', async () => {
  const list = scanImageFolder(join(tmp, 'mnist'));
  assert.deepEqual(
    list.classes,
    [...new Set(Array.from(labels.subarray(0, 40), String))].sort((a, b) => +a - +b),
  );
  assert.equal(list.entries.length, N);
  assert.deepEqual(
    entryArray(list.entries).map((e) => e.id),
    Array.from({ length: N }, (_, i) => `${i < 40 ? labels[i] : 'unlabeled'}/${i}.png`),
  );
  assert.deepEqual(
    entryArray(list.entries).map((e) => e.label),
    Array.from({ length: N }, (_, i) => (i < 40 ? String(labels[i]) : null)),
  );
  assert.equal(entryArray(list.entries)[7].path, join(tmp, 'mnist', String(labels[7]), '7.png'));
  assert.deepEqual(list.ignored, ['README.txt']);

  // A 28x28 gray PNG decodes to exactly the idx pixels / 255; y follows the class folders.
  const d = await decodeImages(list.entries, opts({ cacheDir: null }));
  assert.deepEqual(d.shape, [28, 28, 1]);
  assert.deepEqual(
    Array.from(d.kept),
    Array.from({ length: N }, (_, i) => i),
  );
  assert.deepEqual(
    allRows(d.rows),
    Float32Array.from(images, (v) => v / 255),
  );
  assert.equal(d.cacheHit, false);
  assert.match(decodeSummary(d), /^decoded 50 images in \d+\.\d s \([\d,]+\/s\)$/);
  const ds = imageDataset(list, d);
  assert.deepEqual(
    Array.from(ds.y),
    Array.from({ length: N }, (_, i) => (i < 40 ? list.classes.indexOf(String(labels[i])) : -1)),
  );
  assert.deepEqual([ds.n, ds.ids?.at(41)], [N, 'unlabeled/41.png']);

  // Another unlabeled folder name: 'unlabeled' is then a class like any other.
  const other = scanImageFolder(join(tmp, 'mnist'), { unlabeledDir: 'none' });
  assert.ok(other.classes.includes('unlabeled'));
  assert.ok(entryArray(other.entries).every((e) => e.label !== null));

  // Nested folders, natural class order ("2" before "10"), ties in the relative path broken by class.
  const dir = join(tmp, 'nested');
  const png = await gray(px(0)).png().toBuffer();
  for (const f of ['10/x/1.png', '2/1.png', '2/x/1.png', '10/1.png', 'extra/1.png', '2/10.jpeg', '2/9.PNG'])
    write(join(dir, f), png);
  const nested = scanImageFolder(dir, { unlabeledDir: 'extra' });
  assert.deepEqual(nested.classes, ['2', '10']);
  assert.deepEqual(
    entryArray(nested.entries).map((e) => e.id),
    ['2/1.png', '10/1.png', 'extra/1.png', '2/9.PNG', '2/10.jpeg', '2/x/1.png', '10/x/1.png'],
  );
});

test('image folder errors name the path and what was expected', async () => {
  const d = join(tmp, 'errors');
  await dataErr(
    () => scanImageFolder(join(d, 'missing')),
    `${join(d, 'missing')}: directory not found`,
    /one folder per class/,
  );
  write(join(d, 'file.png'), 'x');
  await dataErr(() => scanImageFolder(join(d, 'file.png')), `${join(d, 'file.png')}: not a directory`);
  mkdirSync(join(d, 'empty', 'unlabeled'), { recursive: true });
  write(join(d, 'empty', 'unlabeled', 'a.png'), 'x');
  await dataErr(() => scanImageFolder(join(d, 'empty')), `${join(d, 'empty')}: no class folders`);
  write(join(d, 'noimages', 'cat', 'notes.txt'), 'x');
  write(join(d, 'noimages', 'dog', 'a.png'), 'x');
  await dataErr(
    () => scanImageFolder(join(d, 'noimages')),
    `${join(d, 'noimages', 'cat')} has no image files`,
    /notes\.txt/,
  );
  write(join(d, 'loose', 'dog', 'a.png'), 'x');
  write(join(d, 'loose', 'b.jpg'), 'x');
  await dataErr(
    () => scanImageFolder(join(d, 'loose')),
    `${join(d, 'loose', 'b.jpg')}: an image directly in`,
    /not in a class folder/,
  );
});

test('mixed sizes and channels: the most common is chosen and described; pixels = imageToInput', async () => {
  const list = scanImageFolder(join(tmp, 'mixed'));
  assert.deepEqual(list.classes, ['a', 'b']);
  const d = await decodeImages(list.entries, opts({ cacheDir: null }));
  assert.deepEqual(d.shape, [28, 28, 1]);
  assert.equal(
    d.choice,
    '28x28 pixels (height x width; 15 of 20 files; also 32x32: 3, 20x30: 2), 1 channel (grayscale in 15 of 20 files; also colour: 5)',
  );
  for (const [k, i] of d.kept.entries()) {
    const want = await served(entryArray(list.entries)[i].path, d.shape);
    assert.deepEqual(allRows(d.rows).subarray(k * 784, (k + 1) * 784), want, entryArray(list.entries)[i].id);
  }
  // The 28x28 gray PNGs are the idx pixels.
  const g3 = entryArray(list.entries).findIndex((e) => e.id === 'b/g00003.png');
  assert.deepEqual(
    allRows(d.rows).subarray(g3 * 784, (g3 + 1) * 784),
    Float32Array.from(px(3), (v) => v / 255),
  );

  // As requested: 3 channels at 20x30, each file as serving gives it.
  const c3 = await decodeImages(list.entries, opts({ size: [20, 30], channels: 3, cacheDir: null }));
  assert.deepEqual(c3.shape, [20, 30, 3]);
  assert.match(c3.choice, /^20x30 pixels \(height x width, as requested\), 3 channels \(as requested\)$/);
  const dim = 20 * 30 * 3;
  for (const [k, i] of c3.kept.entries())
    assert.deepEqual(
      allRows(c3.rows).subarray(k * dim, (k + 1) * dim),
      await served(entryArray(list.entries)[i].path, c3.shape),
    );

  // Background: the 20x30 transparent image padded to 28x28 gets it in the padding and under the alpha.
  const t = entryArray(list.entries).filter((e) => e.id === 'a/t00018.png');
  const black = await decodeImages(t, opts({ size: [28, 28], channels: 3, cacheDir: null }));
  const white = await decodeImages(
    t,
    opts({ size: [28, 28], channels: 3, background: [255, 255, 255], cacheDir: null }),
  );
  assert.deepEqual([...allRows(black.rows).subarray(0, 3)], [0, 0, 0]);
  assert.deepEqual([...allRows(white.rows).subarray(0, 3)], [1, 1, 1]);
  assert.ok(
    allRows(white.rows).some((v, j) => j % 3 === 1 && v > 0.5) &&
      !allRows(black.rows).some((v, j) => j % 3 === 1 && v > 0),
    'green only from the white background',
  );
});

test('manifest: header in any order, relative and absolute paths, empty labels, CSV order', async () => {
  const dir = join(tmp, 'manifests');
  const abs = join(tmp, 'mnist', String(labels[5]), '5.png');
  const rows = [
    'Label,notes,PATH',
    `${labels[3]},"a, quoted note",../mnist/${labels[3]}/3.png`,
    `,,../mnist/unlabeled/44.png`,
    '',
    `cat,x,${abs}`,
    `${labels[1]},, ../mnist/${labels[1]}/1.png `,
  ];
  write(join(dir, 'm.csv'), '\ufeff' + rows.join('\r\n') + '\r\n');
  const list = readManifest(join(dir, 'm.csv'));
  assert.deepEqual(list.entries, [
    {
      path: join(tmp, 'mnist', String(labels[3]), '3.png'),
      id: `../mnist/${labels[3]}/3.png`,
      label: String(labels[3]),
      line: 2,
    },
    { path: join(tmp, 'mnist', 'unlabeled', '44.png'), id: '../mnist/unlabeled/44.png', label: null, line: 3 },
    { path: abs, id: abs, label: 'cat', line: 5 },
    {
      path: join(tmp, 'mnist', String(labels[1]), '1.png'),
      id: `../mnist/${labels[1]}/1.png`,
      label: String(labels[1]),
      line: 6,
    },
  ] satisfies ImageEntry[]);
  assert.deepEqual(list.classes, [String(labels[1]), String(labels[3]), 'cat'].sort(naturalCompare));
  const d = await decodeImages(list.entries, opts({ cacheDir: null }));
  const want = [3, 44, 5, 1].flatMap((i) => Array.from(px(i), (v) => Math.fround(v / 255)));
  assert.deepEqual(Array.from(allRows(d.rows)), want);
  const ds = imageDataset(list, d);
  assert.deepEqual(Array.from(ds.y), [
    list.classes.indexOf(String(labels[3])),
    -1,
    list.classes.indexOf('cat'),
    list.classes.indexOf(String(labels[1])),
  ]);
});

test('manifest errors name FILE:LINE and what was expected', async () => {
  const dir = join(tmp, 'bad-manifests');
  const csv = (name: string, text: string) => {
    write(join(dir, name), text);
    return join(dir, name);
  };
  const png = join(tmp, 'mnist', String(labels[0]), '0.png');
  await dataErr(() => readManifest(join(dir, 'none.csv')), `${join(dir, 'none.csv')}: file not found`);
  await dataErr(
    () => readManifest(csv('empty.csv', '')),
    `${join(dir, 'empty.csv')}: empty`,
    /header row with columns path and label/,
  );
  await dataErr(
    () => readManifest(csv('noheader.csv', `${png},7\n`)),
    `${join(dir, 'noheader.csv')}:1: no 'path' column`,
    /found: ".*0\.png", "7"/,
  );
  await dataErr(
    () => readManifest(csv('nolabel.csv', `file,path\nx,${png}\n`)),
    `${join(dir, 'nolabel.csv')}:1: no 'label' column`,
    /found: "file", "path"/,
  );
  await dataErr(
    () => readManifest(csv('fields.csv', `path,label\n${png},1\n${png},1,extra\n`)),
    `${join(dir, 'fields.csv')}:3: 3 field(s), expected 2`,
  );
  await dataErr(
    () => readManifest(csv('emptypath.csv', `path,label\n${png},1\n,2\n`)),
    `${join(dir, 'emptypath.csv')}:3: empty path`,
  );
  await dataErr(
    () => readManifest(csv('missing.csv', `path,label\nnope/a.png,1\n`)),
    `${join(dir, 'missing.csv')}:2: nope/a.png: file not found`,
    join(dir, 'nope', 'a.png'),
  );
  await dataErr(
    () => readManifest(csv('quote.csv', `path,label\n"${png},1\n`)),
    `${join(dir, 'quote.csv')}:`,
    /not valid CSV/,
  );
  await dataErr(() => readManifest(csv('header-only.csv', 'path,label\n')), 'header-only.csv: a header but no rows');
});

test('decode cache: a second load only stats the files; a changed or touched file, or other options, miss', async () => {
  const dir = join(tmp, 'cached');
  for (let i = 0; i < 6; i++) write(join(dir, String(labels[i]), `${i}.png`), await gray(px(i)).png().toBuffer());
  const list = scanImageFolder(dir);
  const paths = entryArray(list.entries).map((e) => e.path);
  for (const p of paths) utimesSync(p, 1_700_000_000, 1_700_000_000); // whole seconds: restorable exactly

  const first = await decodeImages(list.entries, opts());
  assert.equal(first.cacheHit, false);
  assert.equal(first.shardPaths.length, 1);
  const meta = JSON.parse(readFileSync(first.shardPaths[0].replace(/\.npy$/, '.json'), 'utf8'));
  assert.deepEqual([meta.shape, meta.rows, meta.skipped], [[6, ...first.shape], 6, []]);

  // Garbage of the same size with the same mtime: still a hit, so nothing was read, probed or decoded.
  const saved = readFileSync(paths[2]);
  writeFileSync(paths[2], Buffer.alloc(saved.length, 0x55));
  utimesSync(paths[2], 1_700_000_000, 1_700_000_000);
  const second = await decodeImages(list.entries, opts());
  assert.equal(second.cacheHit, true);
  assert.match(decodeSummary(second), /^loaded 6 images from the decode cache in \d+\.\d s$/);
  assert.deepEqual(
    [allRows(second.rows), second.shape, second.kept, second.choice, second.skipped],
    [allRows(first.rows), first.shape, first.kept, first.choice, first.skipped],
  );

  // Touching the garbage file invalidates the entry: it is decoded, and fails.
  utimesSync(paths[2], 1_700_000_001, 1_700_000_001);
  await dataErr(decodeImages(list.entries, opts()), paths[2], /--skip-bad/);

  // Another digit in its place: a miss, and the new pixels.
  writeFileSync(paths[2], await gray(px(9)).png().toBuffer());
  const third = await decodeImages(list.entries, opts());
  assert.equal(third.cacheHit, false);
  assert.deepEqual(
    allRows(third.rows).subarray(2 * 784, 3 * 784),
    Float32Array.from(px(9), (v) => v / 255),
  );
  assert.deepEqual(allRows(third.rows).subarray(0, 2 * 784), allRows(first.rows).subarray(0, 2 * 784));
  assert.equal((await decodeImages(list.entries, opts())).cacheHit, true);

  // Options are part of the key (as requested: null != the size it resolved to).
  assert.equal((await decodeImages(list.entries, opts({ size: [28, 28] }))).cacheHit, false);
  assert.equal((await decodeImages(list.entries, opts({ background: [1, 2, 3] }))).cacheHit, false);
  assert.equal((await decodeImages(list.entries, opts({ size: [28, 28] }))).cacheHit, true);

  // Default directory: $SEMIGAN_CACHE_DIR; null: no cache at all.
  assert.equal(defaultCacheDir(), process.env.SEMIGAN_CACHE_DIR);
  const viaDefault = await decodeImages(list.entries, { size: null, channels: null });
  assert.ok(viaDefault.shardPaths[0]?.startsWith(process.env.SEMIGAN_CACHE_DIR!));
  const before = readdirSync(cache).length;
  const none = await decodeImages(list.entries, opts({ cacheDir: null, channels: 3 }));
  assert.deepEqual([none.cacheHit, none.shardPaths, readdirSync(cache).length], [false, [], before]);
});

test('decode cache: pixels overwritten in place (same size) are found by their checksum, decoded again, rewritten', async () => {
  const dir = join(tmp, 'cached-damaged');
  for (let i = 0; i < 4; i++) write(join(dir, String(labels[i]), `${i}.png`), await gray(px(i)).png().toBuffer());
  const list = scanImageFolder(dir);
  const first = await decodeImages(list.entries, opts());
  const u8 = first.shardPaths[0];
  const size = statSync(u8).size;
  writeFileSync(u8, Buffer.alloc(size, 0)); // zeroed, same size
  const second = await decodeImages(list.entries, opts());
  assert.equal(second.cacheHit, false);
  assert.equal(second.cacheDamaged, `${u8} does not match its checksum (changed after it was written)`);
  assert.deepEqual(allRows(second.rows), allRows(first.rows), 'the real pixels, not the zeros');
  const third = await decodeImages(list.entries, opts());
  assert.deepEqual([third.cacheHit, third.cacheDamaged], [true, undefined], 'rewritten');
  assert.deepEqual(allRows(third.rows), allRows(first.rows));
});

test('bad files: a data error naming the file and suggesting --skip-bad; skipBad drops and lists them', async () => {
  const dir = join(tmp, 'bad');
  for (let i = 0; i < 8; i++) write(join(dir, String(i % 2), `${i}.png`), await gray(px(i)).png().toBuffer());
  const goodPng = await gray(px(20)).png().toBuffer();
  const goodJpeg = await gray(px(21)).jpeg().toBuffer();
  const bad: [string, Buffer | string, RegExp][] = [
    ['1/truncated.png', goodPng.subarray(0, goodPng.length >> 1), /cannot decode as an image \(.*end of stream/],
    ['0/truncated.jpg', goodJpeg.subarray(0, goodJpeg.length >> 1), /premature end of JPEG/],
    ['0/text.png', 'not really a PNG\n', /unsupported image format/],
    ['1/empty.webp', '', /empty/],
  ];
  for (const [name, bytes, why] of bad) {
    const one = join(tmp, 'bad-one', name.replace(/[./]/g, '-'));
    for (let i = 0; i < 2; i++) write(join(one, 'c', `${i}.png`), goodPng);
    write(join(one, name), bytes);
    const entries = scanImageFolder(one).entries;
    for (const size of [null, [28, 28] as [number, number]]) {
      await dataErr(decodeImages(entries, opts({ size, channels: 1 })), `${join(one, name)}: `, why, /--skip-bad/);
    }
  }
  // In a manifest, the message also gives the line.
  write(join(tmp, 'bad-one', 'm.csv'), `path,label\n${join(dir, '0', '0.png')},a\ntext.png,\n`);
  write(join(tmp, 'bad-one', 'text.png'), 'text');
  await dataErr(
    decodeImages(readManifest(join(tmp, 'bad-one', 'm.csv')).entries, opts()),
    'text.png (manifest line 3): cannot read as an image',
  );

  for (const [name, bytes] of bad) write(join(dir, name), bytes);
  const list = scanImageFolder(dir);
  await dataErr(decodeImages(list.entries, opts()), /--skip-bad/);
  const d = await decodeImages(list.entries, opts({ skipBad: true }));
  assert.deepEqual(d.skipped.map((s) => s.id).sort(), bad.map(([n]) => n).sort());
  assert.deepEqual(
    Array.from(d.kept, (i) => entryArray(list.entries)[i].id),
    entryArray(list.entries)
      .map((e) => e.id)
      .filter((id) => !bad.some(([n]) => n === id)),
  );
  for (const [k, i] of d.kept.entries()) {
    const idx = +entryArray(list.entries)[i].id.split('/')[1].split('.')[0];
    assert.deepEqual(
      allRows(d.rows).subarray(k * 784, (k + 1) * 784),
      Float32Array.from(px(idx), (v) => v / 255),
    );
  }
  assert.match(skippedSummary(d)!, /^skipped 4 unreadable file\(s\) \(--skip-bad\): .*\(.+\); .*; .*; and 1 more$/);
  assert.equal(skippedSummary({ skipped: [] }), null);
  // From the cache, the same rows and the same list; without skipBad, the same error as decoding gives.
  const again = await decodeImages(list.entries, opts({ skipBad: true }));
  assert.deepEqual(
    [again.cacheHit, again.skipped, again.kept, allRows(again.rows)],
    [true, d.skipped, d.kept, allRows(d.rows)],
  );
  await dataErr(decodeImages(list.entries, opts()), /--skip-bad/, join(dir, d.skipped[0].id));
  const onlyBad = entryArray(list.entries).filter((e) => bad.some(([n]) => n === e.id));
  await dataErr(
    decodeImages(onlyBad, opts({ skipBad: true, cacheDir: null })),
    'none of the 4 files is a readable image',
  );
  // A file deleted since the scan.
  rmSync(join(dir, '0', '2.png'));
  await dataErr(decodeImages(list.entries, opts({ skipBad: true })), `${join(dir, '0', '2.png')}: file not found`);
});

test('probe for data inspect, and content hashes', async () => {
  const dir = join(tmp, 'mixed');
  const text = join(tmp, 'probe', 'text.png');
  const truncated = join(tmp, 'probe', 'truncated.png');
  write(text, 'hello');
  const png = await gray(px(1)).png().toBuffer();
  write(truncated, png.subarray(0, png.length - 40));
  const paths = [
    join(dir, 'a', 'g00000.png'),
    join(dir, 'a', 'jpeg', 'j00012.jpg'),
    join(dir, 'b', 'c00015.png'),
    join(dir, 'a', 't00018.png'),
    text,
    truncated,
  ];
  const r = await probeImages(paths);
  assert.deepEqual(
    r
      .slice(0, 4)
      .map((p) =>
        p.ok
          ? [p.probe.height, p.probe.width, p.probe.bands, p.probe.channels, p.probe.hasAlpha, p.probe.format]
          : p.error,
      ),
    [
      [28, 28, 1, 1, false, 'png'],
      [28, 28, 1, 1, false, 'jpeg'],
      [32, 32, 3, 3, false, 'png'],
      [20, 30, 4, 3, true, 'png'],
    ],
  );
  assert.ok(!r[4].ok && /unsupported image format/.test(r[4].error));
  assert.ok(r[5].ok, 'a truncated file has a readable header');
  const full = await probeImages(paths, { decode: true });
  assert.ok(full[0].ok && full[3].ok && !full[5].ok && /cannot decode/.test(full[5].error));

  const copy = join(tmp, 'probe', 'copy.png');
  write(copy, readFileSync(paths[0]));
  const hashes = await sha1Files([paths[0], copy, paths[1]]);
  assert.equal(hashes[0], createHash('sha1').update(readFileSync(paths[0])).digest('hex'));
  assert.equal(hashes[0], hashes[1]);
  assert.notEqual(hashes[0], hashes[2]);
  assert.equal(await sha1File(paths[1]), hashes[2]);
});
