/**
 * metadata.json is an input like any other: a tampered or hand-edited one must fail at load with
 * one line naming the field, not as a TypeError at the first request. Checks every field the
 * classifier, the preprocessing and the server read.
 */
import { SemiganError } from '../errors.js';

const fail = (path: string, field: string, got: unknown, expected: string): never => {
  const shown = JSON.stringify(got);
  throw new SemiganError(
    'SEMIGAN_ERR_MODEL_DIR',
    `${path}: ${field} is ${shown === undefined ? 'missing' : shown.length > 60 ? shown.slice(0, 60) + '...' : shown}, expected ${expected}`,
  );
};

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const posInt = (v: unknown) => Number.isInteger(v) && (v as number) > 0;
const finiteList = (v: unknown, n: number) =>
  Array.isArray(v) && v.length === n && v.every((x) => typeof x === 'number' && Number.isFinite(x));
/** A plain file name: no directory part, so it cannot point outside the model directory. */
const fileName = (v: unknown) => typeof v === 'string' && /^[^/\\]+$/.test(v) && v !== '.' && v !== '..';
/** A relative path below the model directory (Triton's 1/model.onnx): no `..`, not absolute. */
const relativeFile = (v: unknown) =>
  typeof v === 'string' && v.length > 0 && !/^[/\\]|^[A-Za-z]:/.test(v) && v.split(/[/\\]/).every((p) => fileName(p));

/** Values one input may have: far above any model semigan trains, far below what breaks a typed array. */
export const MAX_INPUT_VALUES = 4096 * 4096 * 3;

/** Throws a one-line SemiganError for the first field of metadata.json (parsed, at `path`) that is wrong. */
export function checkMetadata(meta: unknown, path: string): void {
  const m = meta as Record<string, unknown>;
  const shape = m.inputShape;
  if (!Array.isArray(shape) || shape.length !== 3 || !shape.every(posInt))
    fail(path, 'inputShape', shape, '[height, width, channels] of positive integers');
  const [h, w, c] = shape as number[];
  const dim = h * w * c;
  if (dim > MAX_INPUT_VALUES)
    fail(path, 'inputShape', shape, `at most ${MAX_INPUT_VALUES} values per input (e.g. 4096x4096x3)`);

  const classes = m.classes;
  if (!Array.isArray(classes) || classes.length < 1 || !classes.every((x) => typeof x === 'string' && x.length > 0))
    fail(path, 'classes', classes, 'a non-empty list of class names');
  const seen = new Set<string>();
  for (const name of classes as string[]) {
    if (seen.has(name)) fail(path, 'classes', classes, `distinct names (${JSON.stringify(name)} appears twice)`);
    seen.add(name);
  }

  const files = m.files;
  if (files !== undefined) {
    if (!isObject(files)) fail(path, 'files', files, 'an object {model, weights, metadata}');
    const f = files as Record<string, unknown>;
    if (f.model !== undefined && !fileName(f.model))
      fail(path, 'files.model', f.model, 'a file name inside the model directory');
    if (f.onnx !== undefined && !relativeFile(f.onnx))
      fail(path, 'files.onnx', f.onnx, 'a file inside the model directory');
    if (f.sha256 !== undefined) {
      if (!isObject(f.sha256)) fail(path, 'files.sha256', f.sha256, 'an object {file name: hex sha256}');
      for (const [name, hex] of Object.entries(f.sha256 as object)) {
        if (!relativeFile(name)) fail(path, 'files.sha256 key', name, 'a file inside the model directory');
        if (typeof hex !== 'string' || !/^[0-9a-f]{64}$/.test(hex))
          fail(path, `files.sha256[${JSON.stringify(name)}]`, hex, 'a sha256 in hex (64 characters)');
      }
    } else if ((m.formatVersion as number) >= 2) {
      fail(path, 'files.sha256', undefined, 'the checksums of model.json and the weight files (format version 2)');
    }
  }

  const p = m.preprocessing;
  if (!isObject(p)) fail(path, 'preprocessing', p, 'an object with type "image" or "tabular"');
  const pre = p as Record<string, unknown>;
  if (pre.type === 'image') {
    if (pre.height !== h || pre.width !== w || pre.channels !== c)
      fail(
        path,
        'preprocessing height/width/channels',
        [pre.height, pre.width, pre.channels],
        `the inputShape [${h}, ${w}, ${c}]`,
      );
    if (c !== 1 && c !== 3) fail(path, 'preprocessing.channels', c, '1 (grayscale) or 3 (RGB) for an image model');
    if (pre.background !== undefined) {
      const b = pre.background;
      if (!Array.isArray(b) || b.length !== 3 || !b.every((v) => Number.isInteger(v) && v >= 0 && v <= 255))
        fail(path, 'preprocessing.background', b, '[r, g, b] integers 0..255');
    }
  } else if (pre.type === 'tabular') {
    if (h !== 1 || w !== 1) fail(path, 'inputShape', shape, '[1, 1, features] for a tabular model');
    const feats = pre.features;
    if (!Array.isArray(feats) || feats.length !== dim || !feats.every((x) => typeof x === 'string'))
      fail(path, 'preprocessing.features', feats, `${dim} column names (inputShape ${JSON.stringify(shape)})`);
    if (!finiteList(pre.mean, dim)) fail(path, 'preprocessing.mean', pre.mean, `${dim} finite numbers`);
    if (!finiteList(pre.std, dim) || !(pre.std as number[]).every((s) => s > 0))
      fail(path, 'preprocessing.std', pre.std, `${dim} positive finite numbers`);
  } else {
    fail(path, 'preprocessing.type', pre.type, '"image" or "tabular"');
  }

  const t = isObject(m.postprocessing) ? m.postprocessing.temperature : undefined;
  if (t !== undefined && !(typeof t === 'number' && Number.isFinite(t) && t > 0))
    fail(path, 'postprocessing.temperature', t, "a positive number (the logits are D's divided by it)");
}
