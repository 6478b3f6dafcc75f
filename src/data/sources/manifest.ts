/**
 * A manifest CSV: a header row naming the columns `path` and `label` (any order, any case; other
 * columns are ignored), then one row per image. Paths are relative to the CSV's folder (or
 * absolute); an empty label means unlabeled. Rows keep the CSV's order; each row's id is its path
 * as written.
 */
import { readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse } from 'csv-parse/sync';
import { dataError } from '../../errors.js';
import type { ImageEntry, ImageList } from '../images/entry.js';
import { naturalCompare } from '../natural_sort.js';

const EXPECTED = 'expected a header row with columns path and label, e.g. `path,label`';

interface Row {
  record: string[];
  info: { lines: number };
}

function parseCsv(csvPath: string): Row[] {
  let text: string;
  try {
    text = readFileSync(csvPath, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const what = code === 'ENOENT' ? 'file not found' : code === 'EISDIR' ? 'is a directory' : (e as Error).message;
    throw dataError(`${csvPath}: ${what} (expected a manifest CSV; ${EXPECTED})`);
  }
  try {
    // Field counts are checked below, to name the header's columns in the message.
    return parse(text, {
      bom: true,
      info: true,
      relax_column_count: true,
      skip_empty_lines: true,
      trim: true,
    }) as unknown as Row[];
  } catch (e) {
    const line = (e as { lines?: number }).lines;
    throw dataError(`${csvPath}${line ? `:${line}` : ''}: not valid CSV (${(e as Error).message})`);
  }
}

export function readManifest(csvPath: string): ImageList {
  const rows = parseCsv(csvPath);
  if (rows.length === 0) throw dataError(`${csvPath}: empty (${EXPECTED})`);
  const header = rows[0].record.map((h) => h.toLowerCase());
  const where = (r: Row) => `${csvPath}:${r.info.lines}`;
  const col = (name: string) => {
    const i = header.indexOf(name);
    if (i < 0) {
      throw dataError(
        `${where(rows[0])}: no '${name}' column in the header (found: ${rows[0].record.map((h) => JSON.stringify(h)).join(', ')}); ${EXPECTED}`,
      );
    }
    return i;
  };
  const pathCol = col('path');
  const labelCol = col('label');

  const base = dirname(csvPath);
  const entries: ImageEntry[] = [];
  const classes = new Set<string>();
  for (const r of rows.slice(1)) {
    if (r.record.length !== header.length) {
      throw dataError(
        `${where(r)}: ${r.record.length} field(s), expected ${header.length} as in the header (${rows[0].record.join(',')})`,
      );
    }
    const id = r.record[pathCol];
    if (id === '')
      throw dataError(`${where(r)}: empty path (expected an image file path, relative to ${base} or absolute)`);
    const path = isAbsolute(id) ? id : resolve(base, id);
    let isFile: boolean;
    try {
      isFile = statSync(path).isFile();
    } catch {
      throw dataError(`${where(r)}: ${id}: file not found (looked for ${path})`);
    }
    if (!isFile) throw dataError(`${where(r)}: ${id}: not a file (expected an image file)`);
    const label = r.record[labelCol] || null;
    if (label !== null) classes.add(label);
    entries.push({ path, id, label, line: r.info.lines });
  }
  if (entries.length === 0)
    throw dataError(`${csvPath}: a header but no rows (expected one row per image after the header)`);
  return { entries, classes: [...classes].sort(naturalCompare), source: csvPath, ignored: [] };
}
