/**
 * Shared by the benchmark scripts: milliseconds per training iteration of the real Trainer.
 * Trainer.run() calls io.onIteration after each iteration's work is finished (losses read back);
 * the gaps between consecutive calls within an epoch are whole iterations (batch gathering, D step
 * on labeled + unlabeled + generated rows, G step) and nothing else: evaluation, checkpoints and
 * sample grids happen between epochs. The first epoch of every trainer is warm-up and discarded.
 */
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepareData, type TrainData } from '../../src/data/prepare.js';
import { buildModelForConfig } from '../../src/models/presets.js';
import { validateConfig, type TrainConfig } from '../../src/train/config.js';
import { Trainer } from '../../src/train/trainer.js';
import { Rng } from '../../src/rng.js';

export interface TimingOptions {
  /** Timed iterations wanted (rounded up to whole epochs). */
  iters: number;
  /** Iterations per epoch; each epoch yields itersPerEpoch - 1 samples. */
  itersPerEpoch?: number;
  seed?: number;
  /** A running count (e.g. matMul multiply-adds) read at each iteration; its median step goes to countPerIter. */
  counter?: () => number;
}

export interface IterationTiming {
  /** Wall ms of each timed iteration. */
  ms: number[];
  /** Wall ms spent inside Rng.fillNormal / fillUniform during each timed iteration. */
  normalMs: number[];
  uniformMs: number[];
  /** Values drawn per timed iteration (the same every iteration for a fixed model). */
  normalsPerIter: number;
  uniformsPerIter: number;
  /** Median increase of opts.counter over one timed iteration (NaN without a counter). */
  countPerIter: number;
}

/** Base config of the benchmarks: the paper's MNIST recipe, with a small train/test set. */
export function benchConfig(overrides: Partial<TrainConfig> = {}): Readonly<TrainConfig> {
  return validateConfig({
    dataset: 'mnist',
    labels: 100,
    trainLimit: 6000,
    testLimit: 500, // evaluation runs between epochs only; keep it cheap
    preset: 'mnist-mlp',
    mode: 'gan',
    batchSize: 100,
    backend: 'wasm',
    out: 'unused', // replaced by a temporary directory per trainer
    ...overrides,
  });
}

export function loadBenchData(config: Readonly<TrainConfig>): TrainData {
  return prepareData(config);
}

/**
 * Train a fresh Trainer (same seed every time) for 1 warm-up epoch + enough epochs to collect
 * `iters` per-iteration times, in a temporary run directory that is removed afterwards.
 */
export async function timeIterations(
  base: Readonly<TrainConfig>,
  data: TrainData,
  opts: TimingOptions,
): Promise<IterationTiming> {
  const itersPerEpoch = opts.itersPerEpoch ?? 11;
  if (itersPerEpoch < 2) throw new Error(`itersPerEpoch must be >= 2; got ${itersPerEpoch}`);
  const perEpoch = itersPerEpoch - 1;
  const timedEpochs = Math.max(1, Math.ceil(opts.iters / perEpoch));
  const epochs = 1 + timedEpochs;
  const out = mkdtempSync(join(tmpdir(), 'semigan-bench-'));
  const config = validateConfig({
    ...base,
    epochs,
    itersPerEpoch,
    out,
    seed: opts.seed ?? base.seed,
    maxMinutes: null,
  });
  const model = buildModelForConfig(config, data.train.shape, data.train.classes.length);

  // Time spent in (and values drawn by) the Rng's noise fills, per iteration.
  let normalMs = 0;
  let uniformMs = 0;
  let normals = 0;
  let uniforms = 0;
  const wrapRng = (rng: Rng) => {
    const fillNormal = rng.fillNormal.bind(rng);
    const fillUniform = rng.fillUniform.bind(rng);
    rng.fillNormal = (buf: Float32Array, std?: number) => {
      const t = performance.now();
      const r = fillNormal(buf, std);
      normalMs += performance.now() - t;
      normals += buf.length;
      return r;
    };
    rng.fillUniform = (buf: Float32Array) => {
      const t = performance.now();
      const r = fillUniform(buf);
      uniformMs += performance.now() - t;
      uniforms += buf.length;
      return r;
    };
  };

  const ticks: {
    epoch: number;
    iter: number;
    t: number;
    normalMs: number;
    uniformMs: number;
    normals: number;
    uniforms: number;
    count: number;
  }[] = [];
  const onIteration = (epoch: number, iter: number) =>
    ticks.push({
      epoch,
      iter,
      t: performance.now(),
      normalMs,
      uniformMs,
      normals,
      uniforms,
      count: opts.counter?.() ?? NaN,
    });
  const quiet = { write: () => true, isTTY: false };

  const trainer = new Trainer(config, model, data, { log: () => {}, progressStream: quiet, onIteration });
  try {
    trainer.initialize();
    wrapRng(trainer.rng);
    await trainer.run();
  } finally {
    trainer.dispose();
    rmSync(out, { recursive: true, force: true });
  }

  const res: IterationTiming = {
    ms: [],
    normalMs: [],
    uniformMs: [],
    normalsPerIter: 0,
    uniformsPerIter: 0,
    countPerIter: NaN,
  };
  const counts: number[] = [];
  for (let e = 2; e <= epochs; e++) {
    const et = ticks.filter((k) => k.epoch === e);
    if (et.length !== itersPerEpoch || et.some((k, i) => k.iter !== i + 1)) {
      throw new Error(`expected one onIteration call per iteration (${itersPerEpoch}) in epoch ${e}, got ${et.length}`);
    }
    for (let i = 1; i < et.length; i++) {
      res.ms.push(et[i].t - et[i - 1].t);
      res.normalMs.push(et[i].normalMs - et[i - 1].normalMs);
      res.uniformMs.push(et[i].uniformMs - et[i - 1].uniformMs);
      res.normalsPerIter = et[i].normals - et[i - 1].normals;
      res.uniformsPerIter = et[i].uniforms - et[i - 1].uniforms;
      counts.push(et[i].count - et[i - 1].count);
    }
  }
  res.countPerIter = median(counts);
  return res;
}

/** Median ms of filling `n` normals with our Rng (standalone, after warm-up). */
export function timeFillNormal(n: number, repeats = 20): number[] {
  const rng = new Rng(7);
  const buf = new Float32Array(n);
  for (let i = 0; i < 3; i++) rng.fillNormal(buf, 0.5);
  const ms: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t = performance.now();
    rng.fillNormal(buf, 0.5);
    ms.push(performance.now() - t);
  }
  return ms;
}

export function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

export const median = (xs: number[]) => quantile(xs, 0.5);

/** Backend facts worth printing next to a timing. */
export async function wasmInfo(): Promise<string> {
  const parts = [`backend ${tf.getBackend()}`];
  if (tf.getBackend() === 'wasm') {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    parts.push(`threads ${wasm.getThreadsCount()}`);
    const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
    parts.push(`simd ${simd}`);
  }
  return parts.join(', ');
}
