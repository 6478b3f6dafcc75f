/**
 * `semigan report RUN_DIR [RUN_DIR...] [--out report.html]`: one self-contained HTML page of a run
 * (or a sweep: every seed's curves): learning curves with other runs overlaid, losses, seconds per
 * epoch, the sample grid of every epoch, the confusion matrix and per-class scores of the averaged
 * weights on the test set, the test examples it gets most confidently wrong, and the unlabeled
 * examples `suggest` would have labeled next, as thumbnails.
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import sharp from '../sharp.js';
import { initBackendAndSay, type BackendChoice, type MatMulChoice } from '../backend.js';
import { loadData } from '../data/load.js';
import type { Dataset } from '../data/dataset.js';
import { rowsView } from '../data/rows.js';
import { argmaxRows, classificationReport } from '../eval/metrics.js';
import { discriminatorLogits } from '../eval/predict.js';
import { predictionsFromLogits } from '../eval/predictions.js';
import { calibrationReport } from '../eval/calibration.js';
import { rankByUncertainty } from '../eval/suggest.js';
import { atomicWriteFile } from '../fsutil.js';
import {
  CONFIG_FILE,
  loadExportedDiscriminator,
  readMetrics,
  readRun,
  runConfig,
  SAMPLES_DIR,
} from '../train/run_dir.js';
import { readSweepSpec, seedDir } from '../train/sweep_summary.js';
import type { NamedRun } from '../viz/curves.js';
import { renderReport, type ReportPage, type Thumb } from '../viz/report_html.js';

const log = (line: string) => process.stderr.write(line + '\n');
/** Thumbnails per section. */
const THUMBS = 16;

export interface ReportOptions {
  out?: string;
  backend?: BackendChoice;
  threads?: number | null;
  matmul?: MatMulChoice;
}

/** A sweep directory stands for its seeds' runs. */
function expand(dir: string): string[] {
  const sweep = readSweepSpec(dir);
  return sweep ? sweep.seeds.map((s) => seedDir(dir, s)).filter((d) => existsSync(d)) : [dir];
}

/** Short names for runs: the directory's name, with its parent's when two runs would share one (sweep seeds). */
function runNames(dirs: string[]): string[] {
  const base = dirs.map((d) => basename(resolve(d)));
  return dirs.map((d, i) =>
    base.filter((b) => b === base[i]).length > 1 ? `${basename(dirname(resolve(d)))}/${base[i]}` : base[i],
  );
}

const dataUri = (png: Buffer) => `data:image/png;base64,${png.toString('base64')}`;

/** Row `i` of an image dataset as a 3x PNG thumbnail. */
async function thumb(d: Dataset, i: number): Promise<string> {
  const [h, w, c] = d.shape;
  const px = Buffer.from(Uint8Array.from(d.x.gather([i]), (v) => Math.round(255 * Math.min(1, Math.max(0, v)))));
  return dataUri(
    await sharp(px, { raw: { width: w, height: h, channels: c as 1 | 3 } })
      .resize(w * 3, h * 3, { kernel: 'nearest' })
      .png()
      .toBuffer(),
  );
}

export async function reportCommand(
  dirs: string[],
  opts: ReportOptions = {},
): Promise<{ out: string; page: ReportPage }> {
  const runDirs = dirs.flatMap(expand);
  const mainDir = runDirs[0];
  const out = opts.out ?? join(dirs[0], 'report.html');
  const names = runNames(runDirs);
  const runs: NamedRun[] = runDirs.map((d, i) => ({ name: names[i], metrics: readMetrics(d) }));
  const ckpt = readRun(mainDir);
  const config = runConfig(ckpt.meta);

  await initBackendAndSay(opts.backend ?? 'auto', { threads: opts.threads, matmul: opts.matmul });
  const data = await loadData(config, log);
  const images = !data.train.features;
  const { model, weights, choice } = loadExportedDiscriminator(ckpt);
  let testLogits: Float32Array;
  let unlabeledLogits: Float32Array | null = null;
  const isLabeled = new Uint8Array(data.train.n);
  for (const r of data.labeled) isLabeled[r] = 1;
  const unlabeledRows = Int32Array.from({ length: data.train.n }, (_, i) => i).filter((r) => !isLabeled[r]);
  const unlabeled: Dataset = {
    ...data.train,
    x: rowsView(data.train.x, unlabeledRows),
    y: new Int32Array(unlabeledRows.length).fill(-1),
    n: unlabeledRows.length,
  };
  try {
    testLogits = discriminatorLogits(model, weights, data.test, config.batchSize);
    if (unlabeled.n > 0) unlabeledLogits = discriminatorLogits(model, weights, unlabeled, config.batchSize);
  } finally {
    tf.dispose(Object.values(weights));
  }
  const classes = data.train.classes;
  const report = classificationReport(data.test.y, argmaxRows(testLogits, classes.length), classes);
  const t = choice.temperature;
  const calibrated = calibrationReport(testLogits, data.test.y, classes.length, t);

  const wrong: Thumb[] = [];
  const suggestions: Thumb[] = [];
  if (images) {
    const preds = predictionsFromLogits(
      testLogits.map((v) => v / t),
      classes,
      2,
      t,
    );
    const misses = preds
      .map((p, i) => ({ p, i }))
      .filter(({ p, i }) => p.index !== data.test.y[i])
      .sort((a, b) => b.p.probability - a.p.probability)
      .slice(0, THUMBS);
    for (const { p, i } of misses)
      wrong.push({
        src: await thumb(data.test, i),
        caption: `#${i}: ${p.label} (${(100 * p.probability).toFixed(1)}%), is ${classes[data.test.y[i]]}`,
      });
    if (unlabeledLogits) {
      const ranked = rankByUncertainty(
        predictionsFromLogits(
          unlabeledLogits.map((v) => v / t),
          classes,
          2,
          t,
        ),
        unlabeledRows,
        (row) => data.train.ids?.at(row) ?? `train #${row}`,
        THUMBS,
        'margin',
      );
      for (const s of ranked)
        suggestions.push({
          src: await thumb(data.train, s.row),
          caption: `${s.predicted} ${(100 * s.probability).toFixed(0)}% / ${s.runnerUp} ${(100 * s.runnerUpProbability).toFixed(0)}%`,
        });
    }
  }

  const samples = join(mainDir, SAMPLES_DIR);
  const grids = existsSync(samples)
    ? readdirSync(samples)
        .filter((f) => /^epoch-\d+\.png$/.test(f))
        .sort()
        .map((f) => ({ epoch: Number(/\d+/.exec(f)![0]), src: dataUri(readFileSync(join(samples, f))) }))
    : [];
  const configPath = join(mainDir, CONFIG_FILE);
  const page: ReportPage = {
    title: `semigan report: ${names.join(', ')}`,
    runs,
    grids,
    evaluation: {
      accuracy: report.accuracy,
      n: report.n,
      classes,
      confusion: report.confusion,
      perClass: report.perClass,
      calibration: calibrated,
    },
    wrong,
    suggestions,
    config: existsSync(configPath) ? JSON.parse(readFileSync(configPath, 'utf8')) : config,
    dataSummary: data.summaryText,
    generatedAt: new Date().toISOString(),
  };
  await atomicWriteFile(out, renderReport(page));
  log(`report: ${out} (${runs.length} run${runs.length === 1 ? '' : 's'}, ${grids.length} sample grids)`);
  return { out, page };
}
