/**
 * Reading the files of a model directory as untrusted input: every name stays inside the
 * directory (no `..`, no absolute path, no symlink out), every size is bounded before a read, and
 * the bytes match the sha256 that `semigan export` recorded in metadata.json.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { isAbsolute, relative, resolve } from 'node:path';
import { SemiganError } from '../errors.js';

const modelDirError = (msg: string) => new SemiganError('SEMIGAN_ERR_MODEL_DIR', msg);

/** model.json and metadata.json above this are not read (semigan's are a few KB). */
export const MAX_JSON_BYTES = 16 * 1024 * 1024;

export const sha256Hex = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');

const inside = (root: string, p: string) => {
  const r = relative(root, p);
  return r !== '' && !r.startsWith('..') && !isAbsolute(r);
};

/** The path of `name` (from `field` of `source`) in model directory `dir`; refused if it leaves the directory. */
export function modelDirPath(dir: string, name: string, field: string, source: string): string {
  const root = realpathSync(dir);
  const full = resolve(root, name);
  if (typeof name !== 'string' || !inside(root, full))
    throw modelDirError(
      `${source}: ${field} ${JSON.stringify(name)} points outside the model directory ${dir}; expected a file name inside it`,
    );
  if (!existsSync(full)) throw modelDirError(`${dir}: ${field} ${name} named in ${source} is missing`);
  if (!inside(root, realpathSync(full)))
    throw modelDirError(`${source}: ${field} ${name} is a link to outside the model directory ${dir}; refused`);
  if (!statSync(full).isFile()) throw modelDirError(`${dir}: ${field} ${name} named in ${source} is not a file`);
  return full;
}

/** The bytes of `path`, refused above `maxBytes` (before reading) and when they do not match `sha256`. */
export function readModelFile(path: string, maxBytes: number, sha256: string | undefined): Buffer {
  const size = statSync(path).size;
  if (size > maxBytes) throw modelDirError(`${path}: ${size} bytes, expected at most ${maxBytes}`);
  const bytes = readFileSync(path);
  if (sha256 !== undefined && sha256Hex(bytes) !== sha256)
    throw modelDirError(
      `${path}: its sha256 does not match the one in metadata.json (the file was changed or damaged after export); export the run again`,
    );
  return bytes;
}
