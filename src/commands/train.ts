import { mkdirSync } from 'node:fs';
import { describeBackend, initBackend } from '../backend.js';
import { loadData } from '../data/load.js';
import { autoPreset, buildModelForConfig } from '../models/presets.js';
import { MAX_EPOCHS, validateConfig, type TrainConfig } from '../train/config.js';
import { Trainer } from '../train/trainer.js';
import { claimRunDir, CURVES_FILE, readRun, writeRunConfig, type TrainResult } from '../train/run_dir.js';
import { join } from 'node:path';
import { configError } from '../errors.js';
import { lockRunDir } from '../train/run_lock.js';

const log = (line: string) => process.stderr.write(line + '\n');

/** Options that may change when a run is resumed; everything else comes from its checkpoint. */
const RESUMABLE = ['epochs', 'maxMinutes', 'checkpointMinutes', 'backend', 'threads', 'matmul'] as const;

/**
 * `semigan train`: validate the config, pick the backend, load data, train, print one JSON line.
 * With `resume`, the run's saved config is used and only RESUMABLE options may be given.
 */
export async function trainCommand(
  options: Partial<TrainConfig>,
  resume: string | null,
  overwrite = false,
): Promise<TrainResult> {
  let config: Readonly<TrainConfig>;
  if (resume && overwrite)
    throw configError(
      `--resume and --overwrite exclude each other: --resume ${resume} continues the run, --overwrite starts it over`,
    );
  if (resume) lockRunDir(resume, 'train --resume');
  const ckpt = resume ? readRun(resume) : null;
  if (ckpt) {
    const extra = Object.keys(options).filter((k) => !(RESUMABLE as readonly string[]).includes(k));
    if (extra.length)
      throw configError(
        `--resume takes the run's saved config; only --epochs, --max-minutes, --checkpoint-minutes, --backend, --threads and --matmul may be given (got ${extra.map((k) => '--' + k).join(', ')})`,
      );
    // The least --epochs that trains anything: the epoch in progress, or the next one.
    const least = ckpt.meta.epoch + 1;
    if (options.epochs !== undefined && options.epochs < least)
      throw configError(
        `--epochs ${options.epochs}: ${resume} has already ${ckpt.meta.epochIter > 0 ? `started epoch ${least}` : `completed epoch ${ckpt.meta.epoch}`}; give --epochs ${least} or more to continue it (or leave --epochs out: ${ckpt.meta.config.epochs})`,
      );
    // The time budget is the run's, over all its invocations: a resumed run spends what is left
    // of it (the plan stays the same), or the new total given now.
    config = validateConfig({ ...ckpt.meta.config, ...options, out: resume! });
    if (config.maxMinutes !== null && ckpt.meta.seconds >= config.maxMinutes * 60)
      throw configError(
        `${resume} has spent its time budget (--max-minutes ${config.maxMinutes}; ${(ckpt.meta.seconds / 60).toFixed(1)} min trained); give a larger --max-minutes to continue it`,
      );
  } else {
    config = validateConfig(options);
    lockRunDir(config.out, 'train'); // also the first write: a read-only --out fails before the data loads
    claimRunDir(config.out, overwrite);
  }

  const backend = await initBackend(config.backend, { threads: config.threads, matmul: config.matmul });
  log(describeBackend(backend));
  const data = await loadData(config, log);
  log(`data: ${data.summaryText} from ${data.source}`);
  if (config.augment > 0 && data.train.features)
    throw configError(
      `--augment ${config.augment} shifts image pixels, but ${config.dataset} is tabular data (its columns have no neighbours); leave --augment out`,
    );
  if (config.preset === 'auto') {
    const { preset, reason } = autoPreset(config.dataset, data.train.shape, backend.name);
    config = validateConfig({ ...config, preset });
    log(`preset: ${preset} (${reason}; choose another with --preset)`);
  }
  const model = buildModelForConfig(config, data.train.shape, data.train.classes.length);
  const trainer = new Trainer(config, model, data, { log });
  if (ckpt) {
    trainer.restore(ckpt);
    trainer.trimMetrics();
    log(
      `resumed ${resume} at epoch ${trainer.epoch}${trainer.epochIter ? ` + ${trainer.epochIter} iterations` : ''} (step ${trainer.step})`,
    );
  } else {
    mkdirSync(config.out, { recursive: true });
    trainer.initialize();
  }
  writeRunConfig(config.out, config, {
    data: data.summary,
    backend: backend.name,
    threadsUsed: backend.threads,
    matmulUsed: backend.matmul,
    convUsed: backend.conv ?? backend.name,
  });
  const length =
    config.maxMinutes === null
      ? `${config.epochs} epochs`
      : `a budget of ${config.maxMinutes} min${config.epochs < MAX_EPOCHS ? ` (at most ${config.epochs} epochs)` : ''}`;
  log(
    `model: ${config.preset}, mode ${config.mode}, recipe ${config.recipe}, lr ${config.lr} ${config.schedule}, ${length} -> ${config.out}`,
  );
  let result;
  try {
    result = await trainer.run();
  } finally {
    await Promise.all([data.train.x.close(), data.test.x.close()]); // a disk store's reader thread
  }
  trainer.dispose();
  log(`curves: ${join(config.out, CURVES_FILE)}; the whole run in one page: semigan report ${config.out}`);
  return result;
}
