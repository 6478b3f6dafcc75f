/**
 * Request bodies of POST /v1/predict -> model input rows: an image's bytes (PNG, JPEG, WebP,
 * sniffed by their first bytes), or JSON {"inputs": [[...]]} / {"images": ["<base64>"]}; and the
 * ?top_k= parameter. Every bad input is an HttpError naming what was wrong and what was expected.
 */
import sharp from 'sharp';
import { SemiganError } from '../errors.js';
import type { ClassifierEngine } from '../export/engine.js';
import type { ImagePreprocessing, Preprocessing } from '../export/metadata.js';
import { decodePngFast, imageToInput, PngTooMuchData, scalePixels } from '../export/preprocess.js';
import { isFiniteFloat32, standardize } from '../data/standardize.js';
import { HttpError } from './http_errors.js';

/** Images larger than this (width x height) are refused before they are decoded. */
export const MAX_IMAGE_PIXELS = 25_000_000;

/** What decoding needs to know of the model. */
export interface ModelInputs {
  dim: number;
  /** Most rows (or images) one request may hold (--max-rows): checked before anything is allocated. */
  maxRows: number;
  classes: number;
  shape: string; // e.g. 28x28x1
  preprocessing: Preprocessing;
  image: ImagePreprocessing | null;
}

export function modelInputs(classifier: ClassifierEngine, maxRows: number): ModelInputs {
  const p = classifier.metadata.preprocessing;
  return {
    dim: classifier.dim,
    maxRows,
    classes: classifier.classes.length,
    shape: classifier.metadata.inputShape.join('x'),
    preprocessing: p,
    image: p.type === 'image' ? p : null,
  };
}

/** PNG, JPEG or WebP, by their first bytes (the Content-Type is not trusted for this). */
export function sniffImage(buf: Buffer): 'png' | 'jpeg' | 'webp' | null {
  if (buf.length >= 8 && buf[0] === 0x89 && buf.toString('latin1', 1, 4) === 'PNG') return 'png';
  if (buf.length >= 3 && buf[0] === 0xff && buf[1] === 0xd8 && buf[2] === 0xff) return 'jpeg';
  if (buf.length >= 12 && buf.toString('latin1', 0, 4) === 'RIFF' && buf.toString('latin1', 8, 12) === 'WEBP')
    return 'webp';
  return null;
}

export const describe = (v: unknown) =>
  v === null
    ? 'null'
    : Array.isArray(v)
      ? 'an array'
      : typeof v === 'string'
        ? JSON.stringify(v.length > 20 ? v.slice(0, 20) + '...' : v)
        : typeof v === 'object'
          ? 'an object'
          : String(v);

export function parseTopK(query: string, m: ModelInputs, fallback: number): number {
  if (!query) return fallback;
  const v = new URLSearchParams(query).get('top_k');
  if (v === null) return fallback;
  const k = m.classes;
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > k) {
    throw new HttpError(
      'SEMIGAN_ERR_BAD_PARAMETER',
      `top_k=${v}: expected an integer from 1 to ${k} (the number of classes)`,
    );
  }
  return Number(v);
}

/** One image's bytes -> the model's input row. */
export async function imageRow(buf: Buffer, name: string, m: ModelInputs): Promise<Float32Array> {
  const p = m.image;
  if (!p)
    throw new HttpError(
      'SEMIGAN_ERR_UNSUPPORTED_MEDIA_TYPE',
      `this model takes ${m.preprocessing.type} input, not images`,
    );
  let fast: Uint8Array | null;
  try {
    fast = decodePngFast(buf, p.width, p.height, p.channels);
  } catch (e) {
    if (e instanceof PngTooMuchData) throw new HttpError('SEMIGAN_ERR_UNDECODABLE_IMAGE', `${name}: ${e.message}`);
    throw e;
  }
  if (fast) return scalePixels(fast);
  const format = sniffImage(buf);
  if (!format) {
    throw new HttpError(
      'SEMIGAN_ERR_UNDECODABLE_IMAGE',
      `${name} is not a PNG, JPEG or WebP image (its first bytes are ${buf.subarray(0, 8).toString('hex') || 'missing'}); send the image file's bytes`,
    );
  }
  let info: sharp.Metadata;
  try {
    info = await sharp(buf, { limitInputPixels: false }).metadata(); // the header only: the size check is ours
  } catch (e) {
    throw new HttpError(
      'SEMIGAN_ERR_UNDECODABLE_IMAGE',
      `${name}: cannot decode as a ${format.toUpperCase()} image (${(e as Error).message.replace(/\s+/g, ' ').trim()})`,
    );
  }
  if ((info.width ?? 0) * (info.height ?? 0) > MAX_IMAGE_PIXELS) {
    throw new HttpError(
      'SEMIGAN_ERR_IMAGE_TOO_LARGE',
      `${name} is ${info.width}x${info.height} pixels; the server decodes images of at most ${MAX_IMAGE_PIXELS} pixels (the model takes ${m.shape})`,
    );
  }
  try {
    return await imageToInput(buf, p, { name, fastPath: false });
  } catch (e) {
    if (e instanceof SemiganError) throw new HttpError('SEMIGAN_ERR_UNDECODABLE_IMAGE', e.message);
    throw e;
  }
}

/** A JSON body -> rows: {"inputs": [[...], ...]} or {"images": ["<base64>", ...]}. */
export async function jsonRows(buf: Buffer, m: ModelInputs): Promise<{ x: Float32Array; n: number }> {
  const dim = m.dim;
  const p = m.preprocessing;
  const tabular = p.type === 'tabular';
  const expected = tabular
    ? `{"inputs": [[${dim} feature values], ...]} (raw values of ${p.features.slice(0, 3).join(', ')}${dim > 3 ? ', ...' : ''}, in the order of /v1/metadata's preprocessing.features)`
    : `{"inputs": [[${dim} numbers in [0, 1]], ...]} (${m.shape} pixels / 255, row-major) or {"images": ["<base64 PNG, JPEG or WebP>", ...]}`;
  let body: unknown;
  try {
    body = JSON.parse(buf.toString('utf8'));
  } catch (e) {
    throw new HttpError(
      'SEMIGAN_ERR_MALFORMED_JSON',
      `the body is not valid JSON (${(e as Error).message}); expected ${expected}`,
    );
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new HttpError('SEMIGAN_ERR_INVALID_BODY', `the body is ${describe(body)}; expected an object, ${expected}`);
  }
  const o = body as Record<string, unknown>;
  const has = (k: string) => Object.prototype.hasOwnProperty.call(o, k);
  if (has('inputs') === has('images')) {
    const keys = Object.keys(o);
    throw new HttpError(
      'SEMIGAN_ERR_INVALID_BODY',
      `${has('inputs') ? 'both "inputs" and "images" are given' : `neither "inputs" nor "images" is given (keys: ${keys.length ? keys.map((k) => JSON.stringify(k)).join(', ') : 'none'})`}; expected exactly one: ${expected}`,
    );
  }
  const key = has('inputs') ? 'inputs' : 'images';
  if (tabular && key === 'images')
    throw new HttpError(
      'SEMIGAN_ERR_INVALID_BODY',
      `"images" given, but this is a tabular model; expected ${expected}`,
    );
  const list = o[key];
  if (!Array.isArray(list))
    throw new HttpError('SEMIGAN_ERR_INVALID_BODY', `"${key}" is ${describe(list)}; expected an array: ${expected}`);
  if (list.length === 0)
    throw new HttpError(
      'SEMIGAN_ERR_EMPTY_INPUT',
      `"${key}" is empty; expected at least one ${key === 'inputs' ? 'row' : 'image'}: ${expected}`,
    );
  const n = list.length;
  if (n > m.maxRows)
    throw new HttpError(
      'SEMIGAN_ERR_TOO_MANY_ROWS',
      `"${key}" holds ${n} ${key === 'inputs' ? 'rows' : 'images'}; this server takes at most ${m.maxRows} per request (--max-rows): split the request`,
    );
  const x = new Float32Array(n * dim);
  if (key === 'inputs') {
    for (let i = 0; i < n; i++) {
      const row = list[i];
      if (!Array.isArray(row)) {
        throw new HttpError(
          'SEMIGAN_ERR_INVALID_BODY',
          `inputs[${i}] is ${describe(row)}; expected an array of ${dim} numbers (inputs is a list of rows: a single row is [[...]])`,
        );
      }
      if (row.length !== dim) {
        throw new HttpError(
          'SEMIGAN_ERR_FEATURE_COUNT',
          `inputs[${i}] has ${row.length} values; expected ${dim} (${tabular ? 'one per feature column' : `the model takes ${m.shape} pixels, flattened row-major`})`,
        );
      }
      const off = i * dim;
      for (let j = 0; j < dim; j++) {
        const v = row[j];
        if (typeof v !== 'number' || !Number.isFinite(v)) {
          throw new HttpError(
            'SEMIGAN_ERR_NON_NUMERIC',
            `inputs[${i}][${j}] is ${describe(v)}; expected a finite number${tabular ? '' : ' in [0, 1]'}`,
          );
        }
        if (tabular && !isFiniteFloat32(v))
          throw new HttpError(
            'SEMIGAN_ERR_OUT_OF_RANGE',
            `inputs[${i}][${j}] is ${v}, out of the float32 range (|x| < 3.4e38), as predict refuses it in a CSV`,
          );
        if (!tabular && (v < 0 || v > 1))
          throw new HttpError(
            'SEMIGAN_ERR_OUT_OF_RANGE',
            `inputs[${i}][${j}] is ${v}; expected a number in [0, 1] (pixel values divided by 255)`,
          );
        x[off + j] = v;
      }
    }
  } else {
    const rows = await Promise.all(
      list.map((s, i) => {
        const name = `images[${i}]`;
        if (typeof s !== 'string')
          throw new HttpError(
            'SEMIGAN_ERR_BAD_BASE64',
            `${name} is ${describe(s)}; expected a base64 string of a PNG, JPEG or WebP file`,
          );
        const b64 = s.replace(/^data:[^,]*;base64,/, '').replace(/\s+/g, '');
        if (b64.length === 0 || b64.length % 4 === 1 || !/^[A-Za-z0-9+/_-]+={0,2}$/.test(b64)) {
          throw new HttpError(
            'SEMIGAN_ERR_BAD_BASE64',
            `${name} is not base64 (${describe(s)}); expected the base64 text of a PNG, JPEG or WebP file`,
          );
        }
        return imageRow(Buffer.from(b64, 'base64'), name, m);
      }),
    );
    rows.forEach((r, i) => x.set(r, i * dim));
  }
  return { x: tabular ? standardize(x, dim, p) : x, n };
}
