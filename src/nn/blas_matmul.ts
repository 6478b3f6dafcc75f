import * as tf from '@tensorflow/tfjs';
import type { NativeAddon, WasmBackendInternals } from './native_addon.js';
import { replaceWasmKernel, restoreWasmKernel } from './wasm_kernels.js';

/**
 * The wasm backend's matMul kernels run through OpenBLAS on every core.
 *
 * tfjs's wasm backend is single-threaded in Node, and matMuls are ~70% of a training step. The
 * optional native addon (src/native/semigan_native.c, nn/native_addon.ts) multiplies tensors
 * where they lie on the wasm heap with cblas_sgemm; this module
 * registers it as the wasm BatchMatMul and _FusedMatMul kernels. Anything it does not handle (a
 * non-float32 dtype, prelu or other fused activations) goes to the original wasm kernel.
 */

export const ACT = { linear: 0, relu: 1, leakyrelu: 2, sigmoid: 3 } as const;

/**
 * Below this many multiply-adds a matMul runs on one OpenBLAS thread, because waking the other
 * threads costs more than they save, and that depends on how long they slept. Measured on 2
 * cores (AVX-512; scripts/bench/blas_threads.ts): back to back, as in a training step, 2 threads
 * win from ~2M multiply-adds (100x250x250: 0.083 against 0.127 ms); after 50 ms idle, as between
 * a server's requests, a 2-thread call takes 1.7-9 ms against 0.2-1.4 ms on one (up to
 * 64x1000x784, 50M). The rule is the caller's (training or not), never the clock's: OpenBLAS
 * splits some shapes differently on 1 and 2 threads (other bits), and a run must not depend on
 * timing.
 */
const PARALLEL_MIN_MACS = { sparse: 100e6, training: 2e6 } as const;
let pattern: keyof typeof PARALLEL_MIN_MACS = 'sparse';

/** The thread count of the OpenBLAS matMuls, 0 while tfjs's own kernels are in place. */
let blasThreads = 0;
export const openBlasThreads = () => blasThreads;

let macsDone = 0;
/** Multiply-adds done by OpenBLAS matMuls since the process started (benchmarks' FLOP count). */
export const blasMacsDone = () => macsDone;

/** How matMuls come from now on: back to back ('training') or with gaps ('sparse', the default). */
export function setMatMulPattern(p: keyof typeof PARALLEL_MIN_MACS): void {
  pattern = p;
}

export interface MatMulShape {
  outShape: number[];
  batchA: number;
  batchB: number;
  m: number;
  n: number;
  k: number;
}

/** tfjs's BatchMatMul shape rules (batch dims broadcast only when one side has batch 1). */
export function matMulShape(a: tf.TensorInfo, b: tf.TensorInfo, ta: boolean, tb: boolean): MatMulShape | null {
  const ra = a.shape.length;
  const rb = b.shape.length;
  if (ra < 2 || rb < 2) return null;
  const k = ta ? a.shape[ra - 2] : a.shape[ra - 1];
  if (k !== (tb ? b.shape[rb - 1] : b.shape[rb - 2])) return null;
  const m = ta ? a.shape[ra - 1] : a.shape[ra - 2];
  const n = tb ? b.shape[rb - 2] : b.shape[rb - 1];
  const outerA = a.shape.slice(0, -2);
  const outerB = b.shape.slice(0, -2);
  const batchA = tf.util.sizeFromShape(outerA);
  const batchB = tf.util.sizeFromShape(outerB);
  let outer: number[];
  if (batchA === batchB && outerA.length === outerB.length && outerA.every((d, i) => d === outerB[i])) outer = outerA;
  else if (batchB === 1 && outerB.length <= outerA.length) outer = outerA;
  else if (batchA === 1 && outerA.length <= outerB.length) outer = outerB;
  else return null; // general broadcasting: leave it to the original kernel
  if (m === 0 || n === 0 || k === 0) return null;
  return { outShape: [...outer, m, n], batchA, batchB, m, n, k };
}

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };

export interface BlasMatMul {
  shape: MatMulShape;
  ta: boolean;
  tb: boolean;
  bias?: tf.TensorInfo;
  act: (typeof ACT)[keyof typeof ACT];
  alpha: number;
}

/** out = act(a b + bias) through OpenBLAS on the wasm heap: a fresh output tensor. */
export function blasMatMul(
  addon: NativeAddon,
  backend: WasmBackendInternals,
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  { shape, ta, tb, bias, act, alpha }: BlasMatMul,
  threads: number,
): tf.TensorInfo {
  const macs = Math.max(shape.batchA, shape.batchB) * shape.m * shape.n * shape.k;
  macsDone += macs;
  const out = backend.makeOutput(shape.outShape, 'float32') as tf.TensorInfo;
  const off = (t: tf.TensorInfo) => backend.dataIdMap.get(t.dataId)!.memoryOffset;
  // makeOutput may have grown the heap: take its buffer only now.
  addon.matmul(
    backend.wasm.HEAPU8.buffer as ArrayBuffer,
    off(a),
    off(b),
    off(out),
    shape.batchA,
    shape.batchB,
    shape.m,
    shape.n,
    shape.k,
    ta,
    tb,
    bias ? off(bias) : -1,
    act,
    alpha,
    macs >= PARALLEL_MIN_MACS[pattern] ? threads : 1,
  );
  return out;
}

function blasKernel(addon: NativeAddon, original: tf.KernelFunc, fused: boolean, threads: number): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { inputs, attrs = {} } = args;
    const backend = args.backend as WasmBackendInternals;
    const { a, b, bias, preluActivationWeights } = inputs as Record<string, tf.TensorInfo | undefined>;
    const ta = Boolean(attrs.transposeA);
    const tb = Boolean(attrs.transposeB);
    const activation = fused ? ((attrs.activation as string | undefined) ?? 'linear') : 'linear';
    const act = ACT[activation as keyof typeof ACT];
    const shape = a && b ? matMulShape(a, b, ta, tb) : null;
    const biasOk =
      !bias || (bias.dtype === 'float32' && bias.shape.length <= 1 && tf.util.sizeFromShape(bias.shape) === shape?.n);
    // One row (a prediction at batch 1): XNNPACK, which keeps the weights packed between calls,
    // is ~2x faster than sgemm, which packs them again every call.
    if (
      !a ||
      !b ||
      !shape ||
      shape.m === 1 ||
      a.dtype !== 'float32' ||
      b.dtype !== 'float32' ||
      act === undefined ||
      preluActivationWeights ||
      !biasOk
    )
      return original(args as Parameters<tf.KernelFunc>[0]);
    const alpha = Number(attrs.leakyreluAlpha ?? 0.2);
    return blasMatMul(addon, backend, a, b, { shape, ta, tb, bias, act, alpha }, threads);
  }) as unknown as tf.KernelFunc;
}

/** Replace the wasm matMul kernels by OpenBLAS ones with `threads` threads (wasm must be active). */
export function useOpenBlasMatMul(addon: NativeAddon, threads: number): void {
  addon.setThreads(threads);
  threads = addon.getThreads(); // OpenBLAS caps it at its build's maximum
  blasThreads = threads;
  replaceWasmKernel(tf.BatchMatMul, (original) => blasKernel(addon, original, false, threads));
  replaceWasmKernel(tf._FusedMatMul, (original) => blasKernel(addon, original, true, threads));
}

/** Put tfjs's own wasm matMul kernels back (used by tests to compare both). */
export function useWasmMatMul(): void {
  blasThreads = 0;
  restoreWasmKernel(tf.BatchMatMul);
  restoreWasmKernel(tf._FusedMatMul);
}
