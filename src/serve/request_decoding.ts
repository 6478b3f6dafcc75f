/**
 * Request bodies of POST /v1/predict -> model input rows: an image's bytes (PNG, JPEG, WebP,
 * sniffed by their first bytes), or JSON {"inputs": [[...]]} / {"images": ["<base64>"]}; and the
 * ?top_k= parameter. Every bad input is an HttpError naming what was wrong and what was expected.
 */
import sharp from '../sharp.js';
import { SemiganError } from '../errors.js';
import type { ClassifierEngine } from '../export/engine.js';
import type { ImagePreprocessing, Preprocessing } from '../export/metadata.js';
import { decodePngFast, imageToInput, PngTooMuchData, scalePixels } from '../export/preprocess.js';
import { isFiniteFloat32, standardize } from '../data/standardize.js';
import { HttpError } from './http_errors.js';
import { ClientGone } from './read_body.js';
import { mapLimit } from '../data/map_limit.js';

/** Default --max-image-pixels: images larger than this (width x height) are refused before they are decoded. */
export const MAX_IMAGE_PIXELS = 25_000_000;
/**
 * Default --max-request-pixels: the decoded pixels one request may cost, summed over its images
 * from their headers before any is decoded. A lossless WebP of 5000x5000 black pixels is ~1 KB
 * and takes ~0.2 s of CPU to decode: the budget, not the body size, bounds a request's work.
 */
export const MAX_REQUEST_PIXELS = 64_000_000;
/** Images of one request decoded at once: a request never fills libuv's pool (4 threads) alone. */
export const DECODES_PER_REQUEST = 2;

/** What decoding needs to know of the model and the server's limits. */
export interface ModelInputs {
  dim: number;
  /** Most rows (or images) one request may hold (--max-rows): checked before anything is allocated. */
  maxRows: number;
  /** --max-image-pixels and --max-request-pixels. */
  maxImagePixels: number;
  maxRequestPixels: number;
  classes: number;
  shape: string; // e.g. 28x28x1
  preprocessing: Preprocessing;
  image: ImagePreprocessing | null;
}

export function modelInputs(
  classifier: ClassifierEngine,
  limits: { maxRows: number; maxImagePixels: number; maxRequestPixels: number },
): ModelInputs {
  const p = classifier.metadata.preprocessing;
  return {
    dim: classifier.dim,
    ...limits,
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

/** An image's pixel count from its header (nothing decoded), or null for a PNG of the model's own size. */
interface ImageHead {
  pixels: number;
  fast: Uint8Array | null;
}

/** Checks that need no decoding: the model takes images, the format, the header, the size per image. */
async function imageHead(buf: Buffer, name: string, m: ModelInputs): Promise<ImageHead> {
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
  if (fast) return { pixels: p.width * p.height, fast };
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
  const pixels = (info.width ?? 0) * (info.height ?? 0);
  if (pixels > m.maxImagePixels) {
    throw new HttpError(
      'SEMIGAN_ERR_IMAGE_TOO_LARGE',
      `${name} is ${info.width}x${info.height} pixels; the server decodes images of at most ${m.maxImagePixels} pixels (--max-image-pixels; the model takes ${m.shape})`,
    );
  }
  return { pixels, fast: null };
}

/** The decode itself (after imageHead's checks). */
async function decodeRow(buf: Buffer, name: string, head: ImageHead, m: ModelInputs): Promise<Float32Array> {
  if (head.fast) return scalePixels(head.fast);
  try {
    return await imageToInput(buf, m.image!, { name, fastPath: false });
  } catch (e) {
    if (e instanceof SemiganError) throw new HttpError('SEMIGAN_ERR_UNDECODABLE_IMAGE', e.message);
    throw e;
  }
}

/** One image's bytes -> the model's input row. */
export async function imageRow(buf: Buffer, name: string, m: ModelInputs): Promise<Float32Array> {
  const head = await imageHead(buf, name, m);
  checkPixelBudget(head.pixels, 1, m);
  return decodeRow(buf, name, head, m);
}

function checkPixelBudget(pixels: number, images: number, m: ModelInputs): void {
  if (pixels > m.maxRequestPixels)
    throw new HttpError(
      'SEMIGAN_ERR_TOO_MANY_PIXELS',
      `the ${images === 1 ? 'image holds' : `${images} images hold`} ${pixels} pixels; this server decodes at most ${m.maxRequestPixels} per request (--max-request-pixels): send fewer or smaller images`,
    );
}

/** A JSON body -> rows: {"inputs": [[...], ...]} or {"images": ["<base64>", ...]}. */
export async function jsonRows(
  buf: Buffer,
  m: ModelInputs,
  signal?: AbortSignal,
): Promise<{ x: Float32Array; n: number }> {
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
    const bufs = list.map((s, i) => {
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
      return Buffer.from(b64, 'base64');
    });
    // Every header first: the request's pixels are known before anything is decoded.
    const heads = await mapLimit(bufs, DECODES_PER_REQUEST, (b, i) => {
      if (signal?.aborted) throw new ClientGone();
      return imageHead(b, `images[${i}]`, m);
    });
    checkPixelBudget(
      heads.reduce((a, h) => a + h.pixels, 0),
      n,
      m,
    );
    // A few at a time, and none once the client has gone (or the server gave up on the request).
    await mapLimit(bufs, DECODES_PER_REQUEST, async (b, i) => {
      if (signal?.aborted) throw new ClientGone();
      x.set(await decodeRow(b, `images[${i}]`, heads[i], m), i * dim);
    });
  }
  return { x: tabular ? standardize(x, dim, p) : x, n };
}
