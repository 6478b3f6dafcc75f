/**
 * `parquet:` sources read back the pixels and labels of the image folder they were made from.
 * The files are written by an independent writer (arrow-rs compiled to wasm: parquet-wasm, with
 * apache-arrow building the table), not by the reading library (hyparquet).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Binary, Field, Int64, Struct, Table, Utf8, tableToIPC, vectorFromArray } from 'apache-arrow';
import * as pw from 'parquet-wasm/node';
import { writeMnistFolder } from '../lib/mnist_files.js';
import { scanImageFolder } from '../../src/data/sources/image_folder.js';
import { decodeImages } from '../../src/data/images/decode.js';
import { parquetFiles, readParquetImages, type ParquetImageOptions } from '../../src/data/sources/parquet.js';
import { loadData, type LoadOptions } from '../../src/data/load.js';
import { validateConfig } from '../../src/train/config.js';
import { SemiganError } from '../../src/errors.js';
import { inspectData } from '../../src/commands/inspect.js';

let tmp: string;
/** id -> [PNG bytes, label or null] of the folder's files, in the folder's row order. */
let files: [string, Buffer, string | null][];

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'semigan-parquet-'));
  process.env.SEMIGAN_CACHE_DIR = join(tmp, 'cache');
  await writeMnistFolder(join(tmp, 'digits'), [3, 7], 6, 9); // 12 labeled, 9 unlabeled
  const list = scanImageFolder(join(tmp, 'digits'));
  files = Array.from({ length: list.entries.length }, (_, i) => {
    const e = list.entries.at(i)!;
    return [e.id, readFileSync(e.path), e.label];
  });
});
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Write `table` as Parquet (snappy, `rowGroup` rows per row group, optional key-value metadata). */
function writeParquet(path: string, table: Table, rowGroup: number, metadata?: Map<string, string>): void {
  let props = new pw.WriterPropertiesBuilder().setMaxRowGroupSize(rowGroup).setCompression(pw.Compression.SNAPPY);
  if (metadata) props = props.setKeyValueMetadata(metadata);
  writeFileSync(path, pw.writeParquet(pw.Table.fromIPCStream(tableToIPC(table, 'stream')), props.build()));
}

const opts = (o: Partial<ParquetImageOptions> = {}): ParquetImageOptions => ({
  size: null,
  channels: null,
  imageColumn: 'image',
  labelColumn: null,
  cacheDir: join(tmp, 'cache'),
  ...o,
});

test('a Parquet file of PNG bytes and string labels gives the folder pixels and labels, across row groups', async () => {
  const path = join(tmp, 'digits.parquet');
  const table = new Table({
    image: vectorFromArray(
      files.map((f) => new Uint8Array(f[1])),
      new Binary(),
    ),
    label: vectorFromArray(
      files.map((f) => f[2]),
      new Utf8(),
    ),
  });
  writeParquet(path, table, 5); // 21 rows: row groups of 5, 5, 5, 5, 1
  const folder = await decodeImages(scanImageFolder(join(tmp, 'digits')).entries, {
    size: null,
    channels: null,
    cacheDir: null,
  });
  const { dataset, decodedRows } = await readParquetImages('parquet:' + path, parquetFiles(path), opts());
  assert.equal(decodedRows, 21);
  assert.deepEqual(dataset.shape, folder.shape);
  const all = Int32Array.from({ length: 21 }, (_, i) => i);
  assert.deepEqual(dataset.x.gatherRaw(all), folder.rows.gatherRaw(all));
  assert.deepEqual(dataset.classes, ['3', '7']);
  assert.deepEqual(
    Array.from(dataset.y),
    files.map((f) => (f[2] === null ? -1 : ['3', '7'].indexOf(f[2]))),
  );
  assert.equal(dataset.ids!.at(6), 'digits.parquet row 6');
  // A second read comes from the store, one shard per row group: the same rows.
  const again = await readParquetImages('parquet:' + path, parquetFiles(path), opts());
  assert.equal(again.decodedRows, 0);
  assert.deepEqual(again.dataset.x.gatherRaw(all), folder.rows.gatherRaw(all));
  // Read from disk a batch at a time: the same rows.
  const disk = await readParquetImages('parquet:' + path, parquetFiles(path), opts({ memoryBytes: 0 }));
  assert.equal(disk.inMemory, false);
  assert.deepEqual(disk.dataset.x.gather([20, 0, 7]), folder.rows.gather([20, 0, 7]));
  await disk.dataset.x.close();
});

test('Hugging Face layout: {bytes, path} structs and integer labels named by the ClassLabel metadata', async () => {
  const dir = join(tmp, 'hf');
  mkdirSync(dir);
  const names = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];
  const struct = new Struct([new Field('bytes', new Binary(), true), new Field('path', new Utf8(), true)]);
  const half = (part: typeof files) =>
    new Table({
      image: vectorFromArray(
        part.map((f) => ({ bytes: new Uint8Array(f[1]), path: f[0] })),
        struct,
      ),
      label: vectorFromArray(
        part.map((f) => (f[2] === null ? -1n : BigInt(f[2]))),
        new Int64(),
      ),
    });
  const hf = new Map([['huggingface', JSON.stringify({ info: { features: { label: { names } } } })]]);
  writeParquet(join(dir, 'train-00001-of-00002.parquet'), half(files.slice(10)), 4, hf);
  writeParquet(join(dir, 'train-00000-of-00002.parquet'), half(files.slice(0, 10)), 4, hf);
  const data = await loadData(
    validateConfig({ dataset: `parquet:${dir}`, testSplit: 0.25, mode: 'gan', labels: null }) as unknown as LoadOptions,
  );
  assert.deepEqual(data.train.classes, ['seven', 'three']);
  assert.equal(data.train.n + data.test.n, 21);
  assert.equal(data.test.n, 4); // a quarter of each class's 6 labels, rounded
  const { dataset } = await readParquetImages(`parquet:${dir}`, parquetFiles(dir), opts());
  assert.deepEqual(
    dataset.x.gatherRaw([0, 12, 20]),
    (
      await decodeImages(scanImageFolder(join(tmp, 'digits')).entries, { size: null, channels: null, cacheDir: null })
    ).rows.gatherRaw([0, 12, 20]),
    'files in natural order: 00000 before 00001',
  );
});

test('bad Parquet input: a missing column, a file that is not Parquet, undecodable image bytes', async () => {
  const dataErr = (re: RegExp) => (e: unknown) => e instanceof SemiganError && re.test(e.message);
  const path = join(tmp, 'cols.parquet');
  writeParquet(
    path,
    new Table({
      picture: vectorFromArray(
        files.slice(0, 3).map((f) => new Uint8Array(f[1])),
        new Binary(),
      ),
    }),
    10,
  );
  await assert.rejects(
    readParquetImages('parquet:' + path, [path], opts()),
    dataErr(/cols\.parquet: no column 'image' \(columns: picture\); name the image column with --image-column/),
  );
  await assert.rejects(
    readParquetImages('parquet:' + path, [path], opts({ imageColumn: 'picture', labelColumn: 'digit' })),
    dataErr(/no column 'digit' \(columns: picture\); name the label column with --label-column/),
  );
  const ok = await readParquetImages('parquet:' + path, [path], opts({ imageColumn: 'picture' }));
  assert.deepEqual([ok.dataset.n, ok.dataset.y[0]], [3, -1]);
  const notParquet = join(tmp, 'text.parquet');
  writeFileSync(notParquet, 'a,b\n1,2\n');
  await assert.rejects(
    readParquetImages('parquet:' + notParquet, [notParquet], opts()),
    dataErr(/text\.parquet: not a readable Parquet file/),
  );
  const garbage = join(tmp, 'garbage.parquet');
  writeParquet(
    garbage,
    new Table({ image: vectorFromArray([new Uint8Array(files[0][1]), new Uint8Array([1, 2, 3])], new Binary()) }),
    10,
  );
  await assert.rejects(
    readParquetImages('parquet:' + garbage, [garbage], opts({ size: [28, 28], channels: 1 })),
    dataErr(/garbage\.parquet row 1: cannot decode as an image .*; pass --skip-bad/),
  );
  const skipped = await readParquetImages(
    'parquet:' + garbage,
    [garbage],
    opts({ size: [28, 28], channels: 1, skipBad: true }),
  );
  assert.equal(skipped.dataset.n, 1);
  await assert.rejects(
    readParquetImages('parquet:' + path, [path], opts({ imageColumn: 'picture', maxRowGroupBytes: 100 })),
    dataErr(
      /cols\.parquet: row group 0 holds [\d,]+ (B|KiB), more than the 100 B read at once; write the file with smaller row groups/,
    ),
  );
  assert.throws(
    () => parquetFiles(join(tmp, 'nope')),
    dataErr(/nope: not found \(expected a \.parquet file or a folder of them\)/),
  );
});

test('data inspect reads Parquet: counts, sizes, the store line, unreadable and missing bytes, duplicates across data and test', async () => {
  const labeled = files.findIndex((f) => f[2] !== null);
  const other = files[labeled][2] === '3' ? '7' : '3';
  const testRow = files.map((f) => f[2] !== null).lastIndexOf(true);
  const table = (rows: [Uint8Array | null, string | null][]) =>
    new Table({
      image: vectorFromArray(
        rows.map((r) => r[0]),
        new Binary(),
      ),
      label: vectorFromArray(
        rows.map((r) => r[1]),
        new Utf8(),
      ),
    });
  const data = join(tmp, 'inspect.parquet');
  const test = join(tmp, 'inspect-test.parquet');
  // The 21 files (12 labeled), then: bytes that are no image ('3'), no bytes at all (unlabeled),
  // and file `labeled` again under the other class.
  writeParquet(
    data,
    table([
      ...files.map((f): [Uint8Array, string | null] => [new Uint8Array(f[1]), f[2]]),
      [new TextEncoder().encode('not an image'), '3'],
      [null, null],
      [new Uint8Array(files[labeled][1]), other],
    ]),
    8,
  );
  writeParquet(test, table([[new Uint8Array(files[testRow][1]), files[testRow][2]]]), 8);
  const r = await inspectData(`parquet:${data}`, {
    test: `parquet:${test}`,
    unlabeledDir: 'unlabeled',
    labelColumn: null,
    features: null,
    dropColumns: [],
  });
  assert.deepEqual([r.kind, r.examples, r.labeled, r.unlabeled, r.test.examples], ['parquet', 24, 14, 10, 1]);
  assert.deepEqual(
    r.classes.map((c) => [c.name, c.labeled, c.test]),
    [
      ['3', other === '3' ? 8 : 7, files[testRow][2] === '3' ? 1 : 0],
      ['7', other === '7' ? 7 : 6, files[testRow][2] === '7' ? 1 : 0],
    ],
  );
  assert.deepEqual(r.sizes, [{ size: '28x28', files: 23 }]); // 22 readable data rows + 1 test row
  assert.deepEqual(r.channels, [{ channels: 1, files: 23 }]);
  assert.match(r.store!, /^22 images of 28x28x1: 17 KiB of pixels \(the files: [\d.]+ KiB\), held in memory/);
  const problems = r.problems.join('\n');
  assert.match(
    problems,
    /^2 unreadable images .*: inspect\.parquet row 21: cannot read as an image.*; inspect\.parquet row 22: no image bytes in the image column$/m,
  );
  assert.match(
    problems,
    new RegExp(
      `identical contents but different labels: inspect\\.parquet row ${labeled} = inspect\\.parquet row 23 \\(${files[labeled][2]} vs ${other}\\)`,
    ),
  );
  assert.match(
    problems,
    new RegExp(
      `1 example in both the data and the test set .*: inspect\\.parquet row ${testRow} = test inspect-test\\.parquet row 0`,
    ),
  );
  assert.equal(r.problems.length, 3, problems);
  // --image-column names another column; a missing one is the loader's one-line error.
  await assert.rejects(
    inspectData(`parquet:${data}`, {
      test: null,
      labelColumn: null,
      imageColumn: 'picture',
      unlabeledDir: 'unlabeled',
      features: null,
      dropColumns: [],
    }),
    /inspect\.parquet: no column 'picture' \(columns: image, label\); name the image column with --image-column/,
  );
});
