import * as tf from '@tensorflow/tfjs';
import { initBackendAndSay, type BackendChoice, type MatMulChoice } from '../backend.js';
import { loadData } from '../data/load.js';
import { configError } from '../errors.js';
import { writeCheckpoint } from '../train/checkpoint.js';
import {
  checkpointPath,
  hasTailAverage,
  loadExportedDiscriminator,
  readResult,
  readRun,
  recordExportChoice,
  runConfig,
  writeResult,
} from '../train/run_dir.js';
import { lockRunDir } from '../train/run_lock.js';
import { chooseExport, exportCandidates, validationLogitsOf, type ExportChoice } from '../train/weight_choice.js';

const log = (line: string) => process.stderr.write(line + '\n');

export interface CalibrateOptions {
  val: number;
  backend?: BackendChoice;
  threads?: number | null;
  matmul?: MatMulChoice;
}

/**
 * `semigan calibrate RUN_DIR --val N`: choose a finished run's exported weights and fit its
 * temperature on N labeled training rows it never trained on as labeled (as `train --val N`
 * does at the end of a run), and record the choice in its checkpoint, config.json and
 * result.json. Refused when the run used every label for training: there is nothing left to
 * validate on.
 */
export async function calibrateCommand(runDir: string, opts: CalibrateOptions): Promise<ExportChoice> {
  lockRunDir(runDir, 'calibrate');
  const ckpt = readRun(runDir);
  await initBackendAndSay(opts.backend ?? 'auto', { threads: opts.threads, matmul: opts.matmul });
  const config = runConfig(ckpt.meta);
  const data = await loadData({ ...config, val: opts.val }, log);
  if (data.labeled.length < ckpt.meta.data.labeled)
    throw configError(
      `${runDir} trained on every label its data has, so --val ${opts.val} would validate on training labels; retrain with --val N to keep some aside`,
    );
  const candidates = exportCandidates(hasTailAverage(ckpt.meta));
  const sets = Object.fromEntries(candidates.map((set) => [set, loadExportedDiscriminator(ckpt, set)]));
  let choice: ExportChoice;
  try {
    choice = chooseExport(
      validationLogitsOf(
        sets[candidates[0]].model,
        (set) => ({ weights: sets[set].weights, owned: false }),
        data.train,
        data.val!,
        config.batchSize,
      ),
      candidates,
    );
  } finally {
    tf.dispose(Object.values(sets).flatMap((s) => Object.values(s.weights)));
  }
  await writeCheckpoint(checkpointPath(runDir), { ...ckpt, meta: { ...ckpt.meta, exportChoice: choice } });
  recordExportChoice(runDir, choice);
  const r = readResult(runDir);
  if (r && r.step === ckpt.meta.step)
    writeResult(runDir, {
      ...r,
      weights: choice.weights,
      errorsExported: { averaged: r.errors, current: r.errorsCurrent, tail: r.errorsTail ?? r.errors }[choice.weights],
      temperature: choice.temperature,
      weightsReason: choice.reason,
    });
  return choice;
}
