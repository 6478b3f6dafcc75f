import * as tf from '@tensorflow/tfjs';

/** A wasm kernel registration that remembers tfjs's own kernel function. */
type Replaced = tf.KernelConfig & { originalKernelFunc?: tf.KernelFunc };

/**
 * Register `make(original)` as the wasm kernel `name`, where `original` is always tfjs's own
 * kernel (also when an earlier call replaced it), so replacements never stack.
 */
export function replaceWasmKernel(name: string, make: (original: tf.KernelFunc) => tf.KernelFunc): void {
  const config = tf.getKernel(name, 'wasm') as Replaced | undefined;
  if (!config) throw new Error(`wasm backend has no ${name} kernel`);
  const original = config.originalKernelFunc ?? config.kernelFunc;
  tf.unregisterKernel(name, 'wasm');
  tf.registerKernel({ ...config, kernelFunc: make(original), originalKernelFunc: original } as tf.KernelConfig);
}

/** Put tfjs's own wasm kernel `name` back (nothing to do if it was never replaced). */
export function restoreWasmKernel(name: string): void {
  const config = tf.getKernel(name, 'wasm') as Replaced | undefined;
  if (!config?.originalKernelFunc) return;
  const { originalKernelFunc, ...rest } = config;
  tf.unregisterKernel(name, 'wasm');
  tf.registerKernel({ ...rest, kernelFunc: originalKernelFunc });
}

interface RefCountingBackend {
  incRef(dataId: tf.DataId): void;
}

/**
 * Identity as the cpu and webgl backends do it: the output shares the input's buffer (one more
 * reference) instead of copying it. tfjs clones every tensor a gradient saves through Identity,
 * ~170 copies per training step of the paper's model; nothing writes a shared buffer in place
 * (in_place_updates.ts only writes buffers with one reference).
 */
export function useSharedIdentity(): void {
  replaceWasmKernel('Identity', (original) => (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    if (x.dtype === 'string') return original(args);
    (args.backend as unknown as RefCountingBackend).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  });
}
