/**
 * The time-budget runs of docs/benchmarks.md §11, one after the other (each alone on the
 * machine, 2 threads), each resumed from its checkpoint when an earlier invocation was cut off:
 * a killed session loses at most the minutes since the last checkpoint, and the run's budget
 * counts only the time it trained.
 *
 *   npx tsc -p . && nohup node dist/scripts/experiments/budget_floor.js [--only NAME,...] [--out runs/budget] &
 *   node dist/scripts/experiments/budget_runs.js runs/budget/default-s1 runs/budget/default-s2 ...   # the figures
 *
 * Prints one line per run as it starts and ends; asserts nothing.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PACKAGE_ROOT } from '../../src/package_paths.js';
import { failUsage, scriptArgs } from '../lib/args.js';

const { values } = scriptArgs({
  options: {
    only: { type: 'string' },
    out: { type: 'string', default: 'runs/budget' },
    threads: { type: 'string', default: '2' },
  },
});

/** name -> train options (the budget recipe is the default with --max-minutes). */
const mnist = (seed: number, ...extra: string[]) => [
  ...['--data', 'mnist', '--labels', '100', '--max-minutes', '120', '--seed', String(seed)],
  ...extra,
];
const fashion = (...extra: string[]) => [
  ...['--data', 'fashion-mnist', '--labels', '100', '--max-minutes', '30', '--seed', '1'],
  ...extra,
];
const RUNS: Record<string, string[]> = {
  // The floor's command as it is now (the paper recipe is the budget default), three seeds.
  'default-s1': mnist(1),
  'default-s2': mnist(2),
  'default-s3': mnist(3),
  'ct-tail-s1': mnist(1, '--recipe', 'ct-tail'),
  'paper-s1': mnist(1, '--recipe', 'paper'),
  'paper-tail-s1': mnist(1, '--recipe', 'paper', '--schedule', 'linear-tail'),
  // CT-GAN's MNIST recipe (CT_MNIST.py): the paper's plus consistency 0.5 x 0.1 in the unlabeled
  // loss, no entropy, no averaging warm-up (the ct recipe adds both).
  'consistency-s1': mnist(1, '--consistency', '0.05'),
  'fashion-pi-s1': fashion(),
  'fashion-image-s1': fashion('--augment', '2'),
  'fashion-supervised-s1': fashion('--mode', 'supervised', '--recipe', 'ct-tail'),
};

const names = values.only ? values.only.split(',') : Object.keys(RUNS);
for (const n of names) if (!RUNS[n]) failUsage(`--only: unknown run ${n}; known: ${Object.keys(RUNS).join(', ')}`);
const cli = join(PACKAGE_ROOT, 'dist', 'src', 'cli.js');

for (const name of names) {
  const out = resolve(values.out!, name);
  if (existsSync(join(out, 'result.json')) && !existsSync(join(out, '.lock'))) {
    console.log(`${name}: done before (${out}/result.json)`);
    continue;
  }
  const args = existsSync(join(out, 'checkpoint.bin'))
    ? ['train', '--resume', out, '--threads', values.threads!]
    : ['train', ...RUNS[name], '--threads', values.threads!, '--out', out];
  console.log(`${name}: node ${['dist/src/cli.js', ...args.slice(0)].join(' ')}`);
  const code = await new Promise<number | null>((done) => {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('close', done);
  });
  console.log(`${name}: exit ${code}`);
}
