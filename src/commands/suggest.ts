import * as tf from '@tensorflow/tfjs';
import { initBackendAndSay, type BackendChoice, type MatMulChoice } from '../backend.js';
import type { Dataset } from '../data/dataset.js';
import { rowsView } from '../data/rows.js';
import { loadData } from '../data/load.js';
import { dataError } from '../errors.js';
import { discriminatorLogits } from '../eval/predict.js';
import { predictionsFromLogits } from '../eval/predictions.js';
import { loadExportedDiscriminator, readRun, runConfig } from '../train/run_dir.js';
import { rankByUncertainty, suggestionsCsv, type SuggestCriterion, type Suggestion } from '../eval/suggest.js';
import { atomicWriteFile } from '../fsutil.js';
import { parseDataSpec } from '../data/sources/spec.js';
import { dirname, resolve } from 'node:path';

const log = (line: string) => process.stderr.write(line + '\n');

export interface SuggestOptions {
  n: number;
  by: SuggestCriterion;
  out: string | null;
  backend?: BackendChoice;
  threads?: number | null;
  matmul?: MatMulChoice;
}

/**
 * `semigan suggest RUN_DIR`: the run's unlabeled training examples ranked by how unsure its
 * averaged discriminator is about them (eval/suggest.ts), as a table and optionally a CSV.
 */
export async function suggestCommand(
  runDir: string,
  opts: SuggestOptions,
): Promise<{ unlabeled: number; suggestions: Suggestion[] }> {
  const ckpt = readRun(runDir);
  await initBackendAndSay(opts.backend ?? 'auto', { threads: opts.threads, matmul: opts.matmul });
  const config = runConfig(ckpt.meta);
  const data = await loadData(config, log);
  const isLabeled = new Uint8Array(data.train.n);
  for (const r of data.labeled) isLabeled[r] = 1;
  const rows = Int32Array.from({ length: data.train.n }, (_, i) => i).filter((r) => !isLabeled[r]);
  if (rows.length === 0)
    throw dataError(`${runDir}: every training example of ${config.dataset} is labeled; there is nothing to suggest`);
  const unlabeled: Dataset = {
    ...data.train,
    x: rowsView(data.train.x, rows),
    y: new Int32Array(rows.length).fill(-1),
    n: rows.length,
  };
  const { model, weights } = loadExportedDiscriminator(ckpt);
  let logits: Float32Array;
  try {
    logits = discriminatorLogits(model, weights, unlabeled, config.batchSize);
  } finally {
    tf.dispose(Object.values(weights));
  }
  const ids = data.train.ids;
  // Image rows as absolute paths, so the list can go straight to a labeling tool; CSV rows are FILE:LINE already.
  const spec = parseDataSpec(config.dataset);
  const base = spec.kind === 'images' ? spec.path : spec.kind === 'manifest' ? dirname(spec.path) : null;
  const idOf = (row: number) =>
    ids ? (base ? resolve(base, ids.at(row)!) : ids.at(row)!) : `${config.dataset} train #${row}`;
  const suggestions = rankByUncertainty(
    predictionsFromLogits(logits, data.train.classes, 2),
    rows,
    idOf,
    opts.n,
    opts.by,
  );
  if (opts.out) {
    await atomicWriteFile(opts.out, suggestionsCsv(suggestions));
    log(`wrote ${suggestions.length} suggestions to ${opts.out}`);
  }
  return { unlabeled: rows.length, suggestions };
}

export function formatSuggestions(
  { unlabeled, suggestions }: { unlabeled: number; suggestions: Suggestion[] },
  by: SuggestCriterion,
): string {
  const pct = (p: number) => (100 * p).toFixed(1).padStart(5) + '%';
  const width = Math.max(2, ...suggestions.map((s) => s.id.length));
  const head =
    `${suggestions.length} of ${unlabeled} unlabeled examples, most uncertain first (by ${by}):\n` +
    `${'rank'.padStart(4)}  ${'id'.padEnd(width)}  prediction (p)  runner-up (p)  margin  entropy  realness\n`;
  const rows = suggestions.map(
    (s) =>
      `${String(s.rank).padStart(4)}  ${s.id.padEnd(width)}  ${s.predicted} (${pct(s.probability)})  ${s.runnerUp} (${pct(s.runnerUpProbability)})  ${s.margin.toFixed(3)}  ${s.entropy.toFixed(3)}  ${s.realness.toFixed(3)}`,
  );
  return head + rows.join('\n') + '\n';
}
