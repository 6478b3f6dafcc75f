/**
 * The figures of finished (or running) time-budget runs, from their run directories only:
 * test errors of both weight sets and the lr at chosen epochs, the weights each run exported,
 * the time each run's averaged weights took to reach 95 / 97 / 98 / 99%, the mean ± std of the
 * exported errors over the runs, and a PNG of the first run's errors and lr per epoch.
 *
 *   node dist/scripts/experiments/budget_runs.js runs/b120-s1 runs/b120-s2 runs/b120-s3 \
 *       [--at 10,30,60,90] [--figure docs/budget-seed1.png] [--cut 400]
 *
 * The runs themselves are plain `semigan train --max-minutes M` commands (docs/benchmarks.md).
 * Prints figures, asserts nothing.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import sharp from 'sharp';
import { readMetrics, readResult, CONFIG_FILE, type EpochMetrics } from '../../src/train/run_dir.js';
import { errorsChart, lrChart } from '../../src/viz/curves.js';
import { atomicWriteFile } from '../../src/fsutil.js';
import { scriptArgs } from '../lib/args.js';

const { values, positionals } = scriptArgs({
  allowPositionals: true,
  options: {
    at: { type: 'string', default: '' },
    figure: { type: 'string' },
    cut: { type: 'string', default: '400' },
  },
});
if (!positionals.length) {
  process.stderr.write('usage: budget_runs.js RUN_DIR... [--at 10,30] [--figure FILE.png] [--cut 400]\n');
  process.exit(2);
}

const LEVELS = [0.95, 0.97, 0.98, 0.99];
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const std = (xs: number[]) =>
  xs.length > 1 ? Math.sqrt(xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1)) : 0;

interface Run {
  dir: string;
  metrics: EpochMetrics[];
  config: Record<string, unknown>;
}

const runs: Run[] = positionals.map((dir) => ({
  dir,
  metrics: readMetrics(dir),
  config: existsSync(join(dir, CONFIG_FILE)) ? JSON.parse(readFileSync(join(dir, CONFIG_FILE), 'utf8')) : {},
}));

const exported: number[] = [];
for (const r of runs) {
  const c = r.config;
  const res = readResult(r.dir);
  const last = r.metrics.at(-1);
  console.log(
    `\n${r.dir}: recipe ${c.recipe}, schedule ${c.schedule ?? 'constant'}, --max-minutes ${c.maxMinutes ?? '-'}, seed ${c.seed}; ` +
      `${r.metrics.length} epochs, ${last ? (last.seconds / 60).toFixed(1) : 0} min`,
  );
  if (res) {
    console.log(
      `  result: averaged ${res.errors} errors, current ${res.errorsCurrent}${res.errorsTail === undefined ? '' : `, tail average ${res.errorsTail}`}; exported: ${res.weights ?? 'averaged'} ` +
        `(${res.errorsExported ?? res.errors} errors, temperature ${res.temperature ?? 1})${res.stoppedEarly ? ', stopped early' : ''}`,
    );
    exported.push(res.errorsExported ?? res.errors);
  } else console.log('  no result.json yet (still running, or killed)');
  const at = values.at ? values.at.split(',').map(Number) : [];
  if (at.length) {
    console.log('  epoch  errors (averaged / current / tail average)  lr        seconds');
    for (const m of r.metrics.filter((x) => at.includes(x.epoch) || x === last))
      console.log(
        `  ${String(m.epoch).padStart(5)}  ${String(m.test_errors).padStart(8)} / ${String(m.test_errors_current).padEnd(8)} / ${String(m.test_errors_tail ?? '-').padEnd(8)}        ${m.lr.toPrecision(3).padEnd(9)} ${m.seconds.toFixed(0)}`,
      );
  }
  const reach = LEVELS.map((lv) => {
    const m = r.metrics.find((x) => x.test_acc >= lv);
    return `${(lv * 100).toFixed(0)}%: ${m ? `epoch ${m.epoch}, ${m.seconds.toFixed(0)} s` : 'not reached'}`;
  });
  console.log(`  averaged weights reach ${reach.join('; ')}`);
}
if (exported.length > 1)
  console.log(
    `\nexported errors over ${exported.length} runs: ${mean(exported).toFixed(1)} ± ${std(exported).toFixed(1)} (${exported.join(', ')})`,
  );

if (values.figure) {
  const cut = Number(values.cut);
  const main = { name: basename(runs[0].dir), metrics: runs[0].metrics };
  const inner = (svg: string, y: number) => svg.replace('<svg ', `<svg y="${y}" `);
  const svg = [
    '<svg xmlns="http://www.w3.org/2000/svg" width="640" height="640" viewBox="0 0 640 640">',
    inner(errorsChart(main, cut), 0),
    inner(lrChart([main]), 320),
    '</svg>',
  ].join('\n');
  await atomicWriteFile(values.figure, await sharp(Buffer.from(svg)).png().toBuffer());
  console.log(`\nfigure: ${values.figure}`);
}
