/**
 * Image files -> one Float32Array of equally shaped rows, as training needs them: a bounded number
 * of decodes in flight (sharp runs them on libuv's thread pool), the size and channels chosen as
 * the most common among the files when not given, unreadable files reported (or dropped with
 * skipBad, and listed), and the result cached on disk (./decode_cache.ts).
 */
import { readFileSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dataError } from '../../errors.js';
import { describeFsError } from '../../fsutil.js';
import { bytesText } from '../bytes_text.js';
import { RowsBuilder, type Rows } from '../rows.js';
import { ShardRows } from '../store/shard_rows.js';
import {
  DEFAULT_SHARD_BYTES,
  defaultCacheDir,
  readPlan,
  readShard,
  stampsKey,
  writePlan,
  writeShard,
  type DecodePlan,
  type FileStamps,
  type ShardRecord,
  type StoredShard,
} from './decode_cache.js';
import { decodeImageBuffer, oneLine, type Rgb } from './pipeline.js';
import type { EntryList, ImageEntry } from './entry.js';
import { probeImageBuffer, probeImageFile, type ImageProbe } from './probe.js';
import { DEFAULT_CONCURRENCY, mapLimit } from '../map_limit.js';

export { DEFAULT_CONCURRENCY } from '../map_limit.js';

export type { ImageEntry } from './entry.js';

export interface DecodeOptions {
  /** [height, width]; null = the most common size among the files. */
  size: [number, number] | null;
  /** null = the most common: 1 if most files are grayscale (with or without alpha), else 3. */
  channels: 1 | 3 | null;
  /** Alpha and padding colour, 0..255 each; default black (what exported models assume). */
  background?: Rgb;
  /** Drop unreadable files (listed in `skipped`) instead of failing. */
  skipBad?: boolean;
  /** Files read and decoded at once; default DEFAULT_CONCURRENCY. */
  concurrency?: number;
  /** Where decoded pixels are cached; undefined = defaultCacheDir(), null = no cache. */
  cacheDir?: string | null;
  /** Pixels per shard of the store (default DEFAULT_SHARD_BYTES). */
  shardBytes?: number;
  /** Sets up to this many bytes of pixels are held in memory, larger ones read from disk (default DEFAULT_MEMORY_BYTES). */
  memoryBytes?: number;
  /** Called as files finish (probing, then decoding), for progress output. */
  onProgress?: (phase: 'probe' | 'decode', done: number, total: number) => void;
}

export interface DecodedImages {
  /** [kept.length, h * w * c] bytes, row-major HWC (scaled to [0, 1] when a batch is gathered). */
  rows: Rows;
  /** Held in memory (else read from the shards a batch at a time). */
  inMemory: boolean;
  /** Every row has R = G = B (3 channels): a grayscale set saved as colour. */
  gray: boolean;
  /** Shards of `files` files each: found in the store, and decoded by this call. */
  shards: { reused: number; decoded: number; files: number };
  /** The store's shard files (.npy) in row order; none without a cache. */
  shardPaths: string[];
  /** Files decoded by this call (0 on a cache hit). */
  decodedFiles: number;
  shape: [number, number, number];
  /** Indices into the entries of the rows of x, ascending. */
  kept: Int32Array;
  skipped: { id: string; reason: string }[];
  /**
   * How the shape was chosen and what was found, e.g. "28x28 pixels (height x width; 9,412 of
   * 10,000 files; also 32x32: 588), 1 channel (grayscale in 10,000 of 10,000 files)".
   */
  choice: string;
  /** Nothing was probed or decoded: every shard came from the store. */
  cacheHit: boolean;
  /** Why the cache could not be written (the load itself succeeded): for a warning line. */
  cacheWarning?: string;
  /** The cache entry found damaged (and so decoded again and rewritten): for a note line. */
  cacheDamaged?: string;
  /** Wall time of the whole call (stat, cache, probe, decode). */
  seconds: number;
}

/** Files up to this size are read synchronously (see decodeImages). */
const SMALL_FILE = 256 * 1024;
/**
 * Pixels held in memory by default; larger sets are read from the store on disk. Reading from
 * disk costs ~3% of the step (docs/scale.md), and holding more keeps a run's peak memory
 * growing with the data.
 */
export const DEFAULT_MEMORY_BYTES = 256 * 2 ** 20;

const fmt = (v: number) => v.toLocaleString('en-US');
const where = (e: ImageEntry) => (e.line ? `${e.path} (manifest line ${e.line})` : e.path);
const badFileError = (e: ImageEntry, reason: string) =>
  dataError(`${where(e)}: ${reason}; pass --skip-bad to drop unreadable images (they are listed)`);

/** The most common value (ties: `prefer`, else the first seen), its count, and the others' counts. */
function mostCommon<T>(
  values: T[],
  name: (v: T) => string,
  prefer?: string,
  weights?: readonly number[],
): { value: T; name: string; text: string } {
  const counts = new Map<string, { value: T; n: number }>();
  let total = 0;
  values.forEach((v, i) => {
    const w = weights?.[i] ?? 1;
    total += w;
    const c = counts.get(name(v));
    if (c) c.n += w;
    else counts.set(name(v), { value: v, n: w });
  });
  const [[top, { value, n }], ...rest] = [...counts.entries()].sort(
    (a, b) => b[1].n - a[1].n || Number(b[0] === prefer) - Number(a[0] === prefer),
  );
  const others = rest.slice(0, 3).map(([k, c]) => `${k}: ${fmt(c.n)}`);
  if (rest.length > 3) others.push(`${rest.length - 3} more`);
  return {
    value,
    name: top,
    text: `${fmt(n)} of ${fmt(total)} files${others.length ? `; also ${others.join(', ')}` : ''}`,
  };
}

const CHANNEL_NAMES: Record<number, string> = { 1: 'grayscale', 3: 'colour' };

/**
 * The shape to decode to: requested, or the most common among `probes`, with a sentence saying
 * which and what else was found, e.g.
 * "28x28 pixels (height x width; 9,412 of 10,000 files; also 32x32: 588), 1 channel (grayscale in 10,000 of 10,000 files)".
 */
export function chooseShape(
  probes: readonly ImageProbe[],
  opts: Pick<DecodeOptions, 'size' | 'channels'>,
  /** How many files have each probe's size and channels (default 1 each). */
  counts?: readonly number[],
): { shape: [number, number, number]; choice: string } {
  let size: [number, number];
  let sizeText: string;
  if (opts.size) {
    size = opts.size;
    sizeText = `${size[0]}x${size[1]} pixels (height x width, as requested)`;
  } else {
    const m = mostCommon(
      probes.map((p): [number, number] => [p.height, p.width]),
      ([h, w]) => `${h}x${w}`,
      undefined,
      counts,
    );
    size = m.value;
    sizeText = `${m.name} pixels (height x width; ${m.text})`;
  }
  let channels: 1 | 3;
  let channelText: string;
  if (opts.channels) {
    channels = opts.channels;
    channelText = `${channels} channel${channels > 1 ? 's' : ''} (as requested)`;
  } else {
    const m = mostCommon(
      probes.map((p) => p.channels),
      (c) => CHANNEL_NAMES[c],
      CHANNEL_NAMES[3],
      counts,
    );
    channels = m.value;
    channelText = `${channels} channel${channels > 1 ? 's' : ''} (${m.name} in ${m.text})`;
  }
  return { shape: [size[0], size[1], channels], choice: `${sizeText}, ${channelText}` };
}

/**
 * Decode `entries` to rows of bytes. Unreadable files throw a SemiganError naming the file and
 * the reason, unless skipBad. With a cache directory the pixels go to shards on disk
 * (./decode_cache.ts), decoded a shard at a time, so memory holds one shard, not the set: a
 * second call on unchanged files only stats and checks them, a killed call resumes at the first
 * missing shard. Sets up to `memoryBytes` of pixels are then held in memory, larger ones read
 * from the shards a batch at a time.
 */
export async function decodeImages(entries: EntryList, opts: DecodeOptions): Promise<DecodedImages> {
  const t0 = performance.now();
  const seconds = () => (performance.now() - t0) / 1000;
  const background: Rgb = opts.background ?? [0, 0, 0];
  const concurrency = opts.concurrency ?? DEFAULT_CONCURRENCY;
  const n = entries.length;
  if (n === 0) throw dataError('no image files to decode');
  const entry = (i: number) => entries.at(i)!;

  const stamps = stampAll(entries);
  const cacheDir = opts.cacheDir === undefined ? defaultCacheDir() : opts.cacheDir;
  const planKey = stampsKey(stamps, 0, n, { size: opts.size, channels: opts.channels, background });
  const bad = new Map<number, string>();
  const fail = (i: number, reason: string) => {
    if (!opts.skipBad) throw badFileError(entry(i), reason);
    bad.set(i, reason);
  };
  let plan = cacheDir !== null ? await readPlan(cacheDir, planKey) : null;
  const planReused = plan !== null;
  if (plan) for (const u of plan.unreadable) fail(u.index, u.reason);
  else {
    plan = await probePlan(entries, stamps, opts, concurrency, fail);
    if (cacheDir !== null) await writePlan(cacheDir, planKey, plan).catch(() => {}); // only saves a probe next time
  }
  const { shape, choice } = plan;
  const [h, w, c] = shape;
  const spec = { height: h, width: w, channels: c as 1 | 3, background };
  const dim = h * w * c;
  const shardFiles = Math.max(1, Math.floor((opts.shardBytes ?? DEFAULT_SHARD_BYTES) / dim));
  const inMemory = cacheDir === null || (n - bad.size) * dim <= (opts.memoryBytes ?? DEFAULT_MEMORY_BYTES);

  const builder = inMemory ? new RowsBuilder('u8', dim, n - bad.size) : null;
  const stored: StoredShard[] = [];
  const shardPathsUsed: string[] = [];
  const kept: number[] = [];
  let gray = c === 3;
  let reused = 0;
  let decodedFiles = 0;
  let cacheDamaged: string | undefined;
  let cacheWarning: string | undefined;
  let cacheOn = cacheDir !== null;
  const toDecode = n - bad.size;
  let done = 0;
  for (let from = 0; from < n; from += shardFiles) {
    const to = Math.min(n, from + shardFiles);
    const key = stampsKey(stamps, from, to, { shape, background });
    const found = cacheOn ? await readShard(cacheDir!, key, dim, inMemory) : null;
    if (found && 'damaged' in found) cacheDamaged ??= found.damaged;
    let shard: StoredShard | null = found && !('damaged' in found) ? found : null;
    let pixels: Uint8Array | null = null;
    let rec: ShardRecord;
    if (shard) {
      reused++;
      for (const s of shard.skipped) fail(from + s.offset, s.reason);
      rec = shard;
      done += to - from - shard.skipped.length;
    } else {
      const read = (i: number) => {
        const path = entries.at(i)!.path;
        return stamps.size[i] <= SMALL_FILE ? Promise.resolve(readFileSync(path)) : readFile(path);
      };
      ({ pixels, rec } = await decodeRange(read, from, to, spec, concurrency, bad, fail, () =>
        opts.onProgress?.('decode', ++done, toDecode),
      ));
      decodedFiles += to - from;
      if (cacheOn) {
        try {
          shard = await writeShard(cacheDir!, key, shape, pixels, rec);
        } catch (err) {
          if (!inMemory)
            throw dataError(
              `could not write the decode store in ${cacheDir} (${describeFsError(err)}); the ${fmt(n)} images need ${bytesText((n - bad.size) * dim)} of disk there (set $SEMIGAN_CACHE_DIR to another disk)`,
            );
          cacheWarning = `could not write the decode cache in ${cacheDir} (${oneLine(err)}); the next run decodes again`;
          cacheOn = false;
        }
      }
    }
    for (let i = from; i < to; i++) if (!bad.has(i)) kept.push(i);
    gray &&= rec.gray;
    if (shard) shardPathsUsed.push(shard.path);
    if (builder) builder.append(pixels ?? shard!.pixels!);
    else stored.push(shard!);
  }
  if (kept.length === 0) throw dataError(`none of the ${fmt(n)} files is a readable image`);

  const skipped = [...bad.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([index, reason]) => ({ id: entry(index).id, reason }));
  return {
    rows: builder ? builder.finish() : new ShardRows(stored, dim),
    inMemory,
    shape,
    kept: Int32Array.from(kept),
    skipped,
    choice,
    gray,
    cacheHit: planReused && decodedFiles === 0,
    shards: { reused, decoded: Math.ceil(decodedFiles / shardFiles), files: shardFiles },
    shardPaths: cacheOn ? shardPathsUsed : [],
    decodedFiles,
    seconds: seconds(),
    ...(cacheDamaged ? { cacheDamaged } : {}),
    ...(cacheWarning ? { cacheWarning } : {}),
  };
}

/** Size and mtime of every file (an error names a missing one). */
function stampAll(entries: EntryList): FileStamps {
  const size = new Float64Array(entries.length);
  const mtimeMs = new Float64Array(entries.length);
  for (let i = 0; i < entries.length; i++) {
    const e = entries.at(i)!;
    try {
      const st = statSync(e.path);
      if (!st.isFile()) throw dataError(`${where(e)}: not a file (expected an image file)`);
      size[i] = st.size;
      mtimeMs[i] = st.mtimeMs;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw dataError(`${where(e)}: file not found`);
      throw err;
    }
  }
  return { paths: (i) => entries.at(i)!.path, size, mtimeMs };
}

/** The shape to decode to: as requested, else probed (headers only) over every file. */
async function probePlan(
  entries: EntryList,
  stamps: FileStamps,
  opts: DecodeOptions,
  concurrency: number,
  fail: (i: number, reason: string) => void,
): Promise<DecodePlan> {
  const unreadable: DecodePlan['unreadable'] = [];
  // One probe per distinct size and channels, with its count: millions of files, a few shapes.
  const distinct = new Map<string, { probe: ImageProbe; count: number }>();
  if (opts.size === null || opts.channels === null) {
    let done = 0;
    await mapLimit(indices(entries.length), concurrency, async (i) => {
      try {
        const path = entries.at(i)!.path;
        const p =
          stamps.size[i] <= SMALL_FILE ? await probeImageBuffer(readFileSync(path)) : await probeImageFile(path);
        const key = `${p.height}x${p.width}x${p.channels}`;
        const d = distinct.get(key);
        if (d) d.count++;
        else distinct.set(key, { probe: p, count: 1 });
      } catch (err) {
        fail(i, oneLine(err));
        unreadable.push({ index: i, reason: oneLine(err) });
      }
      opts.onProgress?.('probe', ++done, entries.length);
    });
    if (distinct.size === 0) throw dataError(`none of the ${fmt(entries.length)} files is a readable image`);
  }
  const found = [...distinct.values()];
  return {
    ...chooseShape(
      found.map((d) => d.probe),
      opts,
      found.map((d) => d.count),
    ),
    unreadable: unreadable.sort((a, b) => a.index - b.index),
  };
}

const indices = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Decode rows [from, to) (their bytes from `read`) into one shard's rows (unreadable ones dropped, or thrown). */
export async function decodeRange(
  read: (i: number) => Promise<Uint8Array>,
  from: number,
  to: number,
  spec: { height: number; width: number; channels: 1 | 3; background: Rgb },
  concurrency: number,
  bad: Map<number, string>,
  fail: (i: number, reason: string) => void,
  progress: () => void,
): Promise<{ pixels: Uint8Array; rec: ShardRecord }> {
  const dim = spec.height * spec.width * spec.channels;
  const pixels = new Uint8Array((to - from) * dim);
  await mapLimit(indices(to - from), concurrency, async (k) => {
    const i = from + k;
    if (bad.has(i)) return;
    try {
      const bytes = await read(i);
      pixels.set(await decodeImageBuffer(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), spec), k * dim);
    } catch (err) {
      fail(i, oneLine(err));
    }
    progress();
  });
  // Compact the rows that decoded.
  const skipped: ShardRecord['skipped'] = [];
  let rows = 0;
  for (let k = 0; k < to - from; k++) {
    const reason = bad.get(from + k);
    if (reason !== undefined) {
      skipped.push({ offset: k, reason });
      continue;
    }
    if (rows !== k) pixels.copyWithin(rows * dim, k * dim, (k + 1) * dim);
    rows++;
  }
  const out = pixels.subarray(0, rows * dim);
  return { pixels: out, rec: { files: to - from, rows, skipped, gray: spec.channels === 3 && isGray(out) } };
}

/** R = G = B in every pixel of HWC bytes with 3 channels. */
function isGray(x: Uint8Array): boolean {
  for (let i = 0; i < x.length; i += 3) if (x[i] !== x[i + 1] || x[i] !== x[i + 2]) return false;
  return true;
}

/** One line for the run log: "decoded 60,000 images in 31.2 s (1,923/s)" or "loaded 60,000 images from the decode cache in 0.4 s". */
export function decodeSummary(d: DecodedImages): string {
  const n = d.kept.length + d.skipped.length;
  const s = `${d.seconds.toFixed(1)} s`;
  if (d.cacheHit) return `loaded ${fmt(n)} images from the decode cache in ${s}`;
  const rate = `${fmt(Math.round(d.decodedFiles / Math.max(d.seconds, 1e-9)))}/s`;
  if (d.decodedFiles === n) return `decoded ${fmt(n)} images in ${s} (${rate})`;
  return `decoded ${fmt(d.decodedFiles)} of ${fmt(n)} images in ${s} (${rate}); ${d.shards.reused} shard(s) of ${fmt(d.shards.files)} files came from the decode cache`;
}

/** "skipped 3 unreadable files (--skip-bad): a.png (reason), b.png (reason), ..." or null when none. */
export function skippedSummary(d: Pick<DecodedImages, 'skipped'>, show = 3): string | null {
  if (d.skipped.length === 0) return null;
  const list = d.skipped.slice(0, show).map((s) => `${s.id} (${s.reason})`);
  if (d.skipped.length > show) list.push(`and ${fmt(d.skipped.length - show)} more`);
  return `skipped ${fmt(d.skipped.length)} unreadable file(s) (--skip-bad): ${list.join('; ')}`;
}
