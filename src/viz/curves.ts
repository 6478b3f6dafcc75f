/**
 * A run's learning curves from its metrics lines: test accuracy (averaged and current weights,
 * other runs overlaid), test errors, the learning rate, the three losses, seconds per epoch. As SVG for the report, and as
 * curves.png (rasterized by sharp) for a terminal user, rewritten after every epoch.
 */
import sharp from '../sharp.js';
import { atomicWriteFile } from '../fsutil.js';
import { lineChart, type Series } from './svg_chart.js';

/** The fields of a metrics.jsonl line the curves use. */
export interface CurvePoint {
  epoch: number;
  test_acc: number;
  test_acc_current: number;
  loss_lab: number;
  loss_unl: number;
  loss_gen: number;
  epoch_seconds: number;
  /** The lr the epoch ended with (absent in runs older than schedules). */
  lr?: number;
  test_errors?: number;
  test_errors_current?: number;
  /** --tail-average, from its first sample on. */
  test_acc_tail?: number;
  test_errors_tail?: number;
}

export interface NamedRun {
  name: string;
  metrics: CurvePoint[];
}

const by = (m: CurvePoint[], f: (p: CurvePoint) => number): [number, number][] => m.map((p) => [p.epoch, f(p)]);

/** The tail average's series, for a run that has one (none otherwise). */
const tailSeries = (name: string, m: CurvePoint[], f: (p: CurvePoint) => number): Series[] => {
  const sampled = m.filter((p) => p.test_errors_tail !== undefined);
  return sampled.length ? [{ name, points: by(sampled, f) }] : [];
};

/** Accuracy per epoch: the first run's averaged and current weights, then every other run's averaged ones. */
export function accuracyChart([main, ...others]: NamedRun[], id = 'accuracy'): string {
  const series: Series[] = [
    { name: `${main.name}: averaged weights`, points: by(main.metrics, (p) => 100 * p.test_acc) },
    { name: `${main.name}: current weights`, points: by(main.metrics, (p) => 100 * p.test_acc_current), dashed: true },
    ...tailSeries(`${main.name}: tail average`, main.metrics, (p) => 100 * p.test_acc_tail!),
    ...others.map((r) => ({ name: `${r.name}: averaged weights`, points: by(r.metrics, (p) => 100 * p.test_acc) })),
  ];
  return lineChart(series, { title: 'Test accuracy', xLabel: 'epoch', yLabel: 'accuracy (%)', id });
}

export function lossChart(run: NamedRun, id = 'losses'): string {
  return lineChart(
    [
      { name: 'loss_lab (D, labeled)', points: by(run.metrics, (p) => p.loss_lab) },
      { name: 'loss_unl (D, unlabeled + generated)', points: by(run.metrics, (p) => p.loss_unl) },
      { name: 'loss_gen (G)', points: by(run.metrics, (p) => p.loss_gen) },
    ],
    { title: `Losses per epoch (${run.name})`, xLabel: 'epoch', yLabel: 'mean loss', id },
  );
}

/** The lr each epoch ended with, every run (runs older than schedules have none to draw). */
export function lrChart(runs: NamedRun[], id = 'lr'): string {
  return lineChart(
    runs.map((r) => ({
      name: r.name,
      points: by(
        r.metrics.filter((p) => p.lr !== undefined),
        (p) => p.lr!,
      ),
    })),
    { title: 'Learning rate (at the end of each epoch)', xLabel: 'epoch', yLabel: 'lr', yMin: 0, id },
  );
}

/** Test errors of each weight set, the y axis cut at `yMax` so a long run's tail is readable. */
export function errorsChart(run: NamedRun, yMax: number, id = 'errors'): string {
  const clip = (v: number | undefined) => (v === undefined ? NaN : Math.min(v, yMax));
  return lineChart(
    [
      { name: 'averaged weights', points: by(run.metrics, (p) => clip(p.test_errors)) },
      { name: 'current weights', points: by(run.metrics, (p) => clip(p.test_errors_current)), dashed: true },
      ...tailSeries('tail average', run.metrics, (p) => clip(p.test_errors_tail)),
    ],
    { title: `Test errors (${run.name}; cut at ${yMax})`, xLabel: 'epoch', yLabel: 'errors', yMin: 0, yMax, id },
  );
}

export function secondsChart(runs: NamedRun[], id = 'seconds'): string {
  return lineChart(
    runs.map((r) => ({ name: r.name, points: by(r.metrics, (p) => p.epoch_seconds) })),
    { title: 'Seconds per epoch', xLabel: 'epoch', yLabel: 'seconds', yMin: 0, id },
  );
}

/** Accuracy above losses, one SVG (640 x 640). */
export function curvesSvg(run: NamedRun): string {
  const inner = (svg: string, y: number) => svg.replace('<svg ', `<svg y="${y}" `);
  return [
    '<svg xmlns="http://www.w3.org/2000/svg" width="640" height="640" viewBox="0 0 640 640">',
    inner(accuracyChart([run]), 0),
    inner(lossChart(run), 320),
    '</svg>',
  ].join('\n');
}

/** RUN_DIR/curves.png: the curves of the epochs so far, written atomically. */
export async function writeCurvesPng(path: string, run: NamedRun): Promise<void> {
  const png = await sharp(Buffer.from(curvesSvg(run)))
    .png()
    .toBuffer();
  await atomicWriteFile(path, png);
}
