/**
 * The HTTP prediction server behind `semigan serve` (docs/serving.md): node:http, one exported
 * model, micro-batched model calls.
 *
 *   POST /v1/predict   an image body (image/png, image/jpeg, image/webp) or JSON
 *                      {"inputs": [[...]]} / {"images": ["<base64>"]} -> {"predictions": [...]}
 *   GET  /v1/metadata  the model's metadata.json
 *   GET  /healthz      {"status": "ok", ...}; 503 {"status": "shutting-down"} once shutdown began
 *
 * Every error is `{"error": {"code", "message"}}` with the status of src/serve/http_errors.ts.
 * Inputs of concurrent requests go through one MicroBatcher, so they share model calls.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import sharp from 'sharp';
import { SemiganError } from '../errors.js';
import { METADATA_FILE, type ImagePreprocessing } from '../export/metadata.js';
import { MicroBatcher, type BatcherStats } from './batcher.js';
import { predictionsFromLogits, type Classifier, type Prediction } from '../export/classifier.js';
import { standardize } from '../data/standardize.js';
import { HTTP_ERRORS, HttpError, type HttpErrorCode } from './http_errors.js';
import { decodePngFast, imageToInput, scalePixels } from '../export/preprocess.js';

export interface ServerOptions {
  /** Address to bind (default 127.0.0.1: this machine only). */
  host: string;
  /** Port (0: any free port; see PredictionServer.port). */
  port: number;
  /** Most rows per model call. */
  maxBatch: number;
  /** Longest a queued row waits for more rows before its model call runs. */
  maxWaitMs: number;
  /** Largest accepted request body, in bytes. */
  bodyLimit: number;
  /** Time a client has to send a whole request (headers and body), in ms; 0 = no limit. */
  timeoutMs: number;
  /** Bearer token required on every route but /healthz; null = no authentication. */
  token: string | null;
  /** Classes listed in each prediction's `top` unless the request says `?top_k=N`. */
  topK: number;
}

export const DEFAULT_SERVER_OPTIONS: ServerOptions = {
  host: '127.0.0.1',
  port: 8080,
  maxBatch: 64,
  maxWaitMs: 2,
  bodyLimit: 1024 * 1024,
  timeoutMs: 30_000,
  token: null,
  topK: 3,
};

/** Images larger than this (width x height) are refused before they are decoded. */
export const MAX_IMAGE_PIXELS = 25_000_000;

/** Media types of POST /v1/predict bodies. */
export const IMAGE_TYPES = ['image/png', 'image/jpeg', 'image/webp'] as const;
const JSON_TYPE = 'application/json';

export interface ServerStats extends BatcherStats {
  /** HTTP requests received, and those not yet answered. */
  requests: number;
  inFlight: number;
}

type Handler = (req: IncomingMessage, res: ServerResponse, query: string) => Promise<void> | void;
interface Route {
  methods: string[];
  auth: boolean;
  handler: Handler;
}

/** A client that went away: nothing to answer. */
class ClientGone extends Error {}

const sha256 = (s: string) => createHash('sha256').update(s).digest();

const HEADERS_JSON = 'application/json; charset=utf-8';

/** PNG, JPEG or WebP, by their first bytes (the Content-Type is not trusted for this). */
function sniffImage(buf: Buffer): 'png' | 'jpeg' | 'webp' | null {
  if (buf.length >= 8 && buf[0] === 0x89 && buf.toString('latin1', 1, 4) === 'PNG') return 'png';
  if (buf.length >= 3 && buf[0] === 0xff && buf[1] === 0xd8 && buf[2] === 0xff) return 'jpeg';
  if (buf.length >= 12 && buf.toString('latin1', 0, 4) === 'RIFF' && buf.toString('latin1', 8, 12) === 'WEBP')
    return 'webp';
  return null;
}

const describe = (v: unknown) =>
  v === null
    ? 'null'
    : Array.isArray(v)
      ? 'an array'
      : typeof v === 'string'
        ? JSON.stringify(v.length > 20 ? v.slice(0, 20) + '...' : v)
        : typeof v === 'object'
          ? 'an object'
          : String(v);

export class PredictionServer {
  readonly server: Server;
  private readonly batcher: MicroBatcher;
  private readonly routes: Record<string, Route>;
  private readonly tokenHash: Buffer | null;
  private readonly metadataJson: Buffer;
  private readonly shape: string;
  private readonly image: ImagePreprocessing | null;
  private requests = 0;
  private inFlight = 0;
  private closing = false;
  private closed: Promise<void> | null = null;
  private readonly expectsContinue = new WeakSet<IncomingMessage>();

  private constructor(
    readonly classifier: Classifier,
    readonly opts: ServerOptions,
  ) {
    const k = classifier.classes.length;
    this.batcher = new MicroBatcher((x, n) => classifier.predictLogits(x, n), {
      dim: classifier.dim,
      outDim: k,
      maxBatch: opts.maxBatch,
      maxWaitMs: opts.maxWaitMs,
    });
    this.tokenHash = opts.token ? sha256(opts.token) : null;
    this.metadataJson = readFileSync(join(classifier.dir, METADATA_FILE));
    this.shape = classifier.metadata.inputShape.join('x');
    const p = classifier.metadata.preprocessing;
    this.image = p.type === 'image' ? p : null;
    this.routes = {
      '/v1/predict': { methods: ['POST'], auth: true, handler: (req, res, q) => this.predict(req, res, q) },
      '/v1/metadata': {
        methods: ['GET', 'HEAD'],
        auth: true,
        handler: (_req, res) => this.send(res, 200, this.metadataJson),
      },
      '/healthz': { methods: ['GET', 'HEAD'], auth: false, handler: (_req, res) => this.healthz(res) },
    };
    const t = opts.timeoutMs;
    this.server = createServer({
      // Node's own limits back ours up (they answer with the clientError handler below).
      requestTimeout: t > 0 ? t + 1000 : 0,
      headersTimeout: t > 0 ? Math.min(t, 60_000) : 60_000,
      connectionsCheckingInterval: t > 0 ? Math.min(30_000, Math.max(100, Math.floor(t / 4))) : 30_000,
    });
    this.server.on('request', (req, res) => void this.handle(req, res));
    // `Expect: 100-continue` (curl, for bodies over 1 KiB): the client waits for "100 Continue"
    // before sending the body; it is sent once the request passed the checks that need no body.
    this.server.on('checkContinue', (req, res) => {
      this.expectsContinue.add(req);
      void this.handle(req, res);
    });
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => this.clientError(err, socket));
  }

  /** Listen on opts.host:opts.port; resolves once listening. */
  static async start(classifier: Classifier, options: Partial<ServerOptions> = {}): Promise<PredictionServer> {
    const opts = { ...DEFAULT_SERVER_OPTIONS, ...options };
    const s = new PredictionServer(classifier, opts);
    await new Promise<void>((resolve, reject) => {
      s.server.once('error', reject);
      s.server.listen(opts.port, opts.host, () => {
        s.server.off('error', reject);
        resolve();
      });
    });
    return s;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get url(): string {
    const { address, family, port } = this.server.address() as AddressInfo;
    return `http://${family === 'IPv6' ? `[${address}]` : address}:${port}`;
  }

  get shuttingDown(): boolean {
    return this.closing;
  }

  stats(): ServerStats {
    return { requests: this.requests, inFlight: this.inFlight, ...this.batcher.stats() };
  }

  /**
   * Graceful shutdown: stop accepting connections, close idle keep-alive connections, answer the
   * requests already received (with `Connection: close`; /healthz says 503), then resolve.
   */
  shutdown(): Promise<void> {
    if (this.closed) return this.closed;
    this.closing = true;
    this.closed = new Promise((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    return this.closed;
  }

  // ---- requests ----

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.requests++;
    this.inFlight++;
    res.once('close', () => this.inFlight--);
    try {
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      const path = q < 0 ? url : url.slice(0, q);
      const route = this.routes[path];
      if (!route)
        throw new HttpError(
          'SEMIGAN_ERR_NOT_FOUND',
          `no such path: ${path}; the server answers POST /v1/predict, GET /v1/metadata and GET /healthz`,
        );
      if (route.auth && this.tokenHash) this.authorize(req);
      if (!route.methods.includes(req.method ?? '')) {
        throw new HttpError(
          'SEMIGAN_ERR_METHOD_NOT_ALLOWED',
          `${req.method} ${path} is not allowed; use ${route.methods.join(' or ')}`,
          { allow: route.methods.join(', ') },
        );
      }
      await route.handler(req, res, q < 0 ? '' : url.slice(q + 1));
    } catch (err) {
      this.fail(req, res, err);
    }
  }

  private authorize(req: IncomingMessage): void {
    const header = req.headers.authorization;
    const m = header === undefined ? null : /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
    if (!m) {
      throw new HttpError(
        'SEMIGAN_ERR_UNAUTHORIZED',
        'this server requires a bearer token: send the header `Authorization: Bearer TOKEN`',
        {
          'www-authenticate': 'Bearer realm="semigan"',
        },
      );
    }
    if (!timingSafeEqual(sha256(m[1]), this.tokenHash!)) {
      throw new HttpError('SEMIGAN_ERR_UNAUTHORIZED', 'the bearer token is not valid for this server', {
        'www-authenticate': 'Bearer realm="semigan", error="invalid_token"',
      });
    }
  }

  private healthz(res: ServerResponse): void {
    const body = { status: this.closing ? 'shutting-down' : 'ok', pid: process.pid, stats: this.stats() };
    this.send(res, this.closing ? 503 : 200, body);
  }

  private async predict(req: IncomingMessage, res: ServerResponse, query: string): Promise<void> {
    const topK = this.topK(query);
    const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    const isImage = (IMAGE_TYPES as readonly string[]).includes(type);
    if (!isImage && type !== JSON_TYPE) {
      throw new HttpError(
        'SEMIGAN_ERR_UNSUPPORTED_MEDIA_TYPE',
        `${type ? `Content-Type ${type}` : 'no Content-Type'} is not accepted; send an image (${IMAGE_TYPES.join(', ')}) or ${JSON_TYPE} ({"inputs": [[...]]} or {"images": ["<base64>"]})`,
      );
    }
    const tabular = this.classifier.metadata.preprocessing;
    if (isImage && tabular.type === 'tabular') {
      throw new HttpError(
        'SEMIGAN_ERR_UNSUPPORTED_MEDIA_TYPE',
        `this is a tabular model: send ${JSON_TYPE} {"inputs": [[${tabular.features.length} feature values], ...]} (columns in the order of /v1/metadata's preprocessing.features), not an image`,
      );
    }
    const body = await this.readBody(req, res);
    if (body.length === 0)
      throw new HttpError(
        'SEMIGAN_ERR_EMPTY_INPUT',
        `the body is empty; expected ${isImage ? `the bytes of an image (${type})` : '{"inputs": [[...]]} or {"images": ["<base64>"]}'}`,
      );
    const { x, n } = isImage ? { x: await this.imageRow(body, 'the body'), n: 1 } : await this.jsonRows(body);
    let logits: Float32Array;
    try {
      logits = await this.batcher.submit(x, n);
    } catch (err) {
      throw new HttpError('SEMIGAN_ERR_INTERNAL', `the model call failed: ${(err as Error).message}`);
    }
    const predictions: Prediction[] = predictionsFromLogits(logits, this.classifier.classes, topK);
    this.send(res, 200, { predictions });
  }

  private topK(query: string): number {
    if (!query) return this.opts.topK;
    const v = new URLSearchParams(query).get('top_k');
    if (v === null) return this.opts.topK;
    const k = this.classifier.classes.length;
    if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > k) {
      throw new HttpError(
        'SEMIGAN_ERR_BAD_PARAMETER',
        `top_k=${v}: expected an integer from 1 to ${k} (the number of classes)`,
      );
    }
    return Number(v);
  }

  /** The whole body, or HttpError 413 (over the limit) / 408 (not complete within timeoutMs). */
  private readBody(req: IncomingMessage, res: ServerResponse): Promise<Buffer> {
    const limit = this.opts.bodyLimit;
    const tooLarge = (size: string) =>
      new HttpError(
        'SEMIGAN_ERR_BODY_TOO_LARGE',
        `the body is ${size}; this server accepts at most ${limit} bytes (--body-limit)`,
      );
    const declared = Number(req.headers['content-length']);
    if (req.headers['content-length'] !== undefined && declared > limit)
      return Promise.reject(tooLarge(`${declared} bytes`));
    if (this.expectsContinue.has(req)) res.writeContinue();
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let timer: NodeJS.Timeout | null = null;
      const done = (err: Error | null, body?: Buffer) => {
        if (timer) clearTimeout(timer);
        req.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
        if (err) reject(err);
        else resolve(body!);
      };
      const onData = (c: Buffer) => {
        size += c.length;
        if (size > limit) done(tooLarge(`more than ${limit} bytes`));
        else chunks.push(c);
      };
      const onEnd = () => done(null, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size));
      const onError = () => done(new ClientGone());
      const onClose = () => done(new ClientGone());
      req.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose);
      if (this.opts.timeoutMs > 0) {
        timer = setTimeout(
          () =>
            done(
              new HttpError(
                'SEMIGAN_ERR_TIMEOUT',
                `the request did not arrive within ${this.opts.timeoutMs} ms (received ${size} bytes of the body); send the whole request within --timeout-ms`,
              ),
            ),
          this.opts.timeoutMs,
        );
      }
    });
  }

  /** One image's bytes -> the model's input row. */
  private async imageRow(buf: Buffer, name: string): Promise<Float32Array> {
    const p = this.image;
    if (!p)
      throw new HttpError(
        'SEMIGAN_ERR_UNSUPPORTED_MEDIA_TYPE',
        `this model takes ${this.classifier.metadata.preprocessing.type} input, not images`,
      );
    const fast = decodePngFast(buf, p.width, p.height, p.channels);
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
      info = await sharp(buf).metadata();
    } catch (e) {
      throw new HttpError(
        'SEMIGAN_ERR_UNDECODABLE_IMAGE',
        `${name}: cannot decode as a ${format.toUpperCase()} image (${(e as Error).message.replace(/\s+/g, ' ').trim()})`,
      );
    }
    if ((info.width ?? 0) * (info.height ?? 0) > MAX_IMAGE_PIXELS) {
      throw new HttpError(
        'SEMIGAN_ERR_IMAGE_TOO_LARGE',
        `${name} is ${info.width}x${info.height} pixels; the server decodes images of at most ${MAX_IMAGE_PIXELS} pixels (the model takes ${this.shape})`,
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
  private async jsonRows(buf: Buffer): Promise<{ x: Float32Array; n: number }> {
    const dim = this.classifier.dim;
    const p = this.classifier.metadata.preprocessing;
    const tabular = p.type === 'tabular';
    const expected = tabular
      ? `{"inputs": [[${dim} feature values], ...]} (raw values of ${p.features.slice(0, 3).join(', ')}${dim > 3 ? ', ...' : ''}, in the order of /v1/metadata's preprocessing.features)`
      : `{"inputs": [[${dim} numbers in [0, 1]], ...]} (${this.shape} pixels / 255, row-major) or {"images": ["<base64 PNG, JPEG or WebP>", ...]}`;
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
            `inputs[${i}] has ${row.length} values; expected ${dim} (${tabular ? 'one per feature column' : `the model takes ${this.shape} pixels, flattened row-major`})`,
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
          return this.imageRow(Buffer.from(b64, 'base64'), name);
        }),
      );
      rows.forEach((r, i) => x.set(r, i * dim));
    }
    return { x: tabular ? standardize(x, dim, p) : x, n };
  }

  // ---- responses ----

  private send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    if (res.headersSent || res.destroyed) return;
    const text = Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
    const h: Record<string, string | number> = {
      'content-type': HEADERS_JSON,
      'content-length': text.length,
      ...headers,
    };
    if (this.closing) h.connection = 'close';
    res.writeHead(status, h);
    res.end(text);
  }

  private fail(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    if (err instanceof ClientGone) return;
    const e =
      err instanceof HttpError
        ? err
        : new HttpError('SEMIGAN_ERR_INTERNAL', `unexpected server error: ${(err as Error)?.message ?? String(err)}`);
    if (!(err instanceof HttpError)) process.stderr.write(`semigan serve: ${(err as Error)?.stack ?? String(err)}\n`);
    const headers = { ...e.headers };
    const length = req.headers['content-length'];
    const hasBody = req.headers['transfer-encoding'] !== undefined || Number(length ?? 0) > 0;
    if (hasBody && !req.complete) {
      // An unread body. A small one of known length is read and dropped by Node (the connection
      // stays open); anything else (over the limit, chunked, timed out, or held back by
      // `Expect: 100-continue`) closes the connection after the answer, read and dropped for a
      // while first so that a client still sending sees the answer.
      const small =
        length !== undefined &&
        Number(length) <= this.opts.bodyLimit &&
        !this.expectsContinue.has(req) &&
        e.code !== 'SEMIGAN_ERR_TIMEOUT' &&
        e.code !== 'SEMIGAN_ERR_BODY_TOO_LARGE';
      if (!small) {
        headers.connection = 'close';
        req.removeAllListeners('data');
        req.resume();
        const linger = setTimeout(() => req.socket.destroy(), 2000);
        linger.unref();
        req.once('end', () => clearTimeout(linger));
      }
    }
    this.send(res, e.status, e.toJSON(), headers);
  }

  /** Malformed HTTP, oversized headers, and Node's own request timeouts: a JSON answer, then close. */
  private clientError(err: NodeJS.ErrnoException, socket: Socket): void {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const [code, message]: [HttpErrorCode, string] =
      err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? ['SEMIGAN_ERR_TIMEOUT', `the request headers did not arrive in time`]
        : err.code === 'HPE_HEADER_OVERFLOW'
          ? ['SEMIGAN_ERR_HEADERS_TOO_LARGE', 'the request headers are too large']
          : ['SEMIGAN_ERR_BAD_HTTP', `malformed HTTP request (${err.code ?? err.message})`];
    const status = HTTP_ERRORS[code].status;
    const body = JSON.stringify({ error: { code, message } });
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\ncontent-type: ${HEADERS_JSON}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  }
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
};
