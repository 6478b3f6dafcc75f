import * as tf from '@tensorflow/tfjs';
import type { NativeAddon, WasmBackendInternals } from './native_addon.js';
import { replaceWasmKernel, restoreWasmKernel } from './wasm_kernels.js';

/**
 * The wasm Sum kernel over leading axes (e.g. axis 0 of a [784, 1000] weight, as weight norm and
 * bias gradients need) without tfjs's transpose: tfjs moves the reduced axes innermost with a
 * full copy first, which made Sum the second-largest kernel of a training step. The native loop
 * adds in the same order, so the numbers are bit-identical (test/nn/native_sum.test.ts). Any other
 * reduction goes to the original kernel.
 */
type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };

/** Reduced axes as non-negative indices, in the order given (tfjs sums in that order). */
function normalizedAxes(axis: unknown, rank: number): number[] {
  const list =
    axis == null
      ? Array.from({ length: rank }, (_, i) => i)
      : Array.isArray(axis)
        ? (axis as number[])
        : [axis as number];
  return list.map((a) => (a < 0 ? a + rank : a));
}

export function useNativeSum(addon: NativeAddon): void {
  replaceWasmKernel(
    tf.Sum,
    (original) =>
      ((args: KernelArgs) => {
        const x = args.inputs.x as tf.TensorInfo;
        const backend = args.backend as WasmBackendInternals;
        const rank = x.shape.length;
        const axes = normalizedAxes(args.attrs?.axis, rank);
        const lead = axes.length;
        // Only leading axes given as 0, 1, ..., lead-1 with something left over: otherwise tfjs does
        // not transpose, or sums in another order.
        if (x.dtype !== 'float32' || lead === 0 || lead >= rank || axes.some((a, i) => a !== i))
          return original(args as Parameters<tf.KernelFunc>[0]);
        const rows = tf.util.sizeFromShape(x.shape.slice(0, lead));
        const cols = tf.util.sizeFromShape(x.shape.slice(lead));
        if (rows === 0 || cols === 0) return original(args as Parameters<tf.KernelFunc>[0]);
        const outShape = args.attrs?.keepDims ? x.shape.map((d, i) => (i < lead ? 1 : d)) : x.shape.slice(lead);
        const out = backend.makeOutput(outShape, 'float32') as tf.TensorInfo;
        const off = (t: tf.TensorInfo) => backend.dataIdMap.get(t.dataId)!.memoryOffset;
        addon.sumRows(backend.wasm.HEAPU8.buffer as ArrayBuffer, off(x), off(out), rows, cols);
        return out;
      }) as unknown as tf.KernelFunc,
  );
}

/** Put tfjs's own Sum kernel back. */
export function useWasmSum(): void {
  restoreWasmKernel(tf.Sum);
}
