/**
 * Milliseconds per forward + backward pass of a conv-small-shaped stack, on wasm with our conv
 * gradients (src/nn/conv_grad.ts) and on cpu with tfjs's own, in one process; then, per conv
 * layer on wasm, what the backward pass is made of and what it replaced.
 *
 *   npx tsc -p . && node dist/scripts/bench/conv.js [--batch 300] [--iters 5] [--cpu-batch 10] [--cpu-iters 1]
 *
 * The stack is D(G(z)) so that every gradient kind runs: G = dense -> 7x7x128 -> conv2dTranspose
 * 4x4 stride 2 to 64 -> conv2dTranspose 4x4 stride 2 to 1 (28x28); D = 3x3 convs 1->32,
 * 32->64 stride 2, 64->64, 64->128 stride 2 (leaky ReLU) -> average pool -> dense 10. The loss
 * is differentiated w.r.t. every weight of both (so D's convs need d/dinput too). Median of
 * `iters` timed passes after one warm-up (cpu: `cpu-iters`, no warm-up). cpu is compared at a smaller batch (with ours and with
 * tfjs's own gradients), next to wasm at that batch. Prints figures, asserts nothing.
 */
import * as tf from '@tensorflow/tfjs';
import { cpus, loadavg } from 'node:os';
import { positiveIntOption, scriptArgs } from '../lib/args.js';
import { initBackend } from '../../src/backend.js';
import { Rng } from '../../src/rng.js';
import { conv2dFilterGrad, conv2dInputGrad } from '../../src/nn/conv_grad.js';

// tfjs's own gradients, captured before initBackend('wasm') replaces them, for the cpu figure.
const TFJS_GRADS = [tf.getGradient(tf.Conv2D), tf.getGradient(tf.Conv2DBackpropInput), tf.getGradient(tf.BatchMatMul)];

const { values } = scriptArgs({
  options: {
    batch: { type: 'string', default: '300' },
    iters: { type: 'string', default: '5' },
    'cpu-batch': { type: 'string', default: '10' },
    'cpu-iters': { type: 'string', default: '1' },
  },
});
const int = (name: keyof typeof values) => positiveIntOption(values, name);

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return (s[Math.floor((s.length - 1) / 2)] + s[Math.ceil((s.length - 1) / 2)]) / 2;
};

/** Median ms of f() (forced with dataSync, tensors disposed) over `iters` runs, after a warm-up run if `warm`. */
function timeMs(f: () => tf.Tensor | tf.Tensor[], iters: number, warm = true): number {
  const run = () => tf.tidy(() => [f()].flat().forEach((t) => t.dataSync()));
  if (warm) run();
  const ms: number[] = [];
  for (let i = 0; i < iters; i++) {
    const t = performance.now();
    run();
    ms.push(performance.now() - t);
  }
  return median(ms);
}

type Shape4 = [number, number, number, number];

interface ConvLayer {
  name: string;
  transpose: boolean;
  inShape: Shape4; // the op's input
  filterShape: Shape4;
  stride: number;
}

function layers(batch: number): ConvLayer[] {
  const conv = (name: string, hw: number, cin: number, cout: number, stride: number): ConvLayer => ({
    name,
    transpose: false,
    inShape: [batch, hw, hw, cin],
    filterShape: [3, 3, cin, cout],
    stride,
  });
  const deconv = (name: string, hw: number, cin: number, cout: number): ConvLayer => ({
    name,
    transpose: true,
    inShape: [batch, hw, hw, cin],
    filterShape: [4, 4, cout, cin],
    stride: 2,
  });
  return [
    deconv('G deconv 7x7x128 -> 14x14x64', 7, 128, 64),
    deconv('G deconv 14x14x64 -> 28x28x1', 14, 64, 1),
    conv('D conv 28x28 1->32', 28, 1, 32, 1),
    conv('D conv 28x28 32->64 /2', 28, 32, 64, 2),
    conv('D conv 14x14 64->64', 14, 64, 64, 1),
    conv('D conv 14x14 64->128 /2', 14, 64, 128, 2),
  ];
}

const outShapeOf = (l: ConvLayer): Shape4 => {
  const [b, h, w] = l.inShape;
  return l.transpose
    ? [b, h * l.stride, w * l.stride, l.filterShape[2]]
    : [b, Math.ceil(h / l.stride), Math.ceil(w / l.stride), l.filterShape[3]];
};

/** The layer's op; with subPixel, a deconv is computed by conv2dInputGrad (XNNPACK) instead of tfjs's kernel. */
const forward = (l: ConvLayer, x: tf.Tensor4D, f: tf.Tensor4D, subPixel = false) => {
  if (!l.transpose) return tf.conv2d(x, f, l.stride, 'same');
  return subPixel
    ? conv2dInputGrad(outShapeOf(l), x, f, l.stride, 'same')
    : tf.conv2dTranspose(x, f, outShapeOf(l), l.stride, 'same');
};

/** All weights of the stack, from a seeded Rng. */
function makeWeights(batch: number): Record<string, tf.Tensor> {
  const rng = new Rng(5);
  const normal = (shape: number[], std: number) =>
    tf.tensor(rng.fillNormal(new Float32Array(shape.reduce((a, b) => a * b, 1)), std), shape);
  const w: Record<string, tf.Tensor> = { fc: normal([100, 7 * 7 * 128], 0.05), out: normal([128, 10], 0.05) };
  for (const [i, l] of layers(batch).entries()) w[`k${i}`] = normal(l.filterShape, 0.05);
  return w;
}

/** d loss(D(G(z))) / d every weight. */
function stackGrads(weights: Record<string, tf.Tensor>, z: tf.Tensor2D, batch: number, subPixel: boolean): tf.Tensor[] {
  const names = Object.keys(weights);
  const ls = layers(batch);
  const loss = (...ws: tf.Tensor[]) => {
    const w = Object.fromEntries(names.map((n, i) => [n, ws[i]]));
    let h = tf.relu(tf.matMul(z, w.fc as tf.Tensor2D)).reshape([batch, 7, 7, 128]) as tf.Tensor4D;
    for (const [i, l] of ls.entries()) {
      const a = forward(l, h, w[`k${i}`] as tf.Tensor4D, subPixel);
      h = i === 1 ? tf.sigmoid(a) : l.transpose ? tf.relu(a) : tf.leakyRelu(a, 0.2);
    }
    return tf
      .matMul(h.mean([1, 2]) as tf.Tensor2D, w.out as tf.Tensor2D)
      .square()
      .mean();
  };
  return tf.grads(loss)(names.map((n) => weights[n]));
}

const fmt = (x: number) => (Number.isNaN(x) ? '-' : x.toFixed(0)).padStart(8);

/** Median ms of one forward+backward pass at `batch` rows on the current backend. */
function passMs(batch: number, iters: number, warm = true, subPixel = false): { ms: number; leaked: number } {
  const weights = makeWeights(batch);
  const z = tf.tensor2d(new Rng(6).fillUniform(new Float32Array(batch * 100)), [batch, 100]);
  const before = tf.memory().numTensors;
  const ms = timeMs(() => stackGrads(weights, z, batch, subPixel), iters, warm);
  const leaked = tf.memory().numTensors - before;
  tf.dispose([z, ...Object.values(weights)]);
  return { ms, leaked };
}

/** Run f with tfjs's own Conv2D / Conv2DBackpropInput / MatMul gradients, then put ours back. */
function withTfjsGrads<T>(f: () => T): T {
  const ours = TFJS_GRADS.map((g) => tf.getGradient(g.kernelName));
  TFJS_GRADS.forEach((g) => tf.registerGradient(g));
  try {
    return f();
  } finally {
    ours.forEach((g) => tf.registerGradient(g));
  }
}

async function main(): Promise<void> {
  const [batch, iters, cpuBatch, cpuIters] = [int('batch'), int('iters'), int('cpu-batch'), int('cpu-iters')];
  const info = await initBackend('wasm');
  if (info.name !== 'wasm') throw new Error('the wasm backend did not initialize');
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  console.log(
    '# conv stack D(G(z)) forward+backward: G 7x7x128 -> deconv 4x4/2 64 -> deconv 4x4/2 1, D 3x3 convs 32, 64/2, 64, 128/2 -> pool -> dense 10',
  );
  console.log(
    `# node ${process.version}, ${cpus().length} cores, loadavg ${loadavg()
      .map((x) => x.toFixed(2))
      .join(
        ' ',
      )}, wasm simd ${simd}; median of ${iters} wasm passes after a warm-up, ${cpuIters} cpu passes (no warm-up)`,
  );

  const leakNote = (n: number) => (n ? `  (${n} tensors leaked!)` : '');
  const big = passMs(batch, iters);
  console.log(
    `batch ${String(batch).padEnd(4)} wasm, our conv grads   ${fmt(big.ms)} ms per pass${leakNote(big.leaked)}`,
  );
  const sub = passMs(batch, iters, true, true);
  console.log(
    `batch ${String(batch).padEnd(4)} wasm, our conv grads   ${fmt(sub.ms)} ms per pass with G's deconvs as conv2dInputGrad (sub-pixel) instead of tf.conv2dTranspose${leakNote(sub.leaked)}`,
  );
  // cpu is far slower (and tfjs's cpu Conv2DBackpropFilter pathologically so): compare at a small batch.
  const small = passMs(cpuBatch, iters);
  console.log(
    `batch ${String(cpuBatch).padEnd(4)} wasm, our conv grads   ${fmt(small.ms)} ms per pass${leakNote(small.leaked)}`,
  );
  await tf.setBackend('cpu');
  const cpuOurs = passMs(cpuBatch, cpuIters, false);
  console.log(
    `batch ${String(cpuBatch).padEnd(4)} cpu,  our conv grads   ${fmt(cpuOurs.ms)} ms per pass  (cpu / wasm = ${(cpuOurs.ms / small.ms).toFixed(1)}x)`,
  );
  const cpuTfjs = withTfjsGrads(() => passMs(cpuBatch, cpuIters, false));
  console.log(
    `batch ${String(cpuBatch).padEnd(4)} cpu,  tfjs's own grads ${fmt(cpuTfjs.ms)} ms per pass  (cpu / wasm = ${(cpuTfjs.ms / small.ms).toFixed(1)}x)`,
  );
  await tf.setBackend('wasm');

  console.log(
    `\n# per layer on wasm at batch ${batch}, ms (median of ${iters}). fwd: tfjs's op (a deconv is the wasm Conv2DBackpropInput kernel);`,
  );
  console.log(
    "# fwd sub-px: a deconv as conv2dInputGrad; dx: ours (a deconv's is a plain conv2d) vs the Conv2DBackpropInput kernel tfjs uses; dW: ours",
  );
  console.log(`${'layer'.padEnd(30)}     fwd fwd sub-px dx ours  dx tfjs  dW ours`);
  for (const l of layers(batch)) {
    const normal = (shape: Shape4) => tf.randomNormal<tf.Rank.R4>(shape);
    const [x, f, dy] = [normal(l.inShape), normal(l.filterShape), normal(outShapeOf(l))];
    const t = (g: () => tf.Tensor) => timeMs(g, iters);
    const fwd = t(() => forward(l, x, f));
    const fwdSubPixel = l.transpose ? t(() => conv2dInputGrad(outShapeOf(l), x, f, l.stride, 'same')) : NaN;
    const dx = l.transpose
      ? t(() => tf.conv2d(dy, f, l.stride, 'same'))
      : t(() => conv2dInputGrad(l.inShape, dy, f, l.stride, 'same'));
    const dxTfjs = l.transpose ? NaN : t(() => tf.conv2dTranspose(dy, f, l.inShape, l.stride, 'same'));
    // conv2dTranspose(x) = Conv2DBackpropInput(dy = x): its filter gradient is that of conv2d(out) -> x.
    const dw = l.transpose
      ? t(() => conv2dFilterGrad(dy, x, l.filterShape, l.stride, 'same'))
      : t(() => conv2dFilterGrad(x, dy, l.filterShape, l.stride, 'same'));
    console.log(`${l.name.padEnd(30)}${fmt(fwd)} ${fmt(fwdSubPixel)} ${fmt(dx)} ${fmt(dxTfjs)} ${fmt(dw)}`);
    tf.dispose([x, f, dy]);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
