/**
 * ONNX export on tiny real runs: model.onnx run by onnxruntime-node gives the tfjs export's and
 * the discriminator's logits to 1e-4 (all 10,000 MNIST test images for mnist-mlp; real images for
 * conv-small and conv-large; CSV rows for tabular-mlp); the file decodes with onnx-proto to the
 * expected nodes and initializer shapes; a Triton repository's config.pbtxt matches the graph;
 * the server answers the same on both engines; a missing onnxruntime, a truncated or a changed
 * model.onnx give one-line errors.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import onnxProto from 'onnx-proto';
import type { onnx as OnnxTypes } from 'onnx-proto';
import sharp from 'sharp';
import { initBackend } from '../../src/backend.js';
import { prepareTestData } from '../../src/data/prepare.js';
import { Classifier } from '../../src/export/classifier.js';
import { sha256Hex } from '../../src/export/model_files.js';
import { OnnxClassifier } from '../../src/export/onnx_classifier.js';
import { PredictionServer } from '../../src/serve/server.js';
import { loadExportedDiscriminator, readRun } from '../../src/train/run_dir.js';
import { cleanError, ok, runCli } from '../lib/cli.js';
import { trainAndExportTiny, WASM_1 as common } from '../lib/tiny_run.js';
import { allRows } from '../../src/data/rows.js';

const { onnx } = onnxProto;
let tmp: string;

/** A tiny run of `name` exported with --format all: the run and model directories. */
async function tinyExport(name: string, extra: string[]): Promise<{ run: string; model: string }> {
  const run = join(tmp, `run-${name}`);
  const model = join(tmp, `model-${name}`);
  await trainAndExportTiny(run, model, extra);
  return { run, model };
}

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

/** ONNX, tfjs export and the EMA discriminator on the same rows: the largest logit differences. */
async function parity(run: string, model: string, x: Float32Array, n: number) {
  const onnxModel = await OnnxClassifier.load(model);
  const tfjsModel = await Classifier.load(model);
  const { model: gan, weights } = loadExportedDiscriminator(readRun(run));
  try {
    const fromOnnx = await onnxModel.predictLogits(x, n);
    const fromTfjs = tfjsModel.predictLogits(x, n);
    const fromD = tf.tidy(
      () => gan.applyD(weights, tf.tensor2d(x, [n, x.length / n]), { noise: null }).logits.dataSync() as Float32Array,
    );
    return { vsTfjs: maxAbsDiff(fromOnnx, fromTfjs), vsD: maxAbsDiff(fromOnnx, fromD) };
  } finally {
    onnxModel.dispose();
    tfjsModel.dispose();
    tf.dispose(Object.values(weights));
  }
}

let mlp: { run: string; model: string };

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'semigan-onnx-'));
  await initBackend('wasm', { threads: 1 });
  mlp = await tinyExport('mlp', []);
});
after(() => rmSync(tmp, { recursive: true, force: true }));

test('mnist-mlp: onnxruntime gives the tfjs export and the discriminator logits to 1e-4 on all 10,000 test images', async () => {
  const t = prepareTestData({ dataset: 'mnist', dataDir: null, testLimit: null });
  assert.equal(t.n, 10000);
  const d = await parity(mlp.run, mlp.model, allRows(t.x), t.n);
  assert.ok(d.vsTfjs <= 1e-4, `vs tfjs ${d.vsTfjs}`);
  assert.ok(d.vsD <= 1e-4, `vs D ${d.vsD}`);
});

for (const preset of ['conv-small', 'conv-large']) {
  test(`${preset}: onnxruntime gives the tfjs and discriminator logits to 1e-4 on real images (NHWC in, NCHW inside)`, async () => {
    const { run, model } = await tinyExport(preset, ['--preset', preset, '--batch-size', '10']);
    const t = prepareTestData({ dataset: 'mnist', dataDir: null, testLimit: 64 });
    const d = await parity(run, model, allRows(t.x), t.n);
    assert.ok(d.vsTfjs <= 1e-4, `vs tfjs ${d.vsTfjs}`);
    assert.ok(d.vsD <= 1e-4, `vs D ${d.vsD}`);
    // The graph as written: one transpose to NCHW, Conv weights [out, in, kh, kw], two outputs.
    const m = onnx.ModelProto.decode(readFileSync(join(model, 'model.onnx')));
    const ops = m.graph!.node!.map((n) => n.opType);
    assert.equal(ops[0], 'Transpose');
    assert.equal(ops.filter((o) => o === 'Transpose').length, 1);
    assert.deepEqual(ops.slice(-3), ['Flatten', 'Gemm', 'Softmax']);
    const first = m.graph!.initializer!.find((i) => i.name!.endsWith('/kernel'))!;
    assert.deepEqual(first.dims!.map(Number), [preset === 'conv-small' ? 16 : 96, 1, 3, 3]);
    assert.deepEqual(
      m.graph!.output!.map((o) => o.name),
      ['logits', 'probabilities'],
    );
    assert.equal(Number(m.opsetImport![0].version), 13);
  });
}

test('conv-small --d-head flatten: back to NHWC before the Flatten, so onnxruntime gives the tfjs and D logits to 1e-4', async () => {
  const { run, model } = await tinyExport('conv-flatten', [
    '--preset',
    'conv-small',
    '--batch-size',
    '10',
    '--d-head',
    'flatten',
  ]);
  const t = prepareTestData({ dataset: 'mnist', dataDir: null, testLimit: 64 });
  const d = await parity(run, model, allRows(t.x), t.n);
  assert.ok(d.vsTfjs <= 1e-4, `vs tfjs ${d.vsTfjs}`);
  assert.ok(d.vsD <= 1e-4, `vs D ${d.vsD}`);
  const ops = onnx.ModelProto.decode(readFileSync(join(model, 'model.onnx'))).graph!.node!.map((n) => n.opType);
  assert.deepEqual(ops.slice(-4), ['Transpose', 'Flatten', 'Gemm', 'Softmax']);
});

test('tabular-mlp: the ONNX model takes the standardized rows metadata.json describes, same logits as tfjs', async () => {
  const csv = join(tmp, 'rows.csv');
  const lines = ['a,b,c,label'];
  for (let i = 0; i < 120; i++) lines.push(`${i % 7},${(i * 3) % 11},${i / 10},${['x', 'y', 'z'][i % 3]}`);
  writeFileSync(csv, lines.join('\n') + '\n');
  const { run, model } = await tinyExport('tabular', [
    '--data',
    `csv:${csv}`,
    '--label-column',
    'label',
    '--labels',
    '30',
  ]);
  const meta = JSON.parse(readFileSync(join(model, 'metadata.json'), 'utf8'));
  assert.equal(meta.preprocessing.type, 'tabular');
  assert.deepEqual(meta.onnx.outputs, ['logits', 'probabilities']);
  const x = Float32Array.from({ length: 30 }, (_, i) => Math.sin(i));
  const d = await parity(run, model, x, 10);
  assert.ok(d.vsTfjs <= 1e-4 && d.vsD <= 1e-4, JSON.stringify(d));
});

test('--format triton: REPO/<name>/config.pbtxt agrees with the ONNX graph (names, dims, dtype); 1/model.onnx loads', async () => {
  const repo = join(tmp, 'triton');
  const r = ok(await runCli(['export', mlp.run, '--out', repo, '--format', 'triton', '--name', 'mnist', ...common]));
  assert.deepEqual(JSON.parse(r.stdout).files, ['1/model.onnx', 'config.pbtxt', 'metadata.json']);
  const config = readFileSync(join(repo, 'mnist', 'config.pbtxt'), 'utf8');
  const m = onnx.ModelProto.decode(readFileSync(join(repo, 'mnist', '1', 'model.onnx')));
  assert.match(config, /^name: "mnist"$/m);
  assert.match(config, /^platform: "onnxruntime_onnx"$/m);
  const tensors = [...config.matchAll(/name: "(\w+)"\s+data_type: (\w+)\s+dims: \[ ([\d, ]+) \]/g)].map((x) => ({
    name: x[1],
    type: x[2],
    dims: x[3].split(',').map(Number),
  }));
  const graphDims = (v: OnnxTypes.IValueInfoProto[] | null | undefined) =>
    v!.map((i) => ({
      name: i.name,
      type: i.type!.tensorType!.elemType === onnx.TensorProto.DataType.FLOAT ? 'TYPE_FP32' : '?',
      // Triton's dims leave out the batch dimension (max_batch_size > 0), which is dynamic in the graph.
      dims: i.type!.tensorType!.shape!.dim!.slice(1).map((d) => Number(d.dimValue)),
      batch: i.type!.tensorType!.shape!.dim![0].dimParam,
    }));
  const graph = [...graphDims(m.graph!.input), ...graphDims(m.graph!.output)];
  assert.deepEqual(
    tensors,
    graph.map(({ name, type, dims }) => ({ name, type, dims })),
  );
  assert.ok(graph.every((g) => g.batch === 'N'));
  const c = await OnnxClassifier.load(join(repo, 'mnist'));
  c.dispose();
  assert.match(
    cleanError(await runCli(['predict', join(repo, 'mnist'), join(tmp, 'x.png'), ...common])),
    /holds no TensorFlow\.js model, only 1\/model\.onnx/,
  );
});

test('the server answers the same predictions on both engines for the same PNGs', async () => {
  const t = prepareTestData({ dataset: 'mnist', dataDir: null, testLimit: 16 });
  const pngs = await Promise.all(
    Array.from({ length: 16 }, (_, i) =>
      sharp(Buffer.from(Uint8Array.from(allRows(t.x).subarray(i * 784, (i + 1) * 784), (v) => Math.round(v * 255))), {
        raw: { width: 28, height: 28, channels: 1 },
      })
        .png()
        .toBuffer(),
    ),
  );
  const answers: unknown[][] = [];
  for (const engine of [await Classifier.load(mlp.model), await OnnxClassifier.load(mlp.model)]) {
    const s = await PredictionServer.start(engine, { port: 0 });
    try {
      const rs = await Promise.all(
        pngs.map((png) =>
          fetch(s.url + '/v1/predict', {
            method: 'POST',
            headers: { 'content-type': 'image/png' },
            body: new Uint8Array(png),
          }).then((r) => r.json() as Promise<{ predictions: { label: string; probability: number }[] }>),
        ),
      );
      answers.push(rs.map((r) => r.predictions[0]));
    } finally {
      await s.shutdown();
      engine.dispose();
    }
  }
  const [a, b] = answers as { label: string; probability: number }[][];
  assert.deepEqual(
    a.map((p) => p.label),
    b.map((p) => p.label),
  );
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i].probability - b[i].probability) < 1e-5);
});

test('bad input: --engine onnx without onnxruntime, a truncated or a changed model.onnx, a tfjs-only export', async () => {
  const missing = await runCli(['serve', mlp.model, '--engine', 'onnx', '--port', '0', ...common], {
    SEMIGAN_ONNXRUNTIME: '/nonexistent/onnxruntime-node',
  });
  assert.match(
    cleanError(missing),
    /--engine onnx: onnxruntime-node is not installed or cannot load .*npm install onnxruntime-node/,
  );

  const truncated = join(tmp, 'truncated');
  cpSync(mlp.model, truncated, { recursive: true });
  const bytes = readFileSync(join(truncated, 'model.onnx')).subarray(0, 5000);
  writeFileSync(join(truncated, 'model.onnx'), bytes);
  const meta = JSON.parse(readFileSync(join(truncated, 'metadata.json'), 'utf8'));
  meta.files.sha256['model.onnx'] = sha256Hex(bytes);
  writeFileSync(join(truncated, 'metadata.json'), JSON.stringify(meta));
  await assert.rejects(OnnxClassifier.load(truncated), (e: Error) => {
    assert.equal(e.name, 'SemiganError');
    assert.match(e.message, /model\.onnx: not an ONNX model \(it does not decode as onnx.ModelProto\)/);
    return true;
  });

  const changed = join(tmp, 'changed');
  cpSync(mlp.model, changed, { recursive: true });
  const b = readFileSync(join(changed, 'model.onnx'));
  b[b.length - 10] ^= 0xff;
  writeFileSync(join(changed, 'model.onnx'), b);
  await assert.rejects(OnnxClassifier.load(changed), /its sha256 does not match/);

  // metadata.json edited against the model: every engine refuses it at load, one line each.
  const edited = (name: string, edit: (m: any) => void) => {
    // eslint-disable-line @typescript-eslint/no-explicit-any
    const dir = join(tmp, name);
    cpSync(mlp.model, dir, { recursive: true });
    const m = JSON.parse(readFileSync(join(dir, 'metadata.json'), 'utf8'));
    edit(m);
    writeFileSync(join(dir, 'metadata.json'), JSON.stringify(m));
    return dir;
  };
  const million = edited('million-classes', (m) => (m.classes = Array.from({ length: 1_000_000 }, (_, i) => `c${i}`)));
  await assert.rejects(
    OnnxClassifier.load(million),
    /logits have shape \[N,10\] but metadata\.json names 1000000 classes/,
  );
  await assert.rejects(Classifier.load(million), /outputs \[10\] per input but metadata\.json names 1000000 classes/);
  const few = edited('few-classes', (m) => (m.classes = ['a', 'b', 'c']));
  await assert.rejects(OnnxClassifier.load(few), /logits have shape \[N,10\] but metadata\.json names 3 classes/);
  const shape = edited('wrong-shape', (m) => {
    m.inputShape = [32, 32, 1];
    Object.assign(m.preprocessing, { height: 32, width: 32 });
  });
  await assert.rejects(
    OnnxClassifier.load(shape),
    /takes input \[N,28,28,1\] but metadata\.json says inputShape \[32,32,1\]/,
  );
  const absurd = edited('absurd-shape', (m) => {
    m.inputShape = [100000, 100000, 1];
    Object.assign(m.preprocessing, { height: 100000, width: 100000 });
  });
  await assert.rejects(
    OnnxClassifier.load(absurd),
    /inputShape is \[100000,100000,1\], expected at most 50331648 values per input/,
  );
  const served = await runCli(['serve', million, '--engine', 'onnx', '--port', '0', ...common]);
  assert.match(cleanError(served), /logits have shape \[N,10\] but metadata\.json names 1000000 classes/);

  const tfjsOnly = join(tmp, 'tfjs-only');
  ok(await runCli(['export', mlp.run, '--out', tfjsOnly, '--format', 'tfjs', ...common]));
  await assert.rejects(OnnxClassifier.load(tfjsOnly), /holds no ONNX model/);
});
