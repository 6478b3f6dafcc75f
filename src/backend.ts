import * as tf from '@tensorflow/tfjs';
import { availableParallelism } from 'node:os';
import { SemiganError } from './errors.js';
import { useNativeNormal } from './rng.js';
import { useExplicitTransposeMatMulGrad } from './nn/matmul_grad.js';
import { useWasmConvGrads } from './nn/conv_grad.js';
import { useOpenBlasMatMul, useWasmMatMul } from './nn/blas_matmul.js';
import { useInPlaceUpdates } from './nn/in_place_updates.js';
import { loadNative } from './nn/native_addon.js';
import { useNativeSum, useWasmSum } from './nn/native_sum.js';
import { useSharedIdentity } from './nn/wasm_kernels.js';
import { useNativeLayers } from './nn/native_layers.js';
import {
  CONV_ROUTES,
  convRouteUnavailable,
  resolveConvRoute,
  useNativeConvs,
  type ConvChoice,
  type ConvRoute,
} from './nn/native_conv.js';

export const BACKENDS = ['auto', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKENDS)[number];

/** Which kernels run the wasm backend's matMuls: OpenBLAS when built (auto), or tfjs's own. */
export const MATMULS = ['auto', 'openblas', 'wasm'] as const;
export type MatMulChoice = (typeof MATMULS)[number];

export interface BackendOptions {
  /** Threads for the backend's matMuls (default: every core). */
  threads?: number | null;
  /**
   * wasm: tfjs's own single-threaded kernels reproduce earlier runs bit for bit, and a row's
   * result never depends on the other rows of its batch; OpenBLAS's agree to float32 rounding.
   */
  matmul?: MatMulChoice;
  /** Where the native addon is (default: the built one); $SEMIGAN_NATIVE_ADDON also sets it. */
  nativeAddon?: string;
  /**
   * The wasm backend's convs: auto (oneDNN, else im2col + OpenBLAS, else tfjs's kernels) or one
   * route; $SEMIGAN_CONV also sets it. --matmul wasm implies wasm (bit-exact with earlier runs).
   */
  conv?: ConvChoice;
}

export interface BackendInfo {
  name: 'tensorflow' | 'wasm' | 'cpu';
  /** One line: which backend and why (printed once at start-up). */
  reason: string;
  /** Threads the backend really uses for its heavy kernels. */
  threads: number;
  /** One line: how many threads and why. */
  threadsReason: string;
  /** What runs matMuls: OpenBLAS, or the backend's own kernels. */
  matmul: 'openblas' | 'wasm' | 'tensorflow' | 'cpu';
  /** What runs the wasm backend's convs (wasm: tfjs's own; other backends: their own). */
  conv?: ConvRoute;
}

const backendError = (msg: string) => new SemiganError('SEMIGAN_ERR_BACKEND', msg);

/** Every core the process may use. */
export const defaultThreads = (): number => availableParallelism();

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
      const short = /Cannot find (package|module)/.test(msg)
        ? 'not installed'
        : /tfjs_binding\.node/.test(msg)
          ? 'installed, but its install script (which downloads libtensorflow) has not run'
          : msg.length > 120
            ? msg.slice(0, 117) + '...'
            : msg;
      whys.push(`${pkg}: ${short}`);
    }
  }
  return { ok: false, why: whys.join('; ') };
}

async function tryWasm(): Promise<boolean> {
  try {
    await import('@tensorflow/tfjs-backend-wasm');
    return await tf.setBackend('wasm');
  } catch {
    return false;
  }
}

/**
 * wasm runs one thread in Node. With the optional native addon, its matMuls (~70% of a training
 * step) go to OpenBLAS on `threads` threads; Adam / EMA updates, sums over leading axes and the
 * noise sampler run natively (bit-identical).
 * --matmul wasm keeps tfjs's own matMuls (bit-exact with earlier runs). Without the addon: one
 * thread, and the reason.
 */
function setUpWasm(opts: BackendOptions): Pick<BackendInfo, 'threads' | 'threadsReason' | 'matmul' | 'conv'> {
  useWasmConvGrads(); // wasm has no Conv2DBackpropFilter kernel; native convs take over NHWC ones
  useSharedIdentity();
  const matmul = opts.matmul ?? 'auto';
  const native = loadNative(opts.nativeAddon ?? process.env.SEMIGAN_NATIVE_ADDON);
  const convChoice = opts.conv ?? convFromEnv();
  if (!native.ok && convChoice !== 'auto' && convChoice !== 'wasm')
    throw backendError(`conv route ${convChoice}: ${native.why}`);
  // Bit-identical to tfjs's own kernels, so used whatever --matmul says.
  useInPlaceUpdates(native.ok ? native.addon : null);
  useNativeNormal(native.ok ? native.addon : null);
  useNativeLayers(native.ok ? native.addon : null); // on only with OpenBLAS matMuls
  if (native.ok) useNativeSum(native.addon);
  else useWasmSum();
  if (!native.ok || matmul === 'wasm') {
    if (!native.ok && matmul === 'openblas') throw backendError(`--matmul openblas: ${native.why}`);
    if (matmul === 'wasm' && convChoice !== 'auto' && convChoice !== 'wasm')
      throw backendError(`--matmul wasm keeps tfjs's own kernels; it cannot be combined with conv route ${convChoice}`);
    useWasmMatMul(); // in case an earlier initBackend of this process installed OpenBLAS's
    useExplicitTransposeMatMulGrad(); // wasm's transposed matMul is ~17x slower than a plain one
    useNativeConvs(null, 'wasm', 1);
    const why = native.ok ? '--matmul wasm' : native.why;
    return {
      threads: 1,
      threadsReason: `1 thread (${why}; wasm runs one thread in Node)`,
      matmul: 'wasm',
      conv: 'wasm',
    };
  }
  useOpenBlasMatMul(native.addon, opts.threads ?? defaultThreads());
  const threads = native.addon.getThreads();
  const convWhy = convRouteUnavailable(native.addon, resolveConvRoute(native.addon, convChoice));
  if (convWhy) throw backendError(`conv route ${convChoice}: ${convWhy}`);
  const convs = useNativeConvs(native.addon, convChoice, threads);
  const why = opts.threads == null ? 'every core' : '--threads';
  const over = threads > defaultThreads() ? `; more than the ${defaultThreads()} cores, threads will share them` : '';
  return {
    threads,
    threadsReason: `${threads} thread${threads === 1 ? '' : 's'} for matMuls (${why}${over}; ${native.addon.describe()}), ${convs.line}, other kernels on 1 wasm thread`,
    matmul: 'openblas',
    conv: convs.route,
  };
}

/** $SEMIGAN_CONV: a conv route for benchmarks and tests (default auto). */
function convFromEnv(): ConvChoice {
  const v = process.env.SEMIGAN_CONV ?? 'auto';
  if (!(CONV_ROUTES as readonly string[]).includes(v))
    throw backendError(`SEMIGAN_CONV=${v}: expected one of ${CONV_ROUTES.join(', ')}`);
  return v as ConvChoice;
}

/**
 * Pick the tfjs backend. auto: native TensorFlow when its package loads, else wasm (XNNPACK,
 * SIMD, matMuls on OpenBLAS when built; ~40x faster than cpu here), else the pure-JS cpu backend.
 */
export async function initBackend(choice: BackendChoice = 'auto', opts: BackendOptions = {}): Promise<BackendInfo> {
  tf.env().set('PROD', true); // skip per-op NaN checks and debug bookkeeping
  const single = { threads: 1, threadsReason: '1 thread (the cpu backend has no threads)', matmul: 'cpu' as const };
  if (choice === 'tensorflow' || choice === 'auto') {
    const t = await tryTensorflow();
    if (t.ok) {
      const threadsReason = `threads chosen by TensorFlow${opts.threads != null ? ' (--threads does not apply to native TensorFlow)' : ''}`;
      return {
        name: 'tensorflow',
        reason: `${t.pkg} loaded`,
        threads: defaultThreads(),
        threadsReason,
        matmul: 'tensorflow',
      };
    }
    if (choice === 'tensorflow')
      throw backendError(
        `--backend tensorflow: no native TensorFlow package could load (${t.why}); install @tensorflow/tfjs-node-gpu or @tensorflow/tfjs-node with its libtensorflow (docs/speed.md#gpu), or use --backend wasm`,
      );
    if (await tryWasm())
      return {
        name: 'wasm',
        reason: `no native TensorFlow (${t.why}; for a GPU see docs/speed.md#gpu), wasm is the fastest available`,
        ...setUpWasm(opts),
      };
  } else if (choice === 'wasm') {
    if (await tryWasm()) return { name: 'wasm', reason: 'requested with --backend wasm', ...setUpWasm(opts) };
    throw backendError('--backend wasm: @tensorflow/tfjs-backend-wasm could not initialize');
  }
  await tf.setBackend('cpu');
  return {
    name: 'cpu',
    reason:
      choice === 'cpu'
        ? 'requested with --backend cpu'
        : 'neither native TensorFlow nor wasm could initialize; cpu is slow',
    ...single,
  };
}

/** The start-up line of every command. */
export const describeBackend = (b: BackendInfo) => `backend: ${b.name} (${b.reason}); ${b.threadsReason}`;

/**
 * initBackend, then its one line on stderr (the backend, its threads, and why): every command
 * that runs a model says what it runs on.
 */
export async function initBackendAndSay(
  choice: BackendChoice = 'auto',
  opts: BackendOptions = {},
): Promise<BackendInfo> {
  const info = await initBackend(choice, opts);
  process.stderr.write(describeBackend(info) + '\n');
  return info;
}
