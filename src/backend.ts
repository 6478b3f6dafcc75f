import * as tf from '@tensorflow/tfjs';
import { SemiganError } from './errors.js';
import { useExplicitTransposeMatMulGrad } from './nn/matmul_grad.js';
import { useWasmConvGrads } from './nn/conv_grad.js';

export const BACKENDS = ['auto', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKENDS)[number];

export interface BackendInfo {
  name: 'tensorflow' | 'wasm' | 'cpu';
  /** One line: which backend and why (printed once at start-up). */
  reason: string;
}

const backendError = (msg: string) => new SemiganError('SEMIGAN_ERR_BACKEND', msg);

/** Native TensorFlow via tfjs-node-gpu (CUDA) or tfjs-node; both optional, often absent. */
async function tryTensorflow(): Promise<{ ok: true; pkg: string } | { ok: false; why: string }> {
  const whys: string[] = [];
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      await import(pkg);
      if (await tf.setBackend('tensorflow')) return { ok: true, pkg };
      whys.push(`${pkg} loaded but the tensorflow backend did not initialize`);
    } catch (e) {
      const msg = (e as Error).message.split('\n')[0];
      whys.push(`${pkg}: ${msg.length > 120 ? msg.slice(0, 117) + '...' : msg}`);
    }
  }
  return { ok: false, why: whys.join('; ') };
}

async function tryWasm(): Promise<boolean> {
  try {
    await import('@tensorflow/tfjs-backend-wasm');
    if (!(await tf.setBackend('wasm'))) return false;
    useExplicitTransposeMatMulGrad();
    useWasmConvGrads(); // wasm has no Conv2DBackpropFilter kernel
    return true;
  } catch {
    return false;
  }
}

/**
 * Pick the tfjs backend. auto: native TensorFlow when its package loads, else wasm (XNNPACK,
 * SIMD; ~40x faster than cpu here), else the pure-JS cpu backend.
 */
export async function initBackend(choice: BackendChoice = 'auto'): Promise<BackendInfo> {
  tf.env().set('PROD', true); // skip per-op NaN checks and debug bookkeeping
  if (choice === 'tensorflow' || choice === 'auto') {
    const t = await tryTensorflow();
    if (t.ok) return { name: 'tensorflow', reason: `${t.pkg} loaded` };
    if (choice === 'tensorflow')
      throw backendError(`--backend tensorflow: no native TensorFlow package could load (${t.why}); install @tensorflow/tfjs-node-gpu or @tensorflow/tfjs-node with its libtensorflow, or use --backend wasm`);
    if (await tryWasm()) return { name: 'wasm', reason: 'native TensorFlow unavailable (tfjs-node-gpu / tfjs-node not loadable), wasm is the fastest available' };
  } else if (choice === 'wasm') {
    if (await tryWasm()) return { name: 'wasm', reason: 'requested with --backend wasm' };
    throw backendError('--backend wasm: @tensorflow/tfjs-backend-wasm could not initialize');
  }
  await tf.setBackend('cpu');
  return { name: 'cpu', reason: choice === 'cpu' ? 'requested with --backend cpu' : 'neither native TensorFlow nor wasm could initialize; cpu is slow' };
}
