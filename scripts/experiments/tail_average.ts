/**
 * What `--tail-average S` (train/tail_average.ts) would have given a finished run, for several S
 * at once, against the run's EMA and current weights: from copies of the run's checkpoint.bin
 * taken each time it was written (named so they sort in order), replaying the trainer's rule
 * with its own code (a sample at each epoch's end once runProgress reaches S, by the seconds its
 * metrics.jsonl line records; the weights a budget ended with mid-epoch count once more).
 *
 *   node dist/scripts/experiments/tail_average.js CHECKPOINT_COPIES_DIR --run RUN_DIR [--from 0.25,0.5] [--val 10000] \
 *       [--figure docs/FILE.png [--cut 400]]
 *
 * Then the S with the fewest validation errors, and with --figure a PNG of the run's per-epoch
 * test errors (EMA, current) with that S's average after each of its samples beside them.
 *
 * Errors are counted on the run's test set and on --val labeled training rows held out as
 * `semigan train --val` holds them out (besides the run's labels, never trained on as labeled):
 * the validation rows are what a choice of S may read; the test rows are only reported. The
 * averages do not act on training, so every row of the table is the same trajectory. Prints a
 * table, asserts nothing.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import sharp from 'sharp';
import { errorsChart } from '../../src/viz/curves.js';
import { atomicWriteFile } from '../../src/fsutil.js';
import * as tf from '@tensorflow/tfjs';
import { initBackendAndSay } from '../../src/backend.js';
import { decodeCheckpoint } from '../../src/train/checkpoint.js';
import { loadExportedDiscriminator, readMetrics, runConfig, type CheckpointMeta } from '../../src/train/run_dir.js';
import { runProgress, TailAverage } from '../../src/train/tail_average.js';
import { MAX_EPOCHS } from '../../src/train/config.js';
import { prepareData } from '../../src/data/prepare.js';
import { subsetDataset, type Dataset } from '../../src/data/dataset.js';
import { predictClasses } from '../../src/eval/predict.js';
import type { GanModel } from '../../src/models/model.js';
import type { Tensors } from '../../src/nn/params.js';
import { scriptArgs } from '../lib/args.js';

const { values, positionals } = scriptArgs({
  allowPositionals: true,
  options: {
    run: { type: 'string' },
    from: { type: 'string', default: '0.1,0.25,0.33,0.5,0.67,0.75,0.9' },
    val: { type: 'string', default: '10000' },
    threads: { type: 'string', default: '1' },
    figure: { type: 'string' },
    cut: { type: 'string', default: '400' },
  },
});
if (positionals.length !== 1 || !values.run) {
  process.stderr.write('usage: tail_average.js CHECKPOINT_COPIES_DIR --run RUN_DIR [--from 0.25,0.5] [--val 10000]\n');
  process.exit(2);
}
const read = (f: string) => decodeCheckpoint<CheckpointMeta>(readFileSync(f), f);
// One checkpoint per state, in order (a run's last checkpoint may rewrite its last epoch's).
const files = readdirSync(positionals[0])
  .filter((f) => f.endsWith('.bin'))
  .sort()
  .map((f) => join(positionals[0], f));
const states = new Map<string, string>();
for (const f of files) {
  const { meta } = read(f);
  states.set(`${meta.epoch}:${meta.epochIter}`, f);
}
const ordered = [...states.values()];

await initBackendAndSay('auto', { threads: Number(values.threads) });
const last = read(ordered.at(-1)!);
const config = runConfig(last.meta);
const secondsAt = new Map(readMetrics(values.run).map((m) => [m.epoch, m.seconds]));
const plan = {
  epochs: config.epochs,
  maxMinutes: config.maxMinutes,
  open: config.maxMinutes !== null && config.epochs >= MAX_EPOCHS,
};
const data = prepareData({ ...config, val: Number(values.val) });
const val = subsetDataset(data.train, data.val!);
const labeled = new Set(data.labeled);
if (data.val!.some((r) => labeled.has(r))) throw new Error('validation rows overlap the labeled rows');

const errors = (model: GanModel, d: Tensors, set: Dataset) =>
  predictClasses(model, d, set, config.batchSize).reduce((n, c, i) => n + (c === set.y[i] ? 0 : 1), 0);
const both = (model: GanModel, d: Tensors) => `${errors(model, d, val)} / ${errors(model, d, data.test)}`;

console.log(
  `${positionals[0]}: ${ordered.length} checkpoints, the last at epoch ${last.meta.epoch} + ${last.meta.epochIter} iterations; ` +
    `errors on ${val.n} validation rows / ${data.test.n} test rows`,
);
const ema = loadExportedDiscriminator(last, 'averaged');
console.log(`  EMA (decay ${config.emaDecay}), the run's end: ${both(ema.model, ema.weights)}`);
const cur = loadExportedDiscriminator(last, 'current');
console.log(`  current weights, the run's end:  ${both(cur.model, cur.weights)}`);

const starts = values.from!.split(',').map(Number);
const names = Object.keys(last.tensors)
  .filter((n) => n.startsWith('d/'))
  .map((n) => n.slice(2));
const endsMidEpoch = last.meta.epochIter > 0;

/**
 * One pass over the checkpoints: a TailAverage per start, sampled as the trainer samples;
 * `afterSample` sees each average after each of its samples.
 */
function replay(from: number[], afterSample?: (t: TailAverage, epoch: number) => void) {
  const tails = from.map((s) => new TailAverage(names, (n) => last.tensors[`d/${n}`].shape, s));
  const firstEpoch = from.map(() => 0);
  for (const f of ordered) {
    const ck = read(f);
    if (ck.meta.epochIter > 0) continue; // mid-epoch: only the run's end counts (averaged(..., endsMidEpoch))
    const progress = runProgress(plan, ck.meta.epoch, secondsAt.get(ck.meta.epoch)!);
    const d: Tensors = Object.fromEntries(
      names.map((n) => [n, tf.tensor(ck.tensors[`d/${n}`].data, ck.tensors[`d/${n}`].shape)]),
    );
    for (const [j, t] of tails.entries())
      if (progress >= t.start) {
        if (!t.samples) firstEpoch[j] = ck.meta.epoch;
        t.add(d);
        afterSample?.(t, ck.meta.epoch);
      }
    tf.dispose(Object.values(d));
  }
  return { tails, firstEpoch };
}

const { tails, firstEpoch } = replay(starts);
const valErrors: number[] = [];
for (const [j, t] of tails.entries()) {
  const weights = t.averaged(cur.weights, endsMidEpoch);
  valErrors.push(errors(cur.model, weights, val));
  console.log(
    `  --tail-average ${t.start}: epochs ${firstEpoch[j]}..${last.meta.epoch} (${t.samples} samples${endsMidEpoch ? ' + the end' : ''}): ` +
      `${valErrors[j]} / ${errors(cur.model, weights, data.test)}`,
  );
  tf.dispose(Object.values(weights));
  t.dispose();
}
// The choice reads the validation rows only: fewest errors, a tie keeps the earlier start.
const best = valErrors.indexOf(Math.min(...valErrors));
const emaVal = errors(ema.model, ema.weights, val);
console.log(
  `chosen on the validation rows: --tail-average ${starts[best]} (${valErrors[best]} errors; the EMA ${emaVal}, the current weights ${errors(cur.model, cur.weights, val)})`,
);
tf.dispose(Object.values(ema.weights));

if (values.figure) {
  const curve = new Map<number, number>();
  replay([starts[best]], (t, epoch) => {
    const w = t.averaged(cur.weights);
    curve.set(epoch, errors(cur.model, w, data.test));
    tf.dispose(Object.values(w));
  }).tails.forEach((t) => t.dispose());
  const metrics = readMetrics(values.run);
  console.log(
    `\n--tail-average ${starts[best]} after each epoch's sample: epoch  test errors (EMA / current / tail average)`,
  );
  for (const m of metrics.filter((x) => curve.has(x.epoch)))
    console.log(
      `  ${String(m.epoch).padStart(5)}  ${m.test_errors} / ${m.test_errors_current} / ${curve.get(m.epoch)}`,
    );
  const withTail = metrics.map((m) => (curve.has(m.epoch) ? { ...m, test_errors_tail: curve.get(m.epoch)! } : m));
  const svg = errorsChart(
    { name: `${basename(values.run)}, --tail-average ${starts[best]}`, metrics: withTail },
    Number(values.cut),
  );
  await atomicWriteFile(values.figure, await sharp(Buffer.from(svg)).png().toBuffer());
  console.log(`figure: ${values.figure}`);
}
tf.dispose(Object.values(cur.weights));
