import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../package_paths.js';

/**
 * The optional native addon (src/native/semigan_native.c, built by `npm install` or
 * `npm run build:native` when OpenBLAS is installed): OpenBLAS matMuls and in-place Adam / EMA
 * updates on tensors in the tfjs wasm backend's heap. Without it, everything runs on tfjs's own
 * wasm kernels.
 */
export interface NativeAddon {
  matmul(
    heap: ArrayBuffer,
    aOff: number,
    bOff: number,
    outOff: number,
    batchA: number,
    batchB: number,
    m: number,
    n: number,
    k: number,
    transposeA: boolean,
    transposeB: boolean,
    biasOff: number,
    act: number,
    alpha: number,
    threads: number,
  ): void;
  adam(
    heap: ArrayBuffer,
    pOff: number,
    mOff: number,
    vOff: number,
    gOff: number,
    outOff: number,
    n: number,
    beta1: number,
    beta2: number,
    lrOverC1: number,
    c2: number,
    eps: number,
  ): void;
  ema(heap: ArrayBuffer, sOff: number, pOff: number, n: number, decay: number): void;
  sumRows(heap: ArrayBuffer, xOff: number, outOff: number, rows: number, cols: number): void;
  weightNorm(heap: ArrayBuffer, vOff: number, gOff: number, outOff: number, rows: number, cols: number): void;
  weightNormGrad(
    heap: ArrayBuffer,
    dwOff: number,
    vOff: number,
    gOff: number,
    dvOff: number,
    dgOff: number,
    rows: number,
    cols: number,
  ): void;
  actGrad(
    heap: ArrayBuffer,
    dyOff: number,
    yOff: number,
    dzOff: number,
    dbOff: number,
    rows: number,
    cols: number,
    act: number,
    slope: number,
  ): void;
  addTo(heap: ArrayBuffer, outOff: number, xOff: number, n: number): void;
  dLosses(
    heap: ArrayBuffer,
    logitsOff: number,
    labelsOff: number,
    outOff: number,
    gradOff: number,
    rows: number,
    k: number,
    bs: number,
    nUnl: number,
    nFake: number,
    second: number,
    realTarget: number,
    unlabeledWeight: number,
    entropy: number,
    consistency: number,
    dTotal: number,
  ): void;
  bnSoftplus(
    heap: ArrayBuffer,
    hOff: number,
    shiftOff: number,
    outOff: number,
    rows: number,
    cols: number,
    eps: number,
  ): void;
  bnSoftplusGrad(
    heap: ArrayBuffer,
    dyOff: number,
    hOff: number,
    shiftOff: number,
    dhOff: number,
    dshiftOff: number,
    rows: number,
    cols: number,
    eps: number,
  ): void;
  setZiggurat(k: Float64Array, w: Float64Array, f: Float64Array): void;
  fillNormal(out: Float32Array, from: number, state: Uint32Array, std: number): number;
  /**
   * kind 0: y = conv(x, W) (+ bias at biasOff unless -1, then leaky ReLU of `slope` if leaky);
   * 1: dx from (dy, W); 2: dW from (x, dy). route 0: oneDNN, 1: im2col.
   */
  conv(
    heap: ArrayBuffer,
    kind: number,
    aOff: number,
    bOff: number,
    outOff: number,
    geometry: Int32Array,
    threads: number,
    route: number,
    biasOff: number,
    leaky: boolean,
    slope: number,
  ): void;
  /** "onednn 2.6.3,im2col", or "im2col" for a build without oneDNN. */
  convRoutes(): string;
  setThreads(n: number): void;
  getThreads(): number;
  describe(): string;
}

/** Where `npm run build:native` puts the addon. */
const ADDON_PATH = join(PACKAGE_ROOT, 'src', 'native', 'build', 'Release', 'semigan_native.node');

export type NativeLoad = { ok: true; addon: NativeAddon; path: string } | { ok: false; why: string };

/** Load the addon, or say why it cannot be used (never throws). `path` overrides the search. */
export function loadNative(path?: string): NativeLoad {
  const found = path ?? ADDON_PATH;
  if (!existsSync(found))
    return {
      ok: false,
      why: 'native kernels addon not built: run scripts/install_system_deps.sh as root (Debian/Ubuntu: OpenBLAS), then npm run build:native',
    };
  try {
    const addon = createRequire(import.meta.url)(found) as NativeAddon;
    if (
      typeof addon.matmul !== 'function' ||
      typeof addon.adam !== 'function' ||
      typeof addon.sumRows !== 'function' ||
      typeof addon.fillNormal !== 'function' ||
      typeof addon.weightNorm !== 'function' ||
      typeof addon.conv !== 'function'
    )
      return { ok: false, why: `${found} is not semigan's native kernels addon` };
    return { ok: true, addon, path: found };
  } catch (e) {
    return { ok: false, why: `native kernels addon did not load: ${(e as Error).message.split('\n')[0]}` };
  }
}

/** What the wasm backend object exposes that native kernels need (tfjs-backend-wasm 4.x internals). */
export interface WasmBackendInternals {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(dataId: object): { memoryOffset: number; refCount: number } | undefined };
  makeOutput(shape: number[], dtype: 'float32'): { dataId: object; shape: number[]; dtype: string };
}
