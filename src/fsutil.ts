/** File-system helpers shared by checkpoints, sample grids and reports. */
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

let tmpCounter = 0;

/**
 * Replace `path` with `data` so readers see either the old file or the complete new one, never a
 * partial write (a run killed mid-checkpoint must still be resumable).
 *
 * Writes `<path>.tmp-<pid>-<n>` in the same directory (rename is only atomic within a file system;
 * the counter keeps concurrent writes from one process apart), fsyncs it, renames it over `path`,
 * then fsyncs the directory so the rename itself survives a crash. The directory fsync is
 * best-effort: some platforms (Windows) cannot open a directory for it.
 */
export async function atomicWriteFile(path: string, data: Buffer | string): Promise<void> {
  const tmp = join(dirname(path), `${basename(path)}.tmp-${process.pid}-${tmpCounter++}`);
  try {
    await writeFileSynced(tmp, data);
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
  await fsyncDir(dirname(path));
}

/** Write `data` to `path` and fsync it (durable, not atomic: see atomicWriteFile). */
export async function writeFileSynced(path: string, data: Buffer | string): Promise<void> {
  const fh = await open(path, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** fsync a directory so renames in it survive a crash; best-effort (not every platform can). */
export async function fsyncDir(dir: string): Promise<void> {
  try {
    const dh = await open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch {
    // best-effort, see atomicWriteFile
  }
}
