import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { configError } from '../errors.js';
import { readMetrics, type EpochMetrics } from './run_dir.js';

/**
 * A sweep directory (`semigan sweep --out DIR`): one run per seed in DIR/seed-N, and per epoch the
 * mean ± std over seeds, as the paper reports its figures (10 seeds; the official code's README
 * varies both the init seed and the labeled-subset seed).
 */
export const SWEEP_FILE = 'sweep.json';
export const SUMMARY_FILE = 'summary.json';
export const seedDir = (dir: string, seed: number) => join(dir, `seed-${seed}`);

/** sweep.json: what the sweep was asked for (resume uses it). */
export interface SweepSpec {
  seeds: number[];
  epochs: number;
  trainArgs: string[]; // the train options every seed gets
}

export interface Stat {
  mean: number;
  std: number; // sample standard deviation (n - 1); 0 for one seed
  min: number;
  max: number;
}

export interface EpochSummary {
  epoch: number;
  seeds: number; // how many seeds reached this epoch
  errors: Stat; // averaged (EMA) weights
  errorsCurrent: Stat;
  accuracy: Stat;
  accuracyCurrent: Stat;
  /** --tail-average: over the seeds whose average has a sample by this epoch (absent if none has). */
  errorsTail?: Stat & { seeds: number };
}

export interface SweepSummary {
  seeds: number[];
  epochs: EpochSummary[];
}

export function stat(xs: number[]): Stat {
  const n = xs.length;
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  const std = n > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : 0;
  return { mean, std, min: Math.min(...xs), max: Math.max(...xs) };
}

/** "1-5", "1,3,7", "1-3,8" -> sorted distinct seeds. */
export function parseSeeds(text: string): number[] {
  const seeds = new Set<number>();
  for (const part of text.split(',')) {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    const [a, b] = m ? [Number(m[1]), Number(m[2] ?? m[1])] : [NaN, NaN];
    if (!m || a > b || b > 2 ** 31 - 1 || b - a > 1000) {
      throw configError(
        `--seeds ${JSON.stringify(text)}: expected non-negative integers and ranges, e.g. 1-5 or 1,3,7 (at most 1000 per range)`,
      );
    }
    for (let s = a; s <= b; s++) seeds.add(s);
  }
  return [...seeds].sort((x, y) => x - y);
}

export function readSweepSpec(dir: string): SweepSpec | null {
  const path = join(dir, SWEEP_FILE);
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as SweepSpec) : null;
}

/** Per epoch reached by at least one seed: mean ± std (and min/max) of the seeds that reached it. */
export function summarize(dir: string, seeds: number[]): SweepSummary {
  const perSeed = new Map<number, EpochMetrics[]>(seeds.map((s) => [s, readMetrics(seedDir(dir, s))]));
  const last = Math.max(0, ...[...perSeed.values()].map((m) => m.length));
  const epochs: EpochSummary[] = [];
  for (let e = 1; e <= last; e++) {
    const rows = [...perSeed.values()].map((m) => m.find((x) => x.epoch === e)).filter((x): x is EpochMetrics => !!x);
    if (rows.length === 0) continue;
    epochs.push({
      epoch: e,
      seeds: rows.length,
      errors: stat(rows.map((r) => r.test_errors)),
      errorsCurrent: stat(rows.map((r) => r.test_errors_current)),
      accuracy: stat(rows.map((r) => r.test_acc)),
      accuracyCurrent: stat(rows.map((r) => r.test_acc_current)),
      ...tailStat(rows),
    });
  }
  return { seeds, epochs };
}

function tailStat(rows: EpochMetrics[]): Pick<EpochSummary, 'errorsTail'> {
  const tail = rows.flatMap((r) => (r.test_errors_tail === undefined ? [] : [r.test_errors_tail]));
  return tail.length ? { errorsTail: { ...stat(tail), seeds: tail.length } } : {};
}

const pm = (s: Stat, d = 1) => `${s.mean.toFixed(d)} ± ${s.std.toFixed(d)}`;

/**
 * The per-epoch table; with a baseline sweep (e.g. `--mode supervised` on the same seeds), its
 * errors with the averaged weights and the ratio of the means at each epoch both reached.
 */
export function formatSummary(s: SweepSummary, baseline?: SweepSummary): string {
  const extra = baseline
    ? (e: EpochSummary) => {
        const b = baseline.epochs.find((x) => x.epoch === e.epoch);
        return b ? ` ${pm(b.errors)} (${b.seeds}) | ${(e.errors.mean / b.errors.mean).toFixed(2)}x |` : ' - | - |';
      }
    : () => '';
  const tail = s.epochs.some((e) => e.errorsTail);
  const tailCell = (e: EpochSummary) =>
    !tail ? '' : e.errorsTail ? ` ${pm(e.errorsTail)} (${e.errorsTail.seeds}) |` : ' - |';
  const lines = [
    `seeds ${s.seeds.join(', ')}: test errors per epoch, mean ± std (sample std) [min, max]` +
      (baseline ? `; baseline seeds ${baseline.seeds.join(', ')}` : ''),
    '',
    '| epoch | seeds | errors, averaged weights | errors, current weights | accuracy, averaged |' +
      (tail ? ' errors, tail average (seeds) |' : '') +
      (baseline ? ' baseline errors, averaged (seeds) | averaged / baseline |' : ''),
    '|---:|---:|---:|---:|---:|' + (tail ? '---:|' : '') + (baseline ? '---:|---:|' : ''),
    ...s.epochs.map(
      (e) =>
        `| ${e.epoch} | ${e.seeds} | ${pm(e.errors)} [${e.errors.min}, ${e.errors.max}] | ${pm(e.errorsCurrent)} [${e.errorsCurrent.min}, ${e.errorsCurrent.max}] | ${(100 * e.accuracy.mean).toFixed(2)}% |` +
        tailCell(e) +
        extra(e),
    ),
  ];
  return lines.join('\n') + '\n';
}
