import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { lockRunDir } from '../train/run_lock.js';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { configError, SemiganError } from '../errors.js';
import { checkpointPath, readResult } from '../train/run_dir.js';
import {
  SUMMARY_FILE,
  SWEEP_FILE,
  formatSummary,
  readSweepSpec,
  seedDir,
  summarize,
  type SweepSpec,
  type SweepSummary,
} from '../train/sweep_summary.js';

const CLI = fileURLToPath(new URL('../cli.js', import.meta.url));
const log = (line: string) => process.stderr.write(line + '\n');

export interface SweepOptions {
  seeds: number[];
  out: string;
  epochs: number | null; // null with --resume: the sweep's own
  /** Train options for every seed, as typed (no --seed, --seed-data, --out, --resume). */
  trainArgs: string[];
  /** Runs at once (default: cores / threads per run). */
  jobs: number | null;
  /** matMul threads per run (default 1: seeds in parallel use the cores better than threads). */
  threads: number | null;
  resume: boolean;
  overwrite: boolean;
}

const FORBIDDEN = ['--seed', '--seed-data', '--out', '--resume', '--overwrite', '--epochs', '--threads'];

/** Run one child `semigan train`; its stderr lines are prefixed with the seed. */
function runTrain(args: string[], seed: number): Promise<{ code: number | null; lastError: string }> {
  return new Promise((resolveRun) => {
    const child = spawn(process.execPath, [CLI, 'train', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let buffered = '';
    let lastError = '';
    child.stderr.on('data', (b: Buffer) => {
      buffered += b.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const l of lines) {
        if (l.startsWith('error: ')) lastError = l.slice(7);
        if (!/^epoch \d+\/\d+ \d+\//.test(l)) log(`[seed ${seed}] ${l}`); // progress bars stay in the seed's own run
      }
    });
    child.on('close', (code) => resolveRun({ code, lastError }));
  });
}

/** `semigan sweep`: one training run per seed (in parallel up to --jobs), then the summary. */
export async function sweepCommand(o: SweepOptions): Promise<SweepSummary> {
  const bad = o.trainArgs.find((a) => FORBIDDEN.includes(a.split('=')[0]));
  if (bad)
    throw configError(
      `${bad} is set by the sweep for each seed; give --seeds, --out, --epochs, --threads or --resume to the sweep itself`,
    );
  if (o.jobs !== null && (!Number.isInteger(o.jobs) || o.jobs < 1))
    throw configError(`--jobs ${o.jobs}: expected a positive integer`);
  const threads = o.threads ?? 1;
  const jobs = o.jobs ?? Math.max(1, Math.floor(availableParallelism() / threads));
  const out = resolve(o.out);
  const spec: SweepSpec = { seeds: o.seeds, epochs: o.epochs ?? 10, trainArgs: o.trainArgs };
  const earlier = readSweepSpec(out);
  if (earlier && !o.resume && !o.overwrite) {
    throw configError(
      `${o.out} already holds a sweep; continue it with --resume, start over with --overwrite, or pick another --out`,
    );
  }
  if (o.resume && !earlier) throw configError(`--resume ${o.out}: no sweep there (no ${SWEEP_FILE})`);
  lockRunDir(out, 'sweep');
  if (o.overwrite && earlier) for (const s of earlier.seeds) rmSync(seedDir(out, s), { recursive: true, force: true });
  const run = o.resume && earlier ? { ...earlier, epochs: o.epochs ?? earlier.epochs } : spec;
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, SWEEP_FILE), JSON.stringify(run, null, 2) + '\n');
  log(
    `sweep: seeds ${run.seeds.join(', ')}, ${run.epochs} epochs, ${jobs} at once, ${threads} thread${threads === 1 ? '' : 's'} each -> ${o.out}`,
  );

  const queue = [...run.seeds];
  const failures: string[] = [];
  const worker = async () => {
    for (let seed = queue.shift(); seed !== undefined; seed = queue.shift()) {
      const dir = seedDir(out, seed);
      const done = readResult(dir);
      if (done && done.epochs >= run.epochs && !done.stoppedEarly) {
        log(`[seed ${seed}] finished earlier (${done.epochs} epochs): kept`);
        continue;
      }
      const args = existsSync(checkpointPath(dir))
        ? ['--resume', dir, '--epochs', String(run.epochs), '--threads', String(threads)]
        : [
            ...run.trainArgs,
            '--seed',
            String(seed),
            '--seed-data',
            String(seed),
            '--epochs',
            String(run.epochs),
            '--threads',
            String(threads),
            '--out',
            dir,
            '--overwrite',
          ];
      const r = await runTrain(args, seed);
      if (r.code !== 0) failures.push(`seed ${seed}: ${r.lastError || `train exited with code ${r.code}`}`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, run.seeds.length) }, worker));
  const summary = summarize(out, run.seeds);
  writeFileSync(join(out, SUMMARY_FILE), JSON.stringify(summary, null, 2) + '\n');
  if (failures.length)
    throw new SemiganError(
      'SEMIGAN_ERR_CONFIG',
      `sweep: ${failures.length} of ${run.seeds.length} runs failed (${failures.join('; ')}); the others are summarized in ${join(o.out, SUMMARY_FILE)}; fix it and continue with --resume`,
    );
  return summary;
}

/** `semigan evaluate SWEEP_DIR`: the summary table of what the seeds have reached so far. */
export function sweepReport(dir: string, baselineDir?: string): string | null {
  const spec = readSweepSpec(dir);
  if (!spec) {
    if (baselineDir !== undefined)
      throw configError(`--baseline applies to a sweep directory; ${dir} holds no ${SWEEP_FILE}`);
    return null;
  }
  if (baselineDir === undefined) return formatSummary(summarize(dir, spec.seeds));
  const base = readSweepSpec(baselineDir);
  if (!base)
    throw configError(
      `--baseline ${baselineDir}: not a sweep directory (no ${SWEEP_FILE}); expected the --out of a semigan sweep`,
    );
  return formatSummary(summarize(dir, spec.seeds), summarize(baselineDir, base.seeds));
}
