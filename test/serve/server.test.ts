/**
 * `semigan serve` on a tiny real model (500 MNIST training images, 20 iterations, exported):
 * in-process servers on ephemeral 127.0.0.1 ports for the endpoints, inputs, errors, micro-batching
 * and auth; child processes for SIGTERM (an in-flight request completes, exit 0) and --workers 2
 * (serves, a killed worker is replaced). Answers are compared with Classifier.predict on the same
 * decoded inputs.
 */
import { runCli } from '../lib/cli.js';
import { grayPng } from '../lib/tiny_run.js';
import { gzipSync } from 'node:zlib';
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { initBackend } from '../../src/backend.js';
import { readIdxImages } from '../../src/data/sources/idx.js';
import { MicroBatcher } from '../../src/serve/batcher.js';
import { Classifier, type Prediction } from '../../src/export/classifier.js';
import { HTTP_ERRORS } from '../../src/serve/http_errors.js';
import { imageToInput, scalePixels } from '../../src/export/preprocess.js';
import { PredictionServer, publicMetadata, type ServerStats } from '../../src/serve/server.js';
import { mnistDataDir } from '../../src/package_paths.js';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const N_IMAGES = 64;

let tmp: string;
let modelDir: string;
let classifier: Classifier;
let server: PredictionServer;
/** The first N_IMAGES MNIST test images: bytes, model inputs, PNG and JPEG files. */
let pixels: Uint8Array[];
let inputs: Float32Array[];
let pngs: Buffer[];
let jpegs: Buffer[];

interface Reply {
  status: number;
  headers: Headers;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

async function request(url: string, init: RequestInit = {}): Promise<Reply> {
  const r = await fetch(url, init);
  const text = await r.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON: the assertion on it will say so */
  }
  return { status: r.status, headers: r.headers, body };
}
const postImage = (base: string, img: Buffer, type = 'image/png', extra: Record<string, string> = {}) =>
  request(base + '/v1/predict', {
    method: 'POST',
    headers: { 'content-type': type, ...extra },
    body: new Uint8Array(img),
  });
const postJson = (base: string, body: unknown, query = '') =>
  request(base + '/v1/predict' + query, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

/** The server's prediction agrees with Classifier.predict on the same input (label exactly, numbers to 1e-5). */
function assertSamePrediction(got: Prediction, want: Prediction, what: string): void {
  assert.equal(got.label, want.label, `${what}: label`);
  assert.equal(got.index, want.index, `${what}: index`);
  assert.ok(
    Math.abs(got.probability - want.probability) < 1e-5,
    `${what}: probability ${got.probability} vs ${want.probability}`,
  );
  assert.ok(Math.abs(got.realness - want.realness) < 1e-5, `${what}: realness`);
  assert.deepEqual(Object.keys(got.probabilities), [...classifier.classes], `${what}: every class`);
  for (const c of classifier.classes)
    assert.ok(Math.abs(got.probabilities[c] - want.probabilities[c]) < 1e-5, `${what}: p(${c})`);
  assert.deepEqual(
    got.top.map((t) => t.label),
    want.top.map((t) => t.label),
    `${what}: top`,
  );
}
const predictOne = (x: Float32Array, topK = 3) => classifier.predict(x, 1, topK)[0];

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'semigan-serve-'));
  const run = join(tmp, 'run');
  modelDir = join(tmp, 'model');
  const t = await runCli([
    'train',
    '--backend',
    'wasm',
    '--train-limit',
    '500',
    '--test-limit',
    '100',
    '--epochs',
    '1',
    '--iters-per-epoch',
    '20',
    '--batch-size',
    '50',
    '--out',
    run,
  ]);
  assert.equal(t.code, 0, t.stderr);
  const e = await runCli(['export', run, '--out', modelDir, '--backend', 'wasm']);
  assert.equal(e.code, 0, e.stderr);
  await initBackend('wasm');
  classifier = await Classifier.load(modelDir);
  const mnist = join(mnistDataDir()!, 't10k-images-idx3-ubyte');
  const img = readIdxImages(mnist);
  pixels = Array.from({ length: N_IMAGES }, (_, i) => img.pixels.slice(i * 784, (i + 1) * 784));
  inputs = pixels.map((p) => scalePixels(p));
  const raw = (p: Uint8Array) => sharp(Buffer.from(p), { raw: { width: 28, height: 28, channels: 1 } });
  pngs = await Promise.all(pixels.map((p) => raw(p).toColourspace('b-w').png().toBuffer()));
  jpegs = await Promise.all(pixels.map((p) => raw(p).jpeg({ quality: 90 }).toBuffer()));
  server = await PredictionServer.start(classifier, { port: 0 });
});

after(async () => {
  await server?.shutdown();
  classifier?.dispose();
  rmSync(tmp, { recursive: true, force: true });
});

describe('in-process server', () => {
  test('binds 127.0.0.1 on an ephemeral port; /healthz and /v1/metadata', async () => {
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.ok(server.port > 0);
    const h = await request(server.url + '/healthz');
    assert.equal(h.status, 200);
    assert.equal(h.body.status, 'ok');
    assert.equal(h.body.pid, process.pid);
    assert.equal(typeof h.body.stats.batches, 'number');
    const m = await request(server.url + '/v1/metadata');
    assert.equal(m.status, 200);
    assert.match(m.headers.get('content-type')!, /^application\/json/);
    assert.deepEqual(m.body, publicMetadata(readFileSync(join(modelDir, 'metadata.json'))));
  });

  test('PNG and JPEG files of real MNIST test images: the labels Classifier.predict gives their decoded inputs', async () => {
    for (let i = 0; i < 16; i++) {
      const png = await postImage(server.url, pngs[i]);
      assert.equal(png.status, 200, JSON.stringify(png.body));
      assert.equal(png.body.predictions.length, 1);
      // A gray 28x28 PNG decodes to the dataset's own pixels.
      assertSamePrediction(png.body.predictions[0], predictOne(inputs[i]), `${i}.png`);
      const jpeg = await postImage(server.url, jpegs[i], 'image/jpeg');
      assert.equal(jpeg.status, 200, JSON.stringify(jpeg.body));
      assertSamePrediction(
        jpeg.body.predictions[0],
        predictOne(await imageToInput(jpegs[i], classifier.metadata)),
        `${i}.jpg`,
      );
    }
    // WebP, a Content-Type parameter, and a larger RGBA PNG (letterboxed by sharp, as semigan predict does).
    const webp = await sharp(Buffer.from(pixels[3]), { raw: { width: 28, height: 28, channels: 1 } })
      .webp({ lossless: true })
      .toBuffer();
    const w = await postImage(server.url, webp, 'image/webp; charset=binary');
    assert.equal(w.status, 200);
    assertSamePrediction(w.body.predictions[0], predictOne(inputs[3]), 'lossless webp');
    const big = await sharp(Buffer.from(pixels[5]), { raw: { width: 28, height: 28, channels: 1 } })
      .resize(84, 84)
      .ensureAlpha()
      .png()
      .toBuffer();
    const b = await postImage(server.url, big);
    assert.equal(b.status, 200);
    assertSamePrediction(
      b.body.predictions[0],
      predictOne(await imageToInput(big, classifier.metadata)),
      '84x84 RGBA png',
    );
  });

  test('JSON {"inputs": rows} and {"images": base64}: one prediction per input, in order; ?top_k', async () => {
    const rows = [0, 1, 2].map((i) => Array.from(inputs[i]));
    const r = await postJson(server.url, { inputs: rows }, '?top_k=5');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.predictions.length, 3);
    rows.forEach((_, i) => assertSamePrediction(r.body.predictions[i], predictOne(inputs[i], 5), `inputs[${i}]`));
    assert.equal(r.body.predictions[0].top.length, 5);

    const images = [
      pngs[4].toString('base64'),
      `data:image/jpeg;base64,${jpegs[5].toString('base64')}`,
      pngs[6].toString('base64').replace(/(.{60})/g, '$1\n'),
    ];
    const im = await postJson(server.url, { images });
    assert.equal(im.status, 200, JSON.stringify(im.body));
    assert.equal(im.body.predictions.length, 3);
    assertSamePrediction(im.body.predictions[0], predictOne(inputs[4]), 'images[0] (png)');
    assertSamePrediction(
      im.body.predictions[1],
      predictOne(await imageToInput(jpegs[5], classifier.metadata)),
      'images[1] (jpeg data URL)',
    );
    assertSamePrediction(im.body.predictions[2], predictOne(inputs[6]), 'images[2] (base64 with line breaks)');
    assert.equal(im.body.predictions[0].top.length, 3, 'default top_k');
  });

  test('a burst of 64 concurrent requests with different images: each gets its own answer, in shared model calls', async () => {
    const before: ServerStats = (await request(server.url + '/healthz')).body.stats;
    const replies = await Promise.all(pngs.map((png) => postImage(server.url, png)));
    const afterStats: ServerStats = (await request(server.url + '/healthz')).body.stats;
    const truth = classifier.predict(concat(inputs), N_IMAGES);
    replies.forEach((r, i) => {
      assert.equal(r.status, 200);
      assertSamePrediction(r.body.predictions[0], truth[i], `burst image ${i}`);
    });
    const labels = new Set(truth.map((p) => p.label));
    assert.ok(labels.size >= 3, `the images have different answers (${[...labels]})`);
    assert.equal(afterStats.rows - before.rows, N_IMAGES);
    const calls = afterStats.batches - before.batches;
    assert.ok(calls < N_IMAGES, `64 rows took ${calls} model calls`);
    assert.ok(
      afterStats.multiRowBatches > before.multiRowBatches && afterStats.maxBatchRows > 1,
      'at least one model call ran several rows',
    );
    assert.ok(afterStats.maxBatchRows <= 64, 'no call over --max-batch');
    assert.deepEqual(server.stats().batches, afterStats.batches, 'the in-process getter says the same');
  });

  test('malformed requests get their 4xx JSON error, and the next good request still succeeds', async () => {
    const u = server.url;
    const row = Array.from(inputs[0]);
    const gif = Buffer.from('R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==', 'base64');
    const cases: [string, () => Promise<Reply>, number, string, RegExp][] = [
      [
        'malformed JSON',
        () => postJson(u, '{"inputs": [[0.1, 0.2]'),
        400,
        'SEMIGAN_ERR_MALFORMED_JSON',
        /not valid JSON .*expected \{"inputs": \[\[784 numbers in \[0, 1\]\]/,
      ],
      [
        'a JSON array',
        () => postJson(u, [[0.1]]),
        400,
        'SEMIGAN_ERR_INVALID_BODY',
        /the body is an array; expected an object/,
      ],
      [
        'neither key',
        () => postJson(u, { input: [row] }),
        400,
        'SEMIGAN_ERR_INVALID_BODY',
        /neither "inputs" nor "images" is given \(keys: "input"\)/,
      ],
      [
        'both keys',
        () => postJson(u, { inputs: [row], images: ['AAAA'] }),
        400,
        'SEMIGAN_ERR_INVALID_BODY',
        /both "inputs" and "images"/,
      ],
      [
        'a flat row',
        () => postJson(u, { inputs: row }),
        400,
        'SEMIGAN_ERR_INVALID_BODY',
        /inputs\[0\] is 0; expected an array of 784 numbers .*\[\[\.\.\.\]\]/,
      ],
      [
        'inputs not an array',
        () => postJson(u, { inputs: 'x' }),
        400,
        'SEMIGAN_ERR_INVALID_BODY',
        /"inputs" is "x"; expected an array/,
      ],
      [
        'wrong feature count',
        () => postJson(u, { inputs: [row, row.slice(1)] }),
        400,
        'SEMIGAN_ERR_FEATURE_COUNT',
        /^inputs\[1\] has 783 values; expected 784 \(the model takes 28x28x1 pixels/,
      ],
      [
        'too many features',
        () => postJson(u, { inputs: [[...row, 0]] }),
        400,
        'SEMIGAN_ERR_FEATURE_COUNT',
        /^inputs\[0\] has 785 values; expected 784/,
      ],
      [
        'a string value',
        () => postJson(u, { inputs: [row.map((v, j) => (j === 5 ? 'abc' : v))] }),
        400,
        'SEMIGAN_ERR_NON_NUMERIC',
        /^inputs\[0\]\[5\] is "abc"; expected a finite number/,
      ],
      [
        'a null value',
        () => postJson(u, { inputs: [row, row.map((v, j) => (j === 700 ? null : v))] }),
        400,
        'SEMIGAN_ERR_NON_NUMERIC',
        /^inputs\[1\]\[700\] is null/,
      ],
      [
        'an infinite value',
        () => postJson(u, `{"inputs": [[1e999${',0'.repeat(783)}]]}`),
        400,
        'SEMIGAN_ERR_NON_NUMERIC',
        /^inputs\[0\]\[0\] is Infinity/,
      ],
      [
        'pixels not scaled',
        () => postJson(u, { inputs: [row.map((v) => v * 255)] }),
        400,
        'SEMIGAN_ERR_OUT_OF_RANGE',
        /expected a number in \[0, 1\] \(pixel values divided by 255\)/,
      ],
      ['empty inputs', () => postJson(u, { inputs: [] }), 400, 'SEMIGAN_ERR_EMPTY_INPUT', /"inputs" is empty/],
      ['empty images', () => postJson(u, { images: [] }), 400, 'SEMIGAN_ERR_EMPTY_INPUT', /"images" is empty/],
      [
        'empty image body',
        () => postImage(u, Buffer.alloc(0)),
        400,
        'SEMIGAN_ERR_EMPTY_INPUT',
        /the body is empty; expected the bytes of an image \(image\/png\)/,
      ],
      ['empty JSON body', () => postJson(u, ''), 400, 'SEMIGAN_ERR_EMPTY_INPUT', /the body is empty/],
      [
        'not base64',
        () => postJson(u, { images: [pngs[0].toString('base64'), 'not base64!'] }),
        400,
        'SEMIGAN_ERR_BAD_BASE64',
        /^images\[1\] is not base64/,
      ],
      [
        'a number as image',
        () => postJson(u, { images: [7] }),
        400,
        'SEMIGAN_ERR_BAD_BASE64',
        /^images\[0\] is 7; expected a base64 string/,
      ],
      [
        'undecodable image body',
        () => postImage(u, Buffer.from('this is not an image at all')),
        422,
        'SEMIGAN_ERR_UNDECODABLE_IMAGE',
        /^the body is not a PNG, JPEG or WebP image/,
      ],
      [
        'truncated PNG',
        () => postImage(u, pngs[0].subarray(0, 60)),
        422,
        'SEMIGAN_ERR_UNDECODABLE_IMAGE',
        /^the body: cannot decode/,
      ],
      [
        'truncated JPEG',
        () => postImage(u, jpegs[0].subarray(0, 200), 'image/jpeg'),
        422,
        'SEMIGAN_ERR_UNDECODABLE_IMAGE',
        /^the body: cannot decode/,
      ],
      ['a GIF', () => postImage(u, gif), 422, 'SEMIGAN_ERR_UNDECODABLE_IMAGE', /not a PNG, JPEG or WebP image/],
      [
        'undecodable base64 image',
        () => postJson(u, { images: [Buffer.from('plain text').toString('base64')] }),
        422,
        'SEMIGAN_ERR_UNDECODABLE_IMAGE',
        /^images\[0\] is not a PNG, JPEG or WebP image/,
      ],
      [
        'a 30-megapixel PNG header',
        () => postImage(u, pngHeaderOnly(6000, 5000)),
        422,
        'SEMIGAN_ERR_IMAGE_TOO_LARGE',
        /6000x5000 pixels; .* at most 25000000/,
      ],
      [
        'text/plain',
        () => request(u + '/v1/predict', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hello' }),
        415,
        'SEMIGAN_ERR_UNSUPPORTED_MEDIA_TYPE',
        /Content-Type text\/plain is not accepted; send an image \(image\/png, image\/jpeg, image\/webp\) or application\/json/,
      ],
      [
        'no Content-Type',
        () => request(u + '/v1/predict', { method: 'POST', body: new Uint8Array(pngs[0]) }),
        415,
        'SEMIGAN_ERR_UNSUPPORTED_MEDIA_TYPE',
        /^no Content-Type is not accepted/,
      ],
      [
        'image/gif',
        () => postImage(u, gif, 'image/gif'),
        415,
        'SEMIGAN_ERR_UNSUPPORTED_MEDIA_TYPE',
        /image\/gif is not accepted/,
      ],
      [
        'oversized body (Content-Length)',
        () => postImage(u, Buffer.alloc(2 * 1024 * 1024, 7)),
        413,
        'SEMIGAN_ERR_BODY_TOO_LARGE',
        /the body is 2097152 bytes; this server accepts at most 1048576 bytes/,
      ],
      [
        'oversized body (chunked)',
        () =>
          request(u + '/v1/predict', {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: chunks(3, 512 * 1024),
            duplex: 'half',
          } as RequestInit),
        413,
        'SEMIGAN_ERR_BODY_TOO_LARGE',
        /more than 1048576 bytes/,
      ],
      [
        'unknown route',
        () => request(u + '/v2/predict'),
        404,
        'SEMIGAN_ERR_NOT_FOUND',
        /no such path: \/v2\/predict; the server answers POST \/v1\/predict/,
      ],
      [
        'wrong method on /v1/predict',
        () => request(u + '/v1/predict'),
        405,
        'SEMIGAN_ERR_METHOD_NOT_ALLOWED',
        /GET \/v1\/predict is not allowed; use POST/,
      ],
      [
        'wrong method on /healthz',
        () => request(u + '/healthz', { method: 'DELETE' }),
        405,
        'SEMIGAN_ERR_METHOD_NOT_ALLOWED',
        /use GET or HEAD/,
      ],
      [
        'top_k=0',
        () => postJson(u, { inputs: [row] }, '?top_k=0'),
        400,
        'SEMIGAN_ERR_BAD_PARAMETER',
        /top_k=0: expected an integer from 1 to 10/,
      ],
      ['top_k=abc', () => postJson(u, { inputs: [row] }, '?top_k=abc'), 400, 'SEMIGAN_ERR_BAD_PARAMETER', /top_k=abc/],
      [
        'malformed HTTP',
        () => rawHttp(server.port, 'THIS IS NOT HTTP\r\n\r\n'),
        400,
        'SEMIGAN_ERR_BAD_HTTP',
        /malformed HTTP request/,
      ],
      [
        '20 KB of headers',
        () => rawHttp(server.port, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`),
        431,
        'SEMIGAN_ERR_HEADERS_TOO_LARGE',
        /headers are too large/,
      ],
    ];
    const seen = new Set<string>();
    for (const [what, send, status, code, message] of cases) {
      const r = await send();
      assert.equal(r.status, status, `${what}: status ${r.status}, body ${JSON.stringify(r.body)}`);
      assert.deepEqual(Object.keys(r.body), ['error'], `${what}: {"error": ...}`);
      assert.equal(r.body.error.code, code, `${what}: code`);
      assert.match(r.body.error.message, message, `${what}: message`);
      assert.match(r.headers.get('content-type') ?? '', /^application\/json/, `${what}: JSON`);
      if (status === 405) assert.ok(['POST', 'GET, HEAD'].includes(r.headers.get('allow')!), `${what}: Allow header`);
      seen.add(code);
      // The server is still there and answers a good request.
      const good = await postImage(u, pngs[1]);
      assert.equal(good.status, 200, `after ${what}: ${JSON.stringify(good.body)}`);
      assertSamePrediction(good.body.predictions[0], predictOne(inputs[1]), `after ${what}`);
    }
    const untested = Object.keys(HTTP_ERRORS).filter((c) => !seen.has(c));
    assert.deepEqual(
      untested.sort(),
      [
        'SEMIGAN_ERR_INTERNAL',
        'SEMIGAN_ERR_SHUTTING_DOWN',
        'SEMIGAN_ERR_TIMEOUT',
        'SEMIGAN_ERR_TOO_MANY_PIXELS',
        'SEMIGAN_ERR_TOO_MANY_ROWS',
        'SEMIGAN_ERR_UNAUTHORIZED',
      ],
      'every other code is exercised (the rest below and in hostile_clients.test.ts)',
    );
  });

  test('a request whose body does not arrive within --timeout-ms gets 408, and the server carries on', async () => {
    const s = await PredictionServer.start(classifier, { port: 0, timeoutMs: 300 });
    try {
      const t0 = performance.now();
      const r = await rawHttp(
        s.port,
        `POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: ${pngs[0].length}\r\n\r\n`,
        pngs[0].subarray(0, 20),
      );
      const ms = performance.now() - t0;
      assert.equal(r.status, 408);
      assert.equal(r.body.error.code, 'SEMIGAN_ERR_TIMEOUT');
      assert.match(r.body.error.message, /did not arrive within 300 ms \(received 20 bytes of the body\)/);
      assert.ok(ms >= 250 && ms < 5000, `answered after ${ms.toFixed(0)} ms`);
      assert.equal((await postImage(s.url, pngs[2])).status, 200);
    } finally {
      await s.shutdown();
    }
  });

  test('a failing model call is a 500 JSON error for the requests in it; the server goes on', async () => {
    let fail = true;
    const flaky = Object.create(classifier, {
      predictLogits: {
        value: (x: Float32Array, n: number) =>
          fail
            ? (() => {
                throw new Error('out of memory (simulated)');
              })()
            : classifier.predictLogits(x, n),
      },
    }) as Classifier;
    const s = await PredictionServer.start(flaky, { port: 0 });
    try {
      const r = await postImage(s.url, pngs[0]);
      assert.equal(r.status, 500);
      assert.deepEqual(r.body, {
        error: { code: 'SEMIGAN_ERR_INTERNAL', message: 'the model call failed: out of memory (simulated)' },
      });
      fail = false;
      const ok = await postImage(s.url, pngs[0]);
      assert.equal(ok.status, 200);
      assertSamePrediction(ok.body.predictions[0], predictOne(inputs[0]), 'after the failure');
    } finally {
      await s.shutdown();
    }
  });

  test('bearer token: 401 with WWW-Authenticate when missing or wrong, /healthz stays open', async () => {
    const s = await PredictionServer.start(classifier, { port: 0, token: 's3cret-token' });
    try {
      const none = await postImage(s.url, pngs[0]);
      assert.equal(none.status, 401);
      assert.equal(none.body.error.code, 'SEMIGAN_ERR_UNAUTHORIZED');
      assert.match(none.body.error.message, /requires a bearer token: send the header `Authorization: Bearer TOKEN`/);
      assert.equal(none.headers.get('www-authenticate'), 'Bearer realm="semigan"');
      for (const header of [
        'Bearer wrong-token',
        'Bearer s3cret-token-and-more',
        'Bearer s3cret-toke',
        'Basic czNjcmV0LXRva2Vu',
        's3cret-token',
      ]) {
        const bad = await postImage(s.url, pngs[0], 'image/png', { authorization: header });
        assert.equal(bad.status, 401, header);
        assert.equal(bad.body.error.code, 'SEMIGAN_ERR_UNAUTHORIZED');
        assert.match(bad.headers.get('www-authenticate')!, /^Bearer realm="semigan"/, header);
      }
      assert.equal(
        (await postImage(s.url, pngs[0], 'image/png', { authorization: 'Bearer wrong' })).headers.get(
          'www-authenticate',
        ),
        'Bearer realm="semigan", error="invalid_token"',
      );
      const ok = await postImage(s.url, pngs[0], 'image/png', { authorization: 'Bearer s3cret-token' });
      assert.equal(ok.status, 200);
      assertSamePrediction(ok.body.predictions[0], predictOne(inputs[0]), 'with the token');
      assert.equal((await request(s.url + '/v1/metadata')).status, 401);
      assert.equal(
        (await request(s.url + '/v1/metadata', { headers: { authorization: 'bearer s3cret-token' } })).status,
        200,
      );
      const h = await request(s.url + '/healthz');
      assert.equal(h.status, 200);
      assert.equal(h.body.status, 'ok');
      // An unknown path asks for the token first: which paths exist is not told without it.
      const unknown = await request(s.url + '/admin');
      assert.equal(unknown.status, 401);
      assert.equal(
        (await request(s.url + '/admin', { headers: { authorization: 'Bearer s3cret-token' } })).status,
        404,
      );
      assert.equal(
        (await request(s.url + '/__proto__', { headers: { authorization: 'Bearer s3cret-token' } })).status,
        404,
      );
    } finally {
      await s.shutdown();
    }
  });

  test('a compressed body (Content-Encoding: gzip) is refused with 415, not read as raw bytes', async () => {
    const r = await postImage(server.url, gzipSync(pngs[0]), 'image/png', { 'content-encoding': 'gzip' });
    assert.equal(r.status, 415);
    assert.equal(r.body.error.code, 'SEMIGAN_ERR_UNSUPPORTED_MEDIA_TYPE');
    assert.match(r.body.error.message, /^Content-Encoding gzip is not accepted; send the body uncompressed/);
  });

  test('docs/serving.md: the error table is the code table (code, HTTP status, in order)', () => {
    const doc = readFileSync(join(REPO, 'docs', 'serving.md'), 'utf8');
    const m = /<!-- error-table -->([\s\S]*?)<!-- \/error-table -->/.exec(doc);
    assert.ok(m, 'docs/serving.md has the <!-- error-table --> block');
    const documented = [...m[1].matchAll(/^\| `(SEMIGAN_ERR_[A-Z0-9_]+)` \| (\d{3}) \|/gm)].map((r) => [
      r[1],
      Number(r[2]),
    ]);
    assert.deepEqual(
      documented,
      Object.entries(HTTP_ERRORS).map(([code, e]) => [code, e.status]),
    );
  });
});

describe('MicroBatcher', () => {
  const rowSum = (x: Float32Array, n: number) =>
    Float32Array.from({ length: n }, (_, i) => x.subarray(i * 2, i * 2 + 2).reduce((a, b) => a + b, 0));

  test('flushes at maxBatch rows or after maxWaitMs; each submitter gets its own rows, a large submission is split', async () => {
    const calls: number[] = [];
    const b = new MicroBatcher((x, n) => (calls.push(n), rowSum(x, n)), {
      dim: 2,
      outDim: 1,
      maxBatch: 4,
      maxWaitMs: 50,
    });
    const t0 = performance.now();
    const one = await b.submit(new Float32Array([1, 2]), 1);
    assert.ok(performance.now() - t0 >= 40, 'a lone row waits maxWaitMs');
    assert.deepEqual([...one], [3]);
    calls.length = 0;
    const [a, c, d] = await Promise.all([
      b.submit(new Float32Array([1, 1, 2, 2]), 2),
      b.submit(new Float32Array([10, 10, 20, 20, 30, 30, 40, 40, 50, 50]), 5),
      b.submit(new Float32Array([7, 0]), 1),
    ]);
    assert.deepEqual([...a], [2, 4]);
    assert.deepEqual([...c], [20, 40, 60, 80, 100]);
    assert.deepEqual([...d], [7]);
    assert.deepEqual(calls, [4, 4], '8 rows in two full calls');
    assert.deepEqual(b.stats(), {
      submissions: 4,
      rows: 9,
      batches: 3,
      multiRowBatches: 2,
      maxBatchRows: 4,
      queuedRows: 0,
    });
  });

  test('a failing model call rejects the submissions in it, and the batcher goes on', async () => {
    let fail = true;
    const b = new MicroBatcher(
      (x, n) => {
        if (fail) throw new Error('boom');
        return rowSum(x, n);
      },
      { dim: 2, outDim: 1, maxBatch: 2, maxWaitMs: 0 },
    );
    const r = await Promise.allSettled([
      b.submit(new Float32Array([1, 2, 3, 4, 5, 6]), 3),
      b.submit(new Float32Array([1, 1]), 1),
    ]);
    assert.equal(r[0].status, 'rejected');
    assert.equal(r[1].status, 'rejected');
    assert.equal(b.stats().queuedRows, 0);
    fail = false;
    assert.deepEqual([...(await b.submit(new Float32Array([2, 3]), 1))], [5]);
    await assert.rejects(b.submit(new Float32Array(3), 1), /expected n >= 1 rows of 2 values/);
  });
});

describe('semigan serve (child processes)', () => {
  test('SIGTERM: healthz says 503, a new connection gets 503 SHUTTING_DOWN, the in-flight request completes, exit 0', async () => {
    const srv = await startCli(['--port', '0', '--backend', 'wasm'], { SEMIGAN_TOKEN: 'tok' });
    try {
      assert.deepEqual([srv.ready.host, srv.ready.workers], ['127.0.0.1', 1]);
      const auth = { authorization: 'Bearer tok' };
      assert.equal((await postImage(srv.ready.url, pngs[0])).status, 401, '$SEMIGAN_TOKEN is used');
      assert.equal((await postImage(srv.ready.url, pngs[0], 'image/png', auth)).status, 200);
      // In flight: headers and half the body sent. Another connection: half a /healthz request.
      const png = pngs[9];
      const inflight = rawHttpStart(
        srv.ready.port,
        `POST /v1/predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok\r\nContent-Type: image/png\r\nContent-Length: ${png.length}\r\n\r\n`,
        png.subarray(0, 100),
      );
      const health = rawHttpStart(srv.ready.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n');
      await Promise.all([inflight.connected, health.connected]);
      await sleep(500);
      srv.child.kill('SIGTERM');
      await srv.waitForStderr(/SIGTERM: shutting down/);
      const late = await rawHttp(srv.ready.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'); // a new connection
      assert.equal(late.status, 503);
      assert.equal(late.body.error.code, 'SEMIGAN_ERR_SHUTTING_DOWN');
      assert.equal(late.headers.get('retry-after'), '1');
      health.send('\r\n');
      const h = await health.reply;
      assert.equal(h.status, 503);
      assert.equal(h.body.status, 'shutting-down');
      assert.equal(h.headers.connection, 'close');
      inflight.send(png.subarray(100));
      const r = await inflight.reply;
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assertSamePrediction(r.body.predictions[0], predictOne(inputs[9]), 'the in-flight request');
      assert.equal(await srv.exit, 0);
      assert.match(srv.stderr(), /all requests answered; exiting/);
    } finally {
      srv.child.kill('SIGKILL');
    }
  });

  test('--workers 2: both workers answer; a killed worker is replaced; SIGTERM stops all, exit 0', async () => {
    const srv = await startCli(['--port', '0', '--workers', '2', '--backend', 'wasm', '--max-wait-ms', '1']);
    try {
      assert.equal(srv.ready.workers, 2);
      const pids = async (want: number) => {
        const seen = new Set<number>();
        for (let i = 0; i < 60 && seen.size < want; i++) {
          const h = await request(srv.ready.url + '/healthz', { headers: { connection: 'close' } });
          if (h.status === 200) seen.add(h.body.pid);
        }
        return seen;
      };
      const workers = await pids(2);
      assert.equal(workers.size, 2, 'two processes answer');
      assert.ok(!workers.has(srv.ready.pid), 'the primary does not serve');
      const replies = await Promise.all(
        pngs.slice(0, 16).map((png) => postImage(srv.ready.url, png, 'image/png', { connection: 'close' })),
      );
      replies.forEach((r, i) => assertSamePrediction(r.body.predictions[0], predictOne(inputs[i]), `image ${i}`));

      const [victim] = workers;
      process.kill(victim, 'SIGKILL');
      await srv.waitForStderr(new RegExp(`worker ${victim} exited \\(signal SIGKILL\\); starting a new one`));
      let now = new Set<number>();
      for (let t = 0; t < 60 && now.size < 2; t++) {
        now = await pids(2);
        if (now.size < 2) await sleep(500);
      }
      assert.equal(now.size, 2, 'two workers again');
      assert.ok(!now.has(victim), 'the killed one was replaced');
      assert.equal((await postImage(srv.ready.url, pngs[3])).status, 200);

      srv.child.kill('SIGTERM');
      assert.equal(await srv.exit, 0);
      for (const pid of now) assert.throws(() => process.kill(pid, 0), `worker ${pid} is gone`);
    } finally {
      srv.child.kill('SIGKILL');
    }
  });

  test('bad model directory and options: one-line errors, exit 1', async () => {
    const [missing, port] = await Promise.all([
      runCli(['serve', join(tmp, 'nope'), '--port', '0']),
      runCli(['serve', modelDir, '--port', '70000']),
    ]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr.trim(), /^error: .*nope: no such model directory/);
    assert.equal(port.code, 1);
    assert.match(port.stderr.trim(), /^error: --port 70000: expected an integer from 0/);
    const size = await runCli(['serve', modelDir, '--body-limit', '1 parsec']);
    assert.equal(size.code, 1);
    assert.match(size.stderr, /"1 parsec" is not a size/);
    const busy = await runCli(['serve', modelDir, '--port', String(server.port), '--backend', 'wasm']);
    assert.equal(busy.code, 1);
    assert.match(busy.stderr, new RegExp(`^error: http://127.0.0.1:${server.port}: the port is already in use`, 'm'));
    const empty = await runCli(['serve', modelDir, '--port', '0', '--token', '']);
    assert.equal(empty.code, 1);
    assert.equal(
      empty.stderr.trim(),
      'error: --token is empty; give the token clients must send, or leave --token out',
    );
    const emptyEnv = await runCli(['serve', modelDir, '--port', '0'], { SEMIGAN_TOKEN: '' });
    assert.equal(emptyEnv.code, 1);
    assert.match(emptyEnv.stderr.trim(), /^error: \$SEMIGAN_TOKEN is set but empty/);
    // A host that cannot be bound fails without first warning that it listens without a token.
    const host = await runCli(['serve', modelDir, '--port', '0', '--host', '203.0.113.7', '--backend', 'wasm']);
    assert.equal(host.code, 1);
    assert.doesNotMatch(host.stderr, /without a token/);
    assert.match(host.stderr, /^error: --host 203.0.113.7: not an address of this machine/m);
  });
});

// ---- helpers ----

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function concat(rows: Float32Array[]): Float32Array {
  const out = new Float32Array(rows.reduce((s, r) => s + r.length, 0));
  let off = 0;
  for (const r of rows) (out.set(r, off), (off += r.length));
  return out;
}

/** A stream of n chunks of `size` bytes (a chunked request body). */
function chunks(n: number, size: number): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream({
    pull(c) {
      if (i++ < n) c.enqueue(new Uint8Array(size).fill(32));
      else c.close();
    },
  });
}

/** A PNG with a valid IHDR of width x height (8-bit gray) and no pixel data to speak of. */
const pngHeaderOnly = (width: number, height: number) => grayPng(width, height, Buffer.alloc(1000));

interface RawReply {
  status: number;
  headers: Record<string, string>;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** Parse one HTTP/1.1 response with a Content-Length. */
function parseResponse(buf: Buffer): RawReply | null {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const [statusLine, ...lines] = buf.subarray(0, end).toString('latin1').split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  const length = Number(headers['content-length']);
  if (buf.length < end + 4 + length) return null;
  const text = buf.subarray(end + 4, end + 4 + length).toString('utf8');
  return { status: Number(statusLine.split(' ')[1]), headers, body: JSON.parse(text) };
}

/** A raw connection: send `head` (and `body`), more with send(); reply resolves with the first response. */
function rawHttpStart(port: number, head: string, body?: Uint8Array) {
  const socket = connect(port, '127.0.0.1');
  let buf = Buffer.alloc(0);
  const connected = new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  const reply = new Promise<RawReply>((resolve, reject) => {
    socket.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const r = parseResponse(buf);
      if (r) (resolve(r), socket.end());
    });
    socket.on('error', reject);
    socket.on('close', () =>
      reject(new Error(`connection closed without a full response: ${JSON.stringify(buf.toString('latin1'))}`)),
    );
  });
  socket.write(head);
  if (body) socket.write(body);
  return { connected, reply, send: (data: string | Uint8Array) => socket.write(data) };
}

async function rawHttp(port: number, head: string, body?: Uint8Array): Promise<Reply> {
  const r = await rawHttpStart(port, head, body).reply;
  return { status: r.status, headers: new Headers(r.headers), body: r.body };
}

interface CliServer {
  child: ChildProcess;
  ready: { url: string; host: string; port: number; workers: number; pid: number };
  exit: Promise<number | null>;
  stderr: () => string;
  waitForStderr: (re: RegExp) => Promise<void>;
}

/** `semigan serve MODEL_DIR ...args` as a child process, once it has printed its ready line. */
function startCli(args: string[], env: Record<string, string> = {}): Promise<CliServer> {
  const child = spawn(process.execPath, [CLI, 'serve', modelDir, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let stderr = '';
  const waiters: { re: RegExp; resolve: () => void }[] = [];
  child.stderr!.on('data', (b) => {
    stderr += b;
    for (const w of waiters.splice(0)) w.re.test(stderr) ? w.resolve() : waiters.push(w);
  });
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const waitForStderr = (re: RegExp) =>
    re.test(stderr)
      ? Promise.resolve()
      : new Promise<void>((resolve, reject) => {
          waiters.push({ re, resolve });
          void exit.then(() => reject(new Error(`exited before stderr matched ${re}:\n${stderr}`)));
        });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (b) => {
      out += b;
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve({ child, ready: JSON.parse(out.slice(0, nl)), exit, stderr: () => stderr, waitForStderr });
    });
    void exit.then((code) => reject(new Error(`semigan serve exited (${code}) before listening:\n${stderr}`)));
  });
}
