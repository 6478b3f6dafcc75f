/**
 * Image files -> one Float32Array of equally shaped rows, as training needs them: a bounded number
 * of decodes in flight (sharp runs them on libuv's thread pool), the size and channels chosen as
 * the most common among the files when not given, unreadable files reported (or dropped with
 * skipBad, and listed), and the result cached on disk (./decode_cache.ts).
 */
import { readFileSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dataError } from '../../errors.js';
import { decodeCacheKey, defaultCacheDir, readDecodeCache, writeDecodeCache, type FileStamp } from './decode_cache.js';
import { decodeImageBuffer, oneLine, scalePixels, type Rgb } from './pipeline.js';
import type { ImageEntry } from './entry.js';
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
  /** Called as files finish (probing, then decoding), for progress output. */
  onProgress?: (phase: 'probe' | 'decode', done: number, total: number) => void;
}

export interface DecodedImages {
  /** [kept.length, h * w * c] in [0, 1], row-major HWC. */
  x: Float32Array;
  shape: [number, number, number];
  /** Indices into the entries of the rows of x, ascending. */
  kept: Int32Array;
  skipped: { id: string; reason: string }[];
  /**
   * How the shape was chosen and what was found, e.g. "28x28 pixels (height x width; 9,412 of
   * 10,000 files; also 32x32: 588), 1 channel (grayscale in 10,000 of 10,000 files)".
   */
  choice: string;
  cacheHit: boolean;
  /** The cache JSON this call wrote. */
  cacheFile?: string;
  /** Why the cache could not be written (the load itself succeeded): for a warning line. */
  cacheWarning?: string;
  /** The cache entry found damaged (and so decoded again and rewritten): for a note line. */
  cacheDamaged?: string;
  /** Wall time of the whole call (stat, cache, probe, decode). */
  seconds: number;
}

/** Files up to this size are read synchronously (see decodeImages). */
const SMALL_FILE = 256 * 1024;
/** At most this many bytes read while probing are kept for decoding; the rest is read again. */
const HOLD_BYTES = 256 * 1024 * 1024;

const fmt = (v: number) => v.toLocaleString('en-US');
const where = (e: ImageEntry) => (e.line ? `${e.path} (manifest line ${e.line})` : e.path);
const badFileError = (e: ImageEntry, reason: string) =>
  dataError(`${where(e)}: ${reason}; pass --skip-bad to drop unreadable images (they are listed)`);

function stamp(e: ImageEntry): FileStamp {
  try {
    const st = statSync(e.path);
    if (!st.isFile()) throw dataError(`${where(e)}: not a file (expected an image file)`);
    return { path: e.path, size: st.size, mtimeMs: st.mtimeMs };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw dataError(`${where(e)}: file not found`);
    throw err;
  }
}

/** The most common value (ties: `prefer`, else the first seen), its count, and the others' counts. */
function mostCommon<T>(values: T[], name: (v: T) => string, prefer?: string): { value: T; name: string; text: string } {
  const counts = new Map<string, { value: T; n: number }>();
  for (const v of values) {
    const c = counts.get(name(v));
    if (c) c.n++;
    else counts.set(name(v), { value: v, n: 1 });
  }
  const [[top, { value, n }], ...rest] = [...counts.entries()].sort(
    (a, b) => b[1].n - a[1].n || Number(b[0] === prefer) - Number(a[0] === prefer),
  );
  const others = rest.slice(0, 3).map(([k, c]) => `${k}: ${fmt(c.n)}`);
  if (rest.length > 3) others.push(`${rest.length - 3} more`);
  return {
    value,
    name: top,
    text: `${fmt(n)} of ${fmt(values.length)} files${others.length ? `; also ${others.join(', ')}` : ''}`,
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
    );
    channels = m.value;
    channelText = `${channels} channel${channels > 1 ? 's' : ''} (${m.name} in ${m.text})`;
  }
  return { shape: [size[0], size[1], channels], choice: `${sizeText}, ${channelText}` };
}

/**
 * Decode `entries` to one array. Unreadable files throw a SemiganError naming the file and the
 * reason, unless skipBad. With a cache directory, a second call on unchanged files (same paths,
 * sizes, mtimes, options) only stats them.
 */
export async function decodeImages(entries: readonly ImageEntry[], opts: DecodeOptions): Promise<DecodedImages> {
  const t0 = performance.now();
  const seconds = () => (performance.now() - t0) / 1000;
  const background: Rgb = opts.background ?? [0, 0, 0];
  const concurrency = opts.concurrency ?? DEFAULT_CONCURRENCY;
  if (entries.length === 0) throw dataError('no image files to decode');

  const stamps = entries.map(stamp);
  const cacheDir = opts.cacheDir === undefined ? defaultCacheDir() : opts.cacheDir;
  const key = decodeCacheKey(stamps, { size: opts.size, channels: opts.channels, background });
  let cacheDamaged: string | undefined;
  if (cacheDir !== null) {
    const hit = await readDecodeCache(cacheDir, key);
    if (hit && 'damaged' in hit) cacheDamaged = hit.damaged;
    else if (hit) {
      const first = hit.skipped[0];
      if (first && !opts.skipBad) throw badFileError(entries[first.index], first.reason);
      return {
        x: scalePixels(hit.pixels),
        shape: hit.shape,
        kept: hit.kept,
        skipped: hit.skipped.map(({ id, reason }) => ({ id, reason })),
        choice: hit.choice,
        cacheHit: true,
        seconds: seconds(),
      };
    }
  }

  const bad = new Map<number, string>();
  const fail = (i: number, reason: string) => {
    if (!opts.skipBad) throw badFileError(entries[i], reason);
    bad.set(i, reason);
  };

  // Small files are read synchronously: for a few KB that is several times cheaper than
  // fs.promises' round trips through the thread pool, and it leaves the pool to sharp.
  const read = (i: number) =>
    stamps[i].size <= SMALL_FILE ? Promise.resolve(readFileSync(entries[i].path)) : readFile(entries[i].path);
  // Bytes read while probing, kept for decoding (up to HOLD_BYTES in all).
  const held: (Buffer | undefined)[] = new Array(entries.length);
  let heldBytes = 0;

  // Probe only what the options leave open.
  let probes: ImageProbe[] = [];
  if (opts.size === null || opts.channels === null) {
    let done = 0;
    const found = await mapLimit(entries, concurrency, async (e, i) => {
      let p: ImageProbe | null = null;
      try {
        if (stamps[i].size <= SMALL_FILE && heldBytes + stamps[i].size <= HOLD_BYTES) {
          const buf = readFileSync(e.path);
          held[i] = buf;
          heldBytes += buf.length;
          p = await probeImageBuffer(buf);
        } else {
          p = await probeImageFile(e.path); // headers only
        }
      } catch (err) {
        fail(i, oneLine(err));
      }
      opts.onProgress?.('probe', ++done, entries.length);
      return p;
    });
    probes = found.filter((p): p is ImageProbe => p !== null);
    if (probes.length === 0) throw dataError(`none of the ${fmt(entries.length)} files is a readable image`);
  }
  const { shape, choice } = chooseShape(probes, opts);
  const [h, w, c] = shape;
  const spec = { height: h, width: w, channels: c as 1 | 3, background };
  const dim = h * w * c;

  const pixels = new Uint8Array(entries.length * dim);
  let done = 0;
  await mapLimit(entries, concurrency, async (e, i) => {
    if (bad.has(i)) return;
    try {
      const buf = held[i] ?? (await read(i));
      held[i] = undefined;
      pixels.set(await decodeImageBuffer(buf, spec), i * dim);
    } catch (err) {
      fail(i, oneLine(err));
    }
    opts.onProgress?.('decode', ++done, entries.length - bad.size);
  });

  if (bad.size === entries.length) throw dataError(`none of the ${fmt(entries.length)} files is a readable image`);

  // Compact the rows that decoded.
  const kept = new Int32Array(entries.length - bad.size);
  for (let i = 0, k = 0; i < entries.length; i++) {
    if (bad.has(i)) continue;
    if (k !== i) pixels.copyWithin(k * dim, i * dim, (i + 1) * dim);
    kept[k++] = i;
  }
  const keptPixels = pixels.subarray(0, kept.length * dim);
  const skipped = [...bad.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([index, reason]) => ({ index, id: entries[index].id, reason }));

  const result: DecodedImages = {
    x: scalePixels(keptPixels),
    shape,
    kept,
    skipped: skipped.map(({ id, reason }) => ({ id, reason })),
    choice,
    cacheHit: false,
    seconds: 0,
    ...(cacheDamaged ? { cacheDamaged } : {}),
  };
  if (cacheDir !== null) {
    try {
      result.cacheFile = await writeDecodeCache(cacheDir, key, entries.length, {
        shape,
        choice,
        skipped,
        kept,
        pixels: keptPixels,
      });
    } catch (err) {
      result.cacheWarning = `could not write the decode cache in ${cacheDir} (${oneLine(err)}); the next run decodes again`;
    }
  }
  result.seconds = seconds();
  return result;
}

/** One line for the run log: "decoded 60,000 images in 31.2 s (1,923/s)" or "loaded 60,000 images from the decode cache in 0.4 s". */
export function decodeSummary(d: DecodedImages): string {
  const n = d.kept.length + d.skipped.length;
  const s = `${d.seconds.toFixed(1)} s`;
  return d.cacheHit
    ? `loaded ${fmt(n)} images from the decode cache in ${s}`
    : `decoded ${fmt(n)} images in ${s} (${fmt(Math.round(n / Math.max(d.seconds, 1e-9)))}/s)`;
}

/** "skipped 3 unreadable files (--skip-bad): a.png (reason), b.png (reason), ..." or null when none. */
export function skippedSummary(d: Pick<DecodedImages, 'skipped'>, show = 3): string | null {
  if (d.skipped.length === 0) return null;
  const list = d.skipped.slice(0, show).map((s) => `${s.id} (${s.reason})`);
  if (d.skipped.length > show) list.push(`and ${fmt(d.skipped.length - show)} more`);
  return `skipped ${fmt(d.skipped.length)} unreadable file(s) (--skip-bad): ${list.join('; ')}`;
}
