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
import { basename, isAbsolute, join } from 'node:path';
import { METADATA_FILE } from '../export/metadata.js';
import { MicroBatcher, type BatcherStats } from './batcher.js';
import { predictionsFromLogits, type Prediction } from '../export/classifier.js';
import type { ClassifierEngine } from '../export/engine.js';
import { HTTP_ERRORS, HttpError, type HttpErrorCode } from './http_errors.js';
import {
  imageRow,
  jsonRows,
  MAX_IMAGE_PIXELS,
  MAX_REQUEST_PIXELS,
  modelInputs,
  parseTopK,
  type ModelInputs,
} from './request_decoding.js';
import { ClientGone, readBody } from './read_body.js';

export interface ServerOptions {
  /** Address to bind (default 127.0.0.1: this machine only). */
  host: string;
  /** Port (0: any free port; see PredictionServer.port). */
  port: number;
  /** Most rows per model call. */
  maxBatch: number;
  /** Most rows (or images) in one request. */
  maxRows: number;
  /** Largest image (width x height, from its header), and most decoded pixels per request. */
  maxImagePixels: number;
  maxRequestPixels: number;
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
  maxRows: 1024,
  maxImagePixels: MAX_IMAGE_PIXELS,
  maxRequestPixels: MAX_REQUEST_PIXELS,
  maxWaitMs: 2,
  bodyLimit: 1024 * 1024,
  timeoutMs: 30_000,
  token: null,
  topK: 3,
};

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

const sha256 = (s: string) => createHash('sha256').update(s).digest();

const HEADERS_JSON = 'application/json; charset=utf-8';

export class PredictionServer {
  readonly server: Server;
  private readonly batcher: MicroBatcher;
  private readonly routes: Record<string, Route>;
  private readonly tokenHash: Buffer | null;
  private readonly metadataJson: Buffer;
  private readonly inputs: ModelInputs;
  private requests = 0;
  private inFlight = 0;
  private closing = false;
  private drainStarted = 0;
  /**
   * Milliseconds of the drain during which the event loop was free to read sockets: a stall (a
   * batch being scored) counts for at most POLL_MS * 2, so bytes that arrived during it are read
   * before a connection can look idle.
   */
  private responsiveMs = 0;
  private lastConnectionAt = 0;
  private readonly sockets = new Map<Socket, { active: number; idleSince: number; openedWhileClosing: boolean }>();
  private closed: Promise<void> | null = null;
  private readonly expectsContinue = new WeakSet<IncomingMessage>();
  /** One per request being decoded: aborted when its client goes away, or all at a forced shutdown. */
  private readonly work = new Set<AbortController>();

  private constructor(
    readonly classifier: ClassifierEngine,
    readonly opts: ServerOptions,
  ) {
    const k = classifier.classes.length;
    this.batcher = new MicroBatcher((x, n) => classifier.predictLogits(x, n), {
      dim: classifier.dim,
      outDim: k,
      maxBatch: opts.maxBatch,
      maxWaitMs: opts.maxWaitMs,
      asyncRun: classifier.engine === 'onnx',
    });
    this.tokenHash = opts.token ? sha256(opts.token) : null;
    this.metadataJson = Buffer.from(JSON.stringify(publicMetadata(readFileSync(join(classifier.dir, METADATA_FILE)))));
    this.inputs = modelInputs(classifier, opts);
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
      requireHostHeader: false, // checked in handle(), to answer with our JSON error rather than an empty 400
    });
    this.server.on('connection', (socket: Socket) => this.track(socket));
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
  static async start(classifier: ClassifierEngine, options: Partial<ServerOptions> = {}): Promise<PredictionServer> {
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

  /** Stop every request's decoding (a forced shutdown: its answers will not be sent). */
  abortInFlight(): void {
    for (const w of this.work) w.abort();
  }

  stats(): ServerStats {
    return { requests: this.requests, inFlight: this.inFlight, ...this.batcher.stats() };
  }

  /**
   * Graceful shutdown, without resetting a connection:
   * - every request already received is answered, with `Connection: close`;
   * - a connection opened from now on gets one 503 SEMIGAN_ERR_SHUTTING_DOWN (Retry-After: 1), then
   *   is closed: the listening socket stays open meanwhile, because closing it resets the
   *   connections the kernel has accepted but Node has not yet seen;
   * - once nothing is in flight, no connection has arrived and every connection has been idle for
   *   IDLE_GRACE_MS of time the event loop was free to read (a request may be on its way on a
   *   keep-alive connection; under --workers the primary may still hold connections for this
   *   worker; a batch scored meanwhile stalls the reads), or after MAX_DRAIN_MS, the listener
   *   and the idle connections are closed and the promise resolves.
   */
  shutdown(): Promise<void> {
    if (this.closed) return this.closed;
    this.closing = true;
    this.drainStarted = Date.now();
    let lastPoll = this.drainStarted;
    this.closed = new Promise((resolve) => {
      const poll = setInterval(() => {
        const now = Date.now();
        this.responsiveMs += Math.min(now - lastPoll, POLL_MS * 2);
        lastPoll = now;
        const t = this.responsiveMs;
        const quiet =
          this.inFlight === 0 &&
          t - this.lastConnectionAt >= IDLE_GRACE_MS &&
          [...this.sockets.values()].every((c) => c.active === 0 && t - c.idleSince >= IDLE_GRACE_MS);
        if (!quiet && now - this.drainStarted < MAX_DRAIN_MS) return;
        clearInterval(poll);
        this.server.close(() => resolve());
        this.server.closeIdleConnections();
      }, POLL_MS);
    });
    return this.closed;
  }

  /** Per connection: requests not yet answered, and since when it has had none. */
  private track(socket: Socket): void {
    this.lastConnectionAt = this.responsiveMs;
    const state = { active: 0, idleSince: this.lastConnectionAt, openedWhileClosing: this.closing };
    this.sockets.set(socket, state);
    socket.once('close', () => this.sockets.delete(socket));
  }

  // ---- requests ----

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.requests++;
    this.inFlight++;
    const conn = this.sockets.get(req.socket);
    if (conn) conn.active++;
    res.once('close', () => {
      this.inFlight--;
      if (conn) {
        conn.active--;
        conn.idleSince = this.responsiveMs;
      }
    });
    try {
      if (conn?.openedWhileClosing)
        throw new HttpError('SEMIGAN_ERR_SHUTTING_DOWN', 'the server is shutting down; retry on another instance', {
          'retry-after': '1',
        });
      if (req.headers.host === undefined && req.httpVersionMinor >= 1 && req.httpVersionMajor === 1)
        throw new HttpError('SEMIGAN_ERR_BAD_HTTP', 'an HTTP/1.1 request needs a Host header (RFC 9112, 3.2)');
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      const path = q < 0 ? url : url.slice(0, q);
      const route = Object.hasOwn(this.routes, path) ? this.routes[path] : undefined;
      // With a token, only /healthz answers without it: an unknown path too asks for it first,
      // so which paths exist is not told to whoever has no token.
      if (this.tokenHash && route?.auth !== false) this.authorize(req);
      if (!route)
        throw new HttpError(
          'SEMIGAN_ERR_NOT_FOUND',
          `no such path: ${path}; the server answers POST /v1/predict, GET /v1/metadata and GET /healthz`,
        );
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
    const topK = parseTopK(query, this.inputs, this.opts.topK);
    const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    const isImage = (IMAGE_TYPES as readonly string[]).includes(type);
    if (!isImage && type !== JSON_TYPE) {
      throw new HttpError(
        'SEMIGAN_ERR_UNSUPPORTED_MEDIA_TYPE',
        `${type ? `Content-Type ${type}` : 'no Content-Type'} is not accepted; send an image (${IMAGE_TYPES.join(', ')}) or ${JSON_TYPE} ({"inputs": [[...]]} or {"images": ["<base64>"]})`,
      );
    }
    const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
    if (encoding !== 'identity')
      throw new HttpError(
        'SEMIGAN_ERR_UNSUPPORTED_MEDIA_TYPE',
        `Content-Encoding ${encoding} is not accepted; send the body uncompressed (no Content-Encoding)`,
      );
    const tabular = this.classifier.metadata.preprocessing;
    if (isImage && tabular.type === 'tabular') {
      throw new HttpError(
        'SEMIGAN_ERR_UNSUPPORTED_MEDIA_TYPE',
        `this is a tabular model: send ${JSON_TYPE} {"inputs": [[${tabular.features.length} feature values], ...]} (columns in the order of /v1/metadata's preprocessing.features), not an image`,
      );
    }
    const body = await readBody(req, res, { ...this.opts, expectsContinue: this.expectsContinue.has(req) });
    if (body.length === 0)
      throw new HttpError(
        'SEMIGAN_ERR_EMPTY_INPUT',
        `the body is empty; expected ${isImage ? `the bytes of an image (${type})` : '{"inputs": [[...]]} or {"images": ["<base64>"]}'}`,
      );
    // The decoding stops when the client goes away before its answer (or at a forced shutdown).
    const work = new AbortController();
    const gone = () => !res.writableFinished && work.abort();
    res.once('close', gone);
    this.work.add(work);
    let decoded: { x: Float32Array; n: number };
    try {
      decoded = isImage
        ? { x: await imageRow(body, 'the body', this.inputs), n: 1 }
        : await jsonRows(body, this.inputs, work.signal);
    } finally {
      this.work.delete(work);
      res.off('close', gone);
    }
    const { x, n } = decoded;
    let logits: Float32Array;
    try {
      logits = await this.batcher.submit(x, n);
    } catch (err) {
      throw new HttpError('SEMIGAN_ERR_INTERNAL', `the model call failed: ${(err as Error).message}`);
    }
    const predictions: Prediction[] = predictionsFromLogits(
      logits,
      this.classifier.classes,
      topK,
      this.classifier.metadata.postprocessing?.temperature ?? 1,
    );
    this.send(res, 200, { predictions });
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
        lingeringClose(req.socket);
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

/** How long a closing connection keeps reading (and dropping) what the client still sends. */
const LINGER_MS = 2000;
/** A keep-alive connection idle this long during shutdown is closed (no request is on its way). */
const IDLE_GRACE_MS = 100;
/** How often the drain checks whether every connection is quiet. */
const POLL_MS = 10;
/** Longest the drain after SIGTERM waits for connections to go quiet. */
const MAX_DRAIN_MS = 5000;

/**
 * Close after the response the way nginx's lingering close does: send FIN, but keep reading and
 * dropping the client's data for up to LINGER_MS. Node would destroy the socket right after the
 * response; with unread data in the kernel's buffer that sends a reset, and a client still
 * sending its body sees EPIPE instead of our answer.
 */
function lingeringClose(socket: Socket): void {
  socket.destroySoon = () => {
    socket.end();
    socket.resume();
    const timer = setTimeout(() => socket.destroy(), LINGER_MS);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
    socket.once('end', () => socket.destroy());
  };
}

/** metadata.json as /v1/metadata serves it: absolute paths (of the run, the data) cut to their last part. */
export function publicMetadata(raw: Buffer): unknown {
  return JSON.parse(raw.toString('utf8'), (_key, v) =>
    typeof v === 'string' && (isAbsolute(v) || /^[A-Za-z]:[\\/]/.test(v)) ? basename(v) : v,
  );
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
};
