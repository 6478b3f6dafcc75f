/**
 * Tabular CSV data (`--data csv:FILE.csv --label-column NAME`): a header row naming the columns,
 * one example per row, every feature a finite number, the label a class name (empty = unlabeled).
 * Rows become Dataset examples of shape [1, 1, F]. Errors name FILE:LINE (the file line where the
 * record starts, header = line 1), the column and the value; nothing bad is dropped silently.
 */
import { RowsBuilder } from '../rows.js';
import { naturalCompare } from '../natural_sort.js';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { parse } from 'csv-parse/sync';
import { dataError } from '../../errors.js';
import { isFiniteFloat32 } from '../standardize.js';
import type { Dataset } from '../dataset.js';

export interface TabularOptions {
  /** Column holding the class name; an empty value marks an unlabeled row. */
  labelColumn: string;
  /** Only these feature columns, in this order (default: every column but the label). */
  features?: string[] | null;
  /** Columns left out of the features (e.g. an id column). */
  drop?: string[];
  /** Drop rows with a wrong field count or a bad feature value, and report them in `skipped`. */
  skipBad?: boolean;
  /** Fixed class list (a test file read with the training classes): any other label is an error. */
  classes?: string[];
  /**
   * Exactly these features, in this order (a test file read with the training features): each must
   * be a column of the file; other columns are ignored, and `features` and `drop` are not used.
   */
  featureNames?: string[];
  /** Rows to classify (semigan predict): a file without the label column is fine, every row unlabeled. */
  labelOptional?: boolean;
  /** How ids name the file (default: the path as given). */
  idName?: string;
}

export interface SkippedRow {
  /** `FILE:LINE` of the row. */
  id: string;
  reason: string;
}

export interface TabularData extends Dataset {
  shape: [1, 1, number];
  ids: string[];
  features: string[];
  skipped: SkippedRow[];
}

/** Decimal numbers only: Number() would also take '0x1f', '' or ' ', which are not data. */
const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const MAX_LISTED = 30;

const quote = (v: string) => JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v);
function listNames(names: readonly string[]): string {
  const shown = names.slice(0, MAX_LISTED).map(quote).join(', ');
  return names.length > MAX_LISTED ? `${shown}, … (${names.length} in all)` : shown;
}

/** One line for a run summary: how many rows were skipped and the first few reasons. */
export function describeSkipped(skipped: readonly SkippedRow[], max = 3): string {
  if (skipped.length === 0) return 'no rows skipped';
  const first = skipped
    .slice(0, max)
    .map((s) => `${s.id}: ${s.reason}`)
    .join('; ');
  const more = skipped.length > max ? `; and ${skipped.length - max} more` : '';
  return `skipped ${skipped.length} bad row${skipped.length === 1 ? '' : 's'}: ${first}${more}`;
}

interface CsvRecord {
  fields: string[];
  line: number;
}

/** The line where a quoted field opens and never closes (csv-parse reports the end of the file), or null. */
export function unclosedQuoteLine(text: string): number | null {
  let line = 1;
  let openedAt = 0;
  let inQuote = false;
  let fieldStart = true;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inQuote) {
      if (c === '"') {
        if (text[i + 1] === '"') i++;
        else inQuote = false;
      } else if (c === '\n') line++;
      continue;
    }
    if (c === '"' && fieldStart) {
      inQuote = true;
      openedAt = line;
    }
    if (c === '\n') line++;
    fieldStart = c === ',' || c === '\n' || (fieldStart && (c === ' ' || c === '\t' || c === '\r'));
  }
  return inQuote ? openedAt : null;
}

/** Records with the line each starts on; blank lines are left out. */
function readRecords(path: string): CsvRecord[] {
  if (!existsSync(path)) throw dataError(`${path}: file not found (expected a CSV file)`);
  if (!statSync(path).isFile()) throw dataError(`${path}: is not a file (expected a CSV file)`);
  let parsed: { record: string[]; info: { lines: number } }[];
  try {
    // relax_column_count: a wrong field count is reported (or skipped) by us, with the row's line.
    parsed = parse(readFileSync(path), {
      bom: true,
      trim: true,
      info: true,
      relax_column_count: true,
    }) as unknown as typeof parsed;
  } catch (e) {
    const err = e as Error & { code?: string; lines?: number };
    if (!err.code?.startsWith('CSV_')) throw e;
    if (err.code === 'CSV_QUOTE_NOT_CLOSED') {
      const line = unclosedQuoteLine(readFileSync(path, 'utf8'));
      throw dataError(
        `${path}:${line ?? err.lines ?? '?'}: malformed CSV: a quoted field opens on this line and is never closed (add the closing ", or remove the stray one)`,
      );
    }
    throw dataError(`${path}:${err.lines ?? '?'}: malformed CSV: ${err.message}`);
  }
  // info.lines is the line a record ends on (a quoted field may span lines), so a record starts on
  // the line after the previous one ends. Blank lines are kept as records until here for that count.
  const records: CsvRecord[] = [];
  let prevEnd = 0;
  for (const { record, info } of parsed) {
    if (!(record.length === 1 && record[0] === '')) records.push({ fields: record, line: prevEnd + 1 });
    prevEnd = info.lines;
  }
  return records;
}

function checkHeader(path: string, header: CsvRecord, labelColumn: string): void {
  const at = `${path}:${header.line}`;
  if (header.fields.every((f) => NUMBER.test(f))) {
    throw dataError(
      `${at}: the first row (${listNames(header.fields)}) looks like data, not a header: the header row is ` +
        `missing; expected a first row naming the columns, e.g. f1,f2,${labelColumn}, with the label column ${quote(labelColumn)}`,
    );
  }
  const seen = new Map<string, number>();
  header.fields.forEach((name, i) => {
    if (name === '') throw dataError(`${at}: column ${i + 1} of the header has no name (every column needs one)`);
    const j = seen.get(name);
    if (j !== undefined) throw dataError(`${at}: columns ${j + 1} and ${i + 1} are both named ${quote(name)}`);
    seen.set(name, i);
  });
}

/** The feature columns' names, in x's column order. */
function selectFeatures(at: string, columns: string[], label: string, opts: TabularOptions): string[] {
  const found = `columns found: ${listNames(columns)}`;
  if (opts.featureNames) {
    const missing = opts.featureNames.filter((f) => !columns.includes(f) || f === label);
    if (missing.length) {
      throw dataError(
        `${at}: missing feature column${missing.length > 1 ? 's' : ''} ${listNames(missing)} ` +
          `(expected the ${opts.featureNames.length} features the model was trained on; ${found})`,
      );
    }
    return [...opts.featureNames];
  }
  const check = (names: readonly string[], what: string) => {
    const unknown = names.filter((n) => !columns.includes(n));
    if (unknown.length)
      throw dataError(
        `${at}: ${what} names unknown column${unknown.length > 1 ? 's' : ''} ${listNames(unknown)} (${found})`,
      );
    if (names.includes(label))
      throw dataError(`${at}: ${what} names the label column ${quote(label)}, which is never a feature`);
    const dup = names.find((n, i) => names.indexOf(n) !== i);
    if (dup !== undefined) throw dataError(`${at}: ${what} names ${quote(dup)} twice`);
  };
  const drop = opts.drop ?? [];
  check(drop, 'drop');
  if (opts.features) check(opts.features, 'features');
  const chosen = (opts.features ?? columns.filter((c) => c !== label)).filter((c) => !drop.includes(c));
  if (chosen.length === 0)
    throw dataError(`${at}: no feature columns left besides the label ${quote(label)} (${found})`);
  return chosen;
}

/** Read a tabular CSV: features as float32 [n, F], labels as class indices (-1 = unlabeled). */
export function readTabularCsv(path: string, opts: TabularOptions): TabularData {
  const records = readRecords(path);
  if (records.length === 0) {
    throw dataError(
      `${path}:1: the file is empty; expected a header row naming the columns (including the label column ${quote(opts.labelColumn)}) and data rows`,
    );
  }
  const [header, ...rows] = records;
  const at = `${path}:${header.line}`;
  checkHeader(path, header, opts.labelColumn);
  const columns = header.fields;
  const labelCol = columns.indexOf(opts.labelColumn);
  if (labelCol < 0 && !opts.labelOptional) {
    const near = columns.find((c) => c.toLowerCase() === opts.labelColumn.toLowerCase());
    const hint =
      near !== undefined
        ? ` (did you mean ${quote(near)}?)`
        : columns.length === 1 && /[;\t|]/.test(columns[0])
          ? ' (the file must be comma-separated)'
          : '';
    throw dataError(`${at}: no label column ${quote(opts.labelColumn)}${hint}; columns found: ${listNames(columns)}`);
  }
  const features = selectFeatures(at, columns, opts.labelColumn, opts);
  const featureCols = features.map((f) => columns.indexOf(f));
  const dim = features.length;

  const name = opts.idName ?? path;
  const known = opts.classes ? new Map(opts.classes.map((c, i) => [c, i])) : null;
  // Rows go into chunks (data/rows.ts), not one array: a table's length is not capped by it.
  const x = new RowsBuilder('f32', dim, rows.length);
  const row = new Float32Array(dim);
  const labels: string[] = [];
  const ids: string[] = [];
  const skipped: SkippedRow[] = [];

  for (const { fields, line } of rows) {
    const reason = badRow(fields, columns, featureCols, row, 0);
    if (reason) {
      if (!opts.skipBad) throw dataError(`${path}:${line}: ${reason}`);
      skipped.push({ id: `${name}:${line}`, reason });
      continue;
    }
    const label = labelCol < 0 ? '' : fields[labelCol];
    // Not skippable: a label the model does not know means the files do not belong together.
    if (known && label !== '' && !known.has(label)) {
      throw dataError(
        `${path}:${line}: label ${quote(label)} is not one of the known classes: ${listNames(opts.classes!)}`,
      );
    }
    x.append(row);
    labels.push(label);
    ids.push(`${name}:${line}`);
  }

  const n = labels.length;
  if (n === 0) {
    throw dataError(
      skipped.length
        ? `${path}: all ${skipped.length} data rows are bad; ${describeSkipped(skipped)}`
        : `${at}: no data rows after the header`,
    );
  }
  const classes = opts.classes ? [...opts.classes] : [...new Set(labels.filter((l) => l !== ''))].sort(naturalCompare);
  const index = known ?? new Map(classes.map((c, i) => [c, i]));
  const y = Int32Array.from(labels, (l) => (l === '' ? -1 : index.get(l)!));
  return {
    x: x.finish(),
    y,
    n,
    shape: [1, 1, dim],
    classes,
    ids,
    features,
    skipped,
  };
}

/** Write the row's features into x at `offset`; the reason it is bad, or null. */
function badRow(
  fields: string[],
  columns: string[],
  featureCols: number[],
  x: Float32Array,
  offset: number,
): string | null {
  if (fields.length !== columns.length) {
    return `found ${fields.length} field${fields.length === 1 ? '' : 's'}, expected ${columns.length} (as in the header)`;
  }
  for (let j = 0; j < featureCols.length; j++) {
    const c = featureCols[j];
    const v = fields[c];
    if (v === '')
      return `column ${quote(columns[c])} is empty (missing values are not supported: fill them in or remove the row)`;
    const num = NUMBER.test(v) ? Number(v) : NaN;
    if (!isFiniteFloat32(num)) {
      if (NUMBER.test(v))
        return `column ${quote(columns[c])}: value ${quote(v)} is out of the float32 range (features must be finite numbers)`;
      return `column ${quote(columns[c])}: value ${quote(v)} is not a number (features must be numbers: leave a text column such as an id or a file name out with --drop-columns ${columns[c]}, or name the feature columns with --features)`;
    }
    x[offset + j] = num;
  }
  return null;
}
