/**
 * The paper's five techniques as wired into training (Salimans et al. 2016, Sec. 3): historical
 * averaging, one-sided label smoothing, feature matching (and its alternative, the non-saturating
 * G loss), minibatch discrimination and virtual batch norm in the models and the Trainer, and all
 * 32 on/off combinations training without NaN. The layer math of MBD and VBN is in
 * nn_mbd_vbn.test.ts; resume in general is in train.test.ts.
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
import { makeParams, disposeParams } from '../../src/nn/params.js';
import { uniformNoise } from '../../src/nn/noise.js';
import { HistoricalAverage } from '../../src/train/historical_averaging.js';
import { featureMatchingLoss, nonSaturatingGeneratorLoss, unsupervisedLoss } from '../../src/train/losses.js';
import { mnistMlp } from '../../src/models/mnist_mlp.js';
import type { ApplyOptions, GanModel } from '../../src/models/model.js';
import { buildModelForConfig } from '../../src/models/presets.js';
import { prepareData, type TrainData } from '../../src/data/prepare.js';
import { validateConfig, type TrainConfig } from '../../src/train/config.js';
import { Trainer } from '../../src/train/trainer.js';
import type { EpochMetrics } from '../../src/train/run_dir.js';
import { allRows } from '../../src/data/rows.js';

let tmp: string;
let data: TrainData;

/** Small runs: 200 training images (100 labeled), 50 test images, 20 rows per source. */
const BASE: Partial<TrainConfig> = {
  trainLimit: 200,
  testLimit: 50,
  batchSize: 20,
  itersPerEpoch: 2,
  epochs: 1,
  mbdKernels: 10,
  backend: 'wasm',
  seed: 3,
};
const io = { log: () => {}, progressStream: { write: () => true } };

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'semigan-techniques-'));
  await initBackend('wasm');
  data = prepareData(validateConfig(BASE));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

let runs = 0;
function makeTrainer(over: Partial<TrainConfig>, wrap?: (m: GanModel) => GanModel): Trainer {
  const config = validateConfig({ ...BASE, out: join(tmp, `run-${runs++}`), ...over });
  const model = buildModelForConfig(config, data.train.shape, data.train.classes.length);
  return new Trainer(config, wrap ? wrap(model) : model, data, io);
}

const values = (t: tf.Tensor) => Array.from(t.dataSync());
const close = (got: number, want: number, tol: number, what: string) =>
  assert.ok(Math.abs(got - want) <= tol, `${what} = ${got}, want ${want} (tol ${tol})`);
const closeAll = (got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string) => {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) close(got[i], want[i], tol, `${what}[${i}]`);
};
const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};
/** Rows [start, start + n) of a tensor. */
const rows = <T extends tf.Tensor2D>(t: T, start: number, n: number) => t.slice([start, 0], [n, -1]) as T;

// ---------------------------------------------------------------------------------------------
// historical averaging

test('HA: penalty 0 at the first step, then ||theta_t - mean(theta_1..t)||^2 summed over trainable params only', () => {
  const p = makeParams({ w: tf.tensor1d([1, 2]), b: tf.tensor1d([0]), fixed: tf.tensor1d([7, 7]) }, ['w', 'b']);
  const ha = new HistoricalAverage(p);
  assert.deepEqual(Object.keys(ha.mean).sort(), ['b', 'w'], 'running means only for trainable parameters');
  const penalty = () => tf.tidy(() => ha.penalty().dataSync()[0]);

  // step 1: theta_1 = (w [1, 2], b [0]); the mean is theta_1 itself.
  ha.observe();
  assert.equal(ha.count, 1);
  assert.equal(penalty(), 0);

  // step 2: theta_2 = (w [3, -2], b [1]); mean = (theta_1 + theta_2)/2 = (w [2, 0], b [0.5]);
  //   w - mean = [1, -2] -> 1 + 4 = 5;  b - mean = [0.5] -> 0.25;  penalty = 5.25.
  // The non-trainable `fixed` moves too and must not count.
  p.vars.w.assign(tf.tensor1d([3, -2]));
  p.vars.b.assign(tf.tensor1d([1]));
  p.vars.fixed.assign(tf.tensor1d([100, -100]));
  ha.observe();
  close(penalty(), 5.25, 1e-6, 'penalty at step 2');
  closeAll(values(ha.mean.w), [2, 0], 1e-6, 'mean w after 2 steps');

  // step 3: theta_3 = (w [2, 6], b [-1]); mean of three = (w [6/3, 6/3], b [0/3]) = (w [2, 2], b [0]);
  //   w - mean = [0, 4] -> 16;  b - mean = [-1] -> 1;  penalty = 17.
  p.vars.w.assign(tf.tensor1d([2, 6]));
  p.vars.b.assign(tf.tensor1d([-1]));
  p.vars.fixed.assign(tf.tensor1d([-5, 3]));
  ha.observe();
  assert.equal(ha.count, 3);
  close(penalty(), 17, 1e-5, 'penalty at step 3');
  closeAll(values(ha.mean.w), [2, 2], 1e-6, 'mean w after 3 steps');
  closeAll(values(ha.mean.b), [0], 1e-6, 'mean b after 3 steps');

  // Differentiable w.r.t. theta (the mean is a constant): d/dw = 2 (w - mean) = [0, 8].
  const { grads } = tf.variableGrads(() => ha.penalty(), [p.vars.w]);
  closeAll(values(grads[p.vars.w.name]), [0, 8], 1e-5, 'd penalty / dw');
  tf.dispose(Object.values(grads));
  ha.dispose();
  disposeParams(p);
});

// ---------------------------------------------------------------------------------------------
// losses

/** float64 reference: D(x) = Z/(Z+1) from a row of logits (fake logit fixed at 0). */
const realnessOf = (row: number[]) => {
  const z = row.reduce((s, l) => s + Math.exp(l), 0);
  return z / (z + 1);
};
const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;

test('label smoothing: unsupervisedLoss is the cross-entropy with targets (alpha, 0), by hand', () => {
  // Concrete: K = 2, all logits 0 -> Z = 2, D = 2/3 on every row. alpha = 0.9:
  //   real half: -0.9 log(2/3) - 0.1 log(1/3) = 0.9 * 0.4054651 + 0.1 * 1.0986123 = 0.4747798
  //   fake half: -log(1/3) = 1.0986123
  //   loss = 0.5 * 0.4747798 + 0.5 * 1.0986123 = 0.7866961
  // (In the K+1 form: lse = log 2, -alpha lse + softplus(lse) = -0.9 log 2 + log 3 = 0.4747798.)
  // alpha = 1: 0.5 * log(3/2) + 0.5 * log 3 = 0.2027326 + 0.5493061 = 0.7520387.
  const zeros = tf.zeros([3, 2]) as tf.Tensor2D;
  close(unsupervisedLoss(zeros, zeros, 0.9).dataSync()[0], 0.7866961, 1e-6, 'K=2 zero logits, alpha 0.9');
  close(unsupervisedLoss(zeros, zeros, 1).dataSync()[0], 0.7520387, 1e-6, 'K=2 zero logits, alpha 1');
  close(unsupervisedLoss(zeros, zeros).dataSync()[0], 0.7520387, 1e-6, 'default alpha (1)');

  // Arbitrary logits (K = 3, different row counts for the two halves) against float64.
  const rng = new Rng(11);
  const unl = Array.from({ length: 5 }, () => Array.from(rng.fillNormal(new Float32Array(3), 3)));
  const fake = Array.from({ length: 4 }, () => Array.from(rng.fillNormal(new Float32Array(3), 3)));
  const lu = tf.tensor2d(unl);
  const lf = tf.tensor2d(fake);
  for (const alpha of [1, 0.9, 0.7, 0.5]) {
    const real = mean(
      unl.map((r) => {
        const d = realnessOf(r);
        return -alpha * Math.log(d) - (1 - alpha) * Math.log(1 - d);
      }),
    );
    const fk = mean(fake.map((r) => -Math.log(1 - realnessOf(r))));
    const want = 0.5 * real + 0.5 * fk;
    close(unsupervisedLoss(lu, lf, alpha).dataSync()[0], want, 1e-5 * Math.max(1, Math.abs(want)), `alpha ${alpha}`);
  }
  tf.dispose([zeros, lu, lf]);
});

test('feature matching l1 vs l2, and the non-saturating G loss, by hand', () => {
  // mean real features [2, 3], mean fake features [1, -1]: diff [-1, -4].
  //   l2 = mean([1, 16]) = 8.5;  l1 = mean([1, 4]) = 2.5.
  const real = tf.tensor2d([
    [1, 2],
    [3, 4],
  ]);
  const fake = tf.tensor2d([
    [0, 0],
    [2, -2],
    [1, -1],
  ]);
  close(featureMatchingLoss(real, fake, 'l2').dataSync()[0], 8.5, 1e-6, 'l2');
  close(featureMatchingLoss(real, fake).dataSync()[0], 8.5, 1e-6, 'default (l2)');
  close(featureMatchingLoss(real, fake, 'l1').dataSync()[0], 2.5, 1e-6, 'l1');
  close(featureMatchingLoss(real, real, 'l1').dataSync()[0], 0, 0, 'same features: 0');

  // -log D(G(z)): row [0, 0]: Z = 2, D = 2/3, -log D = log 1.5 = 0.4054651;
  //               row [log 3, 0]: Z = 4, D = 4/5, -log D = log 1.25 = 0.2231436; mean = 0.3143044.
  const logits = tf.tensor2d([
    [0, 0],
    [Math.log(3), 0],
  ]);
  close(nonSaturatingGeneratorLoss(logits).dataSync()[0], 0.3143044, 1e-6, 'non-saturating, by hand');
  const rng = new Rng(4);
  const arb = Array.from({ length: 6 }, () => Array.from(rng.fillNormal(new Float32Array(4), 4)));
  const lt = tf.tensor2d(arb);
  const want = mean(arb.map((r) => -Math.log(realnessOf(r))));
  close(nonSaturatingGeneratorLoss(lt).dataSync()[0], want, 1e-5 * Math.max(1, want), 'non-saturating vs float64');
  tf.dispose([real, fake, logits, lt]);
});

// ---------------------------------------------------------------------------------------------
// models

test('fmLayer picks the hidden layer of D that features come from; out of range is a config error', () => {
  const x = tf.randomUniform([2, 784]) as tf.Tensor2D;
  const widthOf = (featureLayer: number) => {
    const model = mnistMlp({ inputDim: 784, numClasses: 10, featureLayer });
    const d = model.createD(new Rng(1));
    const w = tf.tidy(() => model.applyD(d.vars, x, { noise: null }).features.shape[1]);
    disposeParams(d);
    return w;
  };
  assert.equal(widthOf(0), 1000);
  assert.equal(widthOf(1), 500);
  assert.equal(widthOf(-1), 250);
  assert.equal(widthOf(-5), 1000);
  for (const bad of [5, -6, 99]) {
    assert.throws(
      () => mnistMlp({ inputDim: 784, numClasses: 10, featureLayer: bad }),
      (e: unknown) =>
        e instanceof SemiganError &&
        e.code === 'SEMIGAN_ERR_CONFIG' &&
        e.message.includes('--fm-layer') &&
        e.message.includes(String(bad)),
      `featureLayer ${bad}`,
    );
  }
  x.dispose();
});

test('VBN: a generated row depends only on its own z (batch norm: on the batch)', () => {
  const z = uniformNoise(6, 100, new Rng(2));
  const zAlone = rows(z, 2, 1);
  for (const vbn of [true, false]) {
    const model = mnistMlp({ inputDim: 784, numClasses: 10, vbn });
    const g = model.createG(new Rng(1));
    assert.equal('vbn.zref' in g.vars, vbn);
    assert.ok(!g.trainable.includes('vbn.zref'), 'the reference z is not trainable');
    const inBatch = tf.tidy(() => values(rows(model.applyG(g.vars, z), 2, 1)));
    const alone = tf.tidy(() => values(model.applyG(g.vars, zAlone)));
    if (vbn)
      assert.ok(
        maxAbsDiff(inBatch, alone) <= 1e-6,
        `VBN: row alone vs in batch differ by ${maxAbsDiff(inBatch, alone)}`,
      );
    else assert.ok(maxAbsDiff(inBatch, alone) > 1e-3, 'batch norm: the row does depend on its batch');
    disposeParams(g);
  }
  tf.dispose([z, zAlone]);
});

test('VBN in training: the reference z never changes, and checkpoint -> restore brings it back exactly', async () => {
  const t = makeTrainer({ vbn: true, itersPerEpoch: 3 });
  const zref0 = values(t.g.vars['vbn.zref']);
  const w0 = values(t.g.vars['h0.w']);
  assert.deepEqual(t.g.vars['vbn.zref'].shape, [100, 100]);
  assert.equal(t.optG.state.m['vbn.zref'], undefined, 'no optimizer state for the reference z');
  t.initialize();
  await t.run();
  assert.equal(t.step, 3);
  assert.deepEqual(values(t.g.vars['vbn.zref']), zref0, 'reference z after 3 iterations');
  assert.ok(maxAbsDiff(values(t.g.vars['h0.w']), w0) > 0, 'G did train');

  const ckpt = t.checkpoint();
  assert.deepEqual(Array.from(ckpt.tensors['g/vbn.zref'].data), zref0);
  const u = makeTrainer({ vbn: true, seed: 77 }); // another seed: another reference batch
  assert.notDeepEqual(values(u.g.vars['vbn.zref']), zref0);
  u.restore(ckpt);
  assert.deepEqual(values(u.g.vars['vbn.zref']), zref0, 'restored reference z');
  // Same G after restore: the same z gives the same samples.
  const z = uniformNoise(4, 100, new Rng(9));
  const [a, b] = tf.tidy(() => [values(t.model.applyG(t.g.vars, z)), values(u.model.applyG(u.g.vars, z))]);
  assert.deepEqual(b, a);
  z.dispose();
  t.dispose();
  u.dispose();
});

test('MBD: D output depends on the batch; groups [b, u, f] give each source its own statistics', () => {
  const args = { kernels: 10, dim: 5 };
  const model = mnistMlp({ inputDim: 784, numClasses: 10, mbd: args });
  assert.equal(model.batchDependentD, true);
  assert.equal(mnistMlp({ inputDim: 784, numClasses: 10 }).batchDependentD, false);
  const rng = new Rng(6);
  const d = model.createD(rng);
  const g = model.createG(rng);
  const dim = 784;
  const real = (start: number, n: number) =>
    tf.tensor2d(allRows(data.train.x).slice(start * dim, (start + n) * dim), [n, dim]);
  const xInit = real(0, 100);
  model.initD(d, xInit, { noise: null }); // scales the kernels so that neighbours' c is not ~0
  const [b, u, f] = [5, 7, 5];
  const xLab = real(100, b);
  const xUnl = real(120, u);
  const xFake = tf.tidy(() => model.applyG(g.vars, uniformNoise(f, model.zDim, rng)));
  const logitsOf = (x: tf.Tensor2D, opts: ApplyOptions) => tf.tidy(() => values(model.applyD(d.vars, x, opts).logits));
  const K = 10;

  // A row's logits change with its batch-mates (so evaluation/export must score rows in minibatches).
  const alone = logitsOf(rows(xLab, 0, 1), { noise: null });
  const inLab = logitsOf(xLab, { noise: null }).slice(0, K);
  assert.ok(maxAbsDiff(alone, inLab) > 1e-3, `row 0 alone vs with its batch: max diff ${maxAbsDiff(alone, inLab)}`);

  // The trainer's concatenated pass with groups: each block equals its source alone.
  const x = tf.concat([xLab, xUnl, xFake]) as tf.Tensor2D;
  const grouped = logitsOf(x, { noise: null, groups: [b, u, f] });
  closeAll(grouped.slice(0, b * K), logitsOf(xLab, { noise: null }), 1e-5, 'labeled block vs labeled alone');
  closeAll(
    grouped.slice(b * K, (b + u) * K),
    logitsOf(xUnl, { noise: null }),
    1e-5,
    'unlabeled block vs unlabeled alone',
  );
  closeAll(grouped.slice((b + u) * K), logitsOf(xFake, { noise: null }), 1e-5, 'generated block vs generated alone');
  // Without groups the labeled rows would see the unlabeled and generated ones.
  const mixed = logitsOf(x, { noise: null });
  assert.ok(maxAbsDiff(mixed.slice(0, b * K), grouped.slice(0, b * K)) > 1e-3, 'one group over all sources differs');

  tf.dispose([xInit, xLab, xUnl, xFake, x]);
  disposeParams(d);
  disposeParams(g);
});

test('MBD in the Trainer: the D step passes groups [b, u, f]; evaluation scores minibatches of --batch-size', async () => {
  const calls: { rows: number; groups?: number[]; noise: boolean }[] = [];
  const spy = (m: GanModel): GanModel => ({
    ...m,
    applyD: (d, x, opts) => {
      calls.push({ rows: x.shape[0], groups: opts.groups, noise: opts.noise !== null });
      return m.applyD(d, x, opts);
    },
  });
  const t = makeTrainer({ mbd: true, itersPerEpoch: 1 }, spy);
  t.initialize();
  await t.run();
  // Iteration: D step on 20 + 20 + 20 rows in one pass, then G's two feature passes (20 rows each).
  assert.deepEqual(calls.slice(0, 3), [
    { rows: 60, groups: [20, 20, 20], noise: true },
    { rows: 20, groups: undefined, noise: true },
    { rows: 20, groups: undefined, noise: true },
  ]);
  // Evaluation of 50 test rows, EMA then current weights: chunks of the batch size, noise off.
  const evalCalls = calls.slice(3).map((c) => [c.rows, c.noise]);
  assert.deepEqual(evalCalls, [
    [20, false],
    [20, false],
    [10, false],
    [20, false],
    [20, false],
    [10, false],
  ]);
  t.dispose();
});

// ---------------------------------------------------------------------------------------------
// historical averaging state in the Trainer

test('HA: the running means and step count survive checkpoint -> restore exactly', async () => {
  const t = makeTrainer({ ha: 1e-3 });
  t.initialize();
  await t.run();
  assert.ok(t.haD && t.haG);
  assert.equal(t.haD.count, 2);
  assert.equal(t.haG.count, 2);
  const ckpt = t.checkpoint();
  assert.equal(ckpt.meta.haSteps, 2);
  assert.deepEqual(
    Object.keys(ckpt.tensors)
      .filter((k) => k.startsWith('haD/'))
      .sort(),
    t.d.trainable.map((n) => `haD/${n}`).sort(),
  );
  assert.deepEqual(
    Object.keys(ckpt.tensors)
      .filter((k) => k.startsWith('haG/'))
      .sort(),
    t.g.trainable.map((n) => `haG/${n}`).sort(),
  );
  // After 2 steps the mean is (theta_1 + theta_2)/2, which differs from the current theta_3.
  assert.ok(maxAbsDiff(values(t.haD.mean['l0.v']), values(t.d.vars['l0.v'])) > 0);

  const u = makeTrainer({ ha: 1e-3, seed: 42 });
  u.restore(ckpt);
  assert.ok(u.haD && u.haG);
  assert.equal(u.haD.count, 2);
  assert.equal(u.haG.count, 2);
  for (const [ha, hb] of [
    [t.haD, u.haD],
    [t.haG, u.haG],
  ] as const) {
    for (const [name, m] of Object.entries(ha.mean))
      assert.deepEqual(values(hb.mean[name]), values(m), `mean of ${name}`);
  }
  const pen = (h: HistoricalAverage) => tf.tidy(() => h.penalty().dataSync()[0]);
  assert.equal(pen(u.haD), pen(t.haD));
  assert.equal(pen(u.haG), pen(t.haG));
  // Without --ha there is no HA state in the checkpoint.
  const v = makeTrainer({});
  assert.equal(v.haD, null);
  assert.equal(
    Object.keys(v.checkpoint().tensors).some((k) => k.startsWith('ha')),
    false,
  );
  for (const x of [t, u, v]) x.dispose();
});

test('HA: the logged G loss excludes the penalty (as the D losses do)', async () => {
  // Step 1's penalty is 0. Adam's first step moves each of G's ~0.69M trainable parameters by ~lr
  // (0.003), so step 2's G penalty is ~ 0.69e6 * 0.003^2 / 4 ~ 1.6 before weighting: with weight 1e6
  // it would put loss_gen (the mean of 2 steps) near 8e5. Feature matching itself stays O(1).
  const t = makeTrainer({ ha: 1e6 });
  t.initialize();
  await t.run();
  const pen = tf.tidy(() => t.haG!.penalty().dataSync()[0]);
  assert.ok(pen * 1e6 > 1e4, `G's penalty is large here: ${pen} x 1e6`);
  const m = JSON.parse(readFileSync(join(t.config.out, 'metrics.jsonl'), 'utf8').trim()) as EpochMetrics;
  assert.ok(Number.isFinite(m.loss_gen) && m.loss_gen < 100, `loss_gen ${m.loss_gen}`);
  assert.ok(m.loss_lab < 100 && m.loss_unl < 100, `D losses ${m.loss_lab}, ${m.loss_unl}`);
  t.dispose();
});

// ---------------------------------------------------------------------------------------------
// all combinations

test('all 32 combinations of fm, mbd, ha, label smoothing and vbn train without NaN', async () => {
  const names = ['fm', 'mbd', 'ha', 'ls', 'vbn'] as const;
  const started = performance.now();
  const tensorsBefore = tf.memory().numTensors;
  for (let bits = 0; bits < 32; bits++) {
    const on = (i: number) => (bits & (1 << i)) !== 0;
    const label = names.filter((_, i) => on(i)).join('+') || 'none';
    // Two iterations: the second has HA's first non-zero penalty and Adam's second update.
    const iters = 2;
    const t = makeTrainer({
      fm: on(0),
      mbd: on(1),
      ha: on(2) ? 1e-3 : 0,
      labelSmoothing: on(3) ? 0.9 : 1,
      vbn: on(4),
      itersPerEpoch: iters,
    });
    t.initialize();
    const res = await t.run();
    assert.equal(res.step, iters, label);
    for (const k of ['accuracy', 'accuracyCurrent', 'seconds'] as const)
      assert.ok(Number.isFinite(res[k]), `${label}: result ${k} = ${res[k]}`);
    const lines = readFileSync(join(t.config.out, 'metrics.jsonl'), 'utf8').trim().split('\n');
    assert.equal(lines.length, 1, label);
    const m = JSON.parse(lines[0]) as EpochMetrics;
    for (const k of ['loss_lab', 'loss_unl', 'loss_gen', 'train_err', 'test_acc'] as const) {
      assert.ok(Number.isFinite(m[k]), `${label}: ${k} = ${m[k]}`);
    }
    assert.ok(m.loss_unl > 0 && m.loss_lab > 0, `${label}: D losses are positive cross-entropies`);
    assert.ok(m.loss_gen >= 0, `${label}: G loss ${m.loss_gen}`);
    t.dispose();
    rmSync(t.config.out, { recursive: true, force: true });
  }
  assert.equal(tf.memory().numTensors, tensorsBefore, 'no tensors leaked over 32 runs');
  console.log(`# 32 combinations in ${((performance.now() - started) / 1000).toFixed(1)} s`);
});
