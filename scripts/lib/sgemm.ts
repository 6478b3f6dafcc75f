import type { NativeAddon } from '../../src/nn/native_addon.js';
import { median } from './trainer_timing.js';

/** GFLOP/s of one n x n x n sgemm through the addon on `threads` threads (median of 9 after a warm-up call). */
export function sgemmGflops(addon: NativeAddon, threads: number, n = 1000): number {
  const heap = new ArrayBuffer(3 * n * n * 4);
  new Float32Array(heap).fill(0.5);
  const ms: number[] = [];
  for (let r = 0; r < 10; r++) {
    const t = performance.now();
    addon.matmul(heap, 0, n * n * 4, 2 * n * n * 4, 1, 1, n, n, n, false, false, -1, 0, 0, threads);
    if (r > 0) ms.push(performance.now() - t);
  }
  return (2 * n ** 3) / median(ms) / 1e6;
}
