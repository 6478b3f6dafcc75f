/**
 * Train the fixed feature net that sample-quality scores (src/eval/sample_quality.ts) measure
 * generated images with: a plain supervised MLP 784 -> 256 ReLU -> 64 ReLU (features) -> 10,
 * Adam, on ALL 60k labeled training images of a built-in dataset. The test set is used only
 * after training, to report the accuracy. An evaluation instrument, not a semi-supervised model.
 *
 *   npx tsc -p . && node dist/scripts/tools/train_feature_net.js --dataset mnist [--epochs 10] [--seed 1]
 *     [--batch-size 128] [--lr 0.001] [--out-dir datasets/feature-nets] [--data-dir DIR]
 *
 * Writes <out-dir>/<dataset>.json (metadata, weight manifest, SHA-256 of the weights) and
 * <out-dir>/<dataset>.bin (float32 little-endian, ~0.85 MB). The default out-dir is the package's
 * datasets/feature-nets, which loadFeatureNet reads. Fixed seed: Glorot-uniform initializers are
 * seeded, minibatch order comes from our Rng (model.fit's own shuffle uses Math.random).
 */
import * as tf from '@tensorflow/tfjs';
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { initBackend } from '../../src/backend.js';
import { loadBuiltin } from '../../src/data/sources/builtin.js';
import { exampleDim } from '../../src/data/dataset.js';
import { SemiganError } from '../../src/errors.js';
import { atomicWriteFile } from '../../src/fsutil.js';
import { Rng } from '../../src/rng.js';
import {
  FEATURE_NET_FORMAT,
  FEATURE_NET_FORMAT_VERSION,
  featureNetPredict,
  type FeatureNet,
  type FeatureNetLayerSpec,
  type FeatureNetMeta,
  type FeatureNetWeightEntry,
} from '../../src/eval/feature_net.js';
import { PACKAGE_ROOT } from '../../src/package_paths.js';
import { allRows } from '../../src/data/rows.js';
import { scriptArgs } from '../lib/args.js';

const { values } = scriptArgs({
  options: {
    dataset: { type: 'string' },
    epochs: { type: 'string', default: '10' },
    seed: { type: 'string', default: '1' },
    'batch-size': { type: 'string', default: '128' },
    lr: { type: 'string', default: '0.001' },
    'out-dir': { type: 'string' },
    'data-dir': { type: 'string' },
  },
});

const HIDDEN = [256, 64];
const FEATURE_LAYER = 1; // index of the 64-unit layer in LAYERS

async function main(): Promise<void> {
  const dataset = values.dataset;
  if (!dataset) throw new SemiganError('SEMIGAN_ERR_CONFIG', '--dataset is required (mnist or fashion-mnist)');
  const epochs = Number(values.epochs);
  const seed = Number(values.seed);
  const batchSize = Number(values['batch-size']);
  const lr = Number(values.lr);
  for (const [k, v] of Object.entries({ epochs, seed, 'batch-size': batchSize })) {
    if (!Number.isInteger(v) || v < 0 || (k !== 'seed' && v < 1))
      throw new SemiganError(
        'SEMIGAN_ERR_CONFIG',
        `--${k}: expected a positive integer, got ${values[k as keyof typeof values]}`,
      );
  }
  if (!(lr > 0)) throw new SemiganError('SEMIGAN_ERR_CONFIG', `--lr: expected a positive number, got ${values.lr}`);
  const packageRoot = PACKAGE_ROOT;
  const outDir = resolve(values['out-dir'] ?? join(packageRoot, 'datasets', 'feature-nets'));

  const backend = await initBackend('wasm');
  console.log(`backend: ${backend.name} (${backend.reason})`);
  const data = loadBuiltin(dataset, { dataDir: values['data-dir'] });
  const { train, test } = data;
  const inDim = exampleDim(train);
  const k = train.classes.length;
  console.log(`${dataset}: ${train.n} training images, ${test.n} test images (from ${data.source})`);

  const dims = [inDim, ...HIDDEN, k];
  const specs: FeatureNetLayerSpec[] = dims.slice(1).map((out, i) => ({
    name: i === dims.length - 2 ? 'logits' : `dense${i}`,
    in: dims[i],
    out,
    activation: i === dims.length - 2 ? 'linear' : 'relu',
  }));
  const model = tf.sequential();
  specs.forEach((s, i) =>
    model.add(
      tf.layers.dense({
        name: s.name,
        units: s.out,
        inputShape: i === 0 ? [s.in] : undefined,
        // tfjs's sparseCategoricalCrossentropy takes probabilities: softmax here; the stored net
        // keeps the pre-softmax logits (same argmax).
        activation: s.activation === 'linear' ? 'softmax' : s.activation,
        kernelInitializer: tf.initializers.glorotUniform({ seed: seed * 100 + i }),
        biasInitializer: 'zeros',
      }),
    ),
  );
  model.compile({ optimizer: tf.train.adam(lr), loss: 'sparseCategoricalCrossentropy', metrics: ['accuracy'] });

  const rng = new Rng(seed);
  const xs = new Float32Array(train.n * inDim);
  const ys = new Float32Array(train.n);
  const t0 = Date.now();
  for (let epoch = 1; epoch <= epochs; epoch++) {
    const perm = rng.permutation(train.n);
    train.x.gather(perm, xs);
    for (let i = 0; i < train.n; i++) ys[i] = train.y[perm[i]];
    const x = tf.tensor2d(xs, [train.n, inDim]);
    const y = tf.tensor1d(ys);
    const h = await model.fit(x, y, { epochs: 1, batchSize, shuffle: false, verbose: 0 });
    x.dispose();
    y.dispose();
    const loss = h.history.loss[0] as number;
    const acc = (h.history.acc ?? h.history.accuracy)[0] as number;
    console.log(
      `epoch ${epoch}/${epochs}: train loss ${loss.toFixed(4)}, train acc ${acc.toFixed(4)}, ${((Date.now() - t0) / 1000).toFixed(1)} s`,
    );
  }
  const seconds = (Date.now() - t0) / 1000;

  // Weights -> one float32 LE buffer + manifest.
  const entries: FeatureNetWeightEntry[] = [];
  const arrays: Float32Array[] = [];
  let offset = 0;
  for (const s of specs) {
    const [kernel, bias] = model.getLayer(s.name).getWeights();
    for (const [suffix, t] of [
      ['kernel', kernel],
      ['bias', bias],
    ] as const) {
      const data = t.dataSync() as Float32Array;
      entries.push({ name: `${s.name}.${suffix}`, shape: t.shape as number[], offset, length: data.length });
      arrays.push(data);
      offset += data.length * 4;
    }
  }
  const bin = Buffer.alloc(offset);
  arrays.forEach((a, i) => a.forEach((v, j) => bin.writeFloatLE(v, entries[i].offset + 4 * j)));

  const meta: FeatureNetMeta = {
    format: FEATURE_NET_FORMAT,
    version: FEATURE_NET_FORMAT_VERSION,
    dataset,
    inputDim: inDim,
    layers: specs,
    featureLayer: FEATURE_LAYER,
    featureDim: specs[FEATURE_LAYER].out,
    classes: train.classes,
    testAccuracy: NaN, // filled in below
    nTest: test.n,
    training: {
      images: train.n,
      seed,
      epochs,
      batchSize,
      optimizer: 'adam',
      learningRate: lr,
      seconds: Math.round(seconds),
      backend: backend.name,
      command: `node dist/scripts/tools/train_feature_net.js --dataset ${dataset} --epochs ${epochs} --seed ${seed} --batch-size ${batchSize} --lr ${lr}`,
    },
    date: new Date().toISOString(),
    weightsFile: `${dataset}.bin`,
    weightsSha256: createHash('sha256').update(bin).digest('hex'),
    weights: entries,
  };

  // Test accuracy of exactly what is committed: the stored float32 weights through the same
  // JavaScript inference that sample_quality uses.
  const net: FeatureNet = {
    meta,
    layers: specs.map((spec, i) => ({ spec, kernel: arrays[2 * i], bias: arrays[2 * i + 1] })),
  };
  const pred = featureNetPredict(net, allRows(test.x), test.n);
  let correct = 0;
  for (let i = 0; i < test.n; i++) if (pred[i] === test.y[i]) correct++;
  meta.testAccuracy = correct / test.n;
  // Cross-check against tfjs's own prediction (same weights, float32 arithmetic).
  const tfAcc = tf.tidy(() => {
    const logits = model.predict(tf.tensor2d(allRows(test.x), [test.n, inDim])) as tf.Tensor;
    return logits.argMax(1).equal(tf.tensor1d(test.y, 'int32')).cast('float32').mean().dataSync()[0];
  });
  console.log(
    `test accuracy: ${meta.testAccuracy.toFixed(4)} (${correct}/${test.n}); tfjs predict: ${tfAcc.toFixed(4)}`,
  );

  mkdirSync(outDir, { recursive: true });
  await atomicWriteFile(join(outDir, meta.weightsFile), bin);
  await atomicWriteFile(join(outDir, `${dataset}.json`), JSON.stringify(meta, null, 2) + '\n');
  console.log(
    `wrote ${join(outDir, `${dataset}.json`)} and ${meta.weightsFile} (${bin.length} bytes) in ${seconds.toFixed(0)} s of training`,
  );
}

main().catch((e) => {
  if (e instanceof SemiganError) {
    console.error(`error: ${e.message}`);
    process.exit(1);
  }
  throw e;
});
