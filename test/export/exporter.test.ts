/**
 * Export, Classifier, imageToInput and the predict/evaluate CLI on a tiny real run (500 MNIST
 * training images, 20 iterations): the exported TensorFlow.js model, loaded with plain tfjs only,
 * gives the EMA discriminator's logits; it is batch-independent; evaluate on it reproduces the
 * run's accuracy; predict on PNG/JPEG/RGBA/idx files gives the labels of the raw pixels; bad
 * inputs and --mbd runs give one-line errors; the Node snippet of docs/model_format.md runs.
 */
import { runCli, runNode, type CliResult } from '../lib/cli.js';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inflateSync } from 'node:zlib';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { initBackend } from '../../src/backend.js';
import { prepareTestData } from '../../src/data/prepare.js';
import type { Dataset } from '../../src/data/dataset.js';
import { loadExportedDiscriminator, readRun } from '../../src/train/run_dir.js';
import type { ClassificationReport } from '../../src/eval/metrics.js';
import type { ClassifierMetadata, ImagePreprocessing } from '../../src/export/metadata.js';
import { Classifier, predictionsFromLogits } from '../../src/export/classifier.js';
import { decodePngFast, imageToInput } from '../../src/export/preprocess.js';
import type { PredictOutput } from '../../src/commands/predict.js';
import type { TrainResult } from '../../src/train/run_dir.js';
import { SEMIGAN_VERSION } from '../../src/version.js';
import { allRows } from '../../src/data/rows.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const TEST_LIMIT = 300;

let tmp: string;
let run: string;
let modelDir: string;
let result: TrainResult;
let test300: Dataset;
let classifier: Classifier;

/** An idx3 images file (magic 0x803, n x 28 x 28) holding the first n test images. */
function idxImages(n: number): Buffer {
  const header = Buffer.alloc(16);
  header.writeUInt32BE(0x803, 0);
  header.writeUInt32BE(n, 4);
  header.writeUInt32BE(28, 8);
  header.writeUInt32BE(28, 12);
  return Buffer.concat([header, ...Array.from({ length: n }, (_, i) => bytesOf(test300, i))]);
}

function ok(r: CliResult): CliResult {
  assert.equal(r.code, 0, `exit code ${r.code}; stderr:\n${r.stderr}`);
  return r;
}

/** A failed command: exit 1 and exactly one stderr line, `error: ...` (after the backend line, if it got that far). */
function oneLineError(r: CliResult): string {
  assert.equal(r.code, 1, `expected exit 1; stdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  const lines = r.stderr
    .split('\n')
    .filter((l) => l.trim())
    .filter((l, i) => !(i === 0 && l.startsWith('backend: ')));
  assert.equal(lines.length, 1, `one stderr line, got:\n${r.stderr}`);
  assert.match(lines[0], /^error: /);
  return lines[0];
}

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

/** Row i of a dataset as 0..255 bytes (the idx pixels: x = v / 255 exactly). */
const bytesOf = (d: Dataset, i: number) =>
  Uint8Array.from(allRows(d.x).subarray(i * 784, (i + 1) * 784), (v) => Math.round(v * 255));

const grayPng = (px: Uint8Array, opts: sharp.PngOptions = {}) =>
  sharp(Buffer.from(px), { raw: { width: 28, height: 28, channels: 1 } })
    .toColourspace('b-w')
    .png(opts)
    .toBuffer();

/** Plain tfjs, nothing from semigan: model.json + its weight file through tf.io.fromMemory. */
async function loadPlain(dir: string): Promise<tf.LayersModel> {
  const modelJson = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
  const manifest = modelJson.weightsManifest as { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
  const bytes = Buffer.concat(manifest.flatMap((g) => g.paths.map((p) => readFileSync(join(dir, p)))));
  return tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: modelJson.modelTopology,
      weightSpecs: manifest.flatMap((g) => g.weights),
      weightData: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength),
    }),
  );
}

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'semigan-export-'));
  await initBackend('wasm');
  run = join(tmp, 'run');
  modelDir = join(tmp, 'models', 'mnist');
  const t = ok(
    await runCli([
      'train',
      '--backend',
      'wasm',
      '--train-limit',
      '500',
      '--test-limit',
      String(TEST_LIMIT),
      '--epochs',
      '1',
      '--iters-per-epoch',
      '20',
      '--batch-size',
      '50',
      '--ema-decay',
      '0.9',
      '--out',
      run,
    ]),
  );
  result = JSON.parse(t.stdout.trim().split('\n').pop()!);
  const e = ok(await runCli(['export', run, '--out', modelDir, '--backend', 'wasm']));
  assert.match(e.stderr, /exported .* 7 layers, 1538760 parameters, 10 classes, input 28x28x1/);
  test300 = prepareTestData({ dataset: 'mnist', dataDir: null, testLimit: TEST_LIMIT });
  classifier = await Classifier.load(modelDir);
});
after(() => {
  classifier?.dispose();
  rmSync(tmp, { recursive: true, force: true });
});

test('export writes model.json, weights.bin, model.onnx and metadata.json (built-in layers only, no temp files left)', () => {
  assert.ok(result.accuracy > 0.3, `the tiny run learned something: ${result.accuracy}`);
  assert.deepEqual(readdirSync(modelDir).sort(), ['metadata.json', 'model.json', 'model.onnx', 'weights.bin']);
  assert.deepEqual(readdirSync(join(tmp, 'models')), ['mnist'], 'no temporary directory next to MODEL_DIR');

  const modelJson = JSON.parse(readFileSync(join(modelDir, 'model.json'), 'utf8'));
  assert.equal(modelJson.format, 'layers-model');
  const layers = modelJson.modelTopology.config.layers as {
    class_name: string;
    config: { units?: number; activation?: string };
  }[];
  assert.deepEqual(
    layers.map((l) => l.class_name),
    ['Flatten', 'Dense', 'Dense', 'Dense', 'Dense', 'Dense', 'Dense'],
  );
  assert.deepEqual(
    layers.slice(1).map((l) => [l.config.units, l.config.activation]),
    [
      [1000, 'relu'],
      [500, 'relu'],
      [250, 'relu'],
      [250, 'relu'],
      [250, 'relu'],
      [10, 'linear'],
    ],
  );
  assert.deepEqual(modelJson.weightsManifest[0].paths, ['weights.bin']);
  const nWeights = 784 * 1000 + 1000 + (1000 * 500 + 500) + (500 * 250 + 250) + 2 * (250 * 250 + 250) + (250 * 10 + 10);
  assert.equal(readFileSync(join(modelDir, 'weights.bin')).length, 4 * nWeights);

  const meta: ClassifierMetadata = JSON.parse(readFileSync(join(modelDir, 'metadata.json'), 'utf8'));
  assert.equal(meta.format, 'semigan-classifier');
  assert.equal(meta.formatVersion, 2);
  assert.equal(meta.semiganVersion, SEMIGAN_VERSION);
  assert.deepEqual(meta.classes, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
  assert.deepEqual(meta.inputShape, [28, 28, 1]);
  const p = meta.preprocessing as ImagePreprocessing;
  assert.deepEqual(
    [p.type, p.height, p.width, p.channels, p.scale.divisor, p.flatten, p.alpha, p.resize.fit],
    ['image', 28, 28, 1, 255, 'row-major HWC', 'flatten-onto-black', 'contain'],
  );
  assert.match(meta.postprocessing.realness, /sigmoid\(logsumexp\(temperature \* logits\)\)/);
  assert.match(meta.postprocessing.probabilities, /softmax/);
  assert.equal(meta.postprocessing.temperature, 1, 'no --val: no temperature fitted');
  const averaged = { accuracy: result.accuracy, errors: result.errors, n: TEST_LIMIT };
  assert.deepEqual(meta.metrics, {
    source: 'result.json',
    weights: 'averaged',
    test: averaged,
    testAveragedWeights: averaged,
    testCurrentWeights: { accuracy: result.accuracyCurrent, errors: result.errorsCurrent, n: TEST_LIMIT },
  });
  assert.deepEqual(meta.training.config, readRun(run).meta.config);
  assert.equal(meta.training.step, 20);
});

test("plain tfjs: the exported model's logits equal the EMA discriminator's (noise off) to 1e-5 on real test images", async () => {
  const plain = await loadPlain(modelDir);
  const exported = tf.tidy(() =>
    (plain.predict(tf.tensor4d(allRows(test300.x), [TEST_LIMIT, 28, 28, 1])) as tf.Tensor).dataSync(),
  );
  const { model, weights } = loadExportedDiscriminator(readRun(run));
  const ours = tf.tidy(() =>
    model.applyD(weights, tf.tensor2d(allRows(test300.x), [TEST_LIMIT, 784]), { noise: null }).logits.dataSync(),
  );
  tf.dispose(Object.values(weights));
  plain.dispose();
  assert.equal(exported.length, TEST_LIMIT * 10);
  const d = maxAbsDiff(exported, ours);
  assert.ok(d <= 1e-5, `max |logit difference| ${d}`);
  // Classifier (semigan's loader) gives the same logits.
  assert.ok(maxAbsDiff(classifier.predictLogits(allRows(test300.x), TEST_LIMIT), ours) <= 1e-5);
});

/**
 * tfjs's wasm kernels compute each row alone (1e-6 holds); OpenBLAS picks its blocking from the
 * batch size, so a row agrees with itself in another batch to float32 rounding of its dot
 * products (~sqrt(784) ulps of the largest logit: relative 1e-5 is ~20x what was measured).
 */
for (const [matmul, tolerance] of [
  ['wasm', () => 1e-6],
  ['auto', (scale: number) => 1e-5 * Math.max(1, scale)],
] as const) {
  test(`batch independence (--matmul ${matmul}): an image's logits alone and inside a batch of 37 others agree`, async () => {
    const info = await initBackend('wasm', { matmul });
    const plain = await loadPlain(modelDir);
    const others = allRows(test300.x).subarray(100 * 784, 137 * 784); // 37 other images
    try {
      for (const [img, pos] of [
        [3, 0],
        [42, 18],
        [250, 37],
      ]) {
        const x = allRows(test300.x).subarray(img * 784, (img + 1) * 784);
        const batch = new Float32Array(38 * 784);
        batch.set(others.subarray(0, pos * 784), 0);
        batch.set(x, pos * 784);
        batch.set(others.subarray(pos * 784), (pos + 1) * 784);
        const alone = tf.tidy(() => (plain.predict(tf.tensor4d(x, [1, 28, 28, 1])) as tf.Tensor).dataSync());
        const inBatch = tf.tidy(() =>
          (plain.predict(tf.tensor4d(batch, [38, 28, 28, 1])) as tf.Tensor).dataSync().slice(pos * 10, pos * 10 + 10),
        );
        const tol = tolerance(Math.max(...Array.from(alone, Math.abs)));
        const d = maxAbsDiff(alone, inBatch);
        assert.ok(d <= tol, `image ${img} at ${pos}: plain tfjs (${info.matmul} matMuls): difference ${d} > ${tol}`);
        const viaClassifier = classifier.predictLogits(batch, 38).subarray(pos * 10, pos * 10 + 10);
        assert.ok(
          maxAbsDiff(classifier.predictLogits(x, 1), viaClassifier) <= tol,
          `image ${img} at ${pos}: Classifier`,
        );
      }
    } finally {
      plain.dispose();
    }
  });
}

test("evaluate MODEL_DIR --data mnist reproduces the run's test accuracy and confusion matrix", async () => {
  const [fromModel, fromRun] = await Promise.all([
    runCli([
      'evaluate',
      modelDir,
      '--data',
      'mnist',
      '--test-limit',
      String(TEST_LIMIT),
      '--json',
      '--backend',
      'wasm',
    ]),
    runCli(['evaluate', run, '--json', '--backend', 'wasm']),
  ]);
  const a: ClassificationReport = JSON.parse(ok(fromModel).stdout);
  const b: ClassificationReport = JSON.parse(ok(fromRun).stdout);
  assert.equal(a.n, TEST_LIMIT);
  assert.equal(a.accuracy, result.accuracy);
  assert.equal(a.errors, result.errors);
  assert.deepEqual(a.confusion, b.confusion);
  // --data/--data-dir belong to exported models.
  assert.match(
    oneLineError(await runCli(['evaluate', run, '--data', 'mnist'])),
    /--data and --data-dir are for exported models/,
  );
});

test('Classifier.predict: float64 softmax probabilities, top-k, realness = sigmoid(logsumexp)', () => {
  const logits = classifier.predictLogits(allRows(test300.x).subarray(0, 5 * 784), 5);
  const preds = classifier.predict(allRows(test300.x).subarray(0, 5 * 784), 5, 4);
  preds.forEach((p, i) => {
    const l = Array.from(logits.subarray(i * 10, i * 10 + 10));
    const z = l.reduce((s, v) => s + Math.exp(v), 0);
    const probs = Object.values(p.probabilities);
    assert.equal(probs.length, 10);
    assert.ok(Math.abs(probs.reduce((s, v) => s + v, 0) - 1) < 1e-12);
    l.forEach((v, k) => assert.ok(Math.abs(p.probabilities[String(k)] - Math.exp(v) / z) < 1e-12));
    assert.ok(Math.abs(p.realness - z / (z + 1)) < 1e-12);
    const best = l.indexOf(Math.max(...l));
    assert.deepEqual([p.index, p.label, p.probability], [best, String(best), p.probabilities[String(best)]]);
    assert.equal(p.top.length, 4);
    assert.deepEqual(p.top[0], { label: p.label, probability: p.probability });
    for (let j = 1; j < 4; j++) assert.ok(p.top[j - 1].probability >= p.top[j].probability);
  });
  // Extreme logits stay finite.
  const [x] = predictionsFromLogits(new Float32Array([1000, -1000, 0]), ['a', 'b', 'c'], 3);
  assert.deepEqual([x.label, x.probability, x.realness], ['a', 1, 1]);
  const [y] = predictionsFromLogits(new Float32Array([-700, -701, -800]), ['a', 'b', 'c'], 2);
  assert.ok(y.realness > 0 && y.realness < 1e-300 && Math.abs(y.probability - 1 / (1 + Math.exp(-1))) < 1e-12);
});

test('imageToInput: the PNG fast path gives exactly what sharp gives (gray, gray+alpha, RGB, RGBA, all filter types)', async () => {
  const meta1 = classifier.metadata;
  const meta3: ImagePreprocessing = { ...(meta1.preprocessing as ImagePreprocessing), channels: 3, colorSpace: 'rgb' };
  const px = [0, 1, 2, 3].map((i) => bytesOf(test300, i));
  const noise = Uint8Array.from({ length: 784 }, (_, i) => (i * 7919 + (i >> 3) * 31) % 256);
  const raw = (data: Uint8Array, channels: 1 | 2 | 3 | 4) =>
    sharp(Buffer.from(data), { raw: { width: 28, height: 28, channels } });
  const ga = Uint8Array.from({ length: 784 * 2 }, (_, i) => (i % 2 ? (i * 13) % 256 : px[1][i >> 1]));
  const rgbGray = Uint8Array.from({ length: 784 * 3 }, (_, i) => px[2][Math.floor(i / 3)]);
  const rgba = Uint8Array.from({ length: 784 * 4 }, (_, i) => (i % 4 === 3 ? px[3][i >> 2] : 255)); // white ink, alpha = digit
  const rgbaColor = Uint8Array.from({ length: 784 * 4 }, (_, i) => (i * 37 + (i >> 2)) % 256);
  const cases: [string, Buffer, boolean][] = [
    // [name, png, fast path applies to the 1-channel model]
    ['gray', await grayPng(px[0]), true],
    ['gray, adaptive filters', await grayPng(px[0], { adaptiveFiltering: true }), true],
    ['gray noise, adaptive filters', await grayPng(noise, { adaptiveFiltering: true }), true],
    ['gray+alpha', await raw(ga, 2).toColourspace('b-w').png({ adaptiveFiltering: true }).toBuffer(), true],
    ['RGB with R = G = B', await raw(rgbGray, 3).png({ adaptiveFiltering: true }).toBuffer(), true],
    ['RGBA, white ink', await raw(rgba, 4).png({ adaptiveFiltering: true }).toBuffer(), true],
    ['RGBA colour', await raw(rgbaColor, 4).png({ adaptiveFiltering: true }).toBuffer(), false],
    ['palette', await grayPng(px[0], { palette: true }), false],
    ['16-bit', await raw(px[0], 1).toColourspace('grey16').png().toBuffer(), false],
  ];
  const filters = new Set<number>();
  for (const [name, png, fast] of cases) {
    assert.equal(decodePngFast(png, 28, 28, 1) !== null, fast, `${name}: fast path applies`);
    for (const meta of [meta1, meta3]) {
      const a = await imageToInput(png, meta, { fastPath: true });
      const b = await imageToInput(png, meta, { fastPath: false });
      assert.equal(a.length, 784 * ('channels' in meta ? meta.channels : 1));
      assert.ok(
        Buffer.from(a.buffer).equals(Buffer.from(b.buffer)),
        `${name}, ${'channels' in meta ? 3 : 1} channels: fast path = sharp`,
      );
    }
    if (fast) {
      // Which row filters the PNG uses (the fast path must undo each).
      const idat = png.subarray(png.indexOf('IDAT') + 4, png.indexOf('IEND') - 8);
      const rows = inflateSync(idat);
      const stride = rows.length / 28;
      for (let y = 0; y < 28; y++) filters.add(rows[y * stride]);
    }
  }
  assert.deepEqual([...filters].sort(), [0, 1, 2, 3, 4], 'every PNG filter type exercised');
  // The white-ink RGBA image composites onto black to the digit itself.
  assert.deepEqual(await imageToInput(cases[5][1], meta1), allRows(test300.x).subarray(3 * 784, 4 * 784));
  // A gray PNG gives the dataset's own values.
  assert.deepEqual(await imageToInput(cases[0][1], meta1), allRows(test300.x).subarray(0, 784));
});

test("predict: PNG and JPEG files, an RGBA PNG of another size and an idx file give the raw pixels' labels", async () => {
  const dir = join(tmp, 'inputs');
  mkdirSync(dir);
  const N = 20;
  const files: string[] = [];
  for (let i = 0; i < N; i++) {
    const px = bytesOf(test300, i);
    writeFileSync(join(dir, `${i}.png`), await grayPng(px));
    writeFileSync(
      join(dir, `${i}.jpg`),
      await sharp(Buffer.from(px), { raw: { width: 28, height: 28, channels: 1 } })
        .jpeg({ quality: 90 })
        .toBuffer(),
    );
    files.push(join(dir, `${i}.png`), join(dir, `${i}.jpg`));
  }
  // 56x56 RGBA: white ink whose alpha is the digit, upscaled 2x.
  const big = await sharp(Buffer.from(bytesOf(test300, 7)), { raw: { width: 28, height: 28, channels: 1 } })
    .resize(56, 56, { kernel: 'nearest' })
    .toColourspace('b-w')
    .raw()
    .toBuffer();
  assert.equal(big.length, 56 * 56);
  const rgba = Buffer.alloc(56 * 56 * 4, 255);
  for (let p = 0; p < 56 * 56; p++) rgba[4 * p + 3] = big[p];
  writeFileSync(
    join(dir, 'rgba56.png'),
    await sharp(rgba, { raw: { width: 56, height: 56, channels: 4 } })
      .png()
      .toBuffer(),
  );
  assert.deepEqual(
    (({ width, height, channels }) => [width, height, channels])(await sharp(join(dir, 'rgba56.png')).metadata()),
    [56, 56, 4],
  );
  files.push(join(dir, 'rgba56.png'));
  // idx: the first 25 test images.
  const n = 25;
  writeFileSync(join(dir, 'images-idx3-ubyte'), idxImages(n));
  files.push(join(dir, 'images-idx3-ubyte'));

  const r = ok(await runCli(['predict', modelDir, ...files, '--json', '--top-k', '2', '--backend', 'wasm']));
  const out: PredictOutput = JSON.parse(r.stdout);
  assert.equal(out.predictions.length, 2 * N + 1 + n);
  const truth = classifier.predict(allRows(test300.x).subarray(0, n * 784), n, 2);
  const byName = new Map(out.predictions.map((p) => [p.name, p]));
  let jpegAgree = 0;
  for (let i = 0; i < N; i++) {
    const png = byName.get(join(dir, `${i}.png`))!;
    assert.equal(png.label, truth[i].label, `${i}.png`);
    assert.ok(Math.abs(png.probability - truth[i].probability) < 1e-6, `${i}.png probability`);
    assert.ok(Math.abs(png.realness - truth[i].realness) < 1e-6, `${i}.png realness`);
    assert.equal(png.top.length, 2);
    if (byName.get(join(dir, `${i}.jpg`))!.label === truth[i].label) jpegAgree++;
  }
  assert.ok(jpegAgree >= 0.8 * N, `JPEG labels agree with the raw pixels' for ${jpegAgree}/${N}`);
  const rgbaTruth = classifier.predict(allRows(test300.x).subarray(7 * 784, 8 * 784), 1)[0];
  assert.equal(byName.get(join(dir, 'rgba56.png'))!.label, rgbaTruth.label, 'RGBA 56x56');
  for (let i = 0; i < n; i++) {
    const p = byName.get(`${join(dir, 'images-idx3-ubyte')}[${i}]`)!;
    assert.equal(p.label, truth[i].label, `idx image ${i}`);
    assert.ok(
      maxAbsDiff(Object.values(p.probabilities), Object.values(truth[i].probabilities)) < 1e-6,
      `idx image ${i} probabilities`,
    );
  }

  // The table: a header and one line per input.
  const table = ok(
    await runCli(['predict', modelDir, join(dir, '0.png'), join(dir, 'rgba56.png'), '--backend', 'wasm']),
  )
    .stdout.trimEnd()
    .split('\n');
  assert.equal(table.length, 3);
  assert.match(table[0], /^input\s+label\s+probability\s+realness\s+top 3$/);
  assert.match(
    table[1],
    new RegExp(
      `^${join(dir, '0.png').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s+${truth[0].label}\\s+0\\.\\d{4}\\s+[01]\\.\\d{4}\\s+\\S+ 0\\.\\d{4}, `,
    ),
  );
});

test('predict: an undecodable file, a missing file and CSV input give one-line errors naming them', async () => {
  const bad = join(tmp, 'not-an-image.png');
  writeFileSync(bad, Buffer.from('this is not a PNG at all, just some text\n'.repeat(10)));
  const truncated = join(tmp, 'truncated.png');
  writeFileSync(truncated, (await grayPng(bytesOf(test300, 0))).subarray(0, 60));
  const csv = join(tmp, 'rows.csv');
  writeFileSync(csv, 'a,b,c\n1,2,3\n');
  const [e1, e2, e3, e4] = await Promise.all([
    runCli(['predict', modelDir, bad, '--backend', 'wasm']),
    runCli(['predict', modelDir, truncated, '--backend', 'wasm']),
    runCli(['predict', modelDir, csv, '--backend', 'wasm']),
    runCli(['predict', modelDir, join(tmp, 'missing.png'), '--backend', 'wasm']),
  ]);
  assert.equal(
    oneLineError(e1),
    `error: ${bad}: cannot decode as an image (Input buffer contains unsupported image format); expected PNG, JPEG, WebP, GIF, TIFF, AVIF or SVG`,
  );
  assert.match(
    oneLineError(e2),
    new RegExp(`^error: ${truncated.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: cannot decode as an image`),
  );
  assert.match(
    oneLineError(e3),
    /rows\.csv: CSV rows need a tabular model, but .* is an image model taking 28x28x1 images/,
  );
  assert.match(oneLineError(e4), /missing\.png: file not found/);
  // In-process too: a SemiganError naming the input.
  await assert.rejects(
    imageToInput(readFileSync(bad), classifier.metadata, { name: 'upload #3' }),
    (e: Error) => e.name === 'SemiganError' && /^upload #3: cannot decode/.test(e.message),
  );
});

test('export refuses a run with minibatch discrimination (one line, why, what to do) and writes nothing', async () => {
  const mbdRun = join(tmp, 'run-mbd');
  ok(
    await runCli([
      'train',
      '--backend',
      'wasm',
      '--mbd',
      '--train-limit',
      '500',
      '--test-limit',
      '50',
      '--epochs',
      '1',
      '--iters-per-epoch',
      '1',
      '--batch-size',
      '20',
      '--out',
      mbdRun,
    ]),
  );
  const out = join(tmp, 'models', 'mbd');
  const line = oneLineError(await runCli(['export', mbdRun, '--out', out, '--backend', 'wasm']));
  assert.equal(
    line,
    `error: ${mbdRun} was trained with minibatch discrimination (--mbd): its discriminator's output for an image depends on the other images in its batch, ` +
      `so it cannot be exported as a classifier that gives each input the same prediction whatever else is in its batch; retrain without --mbd to export it`,
  );
  assert.ok(!existsSync(out));
  assert.deepEqual(readdirSync(join(tmp, 'models')), ['mnist']);
});

test('export: an existing export needs --overwrite, a non-export directory is never overwritten', async () => {
  const again = await runCli(['export', run, '--out', modelDir, '--backend', 'wasm']);
  assert.match(oneLineError(again), /already holds an exported model; pass --overwrite/);
  const before = readFileSync(join(modelDir, 'weights.bin'));
  ok(await runCli(['export', run, '--out', modelDir, '--overwrite', '--backend', 'wasm']));
  assert.ok(readFileSync(join(modelDir, 'weights.bin')).equals(before), 'same run, same weights');
  assert.deepEqual(readdirSync(join(tmp, 'models')), ['mnist'], 'no temporary or old directory left');
  const onRun = await runCli(['export', run, '--out', run, '--overwrite', '--backend', 'wasm']);
  assert.match(oneLineError(onRun), /is a non-empty directory that is not an exported model/);
  assert.ok(existsSync(join(run, 'checkpoint.bin')));
});

test('three export --overwrite into one directory at once: all succeed in turn, one whole export remains, nothing left over', async () => {
  const out = join(tmp, 'race', 'model');
  const runs = await Promise.all(
    [0, 1, 2].map(() => runCli(['export', run, '--out', out, '--overwrite', '--backend', 'wasm', '--threads', '1'])),
  );
  for (const r of runs) ok(r);
  assert.deepEqual(readdirSync(join(tmp, 'race')), ['model'], 'no .tmp, .old or .lock left');
  const c = await Classifier.load(out); // checksums and shapes verified at load
  assert.deepEqual(c.classes, classifier.classes);
  c.dispose();
});

test("docs/model_format.md: the Node snippet (plain tfjs) runs verbatim and agrees with semigan's predictions", async () => {
  const doc = readFileSync(join(REPO, 'docs', 'model_format.md'), 'utf8');
  const m = /<!-- tested: node-snippet -->\s*```js\n([\s\S]*?)```/.exec(doc);
  assert.ok(m, 'the snippet is in docs/model_format.md');
  // Inside the repo, so that '@tensorflow/tfjs' resolves from its node_modules.
  const dir = mkdtempSync(join(REPO, 'dist', 'test', 'snippet-'));
  try {
    writeFileSync(join(dir, 'classify.mjs'), m[1]);
    const idx = join(tmp, 'snippet-idx3-ubyte');
    const n = 12;
    writeFileSync(idx, idxImages(n));
    const r = ok(await runNode([join(dir, 'classify.mjs'), modelDir, idx, String(n)]));
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const truth = classifier.predict(allRows(test300.x).subarray(0, n * 784), n);
    assert.equal(lines.length, n);
    lines.forEach((l, i) => {
      assert.equal(l.index, i);
      assert.equal(l.label, truth[i].label, `image ${i}`);
      assert.ok(Math.abs(l.probability - truth[i].probability) < 1e-5, `image ${i} probability`);
      assert.ok(Math.abs(l.realness - truth[i].realness) < 1e-5, `image ${i} realness`);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
