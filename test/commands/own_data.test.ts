/**
 * Your own data through the CLI, on real MNIST test images written as files: an image folder of
 * PNG and JPEG files of mixed sizes and channels (trained with the automatically chosen conv
 * preset, evaluated, asked for suggestions, exported and served by predict), a tabular CSV of
 * real MNIST features, and every kind of bad input, each a one-line error naming the file.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { firstOfDigits, mnistBytes, pooledMnistCsv, POOLED_COLUMNS, writeMnistPng } from '../lib/mnist_files.js';
import { CLI, cleanError, ok, runCli, runNode } from '../lib/cli.js';
import { initBackend } from '../../src/backend.js';
import { Classifier } from '../../src/export/classifier.js';
import { PredictionServer } from '../../src/serve/server.js';

let tmp: string;
let env: NodeJS.ProcessEnv;
const DIGITS = [0, 1, 2];

/** Image i as `kind`: most files are 28x28 gray PNGs; a few are JPEG, RGB 32x32, RGBA, or 20x30. */
async function writeImage(path: string, i: number, kind: 'png' | 'jpeg' | 'rgb32' | 'rgba' | 'odd'): Promise<void> {
  mkdirSync(join(path, '..'), { recursive: true });
  const gray = sharp(Buffer.from(mnistBytes(i)), { raw: { width: 28, height: 28, channels: 1 } });
  if (kind === 'png') return writeMnistPng(path, i);
  if (kind === 'jpeg') return void (await gray.toColourspace('b-w').jpeg({ quality: 95 }).toFile(path));
  if (kind === 'rgb32') return void (await gray.resize(32, 32).toColourspace('srgb').png().toFile(path));
  if (kind === 'odd') return void (await gray.resize(20, 30, { fit: 'fill' }).toColourspace('b-w').png().toFile(path));
  // RGBA: the digit as opaque white on a transparent background (composites onto black = the digit).
  const rgba = Buffer.alloc(28 * 28 * 4);
  mnistBytes(i).forEach((v, p) => rgba.fill(255, p * 4, p * 4 + 3).writeUInt8(v, p * 4 + 3));
  await sharp(rgba, { raw: { width: 28, height: 28, channels: 4 } })
    .png()
    .toFile(path);
}

const KINDS = ['png', 'png', 'png', 'jpeg', 'png', 'rgb32', 'png', 'rgba', 'png', 'odd'] as const;
const EXT = { png: 'png', jpeg: 'jpg', rgb32: 'png', rgba: 'png', odd: 'png' } as const;

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'semigan-own-'));
  env = { SEMIGAN_CACHE_DIR: join(tmp, 'cache') };
  // Train: 10 per digit in mixed formats + 40 unlabeled; test: the next 3 per digit.
  for (const [k, rows] of firstOfDigits(DIGITS, 10)) {
    for (const [j, i] of rows.entries())
      await writeImage(join(tmp, 'img', String(k), `${i}.${EXT[KINDS[j]]}`), i, KINDS[j]);
  }
  for (let i = 1000; i < 1040; i++) await writeMnistPng(join(tmp, 'img', 'unlabeled', `${i}.png`), i);
  for (const [k, rows] of firstOfDigits(DIGITS, 3, 10))
    for (const i of rows) await writeMnistPng(join(tmp, 'test', String(k), `${i}.png`), i);
});
after(() => rmSync(tmp, { recursive: true, force: true }));

const train = (...args: string[]) => [
  'train',
  '--backend',
  'wasm',
  '--epochs',
  '1',
  '--iters-per-epoch',
  '3',
  '--batch-size',
  '16',
  ...args,
];

test('image folder: inspect, train (conv-small), evaluate, suggest, export, predict; the second load comes from the cache', async () => {
  const data = `images:${join(tmp, 'img')}`;
  const inspect = ok(await runCli(['data', 'inspect', data, '--test', `images:${join(tmp, 'test')}`], env)).stdout;
  assert.match(inspect, /70 examples \(30 labeled, 40 unlabeled\); test .*: 9 examples/);
  assert.match(inspect, /sizes \(HxW\): 28x28: 73, 32x32: 3, 30x20: 3/);
  assert.match(inspect, /6 files not 28x28/);
  assert.match(inspect, /3 classes with fewer than 5 labeled|problems \(/);

  const run = join(tmp, 'run');
  const r = ok(
    await runCli(
      train('--data', data, '--test', `images:${join(tmp, 'test')}`, '--preset', 'conv-small', '--out', run),
      env,
    ),
  );
  assert.match(r.stderr, /decoded 70 images/);
  assert.match(r.stderr, /28x28 pixels .*64 of 70 files.*1 channel/);
  assert.match(r.stderr, /model: conv-small, mode gan/);
  const result = JSON.parse(r.stdout);
  assert.equal(result.n, 9);

  const again = ok(
    await runCli(
      train(
        '--data',
        data,
        '--test',
        `images:${join(tmp, 'test')}`,
        '--preset',
        'conv-small',
        '--out',
        run,
        '--overwrite',
      ),
      env,
    ),
  );
  assert.match(again.stderr, /loaded 70 images from the decode cache/);
  assert.deepEqual(JSON.parse(again.stdout).accuracy, result.accuracy, 'same seed, same data: same run');

  const evaluated = JSON.parse(ok(await runCli(['evaluate', run, '--json', '--backend', 'wasm'], env)).stdout);
  assert.equal(evaluated.n, 9);
  assert.equal(evaluated.accuracy, result.accuracy);

  const csv = join(tmp, 'next.csv');
  const s = ok(await runCli(['suggest', run, '--n', '5', '--out', csv, '--backend', 'wasm'], env));
  assert.match(s.stdout, /5 of 40 unlabeled examples, most uncertain first \(by margin\)/);
  const lines = readFileSync(csv, 'utf8').trim().split('\n');
  assert.equal(lines[0], 'rank,id,predicted,probability,runner_up,runner_up_probability,margin,entropy,realness');
  assert.equal(lines.length, 6);
  const margins = lines.slice(1).map((l) => l.split(','));
  for (const f of margins) {
    assert.ok(f[1].startsWith(join(tmp, 'img', 'unlabeled') + '/') && /\/10\d\d\.png$/.test(f[1]), f[1]);
    assert.ok(Math.abs(Number(f[3]) - Number(f[5]) - Number(f[6])) < 2e-6, 'margin = p1 - p2');
  }
  assert.deepEqual(
    margins.map((f) => Number(f[6])),
    margins.map((f) => Number(f[6])).sort((a, b) => a - b),
    'most uncertain first',
  );

  const model = join(tmp, 'model');
  ok(await runCli(['export', run, '--out', model, '--backend', 'wasm'], env));
  const meta = JSON.parse(readFileSync(join(model, 'metadata.json'), 'utf8'));
  assert.equal(meta.training.preset, 'conv-small');
  const fromModel = JSON.parse(ok(await runCli(['evaluate', model, '--json', '--backend', 'wasm'], env)).stdout);
  assert.equal(fromModel.accuracy, result.accuracy, 'the exported model scores its own test set as the run did');
  const onFolder = JSON.parse(
    ok(await runCli(['evaluate', model, '--data', `images:${join(tmp, 'test')}`, '--json', '--backend', 'wasm'], env))
      .stdout,
  );
  assert.deepEqual([onFolder.n, onFolder.accuracy], [9, result.accuracy], 'the same test folder given as --data');
  const testFile = join(tmp, 'test', '1', `${firstOfDigits([1], 1, 10).get(1)![0]}.png`);
  const jpeg = join(tmp, 'img', '0', `${firstOfDigits([0], 4).get(0)![3]}.jpg`);
  const pred = JSON.parse(
    ok(await runCli(['predict', model, testFile, jpeg, '--json', '--backend', 'wasm'], env)).stdout,
  );
  assert.deepEqual(
    pred.predictions.map((p: { name: string }) => p.name),
    [testFile, jpeg],
  );
  for (const p of pred.predictions) {
    assert.ok(['0', '1', '2'].includes(p.label));
    const sum = Object.values(p.probabilities as Record<string, number>).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(sum - 1) < 1e-9);
  }
});

test('tabular CSV: train (auto preset tabular-mlp), evaluate, suggest rows, export, predict rows', async () => {
  const cols = POOLED_COLUMNS;
  const text = pooledMnistCsv(400, (i) => i % 4 === 0);
  const lines = text.trim().split('\n');
  const csv = join(tmp, 'digits.csv');
  writeFileSync(csv, text);
  const run = join(tmp, 'tab-run');
  const r = ok(
    await runCli(
      train(
        '--data',
        `csv:${csv}`,
        '--label-column',
        'digit',
        '--drop-columns',
        'name',
        '--test-split',
        '0.2',
        '--out',
        run,
      ),
      env,
    ),
  );
  assert.match(r.stderr, /preset: tabular-mlp \(tabular data/);
  const result = JSON.parse(r.stdout);
  const evaluated = JSON.parse(ok(await runCli(['evaluate', run, '--json', '--backend', 'wasm'], env)).stdout);
  assert.equal(evaluated.accuracy, result.accuracy);
  assert.equal(evaluated.n, result.n);
  const s = ok(await runCli(['suggest', run, '--n', '3', '--by', 'entropy', '--json', '--backend', 'wasm'], env));
  const sug = JSON.parse(s.stdout);
  assert.equal(sug.unlabeled, 300);
  for (const x of sug.suggestions) {
    const line = Number(x.id.split(':').pop());
    assert.equal(lines[line - 1].split(',').pop(), '', `${x.id} is an unlabeled row`);
  }
  assert.ok(sug.suggestions[0].entropy >= sug.suggestions[2].entropy);
  const model = join(tmp, 'tab-model');
  ok(await runCli(['export', run, '--out', model, '--backend', 'wasm'], env));
  const meta = JSON.parse(readFileSync(join(model, 'metadata.json'), 'utf8'));
  assert.equal(meta.preprocessing.type, 'tabular');
  assert.deepEqual(meta.preprocessing.features, cols);
  const rows = join(tmp, 'rows.csv');
  writeFileSync(
    rows,
    [lines[0].replace(',digit', ''), lines[1].replace(/,[^,]*$/, ''), lines[2].replace(/,[^,]*$/, '')].join('\n') +
      '\n',
  ); // no label column
  const pred = JSON.parse(ok(await runCli(['predict', model, rows, '--json', '--backend', 'wasm'], env)).stdout);
  assert.deepEqual(
    pred.predictions.map((p: { name: string }) => p.name),
    [`${rows}:2`, `${rows}:3`],
  );
  assert.equal(
    JSON.parse(ok(await runCli(['evaluate', model, '--json', '--backend', 'wasm'], env)).stdout).accuracy,
    result.accuracy,
  );

  // Served over HTTP on 127.0.0.1: raw feature rows in, the same predictions as predict's.
  await initBackend('wasm');
  const classifier = await Classifier.load(model);
  const server = await PredictionServer.start(classifier, { port: 0 });
  try {
    const raw = [1, 2].map((l) => lines[l].split(',').slice(1, 50).map(Number));
    const res = await fetch(`${server.url}/v1/predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: raw }),
    });
    assert.equal(res.status, 200);
    const served = (await res.json()) as { predictions: { label: string; probability: number }[] };
    served.predictions.forEach((p, i) => {
      assert.equal(p.label, pred.predictions[i].label);
      assert.ok(Math.abs(p.probability - pred.predictions[i].probability) < 1e-6);
    });
    const image = await fetch(`${server.url}/v1/predict`, {
      method: 'POST',
      headers: { 'content-type': 'image/png' },
      body: readFileSync(join(tmp, 'test', '0', readdirSync(join(tmp, 'test', '0'))[0])),
    });
    assert.equal(image.status, 415);
    assert.match(((await image.json()) as { error: { message: string } }).error.message, /tabular model/);
  } finally {
    await server.shutdown();
    classifier.dispose();
  }
});

test('bad input: one-line errors naming the file (and line), never a stack trace; --skip-bad skips with a count', async () => {
  const base = join(tmp, 'bad');
  const folder = async (name: string) => {
    const dir = join(base, name);
    for (const k of DIGITS)
      for (const i of firstOfDigits([k], 3).get(k)!) await writeMnistPng(join(dir, String(k), `${i}.png`), i);
    for (let i = 2000; i < 2010; i++) await writeMnistPng(join(dir, 'unlabeled', `${i}.png`), i);
    return dir;
  };
  const fail = async (args: string[]) =>
    cleanError(await runCli(train(...args, '--out', join(base, 'out'), '--overwrite'), env));

  const truncated = await folder('truncated');
  const png = readFileSync(join(truncated, '1', `${firstOfDigits([1], 1).get(1)![0]}.png`));
  writeFileSync(join(truncated, '1', 'cut.png'), png.subarray(0, Math.floor(png.length / 2)));
  assert.match(await fail(['--data', `images:${truncated}`]), /1\/cut\.png.*--skip-bad/);
  const skipped = ok(
    await runCli(train('--data', `images:${truncated}`, '--skip-bad', '--out', join(base, 'out'), '--overwrite'), env),
  );
  assert.match(skipped.stderr, /skipped 1 unreadable file.*cut\.png/);

  const text = await folder('text');
  writeFileSync(join(text, '2', 'notes.txt'), 'not an image');
  assert.match(await fail(['--data', `images:${text}`]), /2\/notes\.txt: not an image file/);

  const empty = await folder('empty');
  mkdirSync(join(empty, '9'));
  assert.match(await fail(['--data', `images:${empty}`]), /9.*no image files/);

  const noUnlabeled = await folder('no-unlabeled');
  rmSync(join(noUnlabeled, 'unlabeled'), { recursive: true });
  assert.match(await fail(['--data', `images:${noUnlabeled}`]), /every training example is labeled/);

  const unknownTest = join(base, 'unknown-test');
  mkdirSync(join(unknownTest, '7'), { recursive: true });
  writeFileSync(join(unknownTest, '7', 'x.png'), png);
  assert.match(
    await fail(['--data', `images:${truncated}`, '--skip-bad', '--test', `images:${unknownTest}`]),
    /7\/x\.png.*class '7' is not one of the training classes \[0, 1, 2\]/,
  );

  const manifest = join(base, 'm.csv');
  writeFileSync(manifest, 'path,label\ntruncated/0/a.png,0\n');
  assert.match(await fail(['--data', `manifest:${manifest}`]), /m\.csv.*line 2|truncated\/0\/a\.png/);

  const csv = (name: string, body: string) => {
    const p = join(base, name);
    writeFileSync(p, body);
    return ['--data', `csv:${p}`, '--label-column', 'y'];
  };
  assert.match(await fail(csv('fields.csv', 'a,b,y\n1,2,x\n3,4\n5,6,\n')), /fields\.csv:3: found 2 fields, expected 3/);
  assert.match(await fail(csv('text.csv', 'a,b,y\n1,2,x\n3,abc,z\n5,6,\n')), /text\.csv:3: .*"b".*abc/);
  assert.match(await fail(csv('header.csv', '1,2,3\n4,5,6\n')), /header\.csv:1: .*header/);
  // The image track on a table: its columns have no neighbours to shift.
  assert.match(
    await fail([...csv('table.csv', 'a,b,y\n1,2,x\n3,4,z\n5,6,\n7,8,x\n9,1,z\n2,2,\n'), '--augment', '2']),
    /^error: --augment 2 shifts image pixels, but csv:.*table\.csv is tabular data/,
  );
  // More validation rows than labels.
  assert.match(
    await fail(['--data', `images:${truncated}`, '--skip-bad', '--val', '30']),
    /^error: --val 30 needs 10 labeled rows of each class besides at least one to train on/,
  );
});

test('data inspect on huge lossless images (8000x8000, 2.5 KB each) checks every pixel within bounded memory', async () => {
  const dir = join(tmp, 'huge');
  const webp = await sharp({ create: { width: 8000, height: 8000, channels: 3, background: { r: 0, g: 0, b: 0 } } })
    .webp({ lossless: true })
    .toBuffer();
  for (let i = 0; i < 4; i++) {
    mkdirSync(join(dir, i % 2 ? 'a' : 'b'), { recursive: true });
    writeFileSync(join(dir, i % 2 ? 'a' : 'b', `${i}.webp`), webp);
  }
  // Decoded whole, the four take 4 x 192 MB at once; through the shrink, a few MB each.
  const reportRss =
    'data:text/javascript,process.on("exit",()=>process.stderr.write("maxrss "+process.resourceUsage().maxRSS+"\\n"))';
  const r = ok(await runNode(['--import', reportRss, CLI, 'data', 'inspect', `images:${dir}`], env));
  assert.match(r.stdout, /4 examples/);
  const mb = Number(/maxrss (\d+)/.exec(r.stderr)![1]) / 1024;
  assert.ok(mb < 500, `peak RSS ${mb.toFixed(0)} MB`);
});
