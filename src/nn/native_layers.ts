import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../rng.js';
import { ACT, blasMatMul, matMulShape, openBlasThreads } from './blas_matmul.js';
import type { NativeAddon, WasmBackendInternals } from './native_addon.js';
import { batchNormShift } from './batch_norm.js';
import { stableSoftplus } from './activations.js';

/**
 * A training step's layers in a few native calls instead of many small wasm kernels.
 *
 * In tfjs a weight-normed dense layer with its bias, ReLU and Gaussian noise is ~10 kernel calls
 * forward and ~25 backward (each with JavaScript bookkeeping that costs more than the kernel):
 * more than half of an MNIST step's ~1000 calls. Here the layer is three kernels forward
 * (weight norm, matMul with bias and ReLU, noise) and three backward (weight norm, ReLU and bias,
 * and the two matMuls the tape asks for), each one native call on the wasm heap. The float32
 * operations and their order are tfjs's, so the numbers are bit-identical
 * (test/nn/native_layers.test.ts). Used with the addon and OpenBLAS matMuls on the wasm
 * backend; anything else composes tfjs ops.
 */
let native: NativeAddon | null = null;

const WEIGHT_NORM = 'SemiganWeightNorm';
const WEIGHT_NORM_GRAD = 'SemiganWeightNormGrad';
const DENSE = 'SemiganDense';
const ACT_GRAD = 'SemiganActGrad';
const ADD_NOISE = 'SemiganAddNoise';
const BN_SOFTPLUS = 'SemiganBnSoftplus';
const BN_SOFTPLUS_GRAD = 'SemiganBnSoftplusGrad';
const D_LOSSES = 'SemiganDLosses';
const D_LOSSES_GRAD = 'SemiganDLossesGrad';

export type DenseActivation = 'linear' | 'relu' | 'sigmoid';

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };

/** The heap, offsets and outputs a native kernel needs from the wasm backend. */
function heapOf(backendArg: unknown) {
  const backend = backendArg as WasmBackendInternals;
  return {
    backend,
    off: (t: tf.TensorInfo) => backend.dataIdMap.get(t.dataId)!.memoryOffset,
    out: (shape: number[]) => backend.makeOutput(shape, 'float32') as tf.TensorInfo,
    // Only after the last makeOutput: it may grow (and so replace) the heap.
    heap: () => backend.wasm.HEAPU8.buffer as ArrayBuffer,
  };
}

const kernelFunc = (f: (args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[]) => f as unknown as tf.KernelFunc;

/**
 * [dz, db] of a layer's activation and bias from its output y [rows, cols] (leaky relu: dz = dy *
 * (y > 0 ? 1 : slope)), one native call; for the native layers' gradients only.
 */
export function activationGrad(
  dy: tf.Tensor,
  y: tf.Tensor,
  activation: keyof typeof ACT,
  slope = 0,
): [tf.Tensor2D, tf.Tensor1D] {
  return tf.engine().runKernel(ACT_GRAD, { dy, y }, { activation, slope }) as [tf.Tensor2D, tf.Tensor1D];
}

function registerKernels(): void {
  tf.registerKernel({
    kernelName: WEIGHT_NORM,
    backendName: 'wasm',
    kernelFunc: kernelFunc(({ inputs, backend }) => {
      const { v, g } = inputs as { v: tf.TensorInfo; g: tf.TensorInfo };
      const h = heapOf(backend);
      const w = h.out(v.shape);
      native!.weightNorm(h.heap(), h.off(v), h.off(g), h.off(w), v.shape[0], v.shape[1]);
      return w;
    }),
  });
  tf.registerKernel({
    kernelName: WEIGHT_NORM_GRAD,
    backendName: 'wasm',
    kernelFunc: kernelFunc(({ inputs, backend }) => {
      const { dw, v, g } = inputs as { dw: tf.TensorInfo; v: tf.TensorInfo; g: tf.TensorInfo };
      const h = heapOf(backend);
      const dv = h.out(v.shape);
      const dg = h.out(g.shape);
      native!.weightNormGrad(h.heap(), h.off(dw), h.off(v), h.off(g), h.off(dv), h.off(dg), v.shape[0], v.shape[1]);
      return [dv, dg];
    }),
  });
  tf.registerGradient({
    kernelName: WEIGHT_NORM,
    inputsToSave: ['v', 'g'],
    gradFunc: (dy, saved) => {
      const [v, g] = saved;
      const [dv, dg] = tf.engine().runKernel(WEIGHT_NORM_GRAD, { dw: dy as tf.Tensor, v, g }) as tf.Tensor[];
      return { v: () => dv, g: () => dg };
    },
  });

  tf.registerKernel({
    kernelName: DENSE,
    backendName: 'wasm',
    kernelFunc: kernelFunc(({ inputs, backend, attrs }) => {
      const { x, w, b } = inputs as { x: tf.TensorInfo; w: tf.TensorInfo; b: tf.TensorInfo };
      const shape = matMulShape(x, w, false, false)!;
      const act = ACT[attrs!.activation as DenseActivation];
      return blasMatMul(
        native!,
        backend as WasmBackendInternals,
        x,
        w,
        { shape, ta: false, tb: false, bias: b, act, alpha: 0 },
        openBlasThreads(),
      );
    }),
  });
  tf.registerKernel({
    kernelName: ACT_GRAD,
    backendName: 'wasm',
    kernelFunc: kernelFunc(({ inputs, backend, attrs }) => {
      const { dy, y } = inputs as { dy: tf.TensorInfo; y?: tf.TensorInfo };
      const [rows, cols] = dy.shape;
      const h = heapOf(backend);
      const dz = y ? h.out(dy.shape) : null;
      const db = h.out([cols]);
      const act = ACT[attrs!.activation as keyof typeof ACT];
      const slope = (attrs!.slope as number | undefined) ?? 0;
      native!.actGrad(h.heap(), h.off(dy), y ? h.off(y) : -1, dz ? h.off(dz) : -1, h.off(db), rows, cols, act, slope);
      return dz ? [dz, db] : [db];
    }),
  });
  tf.registerGradient({
    kernelName: DENSE,
    inputsToSave: ['x', 'w'],
    outputsToSave: [true],
    gradFunc: (dy, saved, attrs) => {
      const [x, w, y] = saved;
      const { activation } = attrs as { activation: DenseActivation };
      const linear = activation === 'linear';
      const inputs: tf.NamedTensorMap = linear ? { dy: dy as tf.Tensor } : { dy: dy as tf.Tensor, y };
      const grads = tf.engine().runKernel(ACT_GRAD, inputs, { activation }) as tf.Tensor[];
      const [dz, db] = linear ? [dy as tf.Tensor, grads[0]] : grads;
      // Only the matMuls the tape needs run (not x's for the first layer, nor D's kernels in G's step).
      return { x: () => tf.matMul(dz, w, false, true), w: () => tf.matMul(x, dz, true, false), b: () => db };
    },
  });

  tf.registerKernel({
    kernelName: ADD_NOISE,
    backendName: 'wasm',
    kernelFunc: kernelFunc(({ inputs, backend, attrs }) => {
      const { x } = inputs as { x: tf.TensorInfo };
      const { std, rng } = attrs as unknown as { std: number; rng: Rng };
      const h = heapOf(backend);
      const out = h.out(x.shape);
      const n = tf.util.sizeFromShape(x.shape);
      const heap = h.heap();
      rng.fillNormal(new Float32Array(heap, h.off(out), n), std); // no tfjs call in between: the heap stays
      native!.addTo(heap, h.off(out), h.off(x), n);
      return out;
    }),
  });
  tf.registerGradient({ kernelName: ADD_NOISE, gradFunc: (dy) => ({ x: () => (dy as tf.Tensor).clone() }) });

  tf.registerKernel({
    kernelName: BN_SOFTPLUS,
    backendName: 'wasm',
    kernelFunc: kernelFunc(({ inputs, backend, attrs }) => {
      const { h, shift } = inputs as { h: tf.TensorInfo; shift: tf.TensorInfo };
      const k = heapOf(backend);
      const out = k.out(h.shape);
      native!.bnSoftplus(
        k.heap(),
        k.off(h),
        k.off(shift),
        k.off(out),
        h.shape[0],
        h.shape[1],
        attrs!.epsilon as number,
      );
      return out;
    }),
  });
  tf.registerKernel({
    kernelName: BN_SOFTPLUS_GRAD,
    backendName: 'wasm',
    kernelFunc: kernelFunc(({ inputs, backend, attrs }) => {
      const { dy, h, shift } = inputs as { dy: tf.TensorInfo; h: tf.TensorInfo; shift: tf.TensorInfo };
      const k = heapOf(backend);
      const dh = k.out(h.shape);
      const dshift = k.out(shift.shape);
      const [rows, cols] = h.shape;
      native!.bnSoftplusGrad(
        k.heap(),
        k.off(dy),
        k.off(h),
        k.off(shift),
        k.off(dh),
        k.off(dshift),
        rows,
        cols,
        attrs!.epsilon as number,
      );
      return [dh, dshift];
    }),
  });
  const dLosses = (args: KernelArgs, dy: tf.TensorInfo | null) => {
    const { logits, labels } = args.inputs as { logits: tf.TensorInfo; labels: tf.TensorInfo };
    const spec = args.attrs as unknown as DiscriminatorLossSpec;
    const k = heapOf(args.backend);
    const out = k.out(dy ? logits.shape : [4]);
    // dy[0] (the total's gradient) is read before the call: the heap may move with `out`.
    const dTotal = dy
      ? (args.backend as WasmBackendInternals & { readSync(id: object): Float32Array }).readSync(dy.dataId)[0]
      : 0;
    native!.dLosses(
      k.heap(),
      k.off(logits),
      k.off(labels),
      dy ? -1 : k.off(out),
      dy ? k.off(out) : -1,
      logits.shape[0],
      logits.shape[1],
      spec.labeled,
      spec.unlabeled,
      spec.generated,
      spec.secondLook ?? -1,
      spec.realTarget,
      spec.unlabeledWeight,
      spec.entropy,
      spec.consistency,
      dTotal,
    );
    return out;
  };
  tf.registerKernel({
    kernelName: D_LOSSES,
    backendName: 'wasm',
    kernelFunc: kernelFunc((args) => dLosses(args, null)),
  });
  tf.registerKernel({
    kernelName: D_LOSSES_GRAD,
    backendName: 'wasm',
    kernelFunc: kernelFunc((args) => dLosses(args, (args.inputs as { dy: tf.TensorInfo }).dy)),
  });
  tf.registerGradient({
    kernelName: D_LOSSES,
    inputsToSave: ['logits', 'labels'],
    gradFunc: (dy, saved, attrs) => {
      const [logits, labels] = saved;
      // Only the total (dy's element 0, read by the kernel) carries a gradient; the parts are for the log.
      return {
        logits: () => tf.engine().runKernel(D_LOSSES_GRAD, { logits, labels, dy: dy as tf.Tensor }, attrs) as tf.Tensor,
        labels: () => tf.zerosLike(labels),
      };
    },
  });

  tf.registerGradient({
    kernelName: BN_SOFTPLUS,
    inputsToSave: ['h', 'shift'],
    gradFunc: (dy, saved, attrs) => {
      const [h, shift] = saved;
      const [dh, dshift] = tf
        .engine()
        .runKernel(BN_SOFTPLUS_GRAD, { dy: dy as tf.Tensor, h, shift }, attrs) as tf.Tensor[];
      return { h: () => dh, shift: () => dshift };
    },
  });
}

let registered = false;

/** Use the native layer kernels from now on (with the addon), or tfjs ops (null). */
export function useNativeLayers(addon: NativeAddon | null): void {
  native = addon;
  if (addon && !registered) {
    registerKernels();
    registered = true;
  }
}

/** Native only on float32 tensors of the wasm backend, with OpenBLAS doing its matMuls. */
const nativeFor = (...ts: tf.Tensor[]) =>
  native !== null && openBlasThreads() > 0 && tf.getBackend() === 'wasm' && ts.every((t) => t.dtype === 'float32');

/** W = v * g / ||v|| per column (weight normalization's kernel), for a 2-D v. */
export function weightNormNative(v: tf.Tensor2D, g: tf.Tensor1D): tf.Tensor2D | null {
  if (!nativeFor(v, g) || v.shape[0] === 0 || v.shape[1] === 0) return null;
  return tf.engine().runKernel(WEIGHT_NORM, { v, g }) as tf.Tensor2D;
}

/** act(x w + b) for x [B, in], w [in, out], b [out]. */
export function dense(x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D, activation: DenseActivation): tf.Tensor2D {
  if (nativeFor(x, w, b) && x.shape[0] > 1 && x.shape[1] === w.shape[0] && b.shape[0] === w.shape[1])
    return tf.engine().runKernel(DENSE, { x, w, b }, { activation }) as tf.Tensor2D;
  const z = tf.matMul(x, w).add(b) as tf.Tensor2D;
  return activation === 'relu' ? tf.relu(z) : activation === 'sigmoid' ? tf.sigmoid(z) : z;
}

/** x + N(0, std^2) drawn from `rng` into the output, or null when tfjs ops must do it. */
export function addNoiseNative<T extends tf.Tensor>(x: T, std: number, rng: Rng): T | null {
  if (!nativeFor(x) || x.size === 0) return null;
  return tf.engine().runKernel(ADD_NOISE, { x }, { std, rng } as unknown as tf.NamedAttrMap) as T;
}

/**
 * softplus(batch norm of h (batch statistics, no scale) + shift): the paper's MNIST generator's
 * hidden activation. Natively one call each way (tfjs: ~17 kernels forward, ~35 backward), in
 * double sums and C's expf / log1pf, so equal to the tfjs ops within float32 rounding, not bit
 * for bit (test/nn/native_layers.test.ts).
 */
export function batchNormSoftplus(h: tf.Tensor2D, shift: tf.Tensor1D, epsilon = 1e-6): tf.Tensor2D {
  if (nativeFor(h, shift) && h.shape[0] > 0 && h.shape[1] === shift.shape[0])
    return tf.engine().runKernel(BN_SOFTPLUS, { h, shift }, { epsilon }) as tf.Tensor2D;
  return stableSoftplus(batchNormShift(h, shift, epsilon));
}

/** What train/losses.ts's discriminator losses need to know about the rows of D's logits. */
export interface DiscriminatorLossSpec {
  labeled: number; // rows 0..labeled-1, with labels
  unlabeled: number; // the next rows
  generated: number; // the next rows: G's
  secondLook: number | null; // first row of the unlabeled rows' second look (consistency), or null
  realTarget: number;
  unlabeledWeight: number;
  entropy: number; // weights of the two terms (0: off)
  consistency: number;
}

/**
 * [total, labeled loss, unlabeled loss, labeled error rate] of D's logits in one native call
 * (double inside; gradient of the total), or null when tfjs ops must compose them.
 */
export function discriminatorLossesNative(
  logits: tf.Tensor2D,
  labels: tf.Tensor1D,
  spec: DiscriminatorLossSpec,
): tf.Tensor1D | null {
  if (!nativeFor(logits) || labels.dtype !== 'int32' || labels.shape[0] !== spec.labeled) return null;
  return tf.engine().runKernel(D_LOSSES, { logits, labels }, spec as unknown as tf.NamedAttrMap) as tf.Tensor1D;
}
