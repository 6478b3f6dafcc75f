/**
 * Predictions per second of an exported model, in-process (no HTTP): Classifier.predict at batch
 * 1 and 256 on real MNIST test images, and the decode rates of imageToInput for 28x28 grayscale
 * PNGs through the fast path and through sharp.
 *
 *   npx tsc -p . && node dist/scripts/bench/predict.js MODEL_DIR [--seconds 3] [--backend wasm]
 *
 * Prints figures, asserts nothing.
 */
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { initBackend, type BackendChoice } from '../../src/backend.js';
import { readIdxImages } from '../../src/data/sources/idx.js';
import { Classifier } from '../../src/export/classifier.js';
import { imageToInput, scalePixels } from '../../src/export/preprocess.js';
import { mnistDataDir } from '../../src/package_paths.js';
import { failUsage, scriptArgs } from '../lib/args.js';

const { values, positionals } = scriptArgs({
  allowPositionals: true,
  options: { seconds: { type: 'string', default: '3' }, backend: { type: 'string', default: 'wasm' } },
});
if (positionals.length !== 1) failUsage('usage: bench_predict MODEL_DIR [--seconds 3] [--backend wasm]');
const seconds = Number(values.seconds);

/** Calls of fn per second over `seconds` (after a short warm-up), times `per` items per call. */
async function rate(fn: () => unknown, per = 1): Promise<number> {
  const warm = performance.now();
  while (performance.now() - warm < 1000) await fn();
  let calls = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    await fn();
    calls++;
  }
  return (calls * per) / ((performance.now() - t0) / 1000);
}

const backend = await initBackend(values.backend as BackendChoice);
const classifier = await Classifier.load(positionals[0]);
const mnist = join(mnistDataDir()!, 't10k-images-idx3-ubyte');
const img = readIdxImages(mnist);
const x = scalePixels(img.pixels.subarray(0, 256 * 784));
console.log(`backend ${backend.name}; ${cpus().length} cores, load average ${loadavg()[0].toFixed(2)}`);
console.log(
  `predict, batch 1:   ${(await rate(() => classifier.predict(x.subarray(0, 784), 1))).toFixed(0)} predictions/s`,
);
console.log(`predict, batch 256: ${(await rate(() => classifier.predict(x, 256), 256)).toFixed(0)} predictions/s`);
const png = await sharp(Buffer.from(img.pixels.subarray(0, 784)), { raw: { width: 28, height: 28, channels: 1 } })
  .toColourspace('b-w')
  .png()
  .toBuffer();
console.log(
  `imageToInput, 28x28 gray PNG, fast path: ${(await rate(() => imageToInput(png, classifier.metadata))).toFixed(0)} decodes/s`,
);
console.log(
  `imageToInput, 28x28 gray PNG, sharp:     ${(await rate(() => imageToInput(png, classifier.metadata, { fastPath: false }))).toFixed(0)} decodes/s`,
);
const jpeg = await sharp(Buffer.from(img.pixels.subarray(0, 784)), { raw: { width: 28, height: 28, channels: 1 } })
  .jpeg({ quality: 95 })
  .toBuffer();
console.log(
  `imageToInput, 28x28 JPEG (sharp):        ${(await rate(() => imageToInput(jpeg, classifier.metadata))).toFixed(0)} decodes/s`,
);
classifier.dispose();
