/**
 * The server against hostile and unlucky clients, on a tiny real model: a PNG decompression bomb,
 * an image too large to decode, a JSON batch of millions of rows, a request without Host, an
 * oversized body sent without `Expect: 100-continue`, /v1/metadata's paths, and SIGTERM under a
 * closed-loop load (one process and --workers 2, keep-alive or not) without a connection reset.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '../../src/backend.js';
import { Classifier } from '../../src/export/classifier.js';
import { PredictionServer } from '../../src/serve/server.js';
import { CLI } from '../lib/cli.js';
import { grayPng, trainAndExportTiny } from '../lib/tiny_run.js';
import sharp from 'sharp';

let tmp: string;
let modelDir: string;
let classifier: Classifier;
let server: PredictionServer;

/** A proper 28x28 PNG: each row a filter byte (0) and 28 pixels. */
const digit = grayPng(28, 28, Buffer.alloc(28 * 29, 0));

const post = (url: string, body: Uint8Array | string, type: string) =>
  fetch(url + '/v1/predict', {
    method: 'POST',
    headers: { 'content-type': type },
    body: body as unknown as BodyInit,
  }).then(async (r) => ({
    status: r.status,
    body: (await r.json()) as any, // eslint-disable-line @typescript-eslint/no-explicit-any
  }));

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'semigan-hostile-'));
  const run = join(tmp, 'run');
  modelDir = join(tmp, 'model');
  await trainAndExportTiny(run, modelDir);
  await initBackend('wasm', { threads: 1 });
  classifier = await Classifier.load(modelDir);
  server = await PredictionServer.start(classifier, { port: 0, bodyLimit: 64 * 1024 * 1024 });
});
after(async () => {
  await server?.shutdown();
  classifier?.dispose();
  rmSync(tmp, { recursive: true, force: true });
});

describe('hostile requests', () => {
  test('a PNG bomb (a 28x28 header, 200 MB of pixel data) is refused fast while /healthz answers', async () => {
    const bomb = grayPng(28, 28, Buffer.alloc(200_000_000));
    assert.ok(bomb.length < 1_000_000, `${bomb.length} bytes`);
    const rssBefore = process.memoryUsage().rss;
    const t0 = performance.now();
    const [r, h] = await Promise.all([
      post(server.url, bomb, 'image/png'),
      fetch(server.url + '/healthz').then(() => performance.now() - t0),
    ]);
    const ms = performance.now() - t0;
    assert.equal(r.status, 422, JSON.stringify(r.body));
    assert.equal(r.body.error.code, 'SEMIGAN_ERR_UNDECODABLE_IMAGE');
    assert.match(r.body.error.message, /inflates to more than the 812 bytes a 28x28 PNG holds .*decompression bomb/);
    // Bounds far below the 15 s and 1.9 GB an unbounded inflate took (the sizes matter, not the speed).
    assert.ok(ms < 2000, `answered in ${ms} ms`);
    assert.ok(h < 2000, `/healthz waited ${h} ms`);
    assert.ok(process.memoryUsage().rss - rssBefore < 100e6, 'resident memory grew by less than 100 MB');
    const good = await post(server.url, digit, 'image/png');
    assert.equal(good.status, 200, JSON.stringify(good.body));
  });

  test('a 20000x20000 PNG is IMAGE_TOO_LARGE, not UNDECODABLE_IMAGE', async () => {
    const r = await post(server.url, grayPng(20000, 20000, Buffer.alloc(10)), 'image/png');
    assert.equal(r.status, 422);
    assert.equal(r.body.error.code, 'SEMIGAN_ERR_IMAGE_TOO_LARGE');
    assert.match(r.body.error.message, /is 20000x20000 pixels; the server decodes images of at most 25000000 pixels/);
  });

  test('a JSON batch of 3 million rows under a 64 MB body limit: 413 TOO_MANY_ROWS, nothing allocated for it', async () => {
    const body = `{"inputs":[${'0,'.repeat(3_000_000)}0]}`;
    const r = await post(server.url, body, 'application/json');
    assert.equal(r.status, 413, JSON.stringify(r.body));
    assert.equal(r.body.error.code, 'SEMIGAN_ERR_TOO_MANY_ROWS');
    assert.match(
      r.body.error.message,
      /"inputs" holds 3000001 rows; this server takes at most 1024 per request \(--max-rows\)/,
    );
  });

  test('HTTP/1.1 without a Host header: 400 with the JSON error body', async () => {
    const reply = await new Promise<string>((resolve, reject) => {
      const s = connect(server.port, '127.0.0.1', () => s.write('GET /healthz HTTP/1.1\r\n\r\n'));
      let text = '';
      s.on('data', (d) => (text += d))
        .on('end', () => resolve(text))
        .on('error', reject);
    });
    assert.match(reply, /^HTTP\/1\.1 400 /);
    assert.match(reply, /"code":"SEMIGAN_ERR_BAD_HTTP","message":"an HTTP\/1\.1 request needs a Host header/);
  });

  test('/v1/metadata has no absolute path: the run and data paths are cut to their last part', async () => {
    const m = (await (await fetch(server.url + '/v1/metadata')).json()) as any; // eslint-disable-line @typescript-eslint/no-explicit-any
    assert.equal(m.training.run, 'run');
    const strings: string[] = [];
    JSON.stringify(m, (_k, v) => (typeof v === 'string' && strings.push(v), v));
    assert.deepEqual(
      strings.filter((s) => s.startsWith('/')),
      [],
    );
  });
});

test('an oversized body sent without Expect: the client reads its 413 (lingering close), no reset', async () => {
  const s = await PredictionServer.start(classifier, { port: 0 }); // 1 MB limit
  try {
    for (let i = 0; i < 3; i++) {
      // A client that writes its whole 16 MB body before reading, as curl without Expect does.
      const body = Buffer.alloc(16 * 1024 * 1024);
      const got = await new Promise<{ text: string; error: string | null }>((resolve) => {
        const sock = connect(s.port, '127.0.0.1');
        let text = '';
        let error: string | null = null;
        sock.on('data', (d) => (text += d.toString('latin1')));
        sock.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
        sock.on('close', () => resolve({ text, error }));
        sock.write(
          `POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: ${body.length}\r\n\r\n`,
        );
        sock.end(body);
      });
      assert.match(got.text, /^HTTP\/1\.1 413 /, `attempt ${i}: ${JSON.stringify(got)}`);
      assert.match(got.text, /"code":"SEMIGAN_ERR_BODY_TOO_LARGE"/);
    }
  } finally {
    await s.shutdown();
  }
});

/**
 * `concurrency` closed loops of POST /v1/predict against `port` until each sees a 503 or a refused
 * connection; SIGTERM to `pid` after `afterMs`. Counts answers by status and connection errors by code.
 */
async function loadThroughSigterm(port: number, child: { kill: (s: NodeJS.Signals) => void }, keepAlive: boolean) {
  const agent = new Agent({ keepAlive, maxSockets: 64 });
  const statuses = new Map<number, number>();
  const errors = new Map<string, number>();
  let sent = 0;
  const one = () =>
    new Promise<number | string>((resolve) => {
      sent++;
      const req = httpRequest(
        {
          host: '127.0.0.1',
          port,
          path: '/v1/predict',
          method: 'POST',
          agent,
          headers: { 'content-type': 'image/png' },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode!));
          res.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
        },
      );
      req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      req.end(digit);
    });
  const loop = async () => {
    for (;;) {
      const r = await one();
      if (typeof r === 'number') statuses.set(r, (statuses.get(r) ?? 0) + 1);
      else errors.set(r, (errors.get(r) ?? 0) + 1);
      if (r === 503 || r === 'ECONNREFUSED' || typeof r === 'string') return;
    }
  };
  const loops = Array.from({ length: 32 }, loop);
  await new Promise((r) => setTimeout(r, 1500));
  child.kill('SIGTERM');
  await Promise.all(loops);
  agent.destroy();
  return { sent, statuses: Object.fromEntries(statuses), errors: Object.fromEntries(errors) };
}

function startServe(
  args: string[],
): Promise<{ port: number; kill: (s: NodeJS.Signals) => void; exit: Promise<number | null> }> {
  const child = spawn(process.execPath, [CLI, 'serve', modelDir, '--port', '0', '--backend', 'wasm', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (b) => (stderr += b));
  const exit = new Promise<number | null>((resolve) => child.once('exit', resolve));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (b) => {
      out += b;
      if (out.includes('\n')) resolve({ port: JSON.parse(out.split('\n')[0]).port, kill: (s) => child.kill(s), exit });
    });
    void exit.then((code) => reject(new Error(`serve exited (${code}):\n${stderr}`)));
  });
}

for (const [label, args, keepAlive] of [
  ['one process, keep-alive', ['--threads', '1'], true],
  ['one process, a connection per request', ['--threads', '1'], false],
  ['--workers 2, keep-alive', ['--workers', '2', '--threads', '1'], true],
] as const) {
  test(`SIGTERM under a 32-connection closed-loop load (${label}): every request answered, no reset`, async () => {
    const srv = await startServe([...args]);
    const r = await loadThroughSigterm(srv.port, srv, keepAlive);
    assert.equal(await srv.exit, 0);
    // Refused connections (after the listener closed) carry no request; anything else is a drop.
    const { ECONNREFUSED = 0, ...drops } = r.errors;
    assert.deepEqual(drops, {}, `connection errors: ${JSON.stringify(r)}`);
    assert.ok((r.statuses[200] ?? 0) > 32, JSON.stringify(r));
    const answered = Object.values(r.statuses).reduce((a, b) => a + b, 0);
    assert.equal(answered + ECONNREFUSED, r.sent, JSON.stringify(r));
  });
}

describe('decoding costs bounded by pixels, not bytes', () => {
  let webp: Buffer; // 5000x5000 black, lossless: ~1 KB that decodes to 25 million pixels
  const imagesBody = (n: number) => JSON.stringify({ images: new Array(n).fill(webp.toString('base64')) });
  before(async () => {
    webp = await sharp({ create: { width: 5000, height: 5000, channels: 3, background: { r: 0, g: 0, b: 0 } } })
      .webp({ lossless: true })
      .toBuffer();
  });

  test('700 tiny 5000x5000 WebPs in one JSON body: 413 TOO_MANY_PIXELS from their headers, nothing decoded', async () => {
    assert.ok(webp.length < 4096, `${webp.length} bytes`);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const r = await post(server.url, imagesBody(700), 'application/json');
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    assert.equal(r.status, 413, JSON.stringify(r.body));
    assert.equal(r.body.error.code, 'SEMIGAN_ERR_TOO_MANY_PIXELS');
    assert.match(
      r.body.error.message,
      /^the 700 images hold 17500000000 pixels; this server decodes at most 64000000 per request \(--max-request-pixels\)/,
    );
    // One decode of one such image costs ~0.2 s of CPU: 700 were minutes. Headers only: bounds
    // far below that (the work done matters, not the speed).
    assert.ok(ms < 10_000, `answered in ${ms} ms`);
    assert.ok((cpu.user + cpu.system) / 1e6 < 10, `${(cpu.user + cpu.system) / 1e6} s of CPU`);
    const two = await post(server.url, imagesBody(2), 'application/json'); // 50 million pixels: within the budget
    assert.equal(two.status, 200, JSON.stringify(two.body));
    assert.equal(two.body.predictions.length, 2);
  });

  test("a client that goes away stops its request's decoding", async () => {
    const s = await PredictionServer.start(classifier, { port: 0, bodyLimit: 8e6, maxRequestPixels: 1e9 });
    try {
      const ac = new AbortController();
      const req = fetch(s.url + '/v1/predict', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: imagesBody(40), // a billion pixels: ~3.6 s of decoding, two at a time
        signal: ac.signal,
      }).catch(() => 'aborted');
      await new Promise((r) => setTimeout(r, 400));
      ac.abort();
      assert.equal(await req, 'aborted');
      await new Promise((r) => setTimeout(r, 600)); // the two decodes under way finish (~0.2 s each)
      const cpu0 = process.cpuUsage();
      await new Promise((r) => setTimeout(r, 1000));
      const cpu = process.cpuUsage(cpu0);
      // Still decoding, the server would burn ~2 s of CPU (two decodes at a time) in that second.
      assert.ok((cpu.user + cpu.system) / 1e6 < 0.5, `${(cpu.user + cpu.system) / 1e6} s of CPU in the second after`);
      assert.equal(s.stats().inFlight, 0);
    } finally {
      await s.shutdown();
    }
  });

  test('SIGTERM during such a request: the process is gone when it says it exits', async () => {
    const child = spawn(
      process.execPath,
      [
        CLI,
        'serve',
        modelDir,
        '--port',
        '0',
        '--backend',
        'wasm',
        '--threads',
        '1',
        '--timeout-ms',
        '200',
        '--body-limit',
        '8mb',
        '--max-request-pixels',
        '10000000000',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    let saidExit = 0;
    child.stderr.on('data', (b) => {
      stderr += b;
      if (!saidExit && /exiting with 1 requests unfinished/.test(stderr)) saidExit = performance.now();
    });
    const exited = new Promise<number>((resolve) => child.once('exit', () => resolve(performance.now())));
    const port = await new Promise<number>((resolve) =>
      child.stdout.once('data', (b) => resolve(JSON.parse(String(b).split('\n')[0]).port)),
    );
    // 200 images of 25 million pixels (~0.18 s of CPU each), two at a time: ~18 s, far longer
    // than the 5.2 s shutdown deadline.
    const req = post(`http://127.0.0.1:${port}`, imagesBody(200), 'application/json').catch(() => null);
    await new Promise((r) => setTimeout(r, 500));
    child.kill('SIGTERM');
    const gone = await exited;
    await req;
    assert.ok(saidExit > 0, `the deadline was logged:\n${stderr}`);
    // The queued decodes would have kept it alive for a minute or more.
    assert.ok(gone - saidExit < 3000, `exited ${gone - saidExit} ms after saying so`);
  });
});
