import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeBackend, initBackend } from '../backend.js';
import { loadData } from '../data/load.js';
import { autoPreset, buildModelForConfig } from '../models/presets.js';
import { validateConfig, type TrainConfig } from '../train/config.js';
import { CHECKPOINT_FILE, METRICS_FILE, Trainer, type TrainResult } from '../train/trainer.js';
import { readRun } from '../eval/run_model.js';
import { configError } from '../errors.js';

const log = (line: string) => process.stderr.write(line + '\n');

/** Options that may change when a run is resumed; everything else comes from its checkpoint. */
const RESUMABLE = ['epochs', 'maxMinutes', 'backend', 'threads', 'matmul'] as const;

/**
 * `semigan train`: validate the config, pick the backend, load data, train, print one JSON line.
 * With `resume`, the run's saved config is used and only RESUMABLE options may be given.
 */
export async function trainCommand(options: Partial<TrainConfig>, resume: string | null, overwrite = false): Promise<TrainResult> {
  let config: Readonly<TrainConfig>;
  const ckpt = resume ? readRun(resume) : null;
  if (ckpt) {
    const extra = Object.keys(options).filter((k) => !(RESUMABLE as readonly string[]).includes(k));
    if (extra.length) throw configError(`--resume takes the run's saved config; only --epochs, --max-minutes, --backend, --threads and --matmul may be given (got ${extra.map((k) => '--' + k).join(', ')})`);
    // A time budget belongs to one invocation: a resumed run gets only the one given now.
    config = validateConfig({ ...ckpt.meta.config, maxMinutes: null, ...options, out: resume! });
  } else {
    config = validateConfig(options);
    claimRunDir(config.out, overwrite);
  }

  const backend = await initBackend(config.backend, { threads: config.threads, matmul: config.matmul });
  log(describeBackend(backend));
  const data = await loadData(config, log);
  log(`data: ${data.summaryText} from ${data.source}`);
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
    log(`resumed ${resume} at epoch ${trainer.epoch}${trainer.epochIter ? ` + ${trainer.epochIter} iterations` : ''} (step ${trainer.step})`);
  } else {
    mkdirSync(config.out, { recursive: true });
    trainer.initialize();
  }
  writeFileSync(join(config.out, 'config.json'), JSON.stringify({ ...config, data: data.summary, backend: backend.name, threadsUsed: backend.threads, matmulUsed: backend.matmul }, null, 2) + '\n');
  log(`model: ${config.preset}, mode ${config.mode}, ${config.epochs} epochs -> ${config.out}`);
  const result = await trainer.run();
  trainer.dispose();
  return result;
}

/** A fresh run must not mix its metrics and checkpoint with an earlier run's. */
function claimRunDir(out: string, overwrite: boolean): void {
  if (!existsSync(join(out, CHECKPOINT_FILE)) && !existsSync(join(out, METRICS_FILE))) return;
  if (!overwrite) {
    throw configError(`${out} already holds a run; continue it with --resume ${out}, start over with --overwrite, or pick another --out`);
  }
  for (const f of [CHECKPOINT_FILE, METRICS_FILE, 'result.json', 'config.json', 'samples']) rmSync(join(out, f), { recursive: true, force: true });
}
