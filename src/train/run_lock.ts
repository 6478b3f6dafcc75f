/**
 * One writer per run directory: train, resume and sweep take `DIR/.lock` (created exclusively,
 * holding the owner's pid and host) before they touch anything else there, and drop it when the
 * process exits. A lock whose process is gone (killed, crashed, the machine rebooted) is stale and
 * taken over.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { SemiganError } from '../errors.js';
import { describeFsError } from '../fsutil.js';

export const LOCK_FILE = '.lock';

interface LockOwner {
  pid: number;
  host: string;
  since: string;
  command: string;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
};

const held = new Set<string>();
process.once('exit', () => {
  for (const path of held) rmSync(path, { force: true });
});

/**
 * Take the lock on `dir` (created if missing) for `command`, or throw a one-line error naming the
 * process that holds it. Also the first write into `dir`: a read-only or full directory fails
 * here, before any data is loaded.
 */
export function lockRunDir(dir: string, command: string): void {
  const path = join(dir, LOCK_FILE);
  if (held.has(path)) return;
  const me: LockOwner = { pid: process.pid, host: hostname(), since: new Date().toISOString(), command };
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      makeDir(dir);
      writeFileSync(path, JSON.stringify(me) + '\n', { flag: 'wx' });
      held.add(path);
      removeStaleTempFiles(dir);
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST')
        throw new SemiganError(
          'SEMIGAN_ERR_RUN_DIR',
          `${dir}: cannot write the run directory (${describeFsError(e)}); pick a writable --out`,
        );
    }
    let owner: LockOwner | null = null;
    try {
      owner = JSON.parse(readFileSync(path, 'utf8')) as LockOwner;
    } catch {
      // unreadable: written by a process killed mid-write, so stale
    }
    const ours = owner && owner.host === hostname();
    if (owner && (!ours || alive(owner.pid)))
      throw new SemiganError(
        'SEMIGAN_ERR_RUN_DIR',
        `${dir} is in use by \`semigan ${owner.command}\` (pid ${owner.pid} on ${owner.host}, since ${owner.since}); wait for it to finish or stop it${ours ? '' : `, or remove ${path} if that machine no longer runs it`}`,
      );
    unlinkSync(path); // stale: its process is gone
  }
  throw new SemiganError('SEMIGAN_ERR_RUN_DIR', `${dir}: another process keeps taking ${path}; try again`);
}

/** mkdir -p, but with the real reason: a recursive mkdir on a read-only file system says ENOENT. */
function makeDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    const missing: string[] = [];
    for (let d = resolve(dir); !existsSync(d) && dirname(d) !== d; d = dirname(d)) missing.unshift(d);
    for (const d of missing) mkdirSync(d); // throws the actual error (EROFS, EACCES, ENOTDIR...)
    throw e;
  }
}

/** Temporary files of atomic writes (`NAME.tmp-PID-N`) left by a process killed mid-write. */
function removeStaleTempFiles(dir: string): void {
  for (const name of readdirSync(dir)) if (/\.tmp-\d+-\d+$/.test(name)) rmSync(join(dir, name), { force: true });
}
