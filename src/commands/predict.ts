import { existsSync, readFileSync, statSync } from 'node:fs';
import { extname } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { initBackendAndSay, type BackendChoice, type MatMulChoice } from '../backend.js';
import { readIdxImages } from '../data/sources/idx.js';
import { SemiganError, inputError } from '../errors.js';
import type { ClassifierMetadata, TabularPreprocessing } from '../export/metadata.js';
import { readTabularCsv } from '../data/sources/tabular.js';
import { standardize } from '../data/standardize.js';
import { allRows } from '../data/rows.js';
import { Classifier, type Prediction } from '../export/classifier.js';
import { imageToInput, scalePixels } from '../export/preprocess.js';

export interface NamedPrediction extends Prediction {
  /** The input file; `FILE[i]` for image i of an idx file. */
  name: string;
}

export interface PredictOutput {
  model: string;
  predictions: NamedPrediction[];
}

/** Images decoded at once (sharp runs them on its own thread pool). */
const DECODE_CONCURRENCY = 16;
const CSV_EXTENSIONS = new Set(['.csv', '.tsv']);

const shapeText = (m: ClassifierMetadata) => m.inputShape.join('x');

/** First bytes of an idx file (gunzipped if needed), or null if it is not one. */
function idxKind(path: string, head: Buffer): 'images' | 'other' | null {
  let b = head;
  if (b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b) {
    try {
      b = gunzipSync(readFileSync(path));
    } catch {
      return null;
    }
  }
  if (b.length < 4 || b[0] !== 0 || b[1] !== 0 || b[2] !== 0x08) return null;
  return b[3] === 3 ? 'images' : 'other';
}

interface Batch {
  names: string[];
  rows: Float32Array[];
}

async function readInput(path: string, meta: ClassifierMetadata, modelDir: string): Promise<Batch> {
  if (!existsSync(path)) throw inputError(`${path}: file not found`);
  if (statSync(path).isDirectory()) throw inputError(`${path}: is a directory; give image files or an idx images file`);
  const p = meta.preprocessing;
  if (CSV_EXTENSIONS.has(extname(path).toLowerCase())) {
    if (p.type === 'image') {
      throw inputError(
        `${path}: CSV rows need a tabular model, but ${modelDir} is an image model taking ${shapeText(meta)} images; give image files (PNG, JPEG, ...) or an idx images file`,
      );
    }
    return tabularRows(path, p, meta.training?.config?.labelColumn ?? null);
  }
  if (p.type !== 'image')
    throw inputError(
      `${path}: ${modelDir} is a tabular model; it takes CSV files with the columns ${p.features.slice(0, 5).join(', ')}${p.features.length > 5 ? ', ...' : ''}, not files like this`,
    );
  const buf = readFileSync(path);
  const idx = idxKind(path, buf);
  if (idx === 'other')
    throw inputError(`${path}: an idx file but not of images (a label file?); give an idx images file [n, rows, cols]`);
  if (idx === 'images') {
    const img = readIdxImages(path);
    if (img.rows !== p.height || img.cols !== p.width || p.channels !== 1) {
      throw inputError(
        `${path}: idx images are ${img.rows}x${img.cols}x1 but ${modelDir} takes ${shapeText(meta)} images`,
      );
    }
    const dim = img.rows * img.cols;
    const rows: Float32Array[] = [];
    const names: string[] = [];
    for (let i = 0; i < img.n; i++) {
      rows.push(scalePixels(img.pixels.subarray(i * dim, (i + 1) * dim)));
      names.push(`${path}[${i}]`);
    }
    return { names, rows };
  }
  return { names: [path], rows: [await imageToInput(buf, meta, { name: path })] };
}

/** CSV rows (a header naming the model's feature columns; a label column, if present, is ignored), standardized as in training. */
function tabularRows(path: string, p: TabularPreprocessing, labelColumn: string | null): Batch {
  let t;
  try {
    t = readTabularCsv(path, { labelColumn: labelColumn ?? '', featureNames: p.features, labelOptional: true });
  } catch (e) {
    if (e instanceof SemiganError) throw inputError(e.message);
    throw e;
  }
  const dim = p.features.length;
  const x = standardize(allRows(t.x), dim, p);
  return { names: t.ids, rows: Array.from({ length: t.n }, (_, i) => x.subarray(i * dim, (i + 1) * dim)) };
}

/** `semigan predict MODEL_DIR INPUT...`: label, probability, top-k and realness per input. */
export async function predictCommand(
  modelDir: string,
  inputs: string[],
  opts: { topK?: number; backend?: BackendChoice; threads?: number | null; matmul?: MatMulChoice } = {},
): Promise<PredictOutput> {
  await initBackendAndSay(opts.backend ?? 'auto', { threads: opts.threads, matmul: opts.matmul });
  const classifier = await Classifier.load(modelDir);
  try {
    const { metadata } = classifier;
    const batches: Batch[] = [];
    for (let s = 0; s < inputs.length; s += DECODE_CONCURRENCY) {
      batches.push(
        ...(await Promise.all(inputs.slice(s, s + DECODE_CONCURRENCY).map((p) => readInput(p, metadata, modelDir)))),
      );
    }
    const names = batches.flatMap((b) => b.names);
    const x = new Float32Array(names.length * classifier.dim);
    let off = 0;
    for (const b of batches) for (const r of b.rows) (x.set(r, off), (off += r.length));
    const topK = Math.min(opts.topK ?? 3, classifier.classes.length);
    const predictions = classifier.predict(x, names.length, topK).map((p, i) => ({ name: names[i], ...p }));
    return { model: modelDir, predictions };
  } finally {
    classifier.dispose();
  }
}

/**
 * A table, one line per input:
 *
 *   input        label  probability  realness  top 3
 *   digit-7.png  7           0.9934    0.9999  7 0.9934, 9 0.0041, 2 0.0012
 */
export function formatPredictions(out: PredictOutput): string {
  const head = ['input', 'label', 'probability', 'realness', `top ${out.predictions[0]?.top.length ?? 0}`];
  const rows = out.predictions.map((p) => [
    p.name,
    p.label,
    p.probability.toFixed(4),
    p.realness.toFixed(4),
    p.top.map((t) => `${t.label} ${t.probability.toFixed(4)}`).join(', '),
  ]);
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const right = [false, false, true, true, false];
  const line = (cells: string[]) =>
    cells
      .map((s, c) => (right[c] ? s.padStart(widths[c]) : c === cells.length - 1 ? s : s.padEnd(widths[c])))
      .join('  ');
  return [line(head), ...rows.map(line)].join('\n') + '\n';
}
