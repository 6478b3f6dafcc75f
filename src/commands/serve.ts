/**
 * `semigan serve MODEL_DIR`: the HTTP prediction server (src/serve/server.ts, docs/serving.md),
 * in this process or, with --workers N > 1, in N node:cluster workers sharing the port: the
 * primary forks them, restarts one that crashes, and forwards SIGTERM/SIGINT to all of them.
 *
 * Once listening, one JSON line goes to stdout: {"url", "host", "port", "workers", "pid"}.
 * Logs go to stderr. SIGTERM or SIGINT: stop accepting connections, finish the requests already
 * received, exit 0 (exit 1 if that takes longer than the shutdown deadline).
 */
import cluster, { type Worker } from 'node:cluster';
import { isIP } from 'node:net';
import { defaultThreads, describeBackend, initBackend, type BackendChoice, type MatMulChoice } from '../backend.js';
import { configError } from '../errors.js';
import { readMetadata } from '../export/metadata.js';
import { loadEngine, resolveEngine, type EngineChoice } from '../export/engine.js';
import { loadOnnxRuntime, ONNX_INSTALL_HINT } from '../export/onnx_classifier.js';
import { DEFAULT_SERVER_OPTIONS, PredictionServer, type ServerOptions } from '../serve/server.js';

export interface ServeOptions extends ServerOptions {
  workers: number;
  /** tfjs (model.json) or onnxruntime (model.onnx); auto: onnx when it loads and the directory has model.onnx. */
  engine: EngineChoice;
  backend: BackendChoice;
  /** matMul threads per server process (null: the cores divided among the workers). */
  threads: number | null;
  matmul: MatMulChoice;
}

/** Every default of `semigan serve`: the server's own, one process, the backend's. */
export const DEFAULT_SERVE_OPTIONS: Readonly<ServeOptions> = Object.freeze({
  ...DEFAULT_SERVER_OPTIONS,
  workers: 1,
  engine: 'auto',
  backend: 'auto',
  threads: null,
  matmul: 'auto',
});

/** What the server announces on stdout once it listens. */
export interface ServeReady {
  url: string;
  host: string;
  port: number;
  workers: number;
  pid: number;
}

const log = (line: string) =>
  process.stderr.write(`semigan serve${cluster.isWorker ? ` [worker ${process.pid}]` : ''}: ${line}\n`);

/** Worker restarts in a row that die before listening before the primary gives up. */
const MAX_STARTUP_FAILURES = 3;

/** How long a graceful shutdown may take before the process exits anyway (code 1). */
export const shutdownDeadlineMs = (timeoutMs: number) => (timeoutMs > 0 ? timeoutMs : 30_000) + 5_000;

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
};

/** "1mb", "512kb", "1048576", "1.5MiB" -> bytes (k = 1024). */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? SIZE_UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined)
    throw configError(
      `${JSON.stringify(text)} is not a size; expected bytes or a number with kb, mb or gb (1kb = 1024 bytes), e.g. 1mb`,
    );
  const bytes = Math.floor(Number(m[1]) * unit);
  if (bytes < 1) throw configError(`size ${JSON.stringify(text)} must be at least 1 byte`);
  return bytes;
}

const formatUrl = (host: string, port: number) => `http://${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
const isLoopback = (host: string) => host === 'localhost' || host === '::1' || host.startsWith('127.');

function checkOptions(modelDir: string, o: ServeOptions): void {
  const meta = readMetadata(modelDir); // a missing or malformed model directory: one line, before any fork
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535)
    throw configError(`--port ${o.port}: expected an integer from 0 (any free port) to 65535`);
  if (!Number.isInteger(o.workers) || o.workers < 1 || o.workers > 64)
    throw configError(`--workers ${o.workers}: expected an integer from 1 to 64`);
  if (!Number.isInteger(o.maxBatch) || o.maxBatch < 1 || o.maxBatch > 4096)
    throw configError(`--max-batch ${o.maxBatch}: expected an integer from 1 to 4096`);
  if (!Number.isInteger(o.maxRows) || o.maxRows < 1 || o.maxRows > 1_000_000)
    throw configError(`--max-rows ${o.maxRows}: expected an integer from 1 to 1000000`);
  for (const [flag, v] of [
    ['--max-image-pixels', o.maxImagePixels],
    ['--max-request-pixels', o.maxRequestPixels],
  ] as const)
    if (!Number.isInteger(v) || v < 1 || v > 1e11)
      throw configError(`${flag} ${v}: expected an integer from 1 to 100000000000 (width x height)`);
  if (!(o.maxWaitMs >= 0 && o.maxWaitMs <= 10_000))
    throw configError(`--max-wait-ms ${o.maxWaitMs}: expected a number of milliseconds from 0 to 10000`);
  if (!Number.isInteger(o.timeoutMs) || o.timeoutMs < 0)
    throw configError(`--timeout-ms ${o.timeoutMs}: expected a non-negative integer (0 = no limit)`);
  if (!Number.isInteger(o.topK) || o.topK < 1 || o.topK > meta.classes.length)
    throw configError(`--top-k ${o.topK}: expected an integer from 1 to ${meta.classes.length} (the model's classes)`);
  if (!o.host) throw configError('--host: expected an address to bind, e.g. 127.0.0.1');
  const ort = o.engine === 'onnx' ? loadOnnxRuntime() : null;
  if (ort && !ort.ort) throw configError(`--engine onnx: ${ort.reason}; ${ONNX_INSTALL_HINT}`);
  resolveEngine(modelDir, o.engine); // an ONNX-only directory without onnxruntime: one line, before any fork
}

/**
 * Run the server until SIGTERM/SIGINT; resolves with the exit code once it has shut down.
 * `token`: null here means "none given": $SEMIGAN_TOKEN is read then.
 */
export async function serveCommand(modelDir: string, options: Partial<ServeOptions> = {}): Promise<number> {
  const o: ServeOptions = { ...DEFAULT_SERVE_OPTIONS, ...options };
  // An empty token would turn authentication off without a word: refuse it.
  if (o.token === '') throw configError('--token is empty; give the token clients must send, or leave --token out');
  if (!o.token && process.env.SEMIGAN_TOKEN === '')
    throw configError('$SEMIGAN_TOKEN is set but empty; set it to the token clients must send, or unset it');
  o.token = o.token || process.env.SEMIGAN_TOKEN || null;
  if (cluster.isWorker) return runServer(modelDir, o);
  checkOptions(modelDir, o);
  return o.workers > 1 ? runPrimary(modelDir, o) : runServer(modelDir, o);
}

/** Once listening (not before: a --host that cannot be bound fails without it). */
function warnIfOpen(o: ServeOptions): void {
  if (!o.token && !isLoopback(o.host))
    log(
      `warning: listening on ${o.host} without a token; anyone who can reach it can use it (set SEMIGAN_TOKEN or --token)`,
    );
}

const settingsText = (o: ServeOptions) =>
  `max batch ${o.maxBatch}, max rows ${o.maxRows}, max pixels ${o.maxImagePixels} per image and ${o.maxRequestPixels} per request, max wait ${o.maxWaitMs} ms, body limit ${o.bodyLimit} bytes, timeout ${o.timeoutMs ? `${o.timeoutMs} ms` : 'none'}, token ${o.token ? 'required' : 'none'}`;

/** One server process (alone, or a cluster worker). */
async function runServer(modelDir: string, o: ServeOptions): Promise<number> {
  const threads = o.threads ?? Math.max(1, Math.floor(defaultThreads() / o.workers));
  const { engine, reason } = resolveEngine(modelDir, o.engine);
  // onnxruntime runs the model itself; tfjs needs its backend.
  const backend = engine === 'tfjs' ? await initBackend(o.backend, { threads, matmul: o.matmul }) : null;
  const classifier = await loadEngine(modelDir, engine, { threads });
  const engineText =
    engine === 'onnx'
      ? `engine onnx (${reason}; ${threads} intra-op thread${threads === 1 ? '' : 's'})`
      : `engine tfjs (${reason}); ${describeBackend(backend!)}`;
  let server: PredictionServer;
  try {
    server = await PredictionServer.start(classifier, o);
  } catch (e) {
    classifier.dispose();
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'EADDRINUSE')
      throw configError(
        `${formatUrl(o.host, o.port)}: the port is already in use; pick another --port (0 = any free port)`,
      );
    if (err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND')
      throw configError(`--host ${o.host}: not an address of this machine (${err.code})`);
    if (err.code === 'EACCES')
      throw configError(`${formatUrl(o.host, o.port)}: permission denied (ports below 1024 need privileges)`);
    throw e;
  }
  if (cluster.isWorker) {
    log(
      `listening (${engine === 'onnx' ? 'engine onnx' : `backend ${backend!.name}`}, ${threads} thread${threads === 1 ? '' : 's'})`,
    );
  } else {
    log(
      `${modelDir}: ${classifier.classes.length} classes, input ${classifier.metadata.inputShape.join('x')}; ${engineText}`,
    );
    log(`listening on ${server.url} (${settingsText(o)})`);
    warnIfOpen(o);
    const ready: ServeReady = { url: server.url, host: o.host, port: server.port, workers: 1, pid: process.pid };
    process.stdout.write(JSON.stringify(ready) + '\n');
  }

  const code = await new Promise<number>((resolve) => {
    let forced: NodeJS.Timeout | null = null;
    const stop = (why: string) => {
      if (server.shuttingDown) return;
      const { inFlight } = server.stats();
      log(
        `${why}: shutting down (finishing ${inFlight} request${inFlight === 1 ? '' : 's'} in flight; new connections get 503)`,
      );
      const deadline = shutdownDeadlineMs(o.timeoutMs);
      forced = setTimeout(() => {
        log(`shutdown took longer than ${deadline} ms; exiting with ${server.stats().inFlight} requests unfinished`);
        // Queued decodes would keep the process alive (libuv drains its queue at exit): drop them.
        server.abortInFlight();
        resolve(1);
      }, deadline);
      forced.unref();
      void server.shutdown().then(() => {
        if (forced) clearTimeout(forced);
        log('all requests answered; exiting');
        resolve(0);
      });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    // A worker whose primary went away (killed) stops too.
    if (cluster.isWorker) process.on('disconnect', () => stop('primary process gone'));
  });
  classifier.dispose();
  return code;
}

/** The cluster primary: fork, restart crashed workers, forward SIGTERM/SIGINT, wait. */
function runPrimary(modelDir: string, o: ServeOptions): Promise<number> {
  return new Promise<number>((resolve) => {
    const listening = new Set<number>();
    let announced = false;
    let stopping = false;
    let startupFailures = 0;
    let exitCode = 0;
    const startedAt = new Map<number, number>();

    const fork = () => {
      if (stopping) return;
      const w = cluster.fork();
      startedAt.set(w.id, Date.now());
    };
    const alive = () => Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w && !w.isDead());
    const stopAll = (signal: NodeJS.Signals) => {
      for (const w of alive()) w.process.kill(signal);
      if (alive().length === 0) resolve(exitCode);
    };

    cluster.on('listening', (w, address) => {
      listening.add(w.id);
      startupFailures = 0;
      if (!announced && listening.size === o.workers) {
        announced = true;
        const port = address.port;
        log(
          `${modelDir}: ${o.workers} workers listening on ${formatUrl(o.host, port)} (${settingsText(o)}); primary ${process.pid}`,
        );
        warnIfOpen(o);
        const ready: ServeReady = {
          url: formatUrl(o.host, port),
          host: o.host,
          port,
          workers: o.workers,
          pid: process.pid,
        };
        process.stdout.write(JSON.stringify(ready) + '\n');
      }
    });
    cluster.on('exit', (w, code, signal) => {
      const wasListening = listening.delete(w.id);
      if (stopping) {
        if (code !== 0) exitCode = 1;
        if (alive().length === 0) {
          log('all workers exited');
          resolve(exitCode);
        }
        return;
      }
      const how = signal ? `signal ${signal}` : `code ${code}`;
      if (!wasListening) {
        startupFailures++;
        if (startupFailures >= MAX_STARTUP_FAILURES) {
          log(`worker ${w.process.pid} exited (${how}) before listening, ${startupFailures} times in a row; giving up`);
          stopping = true;
          exitCode = 1;
          stopAll('SIGTERM');
          return;
        }
      }
      const lived = Date.now() - (startedAt.get(w.id) ?? 0);
      startedAt.delete(w.id);
      const delay = wasListening && lived > 1000 ? 0 : 250 * 2 ** startupFailures;
      log(`worker ${w.process.pid} exited (${how}); starting a new one${delay ? ` in ${delay} ms` : ''}`);
      setTimeout(fork, delay);
    });
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      log(`${signal}: stopping ${alive().length} workers (each finishes its requests in flight)`);
      stopAll('SIGTERM');
    };
    process.on('SIGTERM', () => onSignal('SIGTERM'));
    process.on('SIGINT', () => onSignal('SIGINT'));

    for (let i = 0; i < o.workers; i++) fork();
  });
}
