import * as tf from '@tensorflow/tfjs';
import { appendFileSync, existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SemiganError, configError } from '../errors.js';
import type { SplitSummary } from '../data/split/split.js';
import type { RngState } from '../rng.js';
import type { GanModel } from '../models/model.js';
import { buildModelForConfig } from '../models/presets.js';
import type { Tensors } from '../nn/params.js';
import { readCheckpoint, type Checkpoint, type StoredTensor } from './checkpoint.js';
import { validateConfig, type TrainConfig } from './config.js';
import { averagedWeights } from './ema.js';
import { tailAveragedWeights } from './tail_average.js';
import type { ExportChoice, WeightSet } from './weight_choice.js';

/**
 * The files of a run directory (`semigan train --out DIR`), and everything that reads or writes
 * them: the trainer, evaluate, suggest, export and resume all go through here.
 */
export const CHECKPOINT_FILE = 'checkpoint.bin';
export const METRICS_FILE = 'metrics.jsonl';
export const RESULT_FILE = 'result.json';
export const CONFIG_FILE = 'config.json';
export const SAMPLES_DIR = 'samples';
/** Learning curves of the epochs so far (accuracy, losses), rewritten after every epoch. */
export const CURVES_FILE = 'curves.png';
/** Sample grids are drawn this many times larger than the data (a 28x28 digit: 84x84 pixels). */
export const SAMPLE_SCALE = 3;

/** Non-tensor training state, stored in the checkpoint header. */
export interface CheckpointMeta {
  semigan: string;
  config: TrainConfig;
  data: SplitSummary;
  classes: string[];
  inputShape: [number, number, number];
  epoch: number; // completed epochs
  epochIter: number; // iterations done in the epoch in progress (0 at an epoch boundary)
  step: number; // total D steps
  rng: RngState;
  adamD: number; // Adam step counts
  adamG: number;
  emaSteps: number;
  haSteps?: number; // historical averaging: steps folded into the running means
  tailSamples?: number; // --tail-average: epoch-end samples in the uniform average so far
  tailWithCurrent?: boolean; // a finished run that stopped mid-epoch in its tail: D's weights count as one more sample
  seconds: number; // training wall time so far
  plannedEpochs?: number; // the plan's length (a time budget's current estimate); absent before schedules
  lrCeiling?: number; // a time plan: the lowest lr run so far, which a lengthened plan does not exceed
  paceSeconds?: number[]; // a time plan: the last whole epochs' seconds, so a resumed plan goes on unchanged
  exportChoice?: ExportChoice; // the finished run's weight set and temperature; absent: averaged, 1
  /** The epoch in progress (epochIter > 0): its loss sums and seconds so far, so its metrics line covers all of it. */
  partialEpoch?: { sums: EpochSums; seconds: number };
}

export interface EpochSums {
  loss_lab: number;
  loss_unl: number;
  loss_gen: number;
  train_err: number;
}

/** One line of metrics.jsonl, written after every epoch. */
export interface EpochMetrics {
  epoch: number;
  step: number;
  lr: number;
  loss_lab: number;
  loss_unl: number;
  loss_gen: number;
  train_err: number;
  test_acc: number; // EMA weights (what is exported)
  test_errors: number;
  test_acc_current: number; // current weights, for comparison
  test_errors_current: number;
  test_acc_tail?: number; // --tail-average, once it has a sample
  test_errors_tail?: number;
  n_test: number;
  epoch_seconds: number;
  seconds: number;
  rss_mb: number;
}

/** result.json, also the last stdout line of `semigan train`. */
export interface TrainResult {
  accuracy: number;
  errors: number;
  n: number;
  epochs: number;
  seconds: number;
  stoppedEarly: boolean;
  accuracyCurrent: number;
  errorsCurrent: number;
  accuracyTail?: number; // --tail-average
  errorsTail?: number;
  step: number;
  peakRssMb: number;
  out: string;
  /** What the run exports (train/weight_choice.ts): the weight set, its test errors, the temperature, why. */
  weights: WeightSet;
  errorsExported: number;
  temperature: number;
  weightsReason: string;
}

export const checkpointPath = (runDir: string) => join(runDir, CHECKPOINT_FILE);

/** A run directory's checkpoint, with a clear error when DIR is not a run. */
export function readRun(runDir: string): Checkpoint<CheckpointMeta> {
  if (!existsSync(runDir) || !statSync(runDir).isDirectory()) {
    throw new SemiganError(
      'SEMIGAN_ERR_RUN_DIR',
      `${runDir}: no such run directory (expected the --out directory of a semigan train run)`,
    );
  }
  const path = checkpointPath(runDir);
  if (!existsSync(path)) {
    throw new SemiganError(
      'SEMIGAN_ERR_RUN_DIR',
      `${runDir} is not a semigan run: it has no ${CHECKPOINT_FILE} (expected the --out directory of a semigan train run)`,
    );
  }
  return readCheckpoint<CheckpointMeta>(path);
}

/** A stored run's config, validated again: options added since the run get their defaults. */
export const runConfig = (meta: CheckpointMeta): Readonly<TrainConfig> =>
  validateConfig(meta.config as unknown as Record<string, unknown>);

/** A fresh run must not mix its metrics and checkpoint with an earlier run's. */
export function claimRunDir(out: string, overwrite: boolean): void {
  if (!existsSync(checkpointPath(out)) && !existsSync(join(out, METRICS_FILE))) return;
  if (!overwrite) {
    throw configError(
      `${out} already holds a run; continue it with --resume ${out}, start over with --overwrite, or pick another --out`,
    );
  }
  for (const f of [CHECKPOINT_FILE, METRICS_FILE, RESULT_FILE, CONFIG_FILE, SAMPLES_DIR])
    rmSync(join(out, f), { recursive: true, force: true });
}

/** config.json: the validated config plus what the run found (data summary, backend). */
export function writeRunConfig(out: string, config: Readonly<TrainConfig>, found: Record<string, unknown>): void {
  writeFileSync(join(out, CONFIG_FILE), JSON.stringify({ ...config, ...found }, null, 2) + '\n');
}

/** config.json gains the finished run's export choice (which weights, why, the temperature). */
export function recordExportChoice(out: string, choice: ExportChoice): void {
  const path = join(out, CONFIG_FILE);
  const config = existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>) : {};
  writeFileSync(path, JSON.stringify({ ...config, exported: choice }, null, 2) + '\n');
}

export function appendMetrics(out: string, m: EpochMetrics): void {
  appendFileSync(join(out, METRICS_FILE), JSON.stringify(m) + '\n');
}

/**
 * metrics.jsonl's lines, parsed. A last line cut short (a kill mid-append) is dropped; any other
 * unreadable line is an error naming it.
 */
function metricsLines(runDir: string): { line: string; m: EpochMetrics }[] {
  const path = join(runDir, METRICS_FILE);
  if (!existsSync(path)) return [];
  const text = readFileSync(path, 'utf8');
  const lines = text.split('\n');
  const out: { line: string; m: EpochMetrics }[] = [];
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    let m: EpochMetrics | null = null;
    try {
      m = JSON.parse(line) as EpochMetrics;
    } catch {
      // handled below
    }
    if (m && typeof m === 'object' && Number.isInteger(m.epoch)) out.push({ line, m });
    else if (!(i === lines.length - 1 && !text.endsWith('\n')))
      throw new SemiganError(
        'SEMIGAN_ERR_RUN_DIR',
        `${path} line ${i + 1}: not a metrics record (${JSON.stringify(line.slice(0, 40))}); remove the line, or start over with --overwrite`,
      );
  });
  return out;
}

/** Every metrics.jsonl line (none when the file does not exist). */
export function readMetrics(runDir: string): EpochMetrics[] {
  return metricsLines(runDir).map((l) => l.m);
}

/** Drop metrics lines beyond `epoch` (written just before a kill, redone after resume). */
export function trimMetrics(runDir: string, epoch: number): void {
  const path = join(runDir, METRICS_FILE);
  if (!existsSync(path)) return;
  const kept = metricsLines(runDir).filter((l) => l.m.epoch <= epoch);
  writeFileSync(path, kept.map((l) => l.line + '\n').join(''));
}

export function writeResult(out: string, r: TrainResult): void {
  writeFileSync(join(out, RESULT_FILE), JSON.stringify(r, null, 2) + '\n');
}

export function readResult(runDir: string): TrainResult | null {
  const path = join(runDir, RESULT_FILE);
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as TrainResult) : null;
}

const tensorsWithPrefix = (ckpt: Checkpoint<CheckpointMeta>, prefix: string): Tensors => {
  const out: Tensors = {};
  for (const [name, s] of Object.entries(ckpt.tensors) as [string, StoredTensor][]) {
    if (name.startsWith(prefix + '/')) out[name.slice(prefix.length + 1)] = tf.tensor(s.data, s.shape);
  }
  return out;
};

/** The model a run's checkpoint describes. */
const runModel = (meta: CheckpointMeta): GanModel =>
  buildModelForConfig(runConfig(meta), meta.inputShape, meta.classes.length);

/** The run's model and its generator weights. Caller disposes `weights`. */
export function loadGenerator(ckpt: Checkpoint<CheckpointMeta>): { model: GanModel; weights: Tensors } {
  return { model: runModel(ckpt.meta), weights: tensorsWithPrefix(ckpt, 'g') };
}

/** True when the checkpoint's tail average has anything to average (train/tail_average.ts). */
export const hasTailAverage = (meta: CheckpointMeta): boolean => !!meta.tailSamples || !!meta.tailWithCurrent;

/** What a run exports: the choice its end recorded, or (a run not finished) the averaged weights at temperature 1. */
export function exportChoiceOf(meta: CheckpointMeta): ExportChoice {
  return (
    meta.exportChoice ?? {
      weights: 'averaged',
      reason: 'the run has not finished (no choice recorded): the averaged weights, the default',
      valRows: 0,
      temperature: 1,
    }
  );
}

/**
 * The run's model and the discriminator weights it exports (exportChoiceOf: the averaged ones
 * unless its validation rows chose the current ones), or the set `which` asks for. Caller
 * disposes `weights`.
 */
export function loadExportedDiscriminator(
  ckpt: Checkpoint<CheckpointMeta>,
  which?: WeightSet,
): { model: GanModel; weights: Tensors; choice: ExportChoice } {
  const { meta } = ckpt;
  const choice = exportChoiceOf(meta);
  const set = which ?? choice.weights;
  const model = runModel(meta);
  const current = tensorsWithPrefix(ckpt, 'd');
  let weights = current;
  if (set === 'tail' && !hasTailAverage(meta))
    throw new SemiganError('SEMIGAN_ERR_RUN_DIR', 'this run has no tail average (train it with --tail-average)');
  if (set !== 'current') {
    const stored = tensorsWithPrefix(ckpt, set === 'averaged' ? 'ema' : 'tail');
    weights =
      set === 'averaged'
        ? averagedWeights(current, stored, meta.config.emaDecay, meta.emaSteps, runConfig(meta).emaWarmup)
        : tailAveragedWeights(current, stored, meta.tailSamples ?? 0, meta.tailWithCurrent ?? false);
    tf.dispose([...Object.values(current), ...Object.values(stored)]);
  }
  const bad = Object.entries(weights).find(([, t]) => !(t.dataSync() as Float32Array).every(Number.isFinite));
  if (bad) {
    tf.dispose(Object.values(weights));
    throw new SemiganError(
      'SEMIGAN_ERR_NAN',
      `the ${set} discriminator weight ${bad[0]} of this run holds NaN or infinite values (the run diverged); retrain, e.g. with a lower --lr`,
    );
  }
  return { model, weights, choice };
}
