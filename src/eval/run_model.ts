import * as tf from '@tensorflow/tfjs';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SemiganError } from '../errors.js';
import { buildModelForConfig } from '../models/presets.js';
import { validateConfig } from '../train/config.js';
import type { GanModel } from '../models/model.js';
import type { Tensors } from '../nn/params.js';
import { readCheckpoint, type Checkpoint, type StoredTensor } from '../train/checkpoint.js';
import { averagedWeights } from '../train/ema.js';
import { CHECKPOINT_FILE, type CheckpointMeta } from '../train/trainer.js';

/** A run directory's checkpoint, with a clear error when DIR is not a run. */
export function readRun(runDir: string): Checkpoint<CheckpointMeta> {
  if (!existsSync(runDir) || !statSync(runDir).isDirectory()) {
    throw new SemiganError('SEMIGAN_ERR_RUN_DIR', `${runDir}: no such run directory (expected the --out directory of a semigan train run)`);
  }
  const path = join(runDir, CHECKPOINT_FILE);
  if (!existsSync(path)) {
    throw new SemiganError('SEMIGAN_ERR_RUN_DIR', `${runDir} is not a semigan run: it has no ${CHECKPOINT_FILE} (expected the --out directory of a semigan train run)`);
  }
  return readCheckpoint<CheckpointMeta>(path);
}

const tensorsWithPrefix = (ckpt: Checkpoint<CheckpointMeta>, prefix: string): Tensors => {
  const out: Tensors = {};
  for (const [name, s] of Object.entries(ckpt.tensors) as [string, StoredTensor][]) {
    if (name.startsWith(prefix + '/')) out[name.slice(prefix.length + 1)] = tf.tensor(s.data, s.shape);
  }
  return out;
};

/** The model a run's checkpoint describes. */
function runModel(meta: CheckpointMeta): GanModel {
  const config = validateConfig(meta.config as unknown as Record<string, unknown>); // fills options added since the run
  return buildModelForConfig(config, meta.inputShape, meta.classes.length);
}

/** The run's model and its generator weights. Caller disposes `weights`. */
export function loadGenerator(ckpt: Checkpoint<CheckpointMeta>): { model: GanModel; weights: Tensors } {
  return { model: runModel(ckpt.meta), weights: tensorsWithPrefix(ckpt, 'g') };
}

/** The run's model and its EMA discriminator weights (what is evaluated and exported). Caller disposes `weights`. */
export function loadEmaDiscriminator(ckpt: Checkpoint<CheckpointMeta>): { model: GanModel; weights: Tensors } {
  const { meta } = ckpt;
  const model = runModel(meta);
  const current = tensorsWithPrefix(ckpt, 'd');
  const shadow = tensorsWithPrefix(ckpt, 'ema');
  const weights = averagedWeights(current, shadow, meta.config.emaDecay, meta.emaSteps);
  tf.dispose([...Object.values(current), ...Object.values(shadow)]);
  return { model, weights };
}
