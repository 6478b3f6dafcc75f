/**
 * The two serving engines side by side on one model directory exported with --format all:
 * in-process predictions/s at batch 1 and 64 (tfjs Classifier.predictLogits vs onnxruntime
 * OnnxClassifier.predictLogits), then HTTP predictions/s of `semigan serve --engine E` at 64
 * connections (single-PNG requests, autocannon in this process), each with --threads N.
 *
 *   npx tsc -p . && node dist/scripts/bench/engines.js MODEL_DIR [--threads 1] [--seconds 5] [--http-seconds 10]
 *
 * Prints a markdown table; asserts nothing.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import sharp from 'sharp';
import { initBackend } from '../../src/backend.js';
import { readIdxImages } from '../../src/data/sources/idx.js';
import { Classifier } from '../../src/export/classifier.js';
import { OnnxClassifier } from '../../src/export/onnx_classifier.js';
import { scalePixels } from '../../src/export/preprocess.js';
import { mnistDataDir } from '../../src/package_paths.js';
import { failUsage, scriptArgs } from '../lib/args.js';

const { values, positionals } = scriptArgs({
  allowPositionals: true,
  options: {
    threads: { type: 'string', default: '1' },
    seconds: { type: 'string', default: '5' },
    'http-seconds': { type: 'string', default: '10' },
  },
});
const model = positionals[0];
if (!model) failUsage('usage: engines.js MODEL_DIR (exported with --format all)');
const threads = Number(values.threads);
const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

const img = readIdxImages(join(mnistDataDir()!, 't10k-images-idx3-ubyte'));
const x = scalePixels(img.pixels.subarray(0, 64 * 784));
const pngs = await Promise.all(
  Array.from({ length: 64 }, (_, i) =>
    sharp(Buffer.from(img.pixels.subarray(i * 784, (i + 1) * 784)), { raw: { width: 28, height: 28, channels: 1 } })
      .png()
      .toBuffer(),
  ),
);

/** Rows per second of `fn` (n rows per call) over `seconds`, after a short warm-up. */
async function rate(fn: () => unknown, n: number, seconds: number): Promise<number> {
  for (let i = 0; i < 20; i++) await fn();
  let calls = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    await fn();
    calls++;
  }
  return (calls * n) / ((performance.now() - t0) / 1000);
}

async function http(engine: string): Promise<number> {
  const child = spawn(
    process.execPath,
    [CLI, 'serve', model, '--port', '0', '--engine', engine, '--threads', String(threads), '--backend', 'wasm'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const url = await new Promise<string>((resolve) => {
    let out = '';
    child.stdout!.on('data', (b) => {
      out += b;
      if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]).url);
    });
  });
  const opts = {
    url: url + '/v1/predict',
    connections: 64,
    requests: pngs.map((body) => ({ method: 'POST' as const, headers: { 'content-type': 'image/png' }, body })),
  };
  await autocannon({ ...opts, duration: 2 });
  const r = await autocannon({ ...opts, duration: Number(values['http-seconds']) });
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  return r.requests.average;
}

await initBackend('wasm', { threads });
const tfjs = await Classifier.load(model);
const ort = await OnnxClassifier.load(model, { threads });
const s = Number(values.seconds);
const rows: [string, number, number][] = [];
for (const n of [1, 64]) {
  const a = await rate(() => tfjs.predictLogits(x.subarray(0, n * 784), n), n, s);
  const b = await rate(() => ort.predictLogits(x.subarray(0, n * 784), n), n, s);
  rows.push([`in process, batch ${n}`, a, b]);
}
tfjs.dispose();
ort.dispose();
rows.push(['HTTP, 64 connections, single PNGs', await http('tfjs'), await http('onnx')]);
console.log(`| predictions/s (${threads} thread${threads === 1 ? '' : 's'}) | tfjs | onnx | onnx / tfjs |`);
console.log('|---|---:|---:|---:|');
for (const [what, a, b] of rows)
  console.log(`| ${what} | ${Math.round(a)} | ${Math.round(b)} | ${(b / a).toFixed(2)} |`);
