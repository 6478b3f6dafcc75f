/**
 * Markdown table of training runs, one per run directory, from its metrics.jsonl (one line per
 * finished epoch) and result.json (written when the run ends). A run still in progress is fine:
 * what is there is shown.
 *
 *   node dist/scripts/experiments/report_runs.js RUN_DIR... [--epochs 1,5,10,20,30] [--peer]
 *
 * --epochs keeps only those epochs. --peer adds the PyTorch peer's MNIST test errors (EMA weights,
 * all 10000 test images; figures quoted in the issue) and our/peer ratio where the peer has the
 * epoch (1, 5, 10, 18).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { EpochMetrics, TrainResult } from '../../src/train/run_dir.js';
import { scriptArgs } from '../lib/args.js';

/** PyTorch peer (../shared/peers/torch_improved_gan.py), MNIST, 100 labels, seed 1: EMA test errors of 10000. */
export const PEER_MNIST_EMA_ERRORS: Readonly<Record<number, number>> = { 1: 2746, 5: 2400, 10: 1583, 18: 668 };
const PEER_N_TEST = 10000;

type Metrics = Pick<
  EpochMetrics,
  | 'epoch'
  | 'test_errors'
  | 'test_errors_current'
  | 'test_acc'
  | 'test_acc_current'
  | 'epoch_seconds'
  | 'rss_mb'
  | 'n_test'
>;

interface RunConfig {
  dataset?: string;
  mode?: string;
  labels?: number | null;
  labelsPerClass?: number | null;
  epochs?: number;
  seed?: number;
  backend?: string;
  preset?: string;
}

type RunResult = Pick<TrainResult, 'accuracy' | 'errors' | 'n' | 'epochs' | 'seconds' | 'stoppedEarly' | 'peakRssMb'>;

function readJson<T>(path: string): T | null {
  if (!existsSync(path)) return null;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return null; // being written
  }
}

/** Finished epochs in order; a partial last line (being appended) is skipped, a re-run epoch keeps its last line. */
function readMetrics(path: string): Metrics[] {
  if (!existsSync(path)) return [];
  const byEpoch = new Map<number, Metrics>();
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      const m = JSON.parse(line) as Metrics;
      if (Number.isInteger(m.epoch)) byEpoch.set(m.epoch, m);
    } catch {
      // incomplete line
    }
  }
  return [...byEpoch.values()].sort((a, b) => a.epoch - b.epoch);
}

const num = (x: number | undefined, d: number) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(d) : '-');
const pct = (x: number | undefined) => (typeof x === 'number' && Number.isFinite(x) ? `${(100 * x).toFixed(2)}%` : '-');

function table(header: string[], rows: string[][], rightAlign: boolean[]): string {
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (rightAlign[i] ? c.padStart(w[i]) : c.padEnd(w[i]))).join(' | ')} |`;
  const sep = `|${w.map((n, i) => (rightAlign[i] ? '-'.repeat(n + 1) + ':' : '-'.repeat(n + 2))).join('|')}|`;
  return [line(header), sep, ...rows.map(line)].join('\n');
}

function report(dir: string, epochs: Set<number> | null, peer: boolean): { text: string; ok: boolean } {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return { text: `## ${dir}\n\nnot a directory\n`, ok: false };
  const config = readJson<RunConfig>(join(dir, 'config.json'));
  const result = readJson<RunResult>(join(dir, 'result.json'));
  const all = readMetrics(join(dir, 'metrics.jsonl'));
  const out: string[] = [`## ${dir}`, ''];

  const desc: string[] = [];
  if (config) {
    const labels =
      config.labels != null
        ? `${config.labels} labels`
        : config.labelsPerClass != null
          ? `${config.labelsPerClass} labels/class`
          : '';
    desc.push(
      [
        config.dataset,
        config.preset,
        config.mode,
        labels,
        config.seed != null ? `seed ${config.seed}` : '',
        config.backend ? `backend ${config.backend}` : '',
      ]
        .filter(Boolean)
        .join(', '),
    );
  }
  const last = all[all.length - 1];
  const stale = result && last && last.epoch > result.epochs; // result.json of an earlier leg of a resumed run
  if (result && !stale) {
    desc.push(
      `finished: ${num(result.epochs, 2).replace(/\.00$/, '')} epochs${result.stoppedEarly ? ' (stopped by the time budget)' : ''}, ` +
        `EMA accuracy ${pct(result.accuracy)} (${result.errors} errors of ${result.n}), ${num(result.seconds, 0)} s, peak RSS ${result.peakRssMb} MB`,
    );
  } else {
    desc.push(
      `in progress: ${all.length} epoch(s) finished${config?.epochs ? ` of ${config.epochs}` : ''}${stale ? ' (result.json is from before a resume)' : ''}`,
    );
  }
  out.push(desc.join('; '), '');
  if (all.length === 0) {
    out.push('(no finished epoch yet: metrics.jsonl is empty or missing)', '');
    return { text: out.join('\n'), ok: true };
  }

  const isMnist = config?.dataset === undefined || config.dataset === 'mnist';
  const withPeer = peer && isMnist;
  const rows = (epochs ? all.filter((m) => epochs.has(m.epoch)) : all).map((m) => {
    const r = [
      String(m.epoch),
      String(m.test_errors),
      String(m.test_errors_current),
      pct(m.test_acc),
      num(m.epoch_seconds, 1),
      String(m.rss_mb ?? '-'),
    ];
    if (withPeer) {
      const p = PEER_MNIST_EMA_ERRORS[m.epoch];
      r.push(p === undefined ? '' : String(p), p === undefined ? '' : `${(m.test_errors / p).toFixed(2)}x`);
    }
    return r;
  });
  const header = ['epoch', 'errors (EMA)', 'errors (current)', 'accuracy (EMA)', 's/epoch', 'RSS MB'];
  if (withPeer) header.push('peer errors (EMA)', 'ours/peer');
  if (rows.length === 0) out.push(`(none of the requested epochs is finished yet; last finished: ${last.epoch})`);
  else
    out.push(
      table(
        header,
        rows,
        header.map(() => true),
      ),
    );
  out.push('');
  const notes: string[] = [`errors are of ${last.n_test} test images`];
  if (peer && !isMnist) notes.push(`no peer column: the peer figures are for MNIST, this run is ${config?.dataset}`);
  if (peer && config?.dataset === undefined) notes.push('config.json missing: assumed MNIST for the peer column');
  if (withPeer && last.n_test !== PEER_N_TEST)
    notes.push(`the peer's errors are of ${PEER_N_TEST} test images: ratios are not comparable`);
  if (withPeer)
    notes.push(
      'peer: PyTorch torch_improved_gan.py, MNIST, 100 labels, EMA weights; ours/peer < 1 = fewer errors than the peer',
    );
  out.push(notes.map((n) => `- ${n}`).join('\n'), '');
  return { text: out.join('\n'), ok: true };
}

function main(): void {
  const { values, positionals } = scriptArgs({
    allowPositionals: true,
    options: {
      epochs: { type: 'string' },
      peer: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help || positionals.length === 0) {
    console.error('usage: node dist/scripts/experiments/report_runs.js RUN_DIR... [--epochs 1,5,10,20,30] [--peer]');
    process.exit(values.help ? 0 : 1);
  }
  let epochs: Set<number> | null = null;
  if (values.epochs) {
    const list = values.epochs.split(',').map((s) => Number(s.trim()));
    if (list.some((e) => !Number.isInteger(e) || e <= 0)) {
      console.error(`--epochs must be a comma-separated list of positive integers; got ${values.epochs}`);
      process.exit(1);
    }
    epochs = new Set(list);
  }
  let ok = true;
  for (const dir of positionals) {
    const r = report(dir, epochs, values.peer!);
    ok &&= r.ok;
    process.stdout.write(r.text + '\n');
  }
  if (!ok) process.exitCode = 1;
}

main();
