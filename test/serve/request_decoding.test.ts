/**
 * Request decoding (src/serve/request_decoding.ts) as plain functions, without a server: JSON
 * rows for image and tabular models, ?top_k, image sniffing, and the error codes of bad bodies.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ImagePreprocessing, Preprocessing } from '../../src/export/metadata.js';
import { HttpError } from '../../src/serve/http_errors.js';
import { jsonRows, parseTopK, sniffImage, type ModelInputs } from '../../src/serve/request_decoding.js';

const image = { type: 'image', height: 2, width: 2, channels: 1 } as unknown as ImagePreprocessing;
const LIMITS = { maxRows: 1024, maxImagePixels: 25e6, maxRequestPixels: 64e6 };
const imageModel: ModelInputs = { ...LIMITS, dim: 4, classes: 3, shape: '2x2x1', preprocessing: image, image };
const tabular = { type: 'tabular', features: ['a', 'b'], mean: [1, 10], std: [2, 5] } as unknown as Preprocessing;
const tabularModel: ModelInputs = {
  ...LIMITS,
  dim: 2,
  classes: 2,
  shape: '2',
  preprocessing: tabular,
  image: null,
};

const body = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v));
async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof HttpError, `not an HttpError: ${e}`);
    return e.code;
  }
  return 'no error';
}

test('jsonRows: image rows as given; tabular rows standardized with the training mean and std', async () => {
  const img = await jsonRows(
    body({
      inputs: [
        [0, 0.5, 1, 0.25],
        [1, 1, 1, 1],
      ],
    }),
    imageModel,
  );
  assert.equal(img.n, 2);
  assert.deepEqual(Array.from(img.x), [0, 0.5, 1, 0.25, 1, 1, 1, 1]);
  const tab = await jsonRows(body({ inputs: [[3, 0]] }), tabularModel);
  assert.deepEqual(Array.from(tab.x), [(3 - 1) / 2, (0 - 10) / 5]);
});

test('jsonRows: each kind of bad body gets its code', async () => {
  const cases: [unknown, string][] = [
    ['{not json', 'SEMIGAN_ERR_MALFORMED_JSON'],
    [[1, 2], 'SEMIGAN_ERR_INVALID_BODY'],
    [{}, 'SEMIGAN_ERR_INVALID_BODY'],
    [{ inputs: [], images: [] }, 'SEMIGAN_ERR_INVALID_BODY'],
    [{ inputs: [] }, 'SEMIGAN_ERR_EMPTY_INPUT'],
    [{ inputs: [0, 0, 0, 0] }, 'SEMIGAN_ERR_INVALID_BODY'],
    [{ inputs: [[0, 0, 0]] }, 'SEMIGAN_ERR_FEATURE_COUNT'],
    [{ inputs: [[0, 0, 'x', 0]] }, 'SEMIGAN_ERR_NON_NUMERIC'],
    [{ inputs: [[0, 0, 2, 0]] }, 'SEMIGAN_ERR_OUT_OF_RANGE'],
    [{ images: [42] }, 'SEMIGAN_ERR_BAD_BASE64'],
    [{ images: ['not base64!'] }, 'SEMIGAN_ERR_BAD_BASE64'],
    [{ images: ['AAAA'] }, 'SEMIGAN_ERR_UNDECODABLE_IMAGE'],
  ];
  for (const [b, want] of cases) assert.equal(await code(jsonRows(body(b), imageModel)), want, JSON.stringify(b));
  assert.equal(await code(jsonRows(body({ images: ['AAAA'] }), tabularModel)), 'SEMIGAN_ERR_INVALID_BODY');
  assert.equal(await code(jsonRows(body({ inputs: [[1, 1e400]] }), tabularModel)), 'SEMIGAN_ERR_NON_NUMERIC');
  // Finite in float64 but not in float32: the same rule as a CSV given to predict.
  for (const v of [1e40, -1e308, 3.5e38])
    assert.equal(await code(jsonRows(body({ inputs: [[1, v]] }), tabularModel)), 'SEMIGAN_ERR_OUT_OF_RANGE', String(v));
  assert.equal(
    (await jsonRows(body({ inputs: [[1, 3.4e38]] }), tabularModel)).n,
    1,
    'the largest float32 range is kept',
  );
  // More rows than --max-rows: refused before the rows are read or a buffer is sized for them.
  const few = { ...imageModel, maxRows: 2 };
  assert.equal(
    await code(jsonRows(body({ inputs: [[0, 0, 0, 0], [0, 0, 0, 0], 'x'] }), few)),
    'SEMIGAN_ERR_TOO_MANY_ROWS',
  );
  assert.equal(await code(jsonRows(body({ images: ['AAAA', 'AAAA', 'AAAA'] }), few)), 'SEMIGAN_ERR_TOO_MANY_ROWS');
});

test('parseTopK: the default without ?top_k, 1..K with it, else BAD_PARAMETER', async () => {
  assert.equal(parseTopK('', imageModel, 3), 3);
  assert.equal(parseTopK('x=1', imageModel, 2), 2);
  assert.equal(parseTopK('top_k=1', imageModel, 3), 1);
  for (const q of ['top_k=0', 'top_k=4', 'top_k=1.5', 'top_k=abc']) {
    assert.equal(await code(Promise.resolve().then(() => parseTopK(q, imageModel, 3))), 'SEMIGAN_ERR_BAD_PARAMETER', q);
  }
});

test('sniffImage: PNG, JPEG and WebP by their first bytes, anything else null', () => {
  assert.equal(sniffImage(Buffer.from('89504e470d0a1a0a', 'hex')), 'png');
  assert.equal(sniffImage(Buffer.from('ffd8ffe000', 'hex')), 'jpeg');
  assert.equal(sniffImage(Buffer.concat([Buffer.from('RIFF'), Buffer.alloc(4), Buffer.from('WEBP')])), 'webp');
  assert.equal(sniffImage(Buffer.from('GIF89a')), null);
  assert.equal(sniffImage(Buffer.alloc(0)), null);
});
