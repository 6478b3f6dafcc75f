/** Content hashes of files (sha1 of the bytes), to find duplicate images whatever their names. */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { DEFAULT_CONCURRENCY, mapLimit } from '../map_limit.js';

/** Hex sha1 of the file's bytes, streamed (large files are never held whole). */
export function sha1File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha1');
    createReadStream(path)
      .on('error', reject)
      .on('data', (chunk) => hash.update(chunk))
      .on('end', () => resolve(hash.digest('hex')));
  });
}

/** sha1File for many files, `concurrency` at a time, in order. */
export function sha1Files(paths: readonly string[], concurrency = DEFAULT_CONCURRENCY): Promise<string[]> {
  return mapLimit(paths, concurrency, (p) => sha1File(p));
}
