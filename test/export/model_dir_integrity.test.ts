/**
 * Model directories and checkpoints are inputs too: paths that leave the directory, changed or
 * appended bytes, NaN weights, duplicate class names and a tampered metadata.json are refused at
 * load with one line, by Classifier.load and by predict / evaluate / serve.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '../../src/backend.js';
import { Classifier } from '../../src/export/classifier.js';
import { sha256Hex } from '../../src/export/model_files.js';
import { decodeCheckpoint, encodeCheckpoint } from '../../src/train/checkpoint.js';
import { cleanError, runCli } from '../lib/cli.js';
import { trainAndExportTiny } from '../lib/tiny_run.js';

let tmp: string;
let run: string;
let model: string;
let n = 0;

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'semigan-integrity-'));
  await initBackend('wasm');
  run = join(tmp, 'run');
  model = join(tmp, 'model');
  await trainAndExportTiny(run, model);
});
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A copy of the exported model with `edit` applied to it. */
function tampered(edit: (dir: string) => void): string {
  const dir = join(tmp, `copy-${n++}`);
  cpSync(model, dir, { recursive: true });
  edit(dir);
  return dir;
}
const readJson = (p: string) => JSON.parse(readFileSync(p, 'utf8'));
const writeJson = (p: string, v: unknown) => writeFileSync(p, JSON.stringify(v));
/** Edit metadata.json. */
const meta = (f: (m: any) => void) => (dir: string) => {
  const m = readJson(join(dir, 'metadata.json'));
  f(m);
  writeJson(join(dir, 'metadata.json'), m);
};
/** Edit model.json and record its new checksum, so only the edit itself is under test. */
const modelJson = (f: (j: any) => void) => (dir: string) => {
  const j = readJson(join(dir, 'model.json'));
  f(j);
  writeJson(join(dir, 'model.json'), j);
  meta((m) => (m.files.sha256['model.json'] = sha256Hex(readFileSync(join(dir, 'model.json')))))(dir);
};

async function refused(dir: string, pattern: RegExp): Promise<void> {
  await assert.rejects(Classifier.load(dir), (e: Error) => {
    assert.equal(e.name, 'SemiganError', e.stack);
    assert.match(e.message, pattern);
    assert.doesNotMatch(e.message, /\n/);
    return true;
  });
}

test('the exported model loads, and metadata.json records the sha256 of model.json and weights.bin', async () => {
  const m = readJson(join(model, 'metadata.json'));
  assert.equal(m.formatVersion, 2);
  assert.equal(m.files.sha256['weights.bin'], sha256Hex(readFileSync(join(model, 'weights.bin'))));
  assert.equal(m.files.sha256['model.json'], sha256Hex(readFileSync(join(model, 'model.json'))));
  (await Classifier.load(model)).dispose();
});

test('paths that leave the model directory are refused (.., absolute, a symlink out, files.model)', async () => {
  const outside = join(tmp, 'outside');
  mkdirSync(outside);
  writeFileSync(join(outside, 'stolen.bin'), readFileSync(join(model, 'weights.bin')));
  await refused(
    tampered(modelJson((j) => (j.weightsManifest[0].paths = ['../outside/stolen.bin']))),
    /weight file "\.\.\/outside\/stolen\.bin" points outside the model directory/,
  );
  await refused(
    tampered(modelJson((j) => (j.weightsManifest[0].paths = ['/etc/passwd']))),
    /weight file "\/etc\/passwd" points outside the model directory/,
  );
  await refused(
    tampered((d) => {
      rmSync(join(d, 'weights.bin'));
      symlinkSync(join(outside, 'stolen.bin'), join(d, 'weights.bin'));
    }),
    /weight file weights\.bin is a link to outside the model directory/,
  );
  await refused(
    tampered(meta((m) => (m.files.model = '../model/model.json'))),
    /files\.model is "\.\.\/model\/model\.json", expected a file name inside the model directory/,
  );
});

test('changed, appended and NaN weight bytes are refused', async () => {
  await refused(
    tampered((d) => {
      const w = readFileSync(join(d, 'weights.bin'));
      w[1000] ^= 0xff;
      writeFileSync(join(d, 'weights.bin'), w);
    }),
    /weights\.bin: its sha256 does not match the one in metadata\.json/,
  );
  await refused(
    tampered((d) => writeFileSync(join(d, 'weights.bin'), Buffer.alloc(4096), { flag: 'a' })),
    /the weight files hold \d+ bytes but the weights named in .* take \d+/,
  );
  // NaN with a matching checksum: what an export of a diverged run would look like.
  await refused(
    tampered((d) => {
      const w = readFileSync(join(d, 'weights.bin'));
      w.writeFloatLE(NaN, 400);
      writeFileSync(join(d, 'weights.bin'), w);
      meta((m) => (m.files.sha256['weights.bin'] = sha256Hex(w)))(d);
    }),
    /weight .* holds NaN or infinite values/,
  );
});

test('metadata.json: duplicate class names, a wrong preprocessing and a missing checksum are refused', async () => {
  await refused(
    tampered(meta((m) => (m.classes = Array(10).fill('7')))),
    /classes is .*, expected distinct names \("7" appears twice\)/,
  );
  await refused(
    tampered(meta((m) => (m.preprocessing = { type: 'tabular', features: ['a'], mean: [0], std: [1] }))),
    /inputShape is \[28,28,1\], expected \[1, 1, features\] for a tabular model/,
  );
  await refused(
    tampered(meta((m) => (m.preprocessing.channels = 3))),
    /preprocessing height\/width\/channels is \[28,28,3\], expected the inputShape \[28, 28, 1\]/,
  );
  await refused(tampered(meta((m) => delete m.files.sha256)), /files\.sha256 is missing, expected the checksums/);
});

test('predict, evaluate and serve refuse a tampered model directory with one line before any work', async () => {
  const dir = tampered(meta((m) => (m.preprocessing = { type: 'tabular', features: ['a'], mean: [0], std: [1] })));
  const png = join(tmp, 'x.png');
  writeFileSync(png, Buffer.from('89504e470d0a1a0a', 'hex'));
  const [p, e, s] = await Promise.all([
    runCli(['predict', dir, png, '--backend', 'wasm', '--threads', '1']),
    runCli(['evaluate', dir, '--data', 'mnist', '--test-limit', '10', '--backend', 'wasm', '--threads', '1']),
    runCli(['serve', dir, '--port', '0', '--backend', 'wasm', '--threads', '1']),
  ]);
  for (const r of [p, e, s])
    assert.match(cleanError(r), /metadata\.json: inputShape is \[28,28,1\], expected \[1, 1, features\]/);
});

test('checkpoints: a changed tensor byte fails its CRC, NaN averaged weights are refused by evaluate and export', async () => {
  const path = join(run, 'checkpoint.bin');
  const good = readFileSync(path);
  const flipped = Buffer.from(good);
  flipped[flipped.length - 100] ^= 0x10;
  const bad = join(tmp, 'run-flipped');
  cpSync(run, bad, { recursive: true });
  writeFileSync(join(bad, 'checkpoint.bin'), flipped);
  assert.match(
    cleanError(await runCli(['evaluate', bad, '--backend', 'wasm', '--threads', '1'])),
    /checkpoint\.bin: not a readable semigan checkpoint \(tensor .* does not match its checksum/,
  );

  const ckpt = decodeCheckpoint<unknown>(good, path);
  const ema = Object.keys(ckpt.tensors).find((k) => k.startsWith('ema/'))!;
  ckpt.tensors[ema].data[0] = NaN;
  const nan = join(tmp, 'run-nan');
  cpSync(run, nan, { recursive: true });
  writeFileSync(join(nan, 'checkpoint.bin'), encodeCheckpoint(ckpt));
  const [ev, ex] = await Promise.all([
    runCli(['evaluate', nan, '--backend', 'wasm', '--threads', '1']),
    runCli(['export', nan, '--out', join(tmp, 'nan-model'), '--backend', 'wasm', '--threads', '1']),
  ]);
  for (const r of [ev, ex])
    assert.match(cleanError(r), /averaged discriminator weight .* holds NaN or infinite values/);
});
