/**
 * Data specs end to end on real files: an image folder of real MNIST PNGs and a CSV of real
 * MNIST features go through loadData (test split or --test set, labeled subset, checks), as
 * `semigan train` loads them. The loaders themselves are tested in data_images/data_tabular.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import sharp from 'sharp';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDataSpec, absoluteSpec } from '../../src/data/sources/spec.js';
import { allLabeled, stratifiedHoldout } from '../../src/data/split/split.js';
import {
  grayFromEqualChannels,
  loadData,
  parseBackground,
  parseImageSize,
  type LoadOptions,
} from '../../src/data/load.js';
import { validateConfig } from '../../src/train/config.js';
import { autoPreset } from '../../src/models/presets.js';
import { SemiganError } from '../../src/errors.js';
import { firstOfDigits, mnistBytes, writeMnistFolder, writeMnistPng } from '../lib/mnist_files.js';
import { inspectData } from '../../src/commands/inspect.js';
import { allRows } from '../../src/data/rows.js';
import { idList } from '../../src/data/dataset.js';

let tmp: string;
let rowsOf: Map<string, number>;
const DIGITS = [0, 1, 2];

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'semigan-load-'));
  process.env.SEMIGAN_CACHE_DIR = join(tmp, 'cache');
  rowsOf = await writeMnistFolder(join(tmp, 'digits'), DIGITS, 12, 20);
});
after(() => rmSync(tmp, { recursive: true, force: true }));

const opts = (o: Record<string, unknown>): LoadOptions => validateConfig(o) as unknown as LoadOptions;
const dataErr = (re: RegExp) => (e: unknown) => e instanceof SemiganError && re.test(e.message);

test('data specs: built-in names, kind:PATH, and a clear error otherwise', () => {
  assert.deepEqual(parseDataSpec('mnist'), { kind: 'builtin', name: 'mnist' });
  assert.deepEqual(parseDataSpec('images:/a/b'), { kind: 'images', path: '/a/b' });
  assert.deepEqual(parseDataSpec('csv:x:y.csv'), { kind: 'csv', path: 'x:y.csv' });
  assert.equal(absoluteSpec('manifest:m.csv'), `manifest:${join(process.cwd(), 'm.csv')}`);
  assert.throws(() => parseDataSpec('cifar'), /--data "cifar": expected mnist, fashion-mnist, images:DIR/);
  assert.throws(() => parseDataSpec('images:'), /expected/);
  assert.deepEqual(parseImageSize('32x28'), [32, 28]);
  assert.throws(() => parseImageSize('32'), /HEIGHTxWIDTH/);
  assert.deepEqual(parseBackground('#ff8000'), [255, 128, 0]);
  assert.deepEqual(parseBackground('1,2,3'), [1, 2, 3]);
  assert.throws(() => parseBackground('pink'), /black, white, #rrggbb/);
});

test('stratifiedHoldout: round(fraction x count) per class, labeled rows only, at least one left to train', () => {
  //               0  1  2  3  4  5  6   7  8  9 10
  const y = Int32Array.from([0, 0, 0, 0, 0, 1, 1, -1, 1, 1, 2]);
  const { rows, emptyClasses } = stratifiedHoldout(y, 3, 0.4, 7);
  const per = [0, 0, 0];
  for (const r of rows) per[y[r]]++;
  assert.deepEqual(per, [2, 2, 0]); // round(0.4*5) = 2, round(0.4*4) = 2 (1.6), class 2 has 1 label: keeps it
  assert.deepEqual(emptyClasses, [2]);
  assert.ok(!rows.includes(7), 'an unlabeled row is never a test row');
  assert.deepEqual(stratifiedHoldout(y, 3, 0.4, 7).rows, rows, 'same seed, same rows');
  assert.deepEqual([...allLabeled(y, 7).labeled], [0, 1, 2, 3, 4, 5, 6, 8, 9, 10]);
});

test('image folder: stratified test split, every label used, pixels as the MNIST idx file', async () => {
  const logged: string[] = [];
  const data = await loadData(opts({ dataset: `images:${join(tmp, 'digits')}`, testSplit: 0.25 }), (l) =>
    logged.push(l),
  );
  assert.ok(
    logged.includes(
      'warning: the test set holds only 9 examples (--test-split 0.25 of the labels): one error moves the accuracy by 11.1 points; label more examples or give --test SPEC for a figure to trust',
    ),
    logged.join('\n'),
  );
  assert.deepEqual(data.train.classes, ['0', '1', '2']);
  assert.deepEqual(data.train.shape, [28, 28, 1]);
  assert.equal(data.test.n, 9); // 3 of 12 per class
  assert.equal(data.train.n, 27 + 20);
  assert.equal(data.labeled.length, 27);
  assert.deepEqual([...data.test.y].sort(), [0, 0, 0, 1, 1, 1, 2, 2, 2]);
  for (const d of [data.train, data.test]) {
    for (let r = 0; r < d.n; r++) {
      const id = idList(d.ids!)[r];
      const expected = id.startsWith('unlabeled/') ? -1 : Number(id[0]);
      assert.equal(d.y[r], expected, id);
    }
  }
  const testIds = new Set(idList(data.test.ids!));
  assert.ok(
    idList(data.train.ids!).every((id) => !testIds.has(id)),
    'no test image is a training image',
  );
  const unlabeledId = [...rowsOf.keys()].find((k) => k.startsWith('unlabeled/'))!;
  const r = idList(data.train.ids!).indexOf(unlabeledId);
  assert.ok(r >= 0, unlabeledId);
  const bytes = mnistBytes(rowsOf.get(unlabeledId)!);
  assert.deepEqual(
    Array.from(data.train.x.gather([r])),
    Array.from(bytes, (v) => Math.fround(v / 255)),
  );
});

test('image folder: --labels-per-class keeps N per class labeled; the rest become unlabeled', async () => {
  const data = await loadData(opts({ dataset: `images:${join(tmp, 'digits')}`, labelsPerClass: 2 }));
  assert.equal(data.labeled.length, 6);
  // The default --test-split 0.2 holds out round(0.2 x 12) = 2 per class: 10 per class + 20 unlabeled train.
  assert.equal(data.test.n, 6);
  assert.equal(data.train.n, 50);
  assert.deepEqual(
    Array.from(data.labeled, (r) => data.train.y[r]),
    [0, 0, 1, 1, 2, 2],
  );
  assert.match(data.summaryText, /50 train \(6 labeled, 2 per class/);
});

test('manifest: paths relative to the CSV, empty label = unlabeled, rows in CSV order', async () => {
  const ids = [...rowsOf.keys()]
    .filter((id) => id.startsWith('1/') || id.startsWith('2/') || id.startsWith('unlabeled/'))
    .slice(0, 30);
  const manifest = join(tmp, 'list.csv');
  writeFileSync(
    manifest,
    ['path,label', ...ids.map((id) => `digits/${id},${id.startsWith('unlabeled/') ? '' : id[0]}`)].join('\n') + '\n',
  );
  const data = await loadData(opts({ dataset: `manifest:${manifest}`, testSplit: 0.25 }));
  assert.deepEqual(data.train.classes, ['1', '2']);
  const all = [...idList(data.train.ids!), ...idList(data.test.ids!)];
  assert.deepEqual(all.sort(), ids.map((id) => `digits/${id}`).sort());
  for (const d of [data.train, data.test]) {
    idList(d.ids!).forEach((id, r) => {
      const row = rowsOf.get(id.slice('digits/'.length))!;
      assert.equal(d.y[r], id.includes('unlabeled/') ? -1 : Number(id['digits/'.length]) - 1, id);
      assert.equal(d.x.gather([r])[400], Math.fround(mnistBytes(row)[400] / 255));
    });
  }
});

test('gray pictures saved as RGB PNGs become 1 channel (the same pixels as grayscale files); --channels 3 keeps 3', async () => {
  const dir = join(tmp, 'rgb-gray');
  const rows = [...rowsOf]
    .filter(([id]) => id.startsWith('0/') || id.startsWith('1/') || id.startsWith('unlabeled/'))
    .slice(0, 30);
  for (const [id, i] of rows) {
    mkdirSync(join(dir, id, '..'), { recursive: true });
    await sharp(Buffer.from(mnistBytes(i)), { raw: { width: 28, height: 28, channels: 1 } })
      .toColourspace('srgb')
      .png()
      .toFile(join(dir, id));
  }
  const lines: string[] = [];
  const data = await loadData(opts({ dataset: `images:${dir}`, testSplit: 0.2 }), (l) => lines.push(l));
  assert.match(
    lines.join('\n'),
    /3 channels .*every colour image is gray \(R = G = B in every pixel\): using 1 channel/s,
  );
  assert.deepEqual(data.train.shape, [28, 28, 1]);
  idList(data.train.ids!).forEach((id, r) =>
    assert.equal(data.train.x.gather([r])[350], Math.fround(mnistBytes(rowsOf.get(id)!)[350] / 255)),
  );
  const kept = await loadData(opts({ dataset: `images:${dir}`, testSplit: 0.2, channels: 3 }));
  assert.deepEqual(kept.train.shape, [28, 28, 3]);
  assert.equal(grayFromEqualChannels(Uint8Array.from([10, 10, 10, 20, 20, 30])), null);
  assert.deepEqual(Array.from(grayFromEqualChannels(Uint8Array.from([128, 128, 128, 0, 0, 0]))!), [128, 0]);
});

test('--test images:DIR2: its classes must be training classes, and every test image labeled', async () => {
  const dir2 = join(tmp, 'test-ok');
  await writeMnistPng(join(dir2, '1', 'a.png'), 100);
  await writeMnistPng(join(dir2, '2', 'b.png'), 101);
  const data = await loadData(opts({ dataset: `images:${join(tmp, 'digits')}`, test: `images:${dir2}` }));
  assert.equal(data.test.n, 2);
  assert.deepEqual([...data.test.y], [1, 2]);
  assert.equal(data.train.n, 56); // nothing held out
  const bad = join(tmp, 'test-bad');
  await writeMnistPng(join(bad, '7', 'c.png'), 102);
  await assert.rejects(
    loadData(opts({ dataset: `images:${join(tmp, 'digits')}`, test: `images:${bad}` })),
    dataErr(/c\.png.*class '7' is not one of the training classes \[0, 1, 2\]/),
  );
  await assert.rejects(
    loadData(opts({ dataset: `images:${join(tmp, 'digits')}`, test: `csv:${join(tmp, 'x.csv')}`, labelColumn: 'y' })),
    /same kind/,
  );
});

test('every example labeled and no --labels: the GAN has no unlabeled data, said clearly', async () => {
  const dir = join(tmp, 'all-labeled');
  for (const [k, i] of [
    [0, 3],
    [0, 10],
    [1, 2],
    [1, 5],
  ])
    await writeMnistPng(join(dir, String(k), `${i}.png`), i);
  await assert.rejects(
    loadData(opts({ dataset: `images:${dir}`, testSplit: 0.5 })),
    dataErr(/every training example is labeled.*unlabeled\/.*--labels N.*--mode supervised/),
  );
  const sup = await loadData({ ...opts({ dataset: `images:${dir}`, testSplit: 0.5 }), mode: 'supervised' });
  assert.equal(sup.labeled.length, 2);
});

test('csv: test split, standardization fitted on the training rows only', async () => {
  const path = join(tmp, 'table.csv');
  // Class a: x = 1, 2, 3, 4, 5; class b: x = 10, 20, 30, 40, 50; two unlabeled rows.
  const rows = [
    'x,z,label',
    ...[1, 2, 3, 4, 5].map((v) => `${v},${-v},a`),
    ...[10, 20, 30, 40, 50].map((v) => `${v},0,b`),
    '7,7,',
    '8,8,',
  ];
  writeFileSync(path, rows.join('\n') + '\n');
  const data = await loadData(opts({ dataset: `csv:${path}`, labelColumn: 'label', testSplit: 0.2, seedData: 3 }));
  assert.deepEqual(data.train.shape, [1, 1, 2]);
  assert.deepEqual(data.train.features, ['x', 'z']);
  assert.equal(data.test.n, 2); // round(0.2 x 5) = 1 per class
  const st = data.summary.standardization!;
  // Hand-check: mean and (population) std of the 10 training rows' x, from their ids.
  const trainX = idList(data.train.ids!).map((id) => Number(rows[Number(id.split(':').pop()) - 1].split(',')[0]));
  const mean = trainX.reduce((a, b) => a + b, 0) / trainX.length;
  const std = Math.sqrt(trainX.reduce((a, b) => a + (b - mean) ** 2, 0) / trainX.length);
  assert.ok(
    Math.abs(st.mean[0] - mean) < 1e-9 && Math.abs(st.std[0] - std) < 1e-6,
    `${st.mean[0]} ${st.std[0]} vs ${mean} ${std}`,
  );
  const trainRows = allRows(data.train.x);
  for (let r = 0; r < data.train.n; r++) assert.ok(Math.abs(trainRows[r * 2] - (trainX[r] - mean) / std) < 1e-5);
  await assert.rejects(loadData(opts({ dataset: `csv:${path}` })), /needs --label-column/);

  // --test csv:FILE: its rows are standardized with the training rows' statistics, columns matched by name.
  const testPath = join(tmp, 'table-test.csv');
  writeFileSync(testPath, 'label,z,x\nb,0,25\na,-3,3\n');
  const withTest = await loadData(opts({ dataset: `csv:${path}`, labelColumn: 'label', test: `csv:${testPath}` }));
  const s2 = withTest.summary.standardization!;
  assert.deepEqual([withTest.train.n, withTest.test.n], [12, 2]);
  assert.deepEqual([...withTest.test.y], [1, 0]);
  assert.ok(
    Math.abs(allRows(withTest.test.x)[0] - (25 - s2.mean[0]) / s2.std[0]) < 1e-5 &&
      Math.abs(allRows(withTest.test.x)[3] - (-3 - s2.mean[1]) / s2.std[1]) < 1e-5,
  );
  writeFileSync(testPath, 'x,z,label\n1,2,c\n');
  await assert.rejects(
    loadData(opts({ dataset: `csv:${path}`, labelColumn: 'label', test: `csv:${testPath}` })),
    /table-test\.csv:2: label "c" is not one of the known classes/,
  );
});

test('built-in datasets keep their official test split', async () => {
  await assert.rejects(loadData(opts({ dataset: 'mnist', testSplit: 0.2 })), /--test-split applies to your own data/);
});

test('--preset auto: the paper MLP for built-ins and small grayscale images, tabular-mlp for CSV, conv-small for other images (conv-large for colour 32 px+ on native TensorFlow)', () => {
  assert.equal(autoPreset('mnist', [28, 28, 1]).preset, 'mnist-mlp');
  assert.equal(autoPreset('csv:/t.csv', [1, 1, 30]).preset, 'tabular-mlp');
  assert.equal(autoPreset('images:/d', [32, 32, 3], 'wasm').preset, 'conv-small');
  assert.equal(autoPreset('manifest:/m.csv', [96, 96, 3], 'wasm').preset, 'conv-small');
  assert.equal(autoPreset('images:/d', [32, 32, 3], 'tensorflow').preset, 'conv-large');
  assert.equal(autoPreset('images:/d', [28, 28, 1], 'wasm').preset, 'mnist-mlp');
  assert.equal(autoPreset('images:/d', [64, 64, 1], 'wasm').preset, 'conv-small');
  assert.equal(autoPreset('images:/d', [28, 28, 3], 'tensorflow').preset, 'conv-small');
});

test('data inspect: counts, the --test-split preview, and problems (unreadable, odd size, duplicates, few labels)', async () => {
  const dir = join(tmp, 'inspect');
  await writeMnistFolder(dir, DIGITS, 4, 3);
  writeFileSync(
    join(dir, '1', 'cut.png'),
    readFileSync(join(dir, '0', readdirSync(join(dir, '0'))[0])).subarray(0, 60),
  );
  await writeMnistPng(join(dir, '2', 'copy-of-a-0.png'), firstOfDigits([0], 1).get(0)![0]); // same bytes, another label
  const clean = await inspectData(`images:${join(tmp, 'digits')}`, {
    test: null,
    unlabeledDir: 'unlabeled',
    labelColumn: null,
    features: null,
    dropColumns: [],
  });
  assert.deepEqual(
    clean.classes,
    DIGITS.map((k) => ({ name: String(k), labeled: 12, test: 2 })),
  ); // round(0.2 x 12)
  assert.deepEqual([clean.examples, clean.labeled, clean.unlabeled, clean.test.examples], [56, 36, 20, 6]);
  assert.deepEqual(clean.sizes, [{ size: '28x28', files: 56 }]);
  assert.deepEqual(clean.problems, []);
  // 56 x 784 bytes = 43 KiB; --data-store disk would read them from the store.
  assert.match(
    clean.store!,
    /^56 images of 28x28x1: 43 KiB of pixels \(the files: \d+ KiB\), held in memory during training \(--data-store auto\)$/,
  );
  const onDisk = await inspectData(`images:${join(tmp, 'digits')}`, {
    test: null,
    unlabeledDir: 'unlabeled',
    labelColumn: null,
    features: null,
    dropColumns: [],
    dataStore: 'disk',
  });
  assert.match(
    onDisk.store!,
    /read from the decode cache on disk a batch at a time \(43 KiB there; memory holds a few batches\) \(--data-store disk\)$/,
  );

  const testDir = join(tmp, 'inspect-test');
  await writeMnistPng(
    join(testDir, '1', 'again.png'),
    rowsOf.get(readdirSync(join(tmp, 'digits', '1')).map((f) => `1/${f}`)[0])!,
  );
  const r = await inspectData(`images:${dir}`, {
    test: `images:${testDir}`,
    unlabeledDir: 'unlabeled',
    labelColumn: null,
    features: null,
    dropColumns: [],
  });
  assert.equal(r.test.examples, 1);
  const problems = r.problems.join('\n');
  assert.match(problems, /1 unreadable file .*1\/cut\.png/);
  assert.match(problems, /identical contents but different labels: 0\/\d+\.png = 2\/copy-of-a-0\.png \(0 vs 2\)/);
  assert.match(problems, /^1 class with fewer than 5 labeled examples: '0' \(4\)$/m); // 1 and 2 have 5 files each (one bad or a copy)
  assert.match(problems, /1 example in both the data and the test set .*: 1\/\d+\.png = test 1\/again\.png/);
  assert.equal(r.problems.length, 4);
});
