/**
 * Which unlabeled examples to label next: uncertainty sampling on the classifier's class
 * probabilities. margin = p(top class) - p(runner-up) (small = the model cannot decide between
 * two classes); entropy = -sum p log p over all classes (large = spread over many). Realness
 * D(x) is shown so outliers the model thinks are not real data (blurry scans, wrong crops) can be
 * told apart from genuinely ambiguous examples.
 */
import type { Prediction } from './predictions.js';

export const SUGGEST_CRITERIA = ['margin', 'entropy'] as const;
export type SuggestCriterion = (typeof SUGGEST_CRITERIA)[number];

export interface Suggestion {
  rank: number;
  row: number; // row of the training set
  id: string;
  predicted: string;
  probability: number;
  runnerUp: string;
  runnerUpProbability: number;
  margin: number;
  entropy: number;
  realness: number;
}

export function entropyOf(probabilities: Record<string, number>): number {
  let h = 0;
  for (const p of Object.values(probabilities)) if (p > 0) h -= p * Math.log(p);
  return h;
}

/**
 * The `n` most uncertain of `predictions` (one per row in `rows`), most uncertain first; ties go
 * to the earlier row, so the ranking is deterministic.
 */
export function rankByUncertainty(
  predictions: Prediction[],
  rows: ArrayLike<number>,
  ids: (row: number) => string,
  n: number,
  by: SuggestCriterion = 'margin',
): Suggestion[] {
  const scored = predictions.map((p, i) => {
    const [first, second] = p.top;
    const margin = first.probability - (second?.probability ?? 0);
    return { i, p, margin, entropy: entropyOf(p.probabilities), second };
  });
  const key = by === 'margin' ? (s: (typeof scored)[number]) => s.margin : (s: (typeof scored)[number]) => -s.entropy;
  scored.sort((a, b) => key(a) - key(b) || a.i - b.i);
  return scored.slice(0, n).map((s, r) => ({
    rank: r + 1,
    row: rows[s.i],
    id: ids(rows[s.i]),
    predicted: s.p.label,
    probability: s.p.probability,
    runnerUp: s.second?.label ?? '',
    runnerUpProbability: s.second?.probability ?? 0,
    margin: s.margin,
    entropy: s.entropy,
    realness: s.p.realness,
  }));
}

const CSV_COLUMNS = [
  'rank',
  'id',
  'predicted',
  'probability',
  'runner_up',
  'runner_up_probability',
  'margin',
  'entropy',
  'realness',
] as const;

/**
 * A text cell of a CSV semigan writes: a value a spreadsheet would run as a formula (it begins
 * with =, +, -, @, a tab or a carriage return) gets a leading ' (OWASP's "CSV injection"
 * advice; spreadsheets show the text, without the quote), then RFC 4180 quoting.
 */
export function csvTextCell(v: string): string {
  const safe = /^[=+\-@\t\r]/.test(v) ? `'${v}` : v;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

export function suggestionsCsv(s: Suggestion[]): string {
  const f = (x: number) => x.toFixed(6);
  const lines = s.map((r) =>
    [
      String(r.rank),
      csvTextCell(r.id),
      csvTextCell(r.predicted),
      f(r.probability),
      csvTextCell(r.runnerUp),
      f(r.runnerUpProbability),
      f(r.margin),
      f(r.entropy),
      f(r.realness),
    ].join(','),
  );
  return [CSV_COLUMNS.join(','), ...lines].join('\n') + '\n';
}
