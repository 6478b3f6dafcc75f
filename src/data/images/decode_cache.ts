/**
 * Decoded images on disk, so a second run on unchanged files skips decoding (and probing): the
 * key hashes a format version, every file's absolute path, size and mtime, and the decode options
 * as requested (null = auto stays null, so the key is known before probing). Pixels are stored as
 * uint8 (x = u8 / 255 recomputed gives identical floats) next to a small JSON; the JSON is written
 * last, atomically, so a reader never sees a JSON without its complete pixels. The JSON holds the
 * pixels' sha256: a pixel file changed in place (same size) is found, not used.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { atomicWriteFile } from '../../fsutil.js';

/** Bump when decoding changes what bytes a file gives (old entries then miss). */
export const DECODE_CACHE_VERSION = 2;

/** $SEMIGAN_CACHE_DIR, else $XDG_CACHE_HOME/semigan, else ~/.cache/semigan. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.SEMIGAN_CACHE_DIR) return resolve(env.SEMIGAN_CACHE_DIR);
  return join(env.XDG_CACHE_HOME ? resolve(env.XDG_CACHE_HOME) : join(homedir(), '.cache'), 'semigan');
}

export interface FileStamp {
  path: string;
  size: number;
  mtimeMs: number;
}

export function decodeCacheKey(files: readonly FileStamp[], options: unknown): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({ version: DECODE_CACHE_VERSION, options, n: files.length }));
  for (const f of files) h.update(`\n${resolve(f.path)}\0${f.size}\0${f.mtimeMs}`);
  return h.digest('hex').slice(0, 40);
}

export interface CachedDecode {
  shape: [number, number, number];
  choice: string;
  /** Rows dropped as unreadable (index into the entries), with the reason. */
  skipped: { index: number; id: string; reason: string }[];
  /** Rows kept, ascending; pixels holds them in this order. */
  kept: Int32Array;
  pixels: Uint8Array;
}

interface CacheJson {
  version: number;
  key: string;
  shape: [number, number, number];
  choice: string;
  skipped: CachedDecode['skipped'];
  n: number;
  kept: number;
  sha256: string; // of the pixel file
}

const paths = (dir: string, key: string) => ({
  json: join(dir, `images-${key}.json`),
  pixels: join(dir, `images-${key}.u8`),
});

const sha256Hex = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/**
 * The cached decode for `key`; null when there is none (missing, another version); `damaged`
 * (with what is wrong and the file) when an entry exists but its pixels are not what was
 * written: the caller decodes again, says so, and rewrites it.
 */
export async function readDecodeCache(dir: string, key: string): Promise<CachedDecode | { damaged: string } | null> {
  const p = paths(dir, key);
  try {
    const meta = JSON.parse(await readFile(p.json, 'utf8')) as CacheJson;
    if (meta.version !== DECODE_CACHE_VERSION || meta.key !== key) return null;
    const pixels = await readFile(p.pixels);
    const [h, w, c] = meta.shape;
    if (pixels.length !== meta.kept * h * w * c)
      return { damaged: `${p.pixels} holds ${pixels.length} bytes, ${meta.kept * h * w * c} expected` };
    if (sha256Hex(pixels) !== meta.sha256)
      return { damaged: `${p.pixels} does not match its checksum (changed after it was written)` };
    const dropped = new Set(meta.skipped.map((s) => s.index));
    if (meta.kept + dropped.size !== meta.n) return null;
    const kept = new Int32Array(meta.kept);
    for (let i = 0, k = 0; i < meta.n; i++) if (!dropped.has(i)) kept[k++] = i;
    return {
      shape: meta.shape,
      choice: meta.choice,
      skipped: meta.skipped,
      kept,
      pixels: new Uint8Array(pixels.buffer, pixels.byteOffset, pixels.length),
    };
  } catch {
    return null;
  }
}

/** Store a decode of `n` entries under `key`; returns the JSON's path. Throws on I/O errors (callers warn). */
export async function writeDecodeCache(dir: string, key: string, n: number, d: CachedDecode): Promise<string> {
  await mkdir(dir, { recursive: true });
  const p = paths(dir, key);
  const meta: CacheJson = {
    version: DECODE_CACHE_VERSION,
    key,
    shape: d.shape,
    choice: d.choice,
    skipped: d.skipped,
    n,
    kept: d.kept.length,
    sha256: sha256Hex(d.pixels),
  };
  await atomicWriteFile(p.pixels, Buffer.from(d.pixels.buffer, d.pixels.byteOffset, d.pixels.byteLength));
  await atomicWriteFile(p.json, JSON.stringify(meta) + '\n');
  return p.json;
}
