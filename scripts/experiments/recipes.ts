/**
 * The recipes of the accuracy work side by side, as seed sweeps: the paper's, + consistency,
 * + entropy, + both, and the supervised baseline, each `semigan sweep --seeds S --epochs E` in
 * OUT/<recipe>, then one table of mean ± std errors per recipe at the chosen epochs.
 *
 *   npx tsc -p . && node dist/scripts/experiments/recipes.js [--seeds 1-3] [--epochs 20] [--out runs/recipes]
 *       [--recipes paper,consistency,entropy,both,supervised] [--at 1,5,10,20] [--jobs N] [--train="--train-limit 2000"]
 *
 * A recipe whose sweep exists is resumed (finished seeds kept), so a killed run continues where
 * it stopped. Prints figures, asserts nothing.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PACKAGE_ROOT } from '../../src/package_paths.js';
import { readMetrics } from '../../src/train/run_dir.js';
import { seedDir, SUMMARY_FILE, SWEEP_FILE, type SweepSummary } from '../../src/train/sweep_summary.js';
import { failUsage, scriptArgs } from '../lib/args.js';

const RECIPES: Record<string, string[]> = {
  paper: [],
  consistency: ['--consistency', '0.1'],
  entropy: ['--entropy', '0.1'],
  both: ['--consistency', '0.1', '--entropy', '0.1'],
  supervised: ['--mode', 'supervised'],
  ct: ['--consistency', '0.1', '--entropy', '0.1', '--ema-warmup'],
};

const { values } = scriptArgs({
  options: {
    seeds: { type: 'string', default: '1-3' },
    epochs: { type: 'string', default: '20' },
    out: { type: 'string', default: 'runs/recipes' },
    recipes: { type: 'string', default: Object.keys(RECIPES).join(',') },
    at: { type: 'string', default: '1,5,10,20' },
    jobs: { type: 'string' },
    train: { type: 'string', default: '' }, // more train options for every recipe: --train="--train-limit 2000" (the = is needed)
  },
});
const names = values.recipes!.split(',');
const unknown = names.filter((n) => !RECIPES[n]);
if (unknown.length)
  failUsage(`--recipes: unknown ${unknown.join(', ')}; expected some of ${Object.keys(RECIPES).join(', ')}`);
const out = resolve(values.out!);
const cli = join(PACKAGE_ROOT, 'dist', 'src', 'cli.js');

function sweep(recipe: string): Promise<void> {
  const dir = join(out, recipe);
  const args = existsSync(join(dir, SWEEP_FILE))
    ? ['sweep', '--out', dir, '--resume', '--epochs', values.epochs!]
    : [
        'sweep',
        '--seeds',
        values.seeds!,
        '--epochs',
        values.epochs!,
        '--out',
        dir,
        ...RECIPES[recipe],
        ...values.train!.split(/\s+/).filter(Boolean),
      ];
  if (values.jobs) args.push('--jobs', values.jobs);
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('close', (code) => (code === 0 ? done() : fail(new Error(`${recipe}: sweep exited with code ${code}`))));
  });
}

for (const r of names) await sweep(r);

const at = values.at!.split(',').map(Number);
const summaries = new Map(
  names.map((r) => [r, JSON.parse(readFileSync(join(out, r, SUMMARY_FILE), 'utf8')) as SweepSummary]),
);
const cell = (s: SweepSummary, e: number, key: 'errors' | 'errorsCurrent') => {
  const row = s.epochs.find((x) => x.epoch === e);
  return row ? `${row[key].mean.toFixed(0)} ± ${row[key].std.toFixed(0)}` : '-';
};
console.log(`\nseeds ${values.seeds}; test errors, mean ± sample std over seeds (averaged weights / current)\n`);
console.log(`| recipe | ${at.map((e) => `epoch ${e}`).join(' | ')} |`);
console.log(`|---|${at.map(() => '---:').join('|')}|`);
for (const [r, s] of summaries)
  console.log(`| ${r} | ${at.map((e) => `${cell(s, e, 'errors')} / ${cell(s, e, 'errorsCurrent')}`).join(' | ')} |`);
const last = Math.max(...at);
const meanAt = (r: string) => summaries.get(r)?.epochs.find((x) => x.epoch === last)?.errors.mean;
const paper = meanAt('paper');
if (paper !== undefined) {
  for (const r of names.filter((n) => n !== 'paper' && n !== 'supervised')) {
    const m = meanAt(r);
    if (m !== undefined) console.log(`${r} / paper at epoch ${last} (averaged weights): ${(m / paper).toFixed(3)}x`);
  }
}

// Time to accuracy: per recipe and seed, the first epoch whose averaged weights reach each level,
// and the run's training seconds then (wall time of that run, whatever else the machine ran).
const LEVELS = [0.95, 0.97, 0.98];
console.log(`\ntime to accuracy (averaged weights): first epoch reaching it, and the run's seconds then\n`);
console.log(`| recipe | seed | ${LEVELS.map((l) => `${100 * l}%`).join(' | ')} |`);
console.log(`|---|---:|${LEVELS.map(() => '---:').join('|')}|`);
for (const r of names) {
  for (const seed of summaries.get(r)!.seeds) {
    const m = readMetrics(seedDir(join(out, r), seed));
    const cells = LEVELS.map((l) => {
      const hit = m.find((e) => e.test_acc >= l);
      return hit ? `epoch ${hit.epoch}, ${Math.round(hit.seconds)} s` : 'not reached';
    });
    console.log(`| ${r} | ${seed} | ${cells.join(' | ')} |`);
  }
}
