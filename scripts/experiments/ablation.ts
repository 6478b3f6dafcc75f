/**
 * Ablation of the paper's five techniques (issue: "All five techniques ... with an ablation report").
 * Every row trains with the same data, seed and budget; then the run's EMA accuracy, a sample-quality
 * score (Fréchet distance in a fixed classifier's features, docs/sample_quality.md), seconds per
 * epoch and its last 10x10 sample grid are collected into a markdown report.
 *
 *   node dist/scripts/experiments/ablation.js --dataset mnist --epochs 1 --iters-per-epoch 300 --out runs/ablation
 *   node dist/scripts/experiments/ablation.js --report runs/ablation --md docs/ablation.md   # rebuild the report from finished runs
 *
 * Each row is a separate `semigan train` process (its own backend state and memory).
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, relative, dirname } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend.js';
import { readRun, loadGenerator } from '../../src/train/run_dir.js';
import { generateImages } from '../../src/eval/generate.js';
import { sampleQuality } from '../../src/eval/sample_quality.js';
import { PACKAGE_ROOT } from '../../src/package_paths.js';
import { scriptArgs } from '../lib/args.js';

const HA_WEIGHT = '1e-4';
const ROWS: { key: string; label: string; flags: string[] }[] = [
  { key: 'fm', label: 'FM alone (paper MNIST recipe)', flags: [] },
  { key: 'fm-mbd', label: 'FM + minibatch discrimination', flags: ['--mbd'] },
  { key: 'fm-ha', label: `FM + historical averaging (${HA_WEIGHT})`, flags: ['--ha', HA_WEIGHT] },
  { key: 'fm-ls', label: 'FM + one-sided label smoothing (0.9)', flags: ['--label-smoothing', '0.9'] },
  { key: 'fm-vbn', label: 'FM + virtual batch norm', flags: ['--vbn'] },
  { key: 'mbd', label: 'MBD alone (non-saturating G)', flags: ['--no-fm', '--mbd'] },
  { key: 'all', label: 'all five', flags: ['--mbd', '--ha', HA_WEIGHT, '--label-smoothing', '0.9', '--vbn'] },
  { key: 'supervised', label: 'supervised only (baseline)', flags: ['--mode', 'supervised'] },
];
const SAMPLES = 5000; // generated images per quality score (the floor uses 5000 real ones)
const SAMPLE_SEED = 4242;

const { values: opt } = scriptArgs({
  options: {
    dataset: { type: 'string', default: 'mnist' },
    epochs: { type: 'string', default: '1' },
    'iters-per-epoch': { type: 'string', default: '300' },
    seed: { type: 'string', default: '1' },
    out: { type: 'string', default: 'runs/ablation' },
    rows: { type: 'string' }, // comma-separated keys, default all
    report: { type: 'string' }, // only rebuild the report from this dir
    md: { type: 'string', default: 'docs/ablation.md' },
  },
});

const root = PACKAGE_ROOT;
const cli = join(root, 'dist', 'src', 'cli.js');

interface RowResult {
  dataset: string;
  key: string;
  label: string;
  accuracy: number;
  errors: number;
  n: number;
  accuracyCurrent: number;
  secondsPerEpoch: number;
  fd: number | null;
  realVsRealFd: number | null;
  grid: string | null;
  command: string;
}

function runRow(dataset: string, row: (typeof ROWS)[number], outDir: string): void {
  const args = [
    'train',
    '--dataset',
    dataset,
    '--labels',
    '100',
    '--seed',
    opt.seed!,
    '--epochs',
    opt.epochs!,
    '--iters-per-epoch',
    opt['iters-per-epoch']!,
    '--out',
    outDir,
    '--overwrite',
    ...row.flags,
  ];
  console.error(`# ${dataset} ${row.key}: semigan ${args.join(' ')}`);
  const r = spawnSync(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`row ${row.key} failed with exit code ${r.status}`);
  writeFileSync(join(outDir, 'command.txt'), `semigan ${args.join(' ')}\n`);
}

async function collect(dataset: string, row: (typeof ROWS)[number], outDir: string): Promise<RowResult> {
  const result = JSON.parse(readFileSync(join(outDir, 'result.json'), 'utf8'));
  const metrics = readFileSync(join(outDir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  const secondsPerEpoch = metrics.reduce((a, m) => a + m.epoch_seconds, 0) / metrics.length;
  let fd: number | null = null;
  let realVsRealFd: number | null = null;
  let grid: string | null = null;
  const ckpt = readRun(outDir);
  if (ckpt.meta.config.mode !== 'supervised') {
    const { model, weights } = loadGenerator(ckpt);
    const images = generateImages(model, weights, SAMPLES, SAMPLE_SEED);
    tf.dispose(Object.values(weights));
    ({ fd, realVsRealFd } = sampleQuality(dataset, images, SAMPLES));
    const pngs = readdirSync(join(outDir, 'samples'))
      .filter((f) => f.endsWith('.png'))
      .sort();
    if (pngs.length) {
      const mdDir = dirname(opt.md!);
      const dest = join(mdDir, 'ablation', `${dataset}-${row.key}.png`);
      mkdirSync(dirname(dest), { recursive: true });
      copyFileSync(join(outDir, 'samples', pngs[pngs.length - 1]), dest);
      grid = relative(mdDir, dest);
    }
  }
  const command = existsSync(join(outDir, 'command.txt'))
    ? readFileSync(join(outDir, 'command.txt'), 'utf8').trim()
    : '';
  return {
    dataset,
    key: row.key,
    label: row.label,
    accuracy: result.accuracy,
    errors: result.errors,
    n: result.n,
    accuracyCurrent: result.accuracyCurrent,
    secondsPerEpoch,
    fd,
    realVsRealFd,
    grid,
    command,
  };
}

function table(rows: RowResult[]): string {
  const lines = [
    '| technique(s) | test acc (EMA) | errors | test acc (current) | sample FD ↓ | s/epoch | samples |',
    '|---|---:|---:|---:|---:|---:|---|',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.label} | ${(100 * r.accuracy).toFixed(2)}% | ${r.errors} / ${r.n} | ${(100 * r.accuracyCurrent).toFixed(2)}% | ${r.fd === null ? '–' : r.fd.toFixed(2)} | ${r.secondsPerEpoch.toFixed(0)} | ${r.grid ? `[grid](${r.grid})` : '–'} |`,
    );
  }
  const floor = rows.find((r) => r.realVsRealFd !== null)?.realVsRealFd;
  if (floor !== undefined && floor !== null)
    lines.push(
      '',
      `Real-vs-real FD with ${SAMPLES} images (what a perfect generator would score): ${floor.toFixed(2)}.`,
    );
  return lines.join('\n');
}

/** The paper's claim, checked on these rows: MBD gives the better samples, FM the better classifier. */
function verdict(rows: RowResult[]): string {
  const fm = rows.find((r) => r.key === 'fm');
  const mbd = rows.find((r) => r.key === 'mbd');
  if (!fm || !mbd || fm.fd === null || mbd.fd === null) return '';
  const samples =
    mbd.fd < fm.fd
      ? 'MBD alone gives the better samples (lower FD)'
      : 'FM gives the better samples (lower FD), unlike the paper';
  const classifier =
    fm.accuracy > mbd.accuracy
      ? 'FM gives the better classifier'
      : 'MBD alone gives the better classifier, unlike the paper';
  return `Paper's claim on this budget: ${samples}: FD ${mbd.fd.toFixed(2)} (MBD) vs ${fm.fd.toFixed(2)} (FM); ${classifier}: ${(100 * fm.accuracy).toFixed(2)}% (FM) vs ${(100 * mbd.accuracy).toFixed(2)}% (MBD).`;
}

async function main(): Promise<void> {
  await initBackend('wasm');
  const base = opt.report ?? opt.out!;
  const wanted = opt.rows ? ROWS.filter((r) => opt.rows!.split(',').includes(r.key)) : ROWS;
  const datasets = opt.report
    ? readdirSync(base).filter(
        (d) => existsSync(join(base, d, ROWS[0].key)) || ROWS.some((r) => existsSync(join(base, d, r.key))),
      )
    : [opt.dataset!];
  const sections: string[] = [];
  for (const dataset of datasets) {
    const results: RowResult[] = [];
    for (const row of wanted) {
      const outDir = join(base, dataset, row.key);
      if (!opt.report) runRow(dataset, row, outDir);
      if (!existsSync(join(outDir, 'result.json'))) continue;
      const r = await collect(dataset, row, outDir);
      console.error(
        `# ${dataset} ${row.key}: acc ${(100 * r.accuracy).toFixed(2)}%  FD ${r.fd?.toFixed(2) ?? '-'}  ${r.secondsPerEpoch.toFixed(0)} s/epoch`,
      );
      results.push(r);
    }
    const section = [
      `## ${dataset}`,
      '',
      table(results),
      '',
      verdict(results),
      '',
      'Commands:',
      '',
      '```',
      ...results.map((r) => r.command),
      '```',
    ].join('\n');
    console.log(section + '\n');
    sections.push(section);
  }
  if (opt.report) writeFileSync(opt.md!, sections.join('\n\n') + '\n');
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
