/**
 * The wasm conv gradients (src/nn/conv_grad.ts) and, on each route the addon has, the native conv
 * kernels (src/nn/native_conv.ts) against tfjs's own cpu kernels. Gradient
 * registration is global, so the references call the cpu kernels directly (runKernel), never
 * through a gradient; and the "wasm fails without them" test runs first, before initBackend
 * registers them (this file is its own process under node --test).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend.js';
import { Rng } from '../../src/rng.js';
import { conv2dInputGrad, wasmConv2DBackpropInputGrad, wasmConv2DGrad } from '../../src/nn/conv_grad.js';
import { loadNative } from '../../src/nn/native_addon.js';
import { useNativeConvs, type ConvRoute } from '../../src/nn/native_conv.js';
import { weightNormConvLeaky } from '../../src/nn/conv.js';

type Shape4 = [number, number, number, number];
type Pad = 'same' | 'valid' | number;

interface Case {
  name: string;
  transpose: boolean; // conv2dTranspose(a, f, outShape) instead of conv2d(a, f)
  a: Float32Array; // x of the conv, or the conv2dTranspose input
  aShape: Shape4;
  f: Float32Array;
  fShape: Shape4;
  w: Float32Array; // weights of the output, = dLoss/dOutput
  outShape: Shape4;
  strides: number;
  pad: Pad;
  dataFormat: 'NHWC' | 'NCHW';
}

const size = (s: number[]) => s.reduce((x, y) => x * y, 1);

function convCase(
  rng: Rng,
  batch: number,
  [h, w]: number[],
  cin: number,
  cout: number,
  k: number,
  strides: number,
  pad: Pad,
  dataFormat: 'NHWC' | 'NCHW' = 'NHWC',
): Case {
  const aShape: Shape4 = dataFormat === 'NHWC' ? [batch, h, w, cin] : [batch, cin, h, w];
  const fShape: Shape4 = [k, k, cin, cout];
  const info = tf.backend_util.computeConv2DInfo(
    aShape,
    fShape,
    strides,
    1,
    pad,
    undefined,
    false,
    tf.backend_util.convertConv2DDataFormat(dataFormat),
  );
  const outShape = info.outShape as Shape4;
  const normal = (s: number[]) => rng.fillNormal(new Float32Array(size(s)));
  const name = `conv2d ${dataFormat} x [${aShape}] ${k}x${k} ${cin}->${cout} stride ${strides} pad ${pad}`;
  return {
    name,
    transpose: false,
    a: normal(aShape),
    aShape,
    f: normal(fShape),
    fShape,
    w: normal(outShape),
    outShape,
    strides,
    pad,
    dataFormat,
  };
}

/** A generator's upsampling layer: [B, h, w, cin] -> [B, h*2, w*2, cout] (stride 2 'same'), or 'valid' [B, (h-1)*s+k, ...]. */
function transposeCase(
  rng: Rng,
  batch: number,
  [h, w]: number[],
  cin: number,
  cout: number,
  k: number,
  strides: number,
  pad: 'same' | 'valid',
): Case {
  const aShape: Shape4 = [batch, h, w, cin];
  const fShape: Shape4 = [k, k, cout, cin]; // tfjs's conv2dTranspose layout [kh, kw, out, in]
  const grow = (n: number) => (pad === 'same' ? n * strides : (n - 1) * strides + k);
  const outShape: Shape4 = [batch, grow(h), grow(w), cout];
  const normal = (s: number[]) => rng.fillNormal(new Float32Array(size(s)));
  const name = `conv2dTranspose [${aShape}] -> [${outShape}] ${k}x${k} stride ${strides} pad ${pad}`;
  return {
    name,
    transpose: true,
    a: normal(aShape),
    aShape,
    f: normal(fShape),
    fShape,
    w: normal(outShape),
    outShape,
    strides,
    pad,
    dataFormat: 'NHWC',
  };
}

function makeCases(rng: Rng): Case[] {
  const cases: Case[] = [];
  // [batch, cin, cout], cycled so that every kernel/stride/pad meets several channel counts.
  const chans = [
    [1, 1, 3],
    [4, 3, 16],
    [4, 16, 1],
    [1, 16, 16],
    [4, 3, 3],
  ];
  let i = 0;
  for (const k of [1, 3, 4, 5])
    for (const strides of [1, 2])
      for (const pad of ['same', 'valid'] as const)
        for (const hw of [
          [7, 7],
          [9, 5],
          [8, 6],
        ]) {
          const [batch, cin, cout] = chans[i++ % chans.length];
          cases.push(convCase(rng, batch, hw, cin, cout, k, strides, pad));
        }
  cases.push(convCase(rng, 4, [9, 7], 3, 16, 3, 2, 1)); // numeric pad
  cases.push(convCase(rng, 2, [11, 9], 16, 3, 5, 3, 'same')); // stride 3
  for (const k of [3, 4, 5])
    for (const [batch, hw, cin, cout] of [
      [4, [7, 7], 16, 3],
      [1, [4, 4], 16, 16],
      [4, [3, 5], 3, 1],
    ] as const)
      cases.push(transposeCase(rng, batch, [...hw], cin, cout, k, 2, 'same'));
  cases.push(transposeCase(rng, 4, [5, 3], 3, 16, 4, 2, 'valid'));
  cases.push(transposeCase(rng, 1, [6, 6], 16, 3, 3, 1, 'same'));
  return cases;
}

const attrsOf = (c: Case) => ({ strides: c.strides, pad: c.pad, dataFormat: c.dataFormat, dimRoundingMode: undefined });

/** tfjs's gradients from its cpu kernels, called directly: [d/da, d/df]. */
function referenceGrads(c: Case): Float32Array[] {
  assert.equal(tf.getBackend(), 'cpu');
  return tf.tidy(() => {
    const [a, f, w] = [tf.tensor(c.a, c.aShape), tf.tensor(c.f, c.fShape), tf.tensor(c.w, c.outShape)];
    const run = (kernel: string, inputs: Record<string, tf.Tensor>, attrs: object) =>
      (
        tf.engine().runKernel(kernel, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor
      ).dataSync() as Float32Array;
    if (!c.transpose) {
      return [
        run('Conv2DBackpropInput', { dy: w, filter: f }, { ...attrsOf(c), inputShape: c.aShape }),
        run('Conv2DBackpropFilter', { x: a, dy: w }, { ...attrsOf(c), filterShape: c.fShape }),
      ];
    }
    return [
      run('Conv2D', { x: w, filter: f }, { ...attrsOf(c), dilations: 1 }),
      run('Conv2DBackpropFilter', { x: w, dy: a }, { ...attrsOf(c), filterShape: c.fShape }),
    ];
  });
}

/** The case's output from tfjs's cpu kernel, called directly. */
function referenceOutput(c: Case): Float32Array {
  assert.equal(tf.getBackend(), 'cpu');
  return tf.tidy(() => {
    const [a, f] = [tf.tensor(c.a, c.aShape), tf.tensor(c.f, c.fShape)];
    const out = c.transpose
      ? tf.engine().runKernel('Conv2DBackpropInput', { dy: a, filter: f }, {
          ...attrsOf(c),
          inputShape: c.outShape,
        } as unknown as tf.NamedAttrMap)
      : tf.engine().runKernel('Conv2D', { x: a, filter: f }, {
          ...attrsOf(c),
          dilations: 1,
        } as unknown as tf.NamedAttrMap);
    return (out as tf.Tensor).dataSync() as Float32Array;
  });
}

/** The case's op; with subPixel, a conv2dTranspose is computed by our conv2dInputGrad instead. */
function opOf(c: Case, subPixel = false) {
  return (a: tf.Tensor, f: tf.Tensor) => {
    const [a4, f4] = [a as tf.Tensor4D, f as tf.Tensor4D];
    if (!c.transpose) return tf.conv2d(a4, f4, c.strides, c.pad, c.dataFormat);
    return subPixel
      ? conv2dInputGrad(c.outShape, a4, f4, c.strides, c.pad)
      : tf.conv2dTranspose(a4, f4, c.outShape, c.strides, c.pad);
  };
}

/** d/da and d/df of sum(op(a, f) * w) through the registered gradients, on the current backend. */
function gradsOf(c: Case, subPixel = false): Float32Array[] {
  return tf.tidy(() => {
    const w = tf.tensor(c.w, c.outShape);
    const op = opOf(c, subPixel);
    const grads = tf.grads((a: tf.Tensor, f: tf.Tensor) => op(a, f).mul(w).sum())([
      tf.tensor(c.a, c.aShape),
      tf.tensor(c.f, c.fShape),
    ]);
    assert.deepEqual(grads[0].shape, c.aShape);
    assert.deepEqual(grads[1].shape, c.fShape);
    return grads.map((g) => g.dataSync() as Float32Array);
  });
}

/** max |got - ref| / (1 + max |ref|): float32 sums of up to a few hundred N(0,1) products. */
function relMaxDiff(got: Float32Array, ref: Float32Array): number {
  assert.equal(got.length, ref.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < ref.length; i++) {
    diff = Math.max(diff, Math.abs(got[i] - ref[i]));
    scale = Math.max(scale, Math.abs(ref[i]));
  }
  return diff / (1 + scale);
}

function assertMatches(cases: Case[], refs: Float32Array[][], backend: string, subPixel = false): void {
  for (const [i, c] of cases.entries()) {
    const got = gradsOf(c, subPixel);
    for (const g of [0, 1]) {
      const d = relMaxDiff(got[g], refs[i][g]);
      assert.ok(d <= 1e-4, `${backend} ${c.name}: d/d${g ? 'filter' : 'input'} differs from tfjs's cpu kernel by ${d}`);
    }
  }
}

test('without these gradients the wasm backend cannot train a conv filter (no Conv2DBackpropFilter kernel)', async () => {
  await import('@tensorflow/tfjs-backend-wasm');
  assert.ok(await tf.setBackend('wasm'));
  assert.notEqual(tf.getGradient(tf.Conv2D), wasmConv2DGrad);
  const x = tf.ones([1, 5, 5, 2]) as tf.Tensor4D;
  const f = tf.ones([3, 3, 2, 4]) as tf.Tensor4D;
  assert.throws(
    () => tf.grad((filter: tf.Tensor) => tf.conv2d(x, filter as tf.Tensor4D, 1, 'same').sum())(f),
    /Conv2DBackpropFilter/,
  );
  tf.dispose([x, f]);
});

const native = loadNative();
// Every route the wasm backend's convs can take here: tfjs's kernels (the compositions above),
// and the addon's im2col + OpenBLAS and oneDNN when built with them.
const routes: ConvRoute[] = [
  'wasm',
  ...(native.ok ? (['im2col'] as const) : []),
  ...(native.ok && native.addon.convRoutes().startsWith('onednn') ? (['onednn'] as const) : []),
];

for (const route of routes)
  for (const threads of route === 'wasm' ? [1] : [1, 2])
    test(`conv2d and conv2dTranspose and their gradients on wasm, convs on ${route} (${threads} thread${threads > 1 ? 's' : ''}) = tfjs cpu kernels, for kernels 1-5, strides 1-3, same/valid/numeric pads, batch 1-4, 1/3/16 channels`, async () => {
      const info = await initBackend('wasm');
      assert.equal(info.name, 'wasm');
      assert.equal(tf.getGradient(tf.Conv2D), wasmConv2DGrad);
      assert.equal(tf.getGradient(tf.Conv2DBackpropInput), wasmConv2DBackpropInputGrad);
      useNativeConvs(native.ok ? native.addon : null, route, threads);
      try {
        const cases = makeCases(new Rng(41));
        await tf.setBackend('cpu');
        const refs = cases.map(referenceGrads);
        const refOut = cases.map(referenceOutput);
        await tf.setBackend('wasm');
        for (const [i, c] of cases.entries()) {
          const out = tf.tidy(() => opOf(c)(tf.tensor(c.a, c.aShape), tf.tensor(c.f, c.fShape)).dataSync());
          const d = relMaxDiff(out as Float32Array, refOut[i]);
          assert.ok(d <= 1e-4, `convs on ${route}, ${c.name}: the output differs from tfjs's cpu kernel by ${d}`);
        }
        // The kernels that ran: native ones for a native route (wasm has no Conv2DBackpropFilter).
        const { kernelNames } = await tf.profile(() => assertMatches(cases, refs, `wasm, convs on ${route}`));
        assert.equal(kernelNames.includes('Conv2DBackpropFilter'), route !== 'wasm', kernelNames.join());
      } finally {
        useNativeConvs(null, 'wasm', 1);
      }
    });

test('the same gradients on cpu, and NCHW there (the wasm Conv2D kernel is NHWC only)', async () => {
  await tf.setBackend('cpu');
  assert.equal(tf.getGradient(tf.Conv2D), wasmConv2DGrad); // registration is global
  const rng = new Rng(42);
  const cases = [
    convCase(rng, 4, [9, 5], 3, 16, 3, 2, 'same'),
    convCase(rng, 2, [7, 8], 16, 3, 4, 1, 'valid'),
    convCase(rng, 4, [9, 7], 3, 5, 3, 2, 'same', 'NCHW'),
    convCase(rng, 1, [8, 7], 5, 3, 5, 2, 'valid', 'NCHW'),
    transposeCase(rng, 4, [7, 7], 16, 3, 4, 2, 'same'),
  ];
  assertMatches(cases, cases.map(referenceGrads), 'cpu');
});

test('conv2dInputGrad as a conv2dTranspose forward (G layers): same outputs, and gradients through it = tfjs cpu kernels', async () => {
  await tf.setBackend('wasm');
  useNativeConvs(null, 'wasm', 1); // the sub-pixel composition, not a native kernel
  const cases = makeCases(new Rng(43)).filter((c) => c.transpose);
  assert.ok(cases.length >= 10);
  await tf.setBackend('cpu');
  const refs = cases.map(referenceGrads);
  const refOut = cases.map(referenceOutput);
  await tf.setBackend('wasm');
  for (const [i, c] of cases.entries()) {
    const out = tf.tidy(
      () => opOf(c, true)(tf.tensor(c.a, c.aShape), tf.tensor(c.f, c.fShape)).dataSync() as Float32Array,
    );
    const d = relMaxDiff(out, refOut[i]);
    assert.ok(d <= 1e-4, `${c.name}: conv2dInputGrad output differs from tfjs's cpu conv2dTranspose by ${d}`);
  }
  assertMatches(cases, refs, 'wasm sub-pixel', true);
});

test('dilated conv: a clear error instead of a wrong gradient', async () => {
  await tf.setBackend('wasm');
  const x = tf.ones([1, 9, 9, 2]) as tf.Tensor4D;
  const f = tf.ones([3, 3, 2, 4]) as tf.Tensor4D;
  assert.throws(
    () => tf.grad((filter: tf.Tensor) => tf.conv2d(x, filter as tf.Tensor4D, 1, 'same', 'NHWC', 2).sum())(f),
    /dilations must be 1/,
  );
  tf.dispose([x, f]);
});

test('D conv layer (weight-normed conv + bias + leaky ReLU) as one native kernel on every route = the tfjs ops on cpu, value and gradients', async () => {
  await initBackend('wasm');
  const rng = new Rng(44);
  // The presets' own layers (conv-small, conv-large) at small batches, and batch 1 / odd sizes.
  const shapes: [number[], number, number, number, 'same' | 'valid'][] = [
    [[3, 28, 28, 1], 16, 3, 1, 'same'],
    [[3, 28, 28, 16], 32, 3, 2, 'same'],
    [[1, 9, 7, 3], 8, 3, 2, 'same'],
    [[2, 8, 8, 64], 32, 3, 1, 'valid'],
    [[2, 5, 5, 32], 32, 1, 1, 'same'],
  ];
  const layers = shapes.map(([xShape, oc, k, stride, padding]) => {
    const normal = (s: number[], std = 1) => tf.tensor(rng.fillNormal(new Float32Array(size(s)), std), s);
    const x = normal(xShape) as tf.Tensor4D;
    const v = normal([k, k, xShape[3], oc], 0.05) as tf.Tensor4D;
    const g = normal([oc]).abs() as tf.Tensor1D;
    const b = normal([oc], 0.1) as tf.Tensor1D;
    const probe = xShape
      .slice(0, 3)
      .map((d, i) => (i === 0 ? d : padding === 'same' ? Math.ceil(d / stride) : Math.ceil((d - k + 1) / stride)));
    const w = normal([...probe, oc]);
    const f = (xx: tf.Tensor, vv: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) =>
      weightNormConvLeaky(xx as tf.Tensor4D, vv as tf.Tensor4D, gg as tf.Tensor1D, bb as tf.Tensor1D, stride, padding);
    return { name: `[${xShape}] ${k}x${k} -> ${oc} stride ${stride} ${padding}`, x, v, g, b, w, f };
  });
  const run = () =>
    layers.map((l) =>
      tf.tidy(() => {
        const out = l.f(l.x, l.v, l.g, l.b);
        const grads = tf.grads((x: tf.Tensor, v: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
          l.f(x, v, g, b).mul(l.w).sum(),
        )([l.x, l.v, l.g, l.b]);
        return [out, ...grads].map((t) => t.dataSync() as Float32Array);
      }),
    );
  await tf.setBackend('cpu');
  const refs = run();
  await tf.setBackend('wasm');
  for (const route of routes.filter((r) => r !== 'wasm')) {
    useNativeConvs(native.ok ? native.addon : null, route, 2);
    try {
      const { kernelNames } = await tf.profile(() => {
        run().forEach((got, i) =>
          ['output', 'd/dx', 'd/dv', 'd/dg', 'd/db'].forEach((what, j) => {
            const d = relMaxDiff(got[j], refs[i][j]);
            assert.ok(d <= 1e-4, `convs on ${route}, ${layers[i].name}: ${what} differs from tfjs on cpu by ${d}`);
          }),
        );
      });
      assert.ok(kernelNames.includes('SemiganConvLayer'), kernelNames.join());
    } finally {
      useNativeConvs(null, 'wasm', 1);
    }
  }
  tf.dispose(layers.flatMap((l) => [l.x, l.v, l.g, l.b, l.w]));
});

test('an empty batch on every native route: empty outputs, a zero filter gradient (as tfjs on cpu)', async () => {
  await initBackend('wasm');
  for (const route of routes.filter((r) => r !== 'wasm')) {
    useNativeConvs(native.ok ? native.addon : null, route, 2);
    try {
      const x = tf.zeros([0, 7, 7, 3]) as tf.Tensor4D;
      const w = tf.ones([3, 3, 3, 4]) as tf.Tensor4D;
      const y = tf.conv2d(x, w, 2, 'same');
      assert.deepEqual(y.shape, [0, 4, 4, 4]);
      const [dx, dw] = tf.grads((a: tf.Tensor, f: tf.Tensor) =>
        tf.conv2d(a as tf.Tensor4D, f as tf.Tensor4D, 2, 'same').sum(),
      )([x, w]);
      assert.deepEqual(dx.shape, [0, 7, 7, 3]);
      assert.deepEqual([...dw.dataSync()], new Array(3 * 3 * 3 * 4).fill(0), route);
      tf.dispose([x, w, y, dx, dw]);
    } finally {
      useNativeConvs(null, 'wasm', 1);
    }
  }
});
