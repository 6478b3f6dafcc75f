/**
 * Parquet files of encoded images (`parquet:FILE.parquet` or `parquet:DIR` of *.parquet files),
 * the layout public image datasets are published in: a column of image bytes, or of
 * `{bytes, path}` structs as Hugging Face datasets write them (--image-column, default `image`),
 * and an optional label column (--label-column; default `label` when there is one): strings, or
 * integers named by a Hugging Face ClassLabel in the file's metadata when it has one. An empty
 * label, null or a negative integer is unlabeled.
 *
 * Files are read a row group at a time (hyparquet, pure JavaScript), and each row group is
 * decoded into one shard of the same .npy store as image folders (../images/decode_cache.ts),
 * keyed by the file's path, size and mtime and the row group's index: a second run reads the
 * shards, a killed decode resumes at the first row group without one.
 */
import { statSync, readdirSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema } from 'hyparquet';
import type { FileMetaData } from 'hyparquet';
import { dataError } from '../../errors.js';
import { bytesText } from '../bytes_text.js';
import type { Dataset, RowIds } from '../dataset.js';
import { RowsBuilder } from '../rows.js';
import { ShardRows } from '../store/shard_rows.js';
import { chooseShape, decodeRange, DEFAULT_MEMORY_BYTES, type DecodeOptions } from '../images/decode.js';
import {
  contentKey,
  defaultCacheDir,
  readShard,
  writeShard,
  type ShardRecord,
  type StoredShard,
} from '../images/decode_cache.js';
import { oneLine } from '../images/pipeline.js';
import { probeImageBuffer, type ImageProbe } from '../images/probe.js';
import { naturalCompare } from '../natural_sort.js';
import { DEFAULT_CONCURRENCY } from '../map_limit.js';

/** The image column when --image-column is not given (Hugging Face's name). */
export const DEFAULT_IMAGE_COLUMN = 'image';
/** A row group's image bytes are read whole: past this, the file needs smaller row groups. */
export const MAX_ROW_GROUP_BYTES = 2 ** 30;
/** Rows of the first row group probed for the most common size and channels. */
const PROBE_ROWS = 1000;

export interface ParquetImageOptions extends DecodeOptions {
  /** Row groups above this many bytes are refused (default MAX_ROW_GROUP_BYTES). */
  maxRowGroupBytes?: number;
  imageColumn: string;
  /** null: `label` when the files have it, else every row unlabeled. */
  labelColumn: string | null;
  /** Fixed classes (a --test set): labels must be among them. */
  classes?: string[];
}

export interface RowGroup {
  file: string;
  index: number;
  rowStart: number;
  rows: number;
  /** Rows of every earlier group, of every file. */
  first: number;
  key: string;
}

/** The .parquet files a spec names: the file itself, or a folder's *.parquet in natural order. */
export function parquetFiles(path: string): string[] {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw dataError(`${path}: not found (expected a .parquet file or a folder of them)`);
  }
  if (st.isFile()) return [path];
  const files = readdirSync(path)
    .filter((f) => f.toLowerCase().endsWith('.parquet') && !f.startsWith('.'))
    .sort(naturalCompare)
    .map((f) => join(path, f));
  if (files.length === 0) throw dataError(`${path}: no .parquet files in this folder`);
  return files;
}

/** Top-level column names; for struct columns, also their children's names. */
function columns(meta: FileMetaData): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const c of parquetSchema(meta).children)
    out.set(
      c.element.name,
      c.children.map((k) => k.element.name),
    );
  return out;
}

/** Class names of an integer label column, from a Hugging Face ClassLabel in the metadata. */
function classLabelNames(meta: FileMetaData, column: string): string[] | null {
  const hf = meta.key_value_metadata?.find((k) => k.key === 'huggingface')?.value;
  if (!hf) return null;
  try {
    const names = JSON.parse(hf)?.info?.features?.[column]?.names;
    return Array.isArray(names) && names.every((n) => typeof n === 'string') ? names : null;
  } catch {
    return null;
  }
}

/** Image bytes of a cell: bytes, or a `{bytes, path}` struct. */
function imageBytes(v: unknown): Uint8Array | null {
  if (v instanceof Uint8Array) return v;
  const b = (v as { bytes?: unknown } | null)?.bytes;
  return b instanceof Uint8Array ? b : null;
}

/** What a set of Parquet files holds: row groups, a label per row, and a reader of a group's images. */
export interface ParquetListing {
  groups: RowGroup[];
  /** A label per row of every file, in order (null: unlabeled). */
  labels: (string | null)[];
  /** One row group's image cells, as bytes (null: missing). */
  readGroup: (g: RowGroup) => Promise<(Uint8Array | null)[]>;
  /** "file.parquet row 12" for global row i. */
  rowName: (i: number) => string;
}

/** Open `files`: check the columns and row group sizes, read the labels (not the images). */
export async function openParquet(
  spec: string,
  files: string[],
  o: Pick<ParquetImageOptions, 'imageColumn' | 'labelColumn' | 'maxRowGroupBytes'>,
): Promise<ParquetListing> {
  const groups: RowGroup[] = [];
  const labels: (string | null)[] = [];
  let labelColumn = o.labelColumn;
  let n = 0;
  const metas: FileMetaData[] = [];
  for (const file of files) {
    const buf = await asyncBufferFromFile(file);
    let meta: FileMetaData;
    try {
      meta = await parquetMetadataAsync(buf);
    } catch (e) {
      throw dataError(`${file}: not a readable Parquet file (${oneLine(e)})`);
    }
    metas.push(meta);
    const cols = columns(meta);
    const names = [...cols.keys()].join(', ');
    if (!cols.has(o.imageColumn))
      throw dataError(
        `${file}: no column '${o.imageColumn}' (columns: ${names}); name the image column with --image-column`,
      );
    const children = cols.get(o.imageColumn)!;
    if (children.length && !children.includes('bytes'))
      throw dataError(
        `${file}: column '${o.imageColumn}' is a struct without 'bytes' (fields: ${children.join(', ')})`,
      );
    if (labelColumn === null && cols.has('label') && file === files[0]) labelColumn = 'label';
    if (labelColumn !== null && !cols.has(labelColumn))
      throw dataError(
        `${file}: no column '${labelColumn}' (columns: ${names}); name the label column with --label-column`,
      );
    const { size, mtimeMs } = statSync(file);
    let rowStart = 0;
    meta.row_groups.forEach((g, index) => {
      const rows = Number(g.num_rows);
      const bytes = Number(g.total_byte_size);
      const limit = o.maxRowGroupBytes ?? MAX_ROW_GROUP_BYTES;
      if (bytes > limit)
        throw dataError(
          `${file}: row group ${index} holds ${bytesText(bytes)}, more than the ${bytesText(limit)} read at once; write the file with smaller row groups`,
        );
      groups.push({
        file,
        index,
        rowStart,
        rows,
        first: n,
        key: JSON.stringify([resolve(file), size, mtimeMs, index]),
      });
      rowStart += rows;
      n += rows;
    });
    if (labelColumn !== null) {
      const names = classLabelNames(meta, labelColumn);
      const values = await parquetReadObjects({ file: buf, metadata: meta, columns: [labelColumn] });
      for (const r of values) {
        const v = r[labelColumn];
        if (v === null || v === undefined || v === '') labels.push(null);
        else if (typeof v === 'number' || typeof v === 'bigint') {
          const k = Number(v);
          labels.push(k < 0 ? null : (names?.[k] ?? String(k)));
        } else labels.push(String(v));
      }
    } else for (let i = 0; i < rowStart; i++) labels.push(null);
  }
  if (n === 0) throw dataError(`${spec}: no rows`);

  const readGroup = async (g: RowGroup): Promise<(Uint8Array | null)[]> => {
    const file = await asyncBufferFromFile(g.file);
    const rows = await parquetReadObjects({
      file,
      metadata: metas[files.indexOf(g.file)],
      columns: [o.imageColumn],
      rowStart: g.rowStart,
      rowEnd: g.rowStart + g.rows,
      utf8: false,
    });
    return rows.map((r) => imageBytes(r[o.imageColumn]));
  };
  const rowName = (i: number) => {
    const g = groups[groupOf(groups, i)];
    return `${basename(g.file)} row ${g.rowStart + (i - g.first)}`;
  };
  return { groups, labels, readGroup, rowName };
}

/** Read every row of `files` as an image Dataset, decoded into the store a row group at a time. */
export async function readParquetImages(
  spec: string,
  files: string[],
  o: ParquetImageOptions,
): Promise<{
  dataset: Dataset;
  choice: string;
  decodedRows: number;
  seconds: number;
  inMemory: boolean;
  shardPaths: string[];
}> {
  const t0 = performance.now();
  const background = o.background ?? [0, 0, 0];
  const { groups, labels, readGroup, rowName } = await openParquet(spec, files, o);
  const n = labels.length;

  // Shape: as requested, else the most common among the first row group's first rows.
  let shape: [number, number, number];
  let choice: string;
  if (o.size && o.channels) ({ shape, choice } = chooseShape([], o));
  else {
    const sample = (await readGroup(groups[0])).slice(0, PROBE_ROWS);
    const probes: ImageProbe[] = [];
    for (const b of sample) {
      const p = b ? await probeImageBuffer(Buffer.from(b)).catch(() => null) : null;
      if (p) probes.push(p);
    }
    if (probes.length === 0) throw dataError(`${spec}: none of the first ${sample.length} images is readable`);
    ({ shape, choice } = chooseShape(probes, o));
    choice += ` (probed: the first ${sample.length} rows)`;
  }
  const [h, w, c] = shape;
  const dim = h * w * c;
  const spec3 = { height: h, width: w, channels: c as 1 | 3, background };
  const cacheDir = o.cacheDir === undefined ? defaultCacheDir() : o.cacheDir;
  const inMemory = cacheDir === null || n * dim <= (o.memoryBytes ?? DEFAULT_MEMORY_BYTES);
  const builder = inMemory ? new RowsBuilder('u8', dim, n) : null;
  const stored: StoredShard[] = [];
  const bad = new Map<number, string>();
  const fail = (i: number, reason: string) => {
    if (!o.skipBad) throw dataError(`${spec}: ${rowName(i)}: ${reason}; pass --skip-bad to drop unreadable images`);
    bad.set(i, reason);
  };
  let decodedRows = 0;
  let done = 0;
  for (const g of groups) {
    const key = contentKey({ parquet: g.key, shape, background });
    const found = cacheDir !== null ? await readShard(cacheDir, key, dim, inMemory) : null;
    let shard: StoredShard | null = found && !('damaged' in found) ? found : null;
    let pixels: Uint8Array | null = null;
    if (shard) {
      for (const s of shard.skipped) fail(g.first + s.offset, s.reason);
      done += g.rows;
    } else {
      const cells = await readGroup(g);
      const read = async (i: number) => {
        const b = cells[i - g.first];
        if (!b) throw new Error(`no image bytes in column '${o.imageColumn}'`);
        return b;
      };
      let rec: ShardRecord;
      ({ pixels, rec } = await decodeRange(
        read,
        g.first,
        g.first + g.rows,
        spec3,
        o.concurrency ?? DEFAULT_CONCURRENCY,
        bad,
        fail,
        () => o.onProgress?.('decode', ++done, n),
      ));
      decodedRows += g.rows;
      if (cacheDir !== null) shard = await writeShard(cacheDir, key, shape, pixels, rec);
    }
    if (builder) builder.append(pixels ?? shard!.pixels!);
    else stored.push(shard!);
  }

  const kept = Int32Array.from({ length: n }, (_, i) => i).filter((i) => !bad.has(i));
  if (kept.length === 0) throw dataError(`${spec}: none of the ${n} images is readable`);
  const classes = o.classes ?? [...new Set(labels.filter((l): l is string => l !== null))].sort(naturalCompare);
  const index = new Map(classes.map((k, i) => [k, i]));
  const y = new Int32Array(kept.length);
  kept.forEach((r, i) => {
    const l = labels[r];
    const k = l === null ? -1 : index.get(l);
    if (k === undefined)
      throw dataError(
        `${spec}: ${rowName(r)}: class '${l}' is not one of the training classes [${classes.join(', ')}]`,
      );
    y[i] = k;
  });
  const ids: RowIds = { length: kept.length, at: (i) => (i >= 0 && i < kept.length ? rowName(kept[i]) : undefined) };
  return {
    dataset: { x: builder ? builder.finish() : new ShardRows(stored, dim), y, n: kept.length, shape, classes, ids },
    choice,
    decodedRows,
    seconds: (performance.now() - t0) / 1000,
    inMemory,
    shardPaths: stored.map((s) => s.path),
  };
}

/** The row group holding global row i. */
function groupOf(groups: readonly RowGroup[], i: number): number {
  let lo = 0;
  let hi = groups.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (groups[mid].first <= i) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
