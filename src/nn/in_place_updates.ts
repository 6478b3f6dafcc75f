import * as tf from '@tensorflow/tfjs';
import type { NativeAddon, WasmBackendInternals } from './native_addon.js';

/**
 * Adam and EMA updates in one native pass over each parameter, in place on the wasm heap.
 *
 * In tfjs each parameter's Adam step is ~13 kernel calls (and a fresh tensor each), the EMA 3:
 * ~520 calls per training iteration of the paper's model, a quarter of the step once matMuls run
 * on OpenBLAS. The native loops do the same float32 operations in the same order, so the numbers
 * are bit-identical (test/nn/in_place_updates.test.ts). Only tensors that no other tensor shares
 * (refCount 1) are written in place; anything else takes the tfjs path. A parameter itself gets a
 * fresh tensor, as tfjs's assign would give it: XNNPACK keeps packed copies of matMul and conv
 * weights keyed by tensor, and those copies must not go stale.
 */
let native: NativeAddon | null = null;

/** Turn the native updates on (wasm backend with the addon) or off (null). */
export function useInPlaceUpdates(addon: NativeAddon | null): void {
  native = addon;
}

/** Heap offsets of float32 tensors owned by nobody else, or null when one of them is not. */
function heapOffsets(
  tensors: tf.Tensor[],
  writable: number,
): { backend: WasmBackendInternals; offsets: number[] } | null {
  if (!native || tf.getBackend() !== 'wasm') return null;
  const backend = tf.backend() as unknown as WasmBackendInternals;
  const offsets: number[] = [];
  for (let i = 0; i < tensors.length; i++) {
    const t = tensors[i];
    const data = t.dtype === 'float32' && !t.isDisposed ? backend.dataIdMap.get(t.dataId) : undefined;
    if (!data || data.memoryOffset == null || (i < writable && data.refCount !== 1)) return null;
    offsets.push(data.memoryOffset);
  }
  return { backend, offsets };
}

export interface AdamStep {
  beta1: number;
  beta2: number;
  lrOverC1: number; // lr / (1 - beta1^t)
  c2: number; // 1 - beta2^t
  epsilon: number;
}

/** m and v updated in place, p assigned its new value, as Adam.apply's tfjs ops would; false if it could not (caller does it). */
export function adamInPlace(p: tf.Variable, m: tf.Variable, v: tf.Variable, g: tf.Tensor, s: AdamStep): boolean {
  if (g.size !== p.size || m.size !== p.size || v.size !== p.size) return false;
  const found = heapOffsets([m, v, p, g], 2);
  if (!found) return false;
  const [mOff, vOff, pOff, gOff] = found.offsets;
  const info = found.backend.makeOutput(p.shape, 'float32') as tf.TensorInfo;
  const out = found.backend.dataIdMap.get(info.dataId)!.memoryOffset;
  // makeOutput may have grown the heap: take its buffer only now.
  native!.adam(
    found.backend.wasm.HEAPU8.buffer as ArrayBuffer,
    pOff,
    mOff,
    vOff,
    gOff,
    out,
    p.size,
    s.beta1,
    s.beta2,
    s.lrOverC1,
    s.c2,
    s.epsilon,
  );
  const next = tf.engine().makeTensorFromTensorInfo(info);
  p.assign(next);
  next.dispose();
  return true;
}

/** shadow = shadow * decay + p * (1 - decay) in place; false if it could not (caller does it). */
export function emaInPlace(shadow: tf.Variable, p: tf.Tensor, decay: number): boolean {
  if (shadow.size !== p.size) return false;
  const found = heapOffsets([shadow, p], 1);
  if (!found) return false;
  native!.ema(found.backend.wasm.HEAPU8.buffer as ArrayBuffer, found.offsets[0], found.offsets[1], p.size, decay);
  return true;
}
