/**
 * Decoded images on disk: the store training reads, so a second run on unchanged files skips
 * decoding, and a set larger than memory is read a batch at a time.
 *
 * - A plan (`plan-KEY.json`) per folder state: the shape chosen by probing, so a resumed decode
 *   does not probe again. Its key hashes a format version, the decode options as requested and
 *   every file's absolute path, size and mtime.
 * - Shards of at most `shardBytes` of pixels: NumPy .npy files of uint8 [rows, h, w, c]
 *   (`numpy.load(path, mmap_mode="r")` reads them), each with a JSON record written after it,
 *   atomically: a record means a complete shard. A shard's key hashes the format version, the
 *   resolved shape and background and its own files' paths, sizes and mtimes, so a changed folder
 *   re-decodes only the shards whose files changed (a file added or removed in the middle shifts
 *   the later shards' files, so those are decoded again), and a killed decode resumes at the
 *   first shard without a record. The record holds the shard's sha256: a shard changed or cut
 *   short after it was written is found, reported and decoded again.
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { atomicWriteFile } from '../../fsutil.js';
import { NPY_HEAD_BYTES, npyHeader, parseNpyHeader } from '../store/npy.js';

/** Bump when decoding changes what bytes a file gives, or the store's layout (old entries then miss). */
export const DECODE_CACHE_VERSION = 3;
/** Pixels per shard by default: big enough for few files, small enough to redo one quickly. */
export const DEFAULT_SHARD_BYTES = 64 * 2 ** 20;

/** $SEMIGAN_CACHE_DIR, else $XDG_CACHE_HOME/semigan, else ~/.cache/semigan. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.SEMIGAN_CACHE_DIR) return resolve(env.SEMIGAN_CACHE_DIR);
  return join(env.XDG_CACHE_HOME ? resolve(env.XDG_CACHE_HOME) : join(homedir(), '.cache'), 'semigan');
}

/** Each file's size and mtime, in row order (the paths come from the entry list). */
export interface FileStamps {
  paths: (i: number) => string;
  size: Float64Array;
  mtimeMs: Float64Array;
}

/** sha256 over a format version, `options` and files [from, to) of `stamps`, as 40 hex digits. */
export function stampsKey(stamps: FileStamps, from: number, to: number, options: unknown): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({ version: DECODE_CACHE_VERSION, options, n: to - from }));
  for (let i = from; i < to; i++) h.update(`\n${resolve(stamps.paths(i))}\0${stamps.size[i]}\0${stamps.mtimeMs[i]}`);
  return h.digest('hex').slice(0, 40);
}

/** sha256 over a format version and `material` (a source's own stamp of a shard), as 40 hex digits. */
export function contentKey(material: unknown): string {
  return createHash('sha256')
    .update(JSON.stringify({ version: DECODE_CACHE_VERSION, material }))
    .digest('hex')
    .slice(0, 40);
}

export interface DecodePlan {
  shape: [number, number, number];
  choice: string;
  /** Files the probe could not read (index into the entries), with the reason. */
  unreadable: { index: number; reason: string }[];
}

const planPath = (dir: string, key: string) => join(dir, `plan-${key}.json`);
const shardPaths = (dir: string, key: string) => ({
  npy: join(dir, `shard-${key}.npy`),
  json: join(dir, `shard-${key}.json`),
});

export async function readPlan(dir: string, key: string): Promise<DecodePlan | null> {
  try {
    const p = JSON.parse(await readFile(planPath(dir, key), 'utf8')) as DecodePlan & { version: number };
    return p.version === DECODE_CACHE_VERSION ? { shape: p.shape, choice: p.choice, unreadable: p.unreadable } : null;
  } catch {
    return null;
  }
}

export async function writePlan(dir: string, key: string, plan: DecodePlan): Promise<void> {
  await mkdir(dir, { recursive: true });
  await atomicWriteFile(planPath(dir, key), JSON.stringify({ version: DECODE_CACHE_VERSION, ...plan }) + '\n');
}

/** What a shard's record says: its rows and the files of its range that gave none. */
export interface ShardRecord {
  /** Files in the shard's range. */
  files: number;
  /** Rows stored (files minus skipped). */
  rows: number;
  /** Files that could not be decoded (offset inside the range), with the reason. */
  skipped: { offset: number; reason: string }[];
  /** Every stored row has R = G = B (3-channel shards). */
  gray: boolean;
}

export interface StoredShard extends ShardRecord {
  path: string;
  dataOffset: number;
  /** The rows' bytes, when readShard was asked to keep them. */
  pixels?: Uint8Array;
}

interface ShardJson extends ShardRecord {
  version: number;
  key: string;
  shape: number[];
  bytes: number;
  sha256: string;
}

/** sha256 of a file read in pieces (a shard is never held whole for this). */
function sha256OfFile(path: string): string {
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(8 * 2 ** 20);
  const fd = openSync(path, 'r');
  try {
    for (;;) {
      const got = readSync(fd, buf, 0, buf.length, null);
      if (got === 0) break;
      h.update(buf.subarray(0, got));
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/**
 * The stored shard `key` of rows of `dim` bytes: null when there is none (or of another
 * version); `damaged` (what is wrong, naming the file) when its record exists but its .npy is not
 * what was written.
 */
export async function readShard(
  dir: string,
  key: string,
  dim: number,
  /** Also return the pixels (sets held in memory): the file is then read once, hashed and kept. */
  keepPixels = false,
): Promise<StoredShard | { damaged: string } | null> {
  const p = shardPaths(dir, key);
  let rec: ShardJson;
  try {
    rec = JSON.parse(await readFile(p.json, 'utf8')) as ShardJson;
  } catch {
    return null;
  }
  if (rec.version !== DECODE_CACHE_VERSION || rec.key !== key) return null;
  let size: number;
  try {
    size = statSync(p.npy).size;
  } catch {
    return { damaged: `${p.npy} is missing` };
  }
  if (size !== rec.bytes) return { damaged: `${p.npy} holds ${size} bytes, ${rec.bytes} expected (truncated?)` };
  const whole = keepPixels ? await readFile(p.npy) : null;
  const sha256 = whole ? createHash('sha256').update(whole).digest('hex') : sha256OfFile(p.npy);
  if (sha256 !== rec.sha256) return { damaged: `${p.npy} does not match its checksum (changed after it was written)` };
  const head = whole ?? Buffer.alloc(Math.min(size, NPY_HEAD_BYTES));
  if (!whole) {
    const fd = openSync(p.npy, 'r');
    try {
      readSync(fd, head, 0, head.length, 0);
    } finally {
      closeSync(fd);
    }
  }
  const layout = parseNpyHeader(head.subarray(0, Math.min(size, NPY_HEAD_BYTES)));
  if (typeof layout === 'string') return { damaged: `${p.npy}: ${layout}` };
  const rows = layout.shape[0];
  if (
    rows !== rec.rows ||
    layout.shape.slice(1).reduce((a, b) => a * b, 1) !== dim ||
    layout.dataOffset + rows * dim !== size
  )
    return { damaged: `${p.npy}: shape (${layout.shape.join(', ')}) does not match its record` };
  const pixels = whole ? new Uint8Array(whole.buffer, whole.byteOffset + layout.dataOffset, rows * dim) : undefined;
  return {
    files: rec.files,
    rows,
    skipped: rec.skipped,
    gray: rec.gray,
    path: p.npy,
    dataOffset: layout.dataOffset,
    ...(pixels ? { pixels } : {}),
  };
}

/** Store `pixels` (rec.rows rows of `shape`) as shard `key`: the .npy, then its record. */
export async function writeShard(
  dir: string,
  key: string,
  shape: readonly [number, number, number],
  pixels: Uint8Array,
  rec: ShardRecord,
): Promise<StoredShard> {
  await mkdir(dir, { recursive: true });
  const p = shardPaths(dir, key);
  const header = npyHeader([rec.rows, ...shape]);
  const body = Buffer.concat([header, pixels.subarray(0, rec.rows * shape[0] * shape[1] * shape[2])]);
  await atomicWriteFile(p.npy, body);
  const json: ShardJson = {
    version: DECODE_CACHE_VERSION,
    key,
    shape: [rec.rows, ...shape],
    bytes: body.length,
    sha256: createHash('sha256').update(body).digest('hex'),
    ...rec,
  };
  await atomicWriteFile(p.json, JSON.stringify(json) + '\n');
  return { ...rec, path: p.npy, dataOffset: header.length };
}
