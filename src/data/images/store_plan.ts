/**
 * Where decoded pixels live during a run (--data-store) and what a long decode says while it
 * runs: files per second and the time left, every few seconds.
 */
import { bytesText } from '../bytes_text.js';
import { DEFAULT_MEMORY_BYTES, type DecodedImages } from './decode.js';

export const DATA_STORES = ['auto', 'memory', 'disk'] as const;

/** The most pixels held in memory for --data-store `where` (larger sets are read from disk). */
export function memoryBytesFor(where: string | undefined): number {
  if (where === 'memory') return Infinity;
  if (where === 'disk') return 0;
  return DEFAULT_MEMORY_BYTES;
}

/** Seconds between progress lines of a long decode. */
const EVERY_SECONDS = 10;

const fmt = (v: number) => Math.round(v).toLocaleString('en-US');
const clock = (s: number) =>
  s >= 3600
    ? `${Math.floor(s / 3600)}h${String(Math.round((s % 3600) / 60)).padStart(2, '0')}m`
    : s >= 60
      ? `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`
      : `${Math.round(s)}s`;

/**
 * An onProgress for decodeImages that logs, at most every EVERY_SECONDS, e.g.
 * "decoding: 120,000 of 600,000 files (4,210/s, 1m54s left)".
 */
export function decodeProgress(
  log: (line: string) => void,
  now: () => number = () => performance.now(),
): (phase: 'probe' | 'decode', done: number, total: number) => void {
  let phaseStarted = now();
  let phaseNow: string | null = null;
  let last = phaseStarted;
  return (phase, done, total) => {
    const t = now();
    if (phase !== phaseNow) {
      phaseNow = phase;
      phaseStarted = t;
      last = t;
    }
    if (t - last < EVERY_SECONDS * 1000 || done >= total) return;
    last = t;
    const rate = done / Math.max(1e-9, (t - phaseStarted) / 1000);
    log(
      `${phase === 'probe' ? 'probing' : 'decoding'}: ${fmt(done)} of ${fmt(total)} files (${fmt(rate)}/s, ${clock((total - done) / rate)} left)`,
    );
  };
}

/**
 * Where the pixels are for the run, e.g. "61,000 rows of 3,072 bytes (179 MiB) in memory" or
 * "2,001,000 rows of 3,072 bytes (5,863 MiB) read from 94 .npy shards under DIR a batch at a time".
 */
export function storeSummary(d: Pick<DecodedImages, 'rows' | 'inMemory' | 'shardPaths'>): string {
  const { n, dim } = d.rows;
  const what = `${n.toLocaleString('en-US')} rows of ${dim.toLocaleString('en-US')} bytes (${bytesText(n * dim)})`;
  if (d.inMemory) return `${what} in memory (--data-store disk reads them from the decode cache instead)`;
  const dir = d.shardPaths[0]?.replace(/\/[^/]*$/, '') ?? '';
  return `${what} read from ${d.shardPaths.length} .npy shards in ${dir} a batch at a time (memory holds a few batches)`;
}

/**
 * What training would hold for `images` readable images of the most common size `size` ("HxW")
 * and `channels`: pixels, where they would live under --data-store `where`, and the files' bytes.
 */
export function storePlan(images: number, size: string, channels: number, fileBytes: number, where?: string): string {
  const [h, w] = size.split('x').map(Number);
  const bytes = images * h * w * channels;
  const inMemory = bytes <= memoryBytesFor(where);
  return (
    `${images.toLocaleString('en-US')} images of ${size}x${channels}: ${bytesText(bytes)} of pixels (the files: ${bytesText(fileBytes)}), ` +
    (inMemory
      ? `held in memory during training`
      : `read from the decode cache on disk a batch at a time (${bytesText(bytes)} there; memory holds a few batches)`) +
    ` (--data-store ${where ?? 'auto'})`
  );
}
