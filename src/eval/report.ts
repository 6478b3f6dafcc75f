/** Plain-text rendering of a ClassificationReport for the terminal and run logs. */
import type { ClassificationReport } from './metrics.js';

/** Longest class name shown in the confusion matrix headers, to keep 10 classes within ~120 columns. */
const MATRIX_NAME_MAX = 10;

const truncate = (s: string, max: number) => (s.length <= max ? s : s.slice(0, max - 1) + '…');
const fixed = (v: number) => v.toFixed(4);

/**
 * Example (long names are truncated only in the matrix):
 *
 *   accuracy 91.85%  (errors 815 of 10000)
 *
 *   class        precision     recall         f1  support
 *   T-shirt/top     1.0000     1.0000     1.0000     1000
 *   ...
 *   macro avg                             0.9185    10000
 *
 *   confusion (rows = true, columns = predicted)
 *               T-shirt/t…  Trouser  ...
 *   T-shirt/t…        1000        0  ...
 */
export function formatReport(
  r: ClassificationReport & { calibration?: { temperature: number; eceBefore: number; eceAfter: number } },
): string {
  const lines: string[] = [];
  lines.push(`accuracy ${(r.accuracy * 100).toFixed(2)}%  (errors ${r.errors} of ${r.n})`);
  const c = r.calibration;
  if (c)
    lines.push(
      c.temperature === 1
        ? `calibration: expected calibration error ${c.eceBefore.toFixed(4)} (no temperature fitted: train with --val N)`
        : `calibration: expected calibration error ${c.eceBefore.toFixed(4)} before, ${c.eceAfter.toFixed(4)} with the fitted temperature ${c.temperature.toPrecision(3)}`,
    );
  lines.push('');

  // Per-class table: full names, numeric columns right-aligned.
  const macroLabel = 'macro avg';
  const nameW = Math.max('class'.length, macroLabel.length, ...r.perClass.map((m) => m.name.length));
  const supportW = Math.max('support'.length, String(r.n).length);
  const numW = 'precision'.length;
  const row = (cells: string[]) => cells.join('  ').trimEnd();
  lines.push(
    row([
      'class'.padEnd(nameW),
      'precision'.padStart(numW),
      'recall'.padStart(numW),
      'f1'.padStart(numW),
      'support'.padStart(supportW),
    ]),
  );
  for (const m of r.perClass) {
    lines.push(
      row([
        m.name.padEnd(nameW),
        fixed(m.precision).padStart(numW),
        fixed(m.recall).padStart(numW),
        fixed(m.f1).padStart(numW),
        String(m.support).padStart(supportW),
      ]),
    );
  }
  lines.push(
    row([
      macroLabel.padEnd(nameW),
      ''.padStart(numW),
      ''.padStart(numW),
      fixed(r.macroF1).padStart(numW),
      String(r.n).padStart(supportW),
    ]),
  );

  // Confusion matrix: truncated names as both row and column headers.
  const short = r.perClass.map((m) => truncate(m.name, MATRIX_NAME_MAX));
  const rowHeadW = Math.max(...short.map((s) => s.length));
  // Each column only as wide as its header or largest count, so digit-named classes stay narrow.
  const colW = short.map((s, p) => Math.max(s.length, ...r.confusion.map((counts) => String(counts[p]).length)));
  lines.push('', 'confusion (rows = true, columns = predicted)');
  lines.push(row([''.padEnd(rowHeadW), ...short.map((s, p) => s.padStart(colW[p]))]));
  r.confusion.forEach((counts, t) => {
    lines.push(row([short[t].padEnd(rowHeadW), ...counts.map((c, p) => String(c).padStart(colW[p]))]));
  });
  return lines.join('\n') + '\n';
}
