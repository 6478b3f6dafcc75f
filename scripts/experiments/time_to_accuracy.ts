/**
 * Wall seconds until the averaged (EMA) weights first reach 95%, 97% and 98% test accuracy on
 * MNIST-100: semigan (`train --recipe R`) and the PyTorch peer (../shared/peers/), same seed, one
 * after the other so that each has the machine to itself.
 *
 *   npx tsc -p . && node dist/scripts/experiments/time_to_accuracy.js [--seed 1] [--epochs 30]
 *       [--recipe ct] [--threads 2] [--train="--labels 100"] [--out runs/tta]
 *   node dist/scripts/experiments/time_to_accuracy.js --out runs/tta --report   # print only
 *
 * semigan trains in OUT/semigan-seed-S (resumed if it exists, so a killed run continues); the
 * peer's stdout goes to OUT/peer-seed-S.log (reused if it holds all the epochs asked for).
 * Both clocks start after data loading and set-up and include the per-epoch evaluation. Prints
 * figures, asserts nothing.
 */
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PACKAGE_ROOT } from '../../src/package_paths.js';
import { readMetrics } from '../../src/train/run_dir.js';
import { positiveIntOption, scriptArgs } from '../lib/args.js';

const { values } = scriptArgs({
  options: {
    seed: { type: 'string', default: '1' },
    epochs: { type: 'string', default: '30' },
    recipe: { type: 'string', default: 'ct' },
    threads: { type: 'string', default: '2' }, // both: semigan's OpenBLAS threads, the peer's torch threads
    train: { type: 'string', default: '' }, // more semigan train options (the = is needed)
    out: { type: 'string', default: 'runs/tta' },
    python: { type: 'string', default: '/usr/bin/python3' },
    peer: { type: 'string', default: resolve(PACKAGE_ROOT, '../shared/peers/torch_improved_gan.py') },
    report: { type: 'boolean', default: false }, // print the table of what OUT holds, train nothing
    'skip-peer': { type: 'boolean', default: false },
  },
});
const seed = positiveIntOption(values, 'seed');
const epochs = positiveIntOption(values, 'epochs');
const threads = positiveIntOption(values, 'threads');
const out = resolve(values.out!);
const runDir = join(out, `semigan-seed-${seed}`);
const peerLog = join(out, `peer-seed-${seed}.log`);
const LEVELS = [0.95, 0.97, 0.98];

interface Point {
  epoch: number;
  seconds: number;
  acc: number; // averaged weights
}

function run(cmd: string, args: string[], stdout: 'ignore' | string): Promise<void> {
  return new Promise((done, fail) => {
    const child = spawn(cmd, args, { cwd: PACKAGE_ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    if (stdout !== 'ignore') child.stdout.pipe(createWriteStream(stdout));
    else child.stdout.resume();
    child.on('close', (code) => (code === 0 ? done() : fail(new Error(`${cmd} ${args[0]}: exit code ${code}`))));
  });
}

function semiganPoints(): Point[] {
  if (!existsSync(join(runDir, 'metrics.jsonl'))) return [];
  return readMetrics(runDir).map((m) => ({ epoch: m.epoch, seconds: m.seconds, acc: m.test_acc }));
}

/**
 * The peer's per-epoch lines ("epoch train_s eval_s losses... test_acc_avg (err) test_acc_raw
 * (err)"); its clock is the sum of train_s + eval_s, so a run stopped early still counts.
 */
function peerPoints(): Point[] {
  if (!existsSync(peerLog)) return [];
  const points: Point[] = [];
  let seconds = 0;
  const EPOCH_LINE = /^\s*(\d+)\s+([\d.]+)\s+([\d.]+)(?:\s+\S+){4}\s+([\d.]+)\s*\(/;
  for (const line of readFileSync(peerLog, 'utf8').split('\n')) {
    const f = EPOCH_LINE.exec(line);
    if (!f) continue;
    seconds += Number(f[2]) + Number(f[3]);
    points.push({ epoch: Number(f[1]), seconds, acc: Number(f[4]) });
  }
  return points;
}

if (!values.report) {
  mkdirSync(out, { recursive: true });
  const cli = join(PACKAGE_ROOT, 'dist', 'src', 'cli.js');
  const train = existsSync(join(runDir, 'config.json'))
    ? ['train', '--resume', runDir, '--epochs', String(epochs)]
    : [
        'train',
        '--recipe',
        values.recipe!,
        '--seed',
        String(seed),
        '--seed-data',
        String(seed),
        '--threads',
        String(threads),
        '--epochs',
        String(epochs),
        '--out',
        runDir,
        ...values.train!.split(/\s+/).filter(Boolean),
      ];
  await run(process.execPath, [cli, ...train], 'ignore');
  if (!values['skip-peer'] && peerPoints().length < epochs)
    await run(
      values.python!,
      [
        values.peer!,
        '--data',
        'mnist',
        '--labels',
        '100',
        '--seed',
        String(seed),
        '--threads',
        String(threads),
        '--epochs',
        String(epochs),
      ],
      peerLog,
    );
}

const rows: [string, Point[]][] = [
  [
    `semigan ${existsSync(join(runDir, 'config.json')) ? JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8')).recipe : values.recipe}`,
    semiganPoints(),
  ],
  ['PyTorch peer (paper recipe)', peerPoints()],
];
console.log(`\nseed ${seed}: first epoch whose averaged weights reach each accuracy, and the wall seconds then\n`);
console.log(`| run | epochs run | s per epoch | ${LEVELS.map((l) => `${100 * l}%`).join(' | ')} |`);
console.log(`|---|---:|---:|${LEVELS.map(() => '---:').join('|')}|`);
const firstAt = (points: Point[], level: number) => points.find((p) => p.acc >= level);
for (const [name, points] of rows) {
  if (points.length === 0) {
    console.log(`| ${name} | not run | | ${LEVELS.map(() => '').join(' | ')} |`);
    continue;
  }
  const last = points[points.length - 1];
  const cells = LEVELS.map((l) => {
    const hit = firstAt(points, l);
    return hit ? `epoch ${hit.epoch}, ${Math.round(hit.seconds)} s` : `not in ${last.epoch} epochs`;
  });
  console.log(`| ${name} | ${last.epoch} | ${(last.seconds / last.epoch).toFixed(1)} | ${cells.join(' | ')} |`);
}
const [ours, peer] = rows.map(([, p]) => firstAt(p, 0.97));
if (ours && peer) console.log(`\n97%: semigan / peer wall seconds = ${(ours.seconds / peer.seconds).toFixed(2)}x`);
