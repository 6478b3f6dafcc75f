/**
 * The conv presets (conv-small, conv-large; src/models/conv_gan.ts) and their layers: shapes,
 * weight-normed conv = plain conv with the folded kernel, data-dependent init (per channel mean 0,
 * std 1), seeded dropout, leaky ReLU's gradient, D per example (unless --mbd), G per example with
 * --vbn, a few Trainer iterations on real MNIST, and the export of a conv-small run (plain tfjs
 * loads it and gives D's logits). Widths are tiny (preset args) to keep the file fast.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend.js';
import { Rng } from '../../src/rng.js';
import { SemiganError } from '../../src/errors.js';
import { disposeParams } from '../../src/nn/params.js';
import { leakyRelu } from '../../src/nn/activations.js';
import { dropout, dropoutMask } from '../../src/nn/dropout.js';
import { channelMoments } from '../../src/nn/batch_norm.js';
import { virtualBatchNormChannels } from '../../src/nn/virtual_batch_norm.js';
import { convTranspose2d, dataDependentInitChannels, weightNormConv2d, weightNormConvKernel, weightNormConvTransposeKernel } from '../../src/nn/conv.js';
import { convSmall, convSmallTrunk, type ConvSmallArgs } from '../../src/models/conv_small.js';
import { noisyTrunk } from '../../src/models/conv_gan.js';
import { convLarge, convLargeTrunk } from '../../src/models/conv_large.js';
import { buildModelForConfig } from '../../src/models/presets.js';
import type { GanModel } from '../../src/models/model.js';
import { prepareData, type TrainData } from '../../src/data/prepare.js';
import { validateConfig, type TrainConfig } from '../../src/train/config.js';
import { Trainer } from '../../src/train/trainer.js';
import { loadExportedDiscriminator, readRun, runConfig } from '../../src/train/run_dir.js';
import { exportRun } from '../../src/export/exporter.js';
import { allRows } from '../../src/data/rows.js';
import { runCli } from '../lib/cli.js';

let tmp: string;
let backend: string;

/** Tiny conv-small: every layer kind present, a few channels each. */
const TINY: Pick<ConvSmallArgs, 'widths' | 'genWidths'> = { widths: [4, 6, 6, 8], genWidths: [8, 4] };

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'semigan-conv-'));
  backend = (await initBackend('wasm')).name; // conv gradients on wasm: src/nn/conv_grad.ts
});
after(() => rmSync(tmp, { recursive: true, force: true }));

const values = (t: tf.Tensor) => Array.from(t.dataSync());
const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};
const uniformRows = (rng: Rng, n: number, dim: number) => tf.tensor2d(rng.fillUniform(new Float32Array(n * dim)), [n, dim]);

// ---------------------------------------------------------------------------------------------
// layers

test('weight-normed conv = plain conv with the kernel folded by hand (v * g / ||v|| per output channel over kh, kw, in)', () => {
  const rng = new Rng(1);
  const [kh, kw, cin, cout] = [3, 3, 2, 3];
  const vData = rng.fillNormal(new Float32Array(kh * kw * cin * cout), 1);
  const g = [0.5, 2, -1];
  // Fold in float64, index [i, j, c, o] = ((i * kw + j) * cin + c) * cout + o.
  const folded = new Float32Array(vData.length);
  for (let o = 0; o < cout; o++) {
    let sq = 0;
    for (let k = o; k < vData.length; k += cout) sq += vData[k] ** 2;
    for (let k = o; k < vData.length; k += cout) folded[k] = (vData[k] * g[o]) / Math.sqrt(sq);
  }
  const v = tf.tensor4d(vData, [kh, kw, cin, cout]);
  const gT = tf.tensor1d(g);
  const b = tf.tensor1d([0.1, -0.2, 0.3]);
  assert.ok(maxAbsDiff(values(weightNormConvKernel(v, gT)), folded) < 1e-6, 'folded kernel');
  const x = tf.tensor4d(rng.fillUniform(new Float32Array(2 * 7 * 5 * cin)), [2, 7, 5, cin]);
  for (const [stride, padding] of [[1, 'same'], [2, 'same'], [1, 'valid']] as const) {
    const ours = weightNormConv2d(x, v, gT, b, stride, padding);
    const plain = tf.conv2d(x, tf.tensor4d(folded, v.shape), stride, padding).add(b);
    assert.deepEqual(ours.shape, plain.shape);
    assert.ok(maxAbsDiff(values(ours), values(plain)) < 1e-5, `stride ${stride} ${padding}`);
  }
  // Transposed-conv filter [kh, kw, out, in]: each output channel's folded norm is |g|.
  const vt = tf.tensor4d(rng.fillNormal(new Float32Array(5 * 5 * 3 * 4), 1), [5, 5, 3, 4]);
  const norms = values(weightNormConvTransposeKernel(vt, gT).square().sum([0, 1, 3]).sqrt());
  assert.ok(maxAbsDiff(norms, [0.5, 2, 1]) < 1e-5, `deconv channel norms ${norms}`);
});

test("G's transposed conv (convTranspose2d) = tf.conv2dTranspose, values and gradients", () => {
  const rng = new Rng(9);
  const normal = (shape: number[]) => tf.tensor(rng.fillNormal(new Float32Array(shape.reduce((a, b) => a * b)), 1), shape);
  for (const k of [3, 4, 5]) {
    tf.tidy(() => {
      const x = normal([2, 4, 3, 5]) as tf.Tensor4D;
      const f = normal([k, k, 2, 5]) as tf.Tensor4D; // [kh, kw, out, in]
      const out: [number, number, number, number] = [2, 8, 6, 2];
      const dy = normal(out);
      assert.ok(maxAbsDiff(values(convTranspose2d(x, f, 2)), values(tf.conv2dTranspose(x, f, out, 2, 'same'))) < 1e-4, `k ${k} values`);
      const [gx, gf] = tf.grads((a: tf.Tensor, b: tf.Tensor) => convTranspose2d(a as tf.Tensor4D, b as tf.Tensor4D, 2).mul(dy).sum())([x, f]);
      const [rx, rf] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.conv2dTranspose(a as tf.Tensor4D, b as tf.Tensor4D, out, 2, 'same').mul(dy).sum())([x, f]);
      assert.ok(maxAbsDiff(values(gx), values(rx)) < 1e-4 && maxAbsDiff(values(gf), values(rf)) < 1e-4, `k ${k} gradients`);
    });
  }
});

test('data-dependent init by hand: g <- g * s, b <- -mean * s, s = target / std, per channel over batch, height, width', () => {
  // Channel 0 takes 1, 3, 1, 3 (mean 2, std 1); channel 1 takes 0, 4, 8, 4 (mean 4, std sqrt(8)).
  const a = tf.tensor4d([1, 0, 3, 4, 1, 8, 3, 4], [2, 1, 2, 2]);
  const g = tf.variable(tf.tensor1d([1, 2]));
  const b = tf.variable(tf.tensor1d([0, 0]));
  const out = dataDependentInitChannels(a, g, b);
  const s1 = 1 / Math.sqrt(8);
  assert.ok(maxAbsDiff(values(g), [1, 2 * s1]) < 1e-6, `g ${values(g)}`);
  assert.ok(maxAbsDiff(values(b), [-2, -4 * s1]) < 1e-6, `b ${values(b)}`);
  assert.ok(maxAbsDiff(values(out), [-1, -4 * s1, 1, 0, -1, 4 * s1, 1, 0]) < 1e-6, `normalized ${values(out)}`);
  dataDependentInitChannels(a, g, b, 0.1);
  assert.ok(maxAbsDiff(values(b), [-0.2, -0.4 * s1]) < 1e-6, `target std 0.1: b ${values(b)}`);
  tf.dispose([g, b]);
  // channelMoments (matMul form) = tf.moments over all but the last axis.
  const x = tf.tensor4d(new Rng(2).fillNormal(new Float32Array(3 * 4 * 5 * 6), 2), [3, 4, 5, 6]);
  const m = channelMoments(x);
  const ref = tf.moments(x, [0, 1, 2]);
  assert.ok(maxAbsDiff(values(m.mean), values(ref.mean)) < 1e-5 && maxAbsDiff(values(m.variance), values(ref.variance)) < 1e-4);
});

test('dropout: the mask comes from the Rng (same state, same mask), drops ~rate, keeps E[x]', () => {
  const x = tf.ones([200, 50]);
  const a = new Rng(5);
  const b = new Rng(5);
  assert.deepEqual(values(dropout(x, 0.5, a)), values(dropout(x, 0.5, b)), 'reproducible from the Rng state');
  assert.deepEqual(a.getState(), b.getState());
  const mask = dropoutMask(100_001, 0.2, new Rng(6));
  const zeros = mask.filter((m) => m === 0).length / mask.length;
  assert.ok(Math.abs(zeros - 0.2) < 0.01, `dropped fraction ${zeros}`);
  const kept = mask.find((m) => m !== 0)!;
  assert.ok(Math.abs(kept - 65536 / (65536 - Math.round(0.2 * 65536))) < 1e-6 && Math.abs(kept - 1.25) < 1e-4, `scale ${kept}`);
  const meanMask = mask.reduce((s, m) => s + m, 0) / mask.length;
  assert.ok(Math.abs(meanMask - 1) < 0.02, `mean of the mask ${meanMask}`);
  assert.equal(dropout(x, 0, a), x, 'rate 0 is the identity');
});

test('leaky ReLU 0.2: values and gradient (slope 1 above 0, 0.2 below)', () => {
  const x = tf.tensor1d([-2, -0.5, 0.5, 3]);
  assert.deepEqual(values(leakyRelu(x)), [-0.4, -0.1, 0.5, 3].map(Math.fround));
  assert.deepEqual(values(tf.grad((t: tf.Tensor) => leakyRelu(t).mul(tf.tensor1d([1, 2, 3, 4])).sum())(x)), [0.2, 0.4, 3, 4].map(Math.fround));
});

test('VBN for feature maps: per-example (a row does not depend on its batch), = batch norm against ref+example statistics', () => {
  const rng = new Rng(8);
  const h = tf.tensor4d(rng.fillNormal(new Float32Array(3 * 2 * 2 * 2), 1), [3, 2, 2, 2]).add(tf.tensor1d([5, -1]));
  const ref = tf.tensor4d(rng.fillNormal(new Float32Array(4 * 2 * 2 * 2), 2), [4, 2, 2, 2]) as tf.Tensor4D;
  const shift = tf.tensor1d([0.5, 0]);
  const { out } = virtualBatchNormChannels(h as tf.Tensor4D, ref, shift);
  const alone = virtualBatchNormChannels(h.slice([1, 0, 0, 0], [1, -1, -1, -1]) as tf.Tensor4D, ref, shift).out;
  assert.ok(maxAbsDiff(values(alone), values(out.slice([1, 0, 0, 0], [1, -1, -1, -1]))) < 1e-6);
  // Row 0 by the definition: plain moments of the 4 reference maps and the example itself, each
  // example weighted 1/(n+1) = 1/5 (its 4 positions: 1/20 each; reference positions 4/5 / 16).
  const x0 = h.slice([0, 0, 0, 0], [1, -1, -1, -1]).reshape([-1, 2]);
  const r = ref.reshape([-1, 2]);
  const w = tf.concat([tf.fill([16, 1], 0.8 / 16), tf.fill([4, 1], 0.2 / 4)]);
  const all = tf.concat([r, x0]);
  const mu = all.mul(w).sum(0);
  const variance = all.sub(mu).square().mul(w).sum(0);
  const want = x0.sub(mu).div(variance.add(1e-6).sqrt()).add(shift);
  assert.ok(maxAbsDiff(values(out.slice([0, 0, 0, 0], [1, -1, -1, -1])), values(want)) < 1e-5);
});

// ---------------------------------------------------------------------------------------------
// models

function shapesOf(model: GanModel, [h, w, c]: [number, number, number], k: number, features: number) {
  const rng = new Rng(3);
  const d = model.createD(rng);
  const g = model.createG(rng);
  const x = uniformRows(rng, 12, h * w * c);
  model.initD(d, x, { noise: rng });
  const out = model.applyD(d.vars, x, { noise: rng });
  assert.deepEqual(out.logits.shape, [12, k]);
  assert.deepEqual(out.features.shape, [12, features]);
  const fake = model.applyG(g.vars, uniformRows(rng, 5, model.zDim));
  assert.deepEqual(fake.shape, [5, h * w * c]);
  const px = values(fake);
  assert.ok(px.every((p) => p > 0 && p < 1), 'G outputs in (0, 1)');
  disposeParams(d);
  disposeParams(g);
}

test('shapes: conv-small and conv-large for 28x28x1, 32x32x3 and odd sizes (G crops to h x w)', () => {
  for (const shape of [[28, 28, 1], [32, 32, 3], [30, 26, 3]] as [number, number, number][]) {
    tf.tidy(() => shapesOf(convSmall({ inputShape: shape, numClasses: 10, ...TINY }), shape, 10, 8));
    tf.tidy(() => shapesOf(convLarge({ inputShape: shape, numClasses: 7, widths: [4, 6], genWidths: [8, 6, 4] }), shape, 7, 6));
  }
});

test("conv-large's parameters are the paper's CIFAR model (9 conv layers + dense; G 4x4x512 -> 256 -> 128 -> 3)", () => {
  const m = convLarge({ inputShape: [32, 32, 3], numClasses: 10 });
  const rng = new Rng(1);
  const d = m.createD(rng);
  const shapes = Object.fromEntries(Object.entries(d.vars).map(([n, v]) => [n, v.shape]));
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7, 8].map((i) => shapes[`c${i}.v`]), [
    [3, 3, 3, 96], [3, 3, 96, 96], [3, 3, 96, 96], [3, 3, 96, 192], [3, 3, 192, 192], [3, 3, 192, 192], [3, 3, 192, 192], [1, 1, 192, 192], [1, 1, 192, 192],
  ]);
  assert.deepEqual(shapes['out.v'], [192, 10]);
  assert.ok(!d.trainable.includes('c0.g') && d.trainable.includes('out.g'), 'g trained in the output layer only (official)');
  disposeParams(d);
  // G at 9x9 (a 2x2 dense map; its init pass is cheap), same layer widths as at 32x32.
  const g = convLarge({ inputShape: [9, 9, 3], numClasses: 10 }).createG(rng);
  assert.deepEqual([g.vars['fc.w'].shape, g.vars['dc0.w'].shape, g.vars['dc1.w'].shape, g.vars['out.v'].shape], [[100, 2048], [5, 5, 256, 512], [5, 5, 128, 256], [5, 5, 3, 128]]);
  disposeParams(g);
});

test('data-dependent init: every conv channel has mean 0, std 1 on the init batch; the logits std 0.1', () => {
  const shape: [number, number, number] = [12, 12, 2];
  const model = convSmall({ inputShape: shape, numClasses: 3, ...TINY });
  const rng = new Rng(4);
  const d = model.createD(rng);
  const x = uniformRows(rng, 30, 12 * 12 * 2);
  model.initD(d, x, { noise: null }); // without dropout: the pass below sees the same inputs
  tf.tidy(() => {
    // Re-run D layer by layer (strides of conv-small: 1, 2, 1, 2) and check every pre-activation.
    let hid = x.reshape([30, ...shape]) as tf.Tensor4D;
    [1, 2, 1, 2].forEach((stride, i) => {
      const v = d.vars;
      const a = weightNormConv2d(hid, v[`c${i}.v`] as tf.Tensor4D, v[`c${i}.g`] as tf.Tensor1D, v[`c${i}.b`] as tf.Tensor1D, stride, 'same');
      const { mean, variance } = tf.moments(a, [0, 1, 2]);
      assert.ok(values(mean).every((m) => Math.abs(m) < 1e-4), `layer ${i} means ${values(mean)}`);
      assert.ok(values(variance).every((s) => Math.abs(Math.sqrt(s) - 1) < 1e-3), `layer ${i} stds ${values(variance.sqrt())}`);
      hid = leakyRelu(a);
    });
    const { mean, variance } = tf.moments(model.applyD(d.vars, x, { noise: null }).logits, 0);
    assert.ok(values(mean).every((m) => Math.abs(m) < 1e-4), `logit means ${values(mean)}`);
    assert.ok(values(variance).every((s) => Math.abs(Math.sqrt(s) - 0.1) < 1e-4), `logit stds ${values(variance.sqrt())}`);
  });
  disposeParams(d);
});

test('D is per example: a row gets the same logits alone as in a batch (with --mbd it does not)', () => {
  const shape: [number, number, number] = [16, 16, 1];
  for (const mbd of [null, { kernels: 5, dim: 3 }]) {
    const model = convSmall({ inputShape: shape, numClasses: 4, ...TINY, mbd });
    assert.equal(model.batchDependentD, mbd !== null);
    const rng = new Rng(5);
    const d = model.createD(rng);
    const x = uniformRows(rng, 8, 256);
    model.initD(d, x, { noise: rng });
    tf.tidy(() => {
      const batch = values(model.applyD(d.vars, x, { noise: null }).logits);
      const alone = [0, 1, 2].flatMap((i) => values(model.applyD(d.vars, x.slice([i, 0], [1, -1]), { noise: null }).logits));
      const diff = maxAbsDiff(batch.slice(0, 12), alone);
      if (mbd) assert.ok(diff > 1e-3, `MBD's logits depend on the batch (diff ${diff})`);
      else assert.ok(diff < 1e-5, `logits alone vs in the batch differ by ${diff}`);
    });
    disposeParams(d);
  }
});

test('--vbn: G is per example (a z gets the same image alone as in a batch); batch norm G is not', () => {
  for (const vbn of [true, false]) {
    const model = convSmall({ inputShape: [12, 12, 1], numClasses: 2, ...TINY, vbn });
    const rng = new Rng(6);
    const g = model.createG(rng);
    assert.equal('vbn.zref' in g.vars, vbn);
    tf.tidy(() => {
      const z = uniformRows(rng, 6, model.zDim);
      const diff = maxAbsDiff(values(model.applyG(g.vars, z).slice([0, 0], [1, -1])), values(model.applyG(g.vars, z.slice([0, 0], [1, -1]))));
      if (vbn) assert.ok(diff < 1e-5, `VBN: ${diff}`);
      else assert.ok(diff > 1e-4, `BN depends on the batch: ${diff}`);
    });
    disposeParams(g);
  }
});

test('--fm-layer other than -1 is a config error for the conv presets', () => {
  for (const preset of ['conv-small', 'conv-large']) {
    const config = validateConfig({ preset, fmLayer: 0 });
    assert.throws(
      () => buildModelForConfig(config, [28, 28, 1], 10),
      (e: unknown) => e instanceof SemiganError && e.code === 'SEMIGAN_ERR_CONFIG' && /only --fm-layer -1 is supported for conv presets/.test(e.message),
    );
    assert.equal(buildModelForConfig(validateConfig({ preset, fmLayer: -1 }), [28, 28, 1], 10).preset, preset);
  }
  // conv-large's valid 3x3 conv needs a 3x3 map after two stride-2 convs: at least 9x9 input.
  assert.throws(() => convLarge({ inputShape: [8, 8, 3], numClasses: 2 }), /8x8 images are too small .* 8 -> 8 -> 4 -> 4 -> 4 -> 2 -> 0 -> 0 -> 0 rows/);
  assert.equal(convLarge({ inputShape: [9, 9, 1], numClasses: 2 }).preset, 'conv-large');
});

/**
 * conv-small variants on 12x12x1 sharing one D (created and initialized by the first variant):
 * `check` gets each variant's logits on 6 rows, in training (an Rng) or evaluation (null).
 */
function withConvSmallVariants(variants: Partial<TrainConfig>[], check: (logits: (variant: number, noise: Rng | null) => number[]) => void): void {
  const models = variants.map((v) => buildModelForConfig(validateConfig({ preset: 'conv-small', ...v }), [12, 12, 1], 3));
  const rng = new Rng(5);
  const d = models[0].createD(rng);
  const x = uniformRows(rng, 6, 144);
  models[0].initD(d, x, { noise: rng });
  try {
    tf.tidy(() => check((i, noise) => values(models[i].applyD(d.vars, x, { noise }).logits)));
  } finally {
    disposeParams(d);
  }
}

test("--d-noise: Gaussian noise on D's input and after each conv, in training only; std 0 draws nothing", () => {
  const conv = (filters: number, stride: number) => ({ kind: 'conv', filters, kernel: 3, stride, padding: 'same' }) as const;
  assert.deepEqual(noisyTrunk(convSmallTrunk(), [0.3, 0.5]), [
    { kind: 'noise', std: 0.3 },
    { kind: 'dropout', rate: 0.2 },
    conv(16, 1),
    { kind: 'noise', std: 0.5 },
    conv(32, 2),
    { kind: 'noise', std: 0.5 },
    { kind: 'dropout', rate: 0.5 },
    conv(32, 1),
    { kind: 'noise', std: 0.5 },
    conv(64, 2),
    { kind: 'noise', std: 0.5 },
  ]);
  assert.deepEqual(noisyTrunk(convSmallTrunk(), [0, 0]), convSmallTrunk());

  const [plain, noisy, zero] = [0, 1, 2];
  withConvSmallVariants([{}, { dNoise: [0.3, 0.5] }, { dNoise: [0, 0] }], (logits) => {
    assert.deepEqual(logits(noisy, null), logits(plain, null), 'evaluation has no noise');
    const [a, b, c] = [new Rng(9), new Rng(9), new Rng(9)];
    const [la, lb, lc] = [logits(plain, a), logits(noisy, b), logits(zero, c)];
    assert.ok(maxAbsDiff(la, lb) > 1e-2, 'the noise moves the training logits');
    assert.deepEqual(lc, la, 'std 0: the same logits as no noise step');
    assert.deepEqual(c.getState(), a.getState(), 'std 0 draws nothing from the Rng');
  });

  // mnist-mlp has no dropout: with --d-noise 0,0 a training pass is the evaluation pass.
  const mlp = (dNoise: [number, number] | null) => buildModelForConfig(validateConfig({ preset: 'mnist-mlp', dNoise }), [4, 4, 1], 3);
  const m = mlp([0, 0]);
  const dm = m.createD(new Rng(3));
  const xm = uniformRows(new Rng(4), 5, 16);
  m.initD(dm, xm, { noise: null });
  tf.tidy(() => {
    const run = (model: GanModel, noise: Rng | null) => values(model.applyD(dm.vars, xm, { noise }).logits);
    assert.deepEqual(run(m, new Rng(8)), run(m, null));
    assert.ok(maxAbsDiff(run(mlp(null), new Rng(8)), run(m, null)) > 1e-2, "the preset's own noise (0.3, 0.5) when not given");
  });
  disposeParams(dm);

  for (const bad of [[0.3], [-1, 0], [0.3, NaN], '0.3,0.5'])
    assert.throws(() => validateConfig({ dNoise: bad }), /--d-noise must be two non-negative numbers INPUT,HIDDEN/);
});

test("--d-widths: D's layer widths per preset (the MLPs any count, conv-small 2-8 in stage pairs, conv-large 2), bad lists as one line", async () => {
  const dShapes = (preset: string, dWidths: number[] | null, shape: [number, number, number]) => {
    const d = buildModelForConfig(validateConfig({ preset, dWidths }), shape, 3).createD(new Rng(1));
    const shapes = Object.fromEntries(Object.entries(d.vars).filter(([k]) => k.endsWith('.v')).map(([k, v]) => [k, v.shape]));
    disposeParams(d);
    return shapes;
  };
  assert.deepEqual(dShapes('conv-small', [4, 6, 6, 8], [12, 12, 1]), {
    'c0.v': [3, 3, 1, 4], 'c1.v': [3, 3, 4, 6], 'c2.v': [3, 3, 6, 6], 'c3.v': [3, 3, 6, 8], 'out.v': [8, 3],
  });
  assert.deepEqual(dShapes('conv-small', null, [12, 12, 1])['c3.v'], [3, 3, 32, 64], "the preset's own 16,32,32,64");
  assert.deepEqual(dShapes('conv-small', [4, 6, 6, 8, 8, 10], [12, 12, 1]), {
    'c0.v': [3, 3, 1, 4], 'c1.v': [3, 3, 4, 6], 'c2.v': [3, 3, 6, 6], 'c3.v': [3, 3, 6, 8], 'c4.v': [3, 3, 8, 8], 'c5.v': [3, 3, 8, 10], 'out.v': [10, 3],
  });
  assert.deepEqual(dShapes('conv-small', [5, 7], [12, 12, 1]), { 'c0.v': [3, 3, 1, 5], 'c1.v': [3, 3, 5, 7], 'out.v': [7, 3] });
  const large = dShapes('conv-large', [8, 16], [12, 12, 3]);
  assert.deepEqual([0, 1, 2, 3, 6, 8].map((i) => large[`c${i}.v`]), [[3, 3, 3, 8], [3, 3, 8, 8], [3, 3, 8, 8], [3, 3, 8, 16], [3, 3, 16, 16], [1, 1, 16, 16]]);
  assert.deepEqual(dShapes('mnist-mlp', [20, 10], [4, 4, 1]), { 'l0.v': [16, 20], 'l1.v': [20, 10], 'l2.v': [10, 3] });
  assert.deepEqual(dShapes('tabular-mlp', [12], [1, 5, 1]), { 'l0.v': [5, 12], 'l1.v': [12, 3] });
  assert.deepEqual(Object.values(dShapes('tabular-mlp', null, [1, 5, 1])), [[5, 256], [256, 128], [128, 128], [128, 3]], "the preset's own");

  assert.throws(
    () => buildModelForConfig(validateConfig({ preset: 'conv-small', dWidths: [4, 6, 6] }), [12, 12, 1], 3),
    (e: Error) => e instanceof SemiganError && /^--d-widths for conv-small takes 2, 4, 6 or 8 widths \(a stride-1 and a stride-2 conv per stage\); received 3: 4,6,6$/.test(e.message),
  );
  assert.throws(() => buildModelForConfig(validateConfig({ preset: 'conv-small', dWidths: new Array(10).fill(4) }), [12, 12, 1], 3), /--d-widths for conv-small takes 2, 4, 6 or 8 widths .*received 10/);
  assert.throws(() => buildModelForConfig(validateConfig({ preset: 'conv-large', dWidths: [8] }), [12, 12, 3], 3), /--d-widths for conv-large takes 2 widths \(its two conv blocks\); received 1: 8/);
  for (const bad of [[], [0], [1.5], [16, -1], '16,32', new Array(17).fill(8)])
    assert.throws(() => validateConfig({ dWidths: bad }), /--d-widths must be a comma-separated list of 1 to 16 layer widths, each an integer in \[1, 16384\]/);
  const parsed = await runCli(['train', '--d-widths', '16,x']);
  assert.equal(parsed.code, 1);
  assert.match(parsed.stderr, /^error: option '--d-widths <list>' argument '16,x' is invalid\. expected positive integers separated by commas/m);
});

test("--g-widths: G's layer widths per preset (the MLPs any count, conv-small 2, conv-large 3), bad lists as one line", async () => {
  const gShapes = (preset: string, gWidths: number[] | null, shape: [number, number, number]) => {
    const g = buildModelForConfig(validateConfig({ preset, gWidths }), shape, 3).createG(new Rng(1));
    const shapes = Object.fromEntries(Object.entries(g.vars).filter(([k]) => /\.(w|v)$/.test(k)).map(([k, v]) => [k, v.shape]));
    disposeParams(g);
    return shapes;
  };
  // 12x12 images: G starts from 3x3 maps (12 / 4); deconv kernels [k, k, out, in].
  assert.deepEqual(gShapes('conv-small', [8, 4], [12, 12, 1]), { 'fc.w': [100, 3 * 3 * 8], 'dc0.w': [4, 4, 4, 8], 'out.v': [4, 4, 1, 4] });
  assert.deepEqual(gShapes('conv-small', null, [12, 12, 1]), { 'fc.w': [100, 3 * 3 * 64], 'dc0.w': [4, 4, 32, 64], 'out.v': [4, 4, 1, 32] }, "the preset's own 64,32");
  assert.deepEqual(gShapes('conv-large', [16, 8, 4], [12, 12, 3])['dc1.w'], [5, 5, 4, 8]);
  assert.deepEqual(gShapes('mnist-mlp', [20, 10, 5], [4, 4, 1]), { 'h0.w': [100, 20], 'h1.w': [20, 10], 'h2.w': [10, 5], 'out.v': [5, 16] });
  assert.deepEqual(gShapes('tabular-mlp', [12], [1, 5, 1]), { 'h0.w': [100, 12], 'out.v': [12, 5] });
  assert.deepEqual(Object.values(gShapes('tabular-mlp', null, [1, 5, 1])), [[100, 128], [128, 128], [128, 5]], "the preset's own");

  assert.throws(
    () => buildModelForConfig(validateConfig({ preset: 'conv-small', gWidths: [8, 4, 2] }), [12, 12, 1], 3),
    (e: Error) => e instanceof SemiganError && /^--g-widths for conv-small takes 2 widths \(its dense layer's channels, its middle deconv's\); received 3: 8,4,2$/.test(e.message),
  );
  assert.throws(() => buildModelForConfig(validateConfig({ preset: 'conv-large', gWidths: [8] }), [12, 12, 3], 3), /--g-widths for conv-large takes 3 widths .*received 1: 8/);
  for (const bad of [[], [0], [2.5], '64,32'])
    assert.throws(() => validateConfig({ gWidths: bad }), /--g-widths must be a comma-separated list of 1 to 16 layer widths/);
  const parsed = await runCli(['train', '--g-widths', '8,,4']);
  assert.equal(parsed.code, 1);
  assert.match(parsed.stderr, /^error: option '--g-widths <list>' argument '8,,4' is invalid\. expected positive integers separated by commas/m);
});

test("--d-dropout: the conv presets' dropout on the input and before each later stage; 0 is no step; the MLPs refuse it", async () => {
  const conv = (filters: number, stride: number) => ({ kind: 'conv', filters, kernel: 3, stride, padding: 'same' }) as const;
  assert.deepEqual(convSmallTrunk([4, 6, 6, 8, 8, 10], 0, 0.3), [
    conv(4, 1), conv(6, 2),
    { kind: 'dropout', rate: 0.3 }, conv(6, 1), conv(8, 2),
    { kind: 'dropout', rate: 0.3 }, conv(8, 1), conv(10, 2),
  ]);
  assert.deepEqual(convSmallTrunk(), [{ kind: 'dropout', rate: 0.2 }, conv(16, 1), conv(32, 2), { kind: 'dropout', rate: 0.5 }, conv(32, 1), conv(64, 2)], "the preset's own");
  assert.deepEqual(convLargeTrunk([8, 16], 0.1, 0).filter((s) => s.kind === 'dropout'), [{ kind: 'dropout', rate: 0.1 }]);
  assert.deepEqual(convLargeTrunk().filter((s) => s.kind === 'dropout').map((s) => s.kind === 'dropout' && s.rate), [0.2, 0.5, 0.5], 'the official rates');

  // With 0,0 (and no noise) a training pass is the evaluation pass and draws nothing from the Rng.
  const [plain, none] = [0, 1];
  withConvSmallVariants([{ dWidths: [4, 6, 6, 8] }, { dWidths: [4, 6, 6, 8], dDropout: [0, 0] }], (logits) => {
    const r = new Rng(9);
    assert.deepEqual(logits(none, r), logits(plain, null));
    assert.deepEqual(r.getState(), new Rng(9).getState(), 'no dropout step drew from the Rng');
    assert.ok(maxAbsDiff(logits(plain, new Rng(9)), logits(plain, null)) > 1e-2, "the preset's own dropout moves the training logits");
  });

  assert.throws(
    () => buildModelForConfig(validateConfig({ preset: 'mnist-mlp', dDropout: [0.2, 0.5] }), [4, 4, 1], 3),
    (e: Error) => e instanceof SemiganError && /^--d-dropout: mnist-mlp's D has no dropout layers \(its regularizer is Gaussian noise: --d-noise INPUT,HIDDEN\)$/.test(e.message),
  );
  for (const bad of [[0.2], [1, 0], [-0.1, 0.5], [0.2, NaN], '0.2,0.5'])
    assert.throws(() => validateConfig({ dDropout: bad }), /--d-dropout must be two dropout rates INPUT,HIDDEN, each in \[0, 1\)/);
  const parsed = await runCli(['train', '--d-dropout', '0.2']);
  assert.equal(parsed.code, 1);
  assert.match(parsed.stderr, /^error: option '--d-dropout <input,hidden>' argument '0.2' is invalid\. expected two numbers separated by a comma/m);
});

test("--d-head flatten: D's features are its whole last map in NHWC order (their spatial mean is pool's); the MLPs refuse it", async () => {
  const [pool, flat] = (['pool', 'flatten'] as const).map((dHead) => buildModelForConfig(validateConfig({ preset: 'conv-small', dWidths: [4, 6, 6, 8], dHead }), [12, 12, 1], 3));
  // The convs are drawn first, so one seed gives both the same convs; only the output layer differs.
  const [dPool, dFlat] = [pool, flat].map((m) => m.createD(new Rng(5)));
  const x = uniformRows(new Rng(6), 6, 144);
  pool.initD(dPool, x, { noise: null });
  flat.initD(dFlat, x, { noise: null });
  try {
    tf.tidy(() => {
      assert.deepEqual(dFlat.vars['out.v'].shape, [3 * 3 * 8, 3], '12x12 -> 6x6 -> 3x3 maps of 8 channels');
      assert.deepEqual(dPool.vars['out.v'].shape, [8, 3]);
      const fp = pool.applyD(dPool.vars, x, { noise: null }).features;
      const ff = flat.applyD(dFlat.vars, x, { noise: null }).features;
      assert.deepEqual(ff.shape, [6, 72]);
      assert.ok(maxAbsDiff(values(ff.reshape([6, 3, 3, 8]).mean([1, 2])), values(fp)) < 1e-6, 'the mean of the flattened map over its 3x3 positions is the pooled feature');
    });
  } finally {
    disposeParams(dPool);
    disposeParams(dFlat);
  }
  assert.throws(
    () => buildModelForConfig(validateConfig({ preset: 'mnist-mlp', dHead: 'flatten' }), [4, 4, 1], 3),
    (e: Error) => e instanceof SemiganError && /^--d-head: mnist-mlp's D is dense throughout/.test(e.message),
  );
  assert.throws(() => validateConfig({ dHead: 'max' }), /--d-head must be one of pool, flatten; received "max"$/);
  const parsed = await runCli(['train', '--d-head', 'max']);
  assert.equal(parsed.code, 1);
  assert.match(parsed.stderr, /^error: option '--d-head <head>' argument 'max' is invalid\. Allowed choices are pool, flatten\./m);
});

// ---------------------------------------------------------------------------------------------
// training and export

/** 200 MNIST training images (100 labeled), 50 test images, 10 rows per source. */
const BASE: Partial<TrainConfig> = { preset: 'conv-small', trainLimit: 200, testLimit: 50, batchSize: 10, itersPerEpoch: 3, epochs: 1, initSize: 50, emaDecay: 0.9, seed: 2 };
const io = { log: () => {}, progressStream: { write: () => true } };

let data: TrainData;
function tinyTrainer(over: Partial<TrainConfig>): Trainer {
  const config = validateConfig({ ...BASE, backend, ...over });
  data ??= prepareData(config);
  const model = convSmall({ inputShape: data.train.shape, numClasses: data.train.classes.length, ...TINY, mbd: config.mbd ? { kernels: 5, dim: 3 } : null, vbn: config.vbn });
  return new Trainer(config, model, data, io);
}

test('Trainer: conv-small trains a few iterations on MNIST with finite losses (FM, and NS + MBD + VBN)', async () => {
  for (const [i, over] of [{}, { fm: false, mbd: true, vbn: true, fmDistance: 'l1' as const }].entries()) {
    const t = tinyTrainer({ ...over, out: join(tmp, `train-${i}`) });
    try {
      t.initialize();
      const before = tf.memory().numTensors;
      const r = await t.run();
      assert.equal(r.step, 3);
      const m = JSON.parse(readFileSync(join(tmp, `train-${i}`, 'metrics.jsonl'), 'utf8').trim());
      for (const k of ['loss_lab', 'loss_unl', 'loss_gen']) assert.ok(Number.isFinite(m[k]), `${k} = ${m[k]}`);
      assert.ok(tf.memory().numTensors <= before + 2, `tensors ${before} -> ${tf.memory().numTensors}`);
    } finally {
      t.dispose();
    }
  }
});

test('export of a conv-small run: Conv2D/LeakyReLU/GlobalAveragePooling2D/Dense; plain tf.loadLayersModel gives applyD logits to 1e-4', async () => {
  const run = join(tmp, 'export-run');
  const t = tinyTrainer({ out: run });
  try {
    t.initialize();
    await t.run();
  } finally {
    t.dispose();
  }
  const out = join(tmp, 'export-model');
  const res = await exportRun(run, out);
  assert.ok(res.maxAbsLogitDiff <= 1e-4, `self-check ${res.maxAbsLogitDiff}`);
  const modelJson = JSON.parse(readFileSync(join(out, 'model.json'), 'utf8'));
  const layers = modelJson.modelTopology.config.layers as { class_name: string; config: Record<string, unknown> }[];
  assert.deepEqual(layers.map((l) => l.class_name), [
    'Conv2D', 'LeakyReLU', 'Conv2D', 'LeakyReLU', 'Conv2D', 'LeakyReLU', 'Conv2D', 'LeakyReLU', 'GlobalAveragePooling2D', 'Dense',
  ]);
  assert.deepEqual(layers.filter((l) => l.class_name === 'Conv2D').map((l) => [l.config.filters, l.config.strides, l.config.padding]), [
    [4, [1, 1], 'same'], [6, [2, 2], 'same'], [6, [1, 1], 'same'], [8, [2, 2], 'same'],
  ]);
  // Plain tfjs: model.json + weights.bin, nothing from semigan.
  const manifest = modelJson.weightsManifest as { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
  const bytes = readFileSync(join(out, manifest[0].paths[0]));
  const loaded = await tf.loadLayersModel(
    tf.io.fromMemory({ modelTopology: modelJson.modelTopology, weightSpecs: manifest[0].weights, weightData: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) }),
  );
  const { model, weights } = loadExportedDiscriminator(readRun(run));
  try {
    tf.tidy(() => {
      const n = 16;
      const x = tf.tensor2d(allRows(data.test.x).subarray(0, n * 784), [n, 784]);
      const ours = values(model.applyD(weights, x, { noise: null }).logits);
      const theirs = values(loaded.predict(x.reshape([n, 28, 28, 1])) as tf.Tensor);
      assert.ok(maxAbsDiff(ours, theirs) < 1e-4, `exported vs applyD logits: ${maxAbsDiff(ours, theirs)}`);
    });
  } finally {
    loaded.dispose();
    tf.dispose(Object.values(weights));
  }
});

/** Trains BASE with `over` from its config alone (as evaluate, export and resume do), exports it (self-check <= 1e-4); the recorded config and the exported layers. */
async function trainAndExport(name: string, over: Partial<TrainConfig>) {
  const run = join(tmp, `${name}-run`);
  const config = validateConfig({ ...BASE, backend, out: run, ...over });
  data ??= prepareData(config);
  const t = new Trainer(config, buildModelForConfig(config, data.train.shape, data.train.classes.length), data, io);
  try {
    t.initialize();
    await t.run();
  } finally {
    t.dispose();
  }
  const res = await exportRun(run, join(tmp, `${name}-model`));
  assert.ok(res.maxAbsLogitDiff <= 1e-4, `self-check ${res.maxAbsLogitDiff}`);
  const modelJson = JSON.parse(readFileSync(join(tmp, `${name}-model`, 'model.json'), 'utf8'));
  const layers = modelJson.modelTopology.config.layers as { class_name: string; config: Record<string, unknown> }[];
  const shapes = Object.fromEntries((modelJson.weightsManifest[0].weights as tf.io.WeightsManifestEntry[]).map((w) => [w.name, w.shape]));
  return { recorded: runConfig(readRun(run).meta), layers, shapes };
}

test('a three-stage conv-small (--d-widths 4,6,6,8,8,10 --d-dropout 0.1,0.3) trains from its config and exports its six convs', async () => {
  const { recorded, layers } = await trainAndExport('three-stage', { dWidths: [4, 6, 6, 8, 8, 10], dDropout: [0.1, 0.3] });
  assert.deepEqual([recorded.dWidths, recorded.dDropout], [[4, 6, 6, 8, 8, 10], [0.1, 0.3]]);
  assert.deepEqual(layers.filter((l) => l.class_name === 'Conv2D').map((l) => [l.config.filters, l.config.strides]), [
    [4, [1, 1]], [6, [2, 2]], [6, [1, 1]], [8, [2, 2]], [8, [1, 1]], [10, [2, 2]],
  ]);
});

test('a conv-small with --d-head flatten trains from its config and exports Flatten -> Dense over the whole 7x7 map', async () => {
  const { recorded, layers, shapes } = await trainAndExport('flatten', { dWidths: [4, 6, 6, 8], dHead: 'flatten' });
  assert.equal(recorded.dHead, 'flatten');
  assert.deepEqual(layers.map((l) => l.class_name).slice(-3), ['LeakyReLU', 'Flatten', 'Dense']);
  assert.deepEqual(shapes['logits/kernel'], [7 * 7 * 8, 10], '28x28 -> 14x14 -> 7x7 maps of 8 channels, 10 classes');
});
