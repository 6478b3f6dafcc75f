/** File-system helpers shared by checkpoints, sample grids, reports and exports. */
import { mkdir, open, readFile, rename, rm, rmdir, unlink } from 'node:fs/promises';
import { SemiganError } from './errors.js';
import { basename, dirname, join, resolve } from 'node:path';

let tmpCounter = 0;

const FS_ERRORS: Record<string, string> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only file system',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EISDIR: 'is a directory, expected a file',
  ENOTDIR: 'a part of the path is a file, not a directory',
  ENOENT: 'no such file or directory',
  EMFILE: 'too many open files',
  EIO: 'input/output error',
};

/** A file-system error's code in words, e.g. "ENOSPC: no space left on the device". */
export function describeFsError(e: unknown): string {
  const code = (e as NodeJS.ErrnoException)?.code;
  return code && FS_ERRORS[code] ? `${code}: ${FS_ERRORS[code]}` : String((e as Error)?.message ?? e);
}

/** True for errors of the file system itself (full, read-only, permissions...), which a user can act on. */
export const isFsError = (e: unknown) => {
  const err = e as NodeJS.ErrnoException;
  return typeof err?.code === 'string' && err.code in FS_ERRORS && typeof err.syscall === 'string';
};

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
export async function writeFileSynced(path: string, data: Buffer | string | Uint8Array): Promise<void> {
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

/**
 * Replace the directory `out` with one holding `files`, so readers see the old directory or the
 * complete new one, never a partial one: the files go into a temporary directory next to `out`
 * (fsynced), which is then renamed to `out`. `state()` says, just before the rename, what `out` is
 * now ('absent', 'empty', or 'replace' an earlier one); it throws to refuse.
 */
export async function atomicWriteDir(
  out: string,
  files: Record<string, Buffer | string | Uint8Array>,
  state: () => 'absent' | 'empty' | 'export',
): Promise<void> {
  const parent = dirname(resolve(out));
  await mkdir(parent, { recursive: true });
  const stamp = `${process.pid}-${Date.now()}-${tmpCounter++}`;
  const tmp = join(parent, `.${basename(out)}.tmp-${stamp}`);
  await mkdir(tmp);
  try {
    for (const [name, data] of Object.entries(files)) {
      await mkdir(dirname(join(tmp, name)), { recursive: true });
      await writeFileSynced(join(tmp, name), data);
    }
    await fsyncDir(tmp);
    // Writers of one directory take turns for the swap: the last one's files win, whole.
    await withLockFile(join(parent, `.${basename(out)}.lock`), async () => {
      const now = state();
      if (now === 'empty') await rmdir(out);
      if (now === 'export') {
        const old = join(parent, `.${basename(out)}.old-${stamp}`);
        await rename(out, old);
        try {
          await rename(tmp, out);
        } catch (e) {
          await rename(old, out).catch(() => {}); // put the earlier one back
          throw e;
        }
        await rm(old, { recursive: true, force: true });
      } else {
        await rename(tmp, out);
      }
    });
  } catch (err) {
    await rm(tmp, { recursive: true, force: true }).catch(() => {});
    throw err;
  }
  await fsyncDir(parent);
}

/** How long a writer waits for another's lock before giving up (a swap takes milliseconds). */
const LOCK_WAIT_MS = 30_000;

const processAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/**
 * Run `fn` holding `path` (created exclusively, holding our pid). A lock whose process is gone
 * is taken over; a live one is waited for, up to LOCK_WAIT_MS.
 */
export async function withLockFile<T>(path: string, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      const fh = await open(path, 'wx');
      await fh.writeFile(String(process.pid));
      await fh.close();
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number(await readFile(path, 'utf8').catch(() => ''));
      if (pid > 0 && !processAlive(pid)) {
        await unlink(path).catch(() => {});
        continue;
      }
      if (Date.now() > deadline)
        throw new SemiganError(
          'SEMIGAN_ERR_BUSY',
          `${path}: another process (pid ${pid || 'unknown'}) has been writing here for ${LOCK_WAIT_MS / 1000} s; try again once it is done`,
        );
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  try {
    return await fn();
  } finally {
    await unlink(path).catch(() => {});
  }
}
