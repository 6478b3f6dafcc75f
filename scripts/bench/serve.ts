/**
 * HTTP throughput and latency of `semigan serve`: single-image PNG requests (28x28 MNIST test
 * images, one per request) at several concurrencies, with one server process and with
 * --workers 2; the load generator (autocannon) runs in this process, the server as a child
 * process. Then in-process Classifier.predict rates at batch 1 and 256 for comparison.
 *
 *   npx tsc -p . && node dist/scripts/bench/serve.js [MODEL_DIR] [--duration 10] [--connections 1,16,64]
 *       [--workers 1,2] [--max-batch 64] [--max-wait-ms 2] [--backend wasm] [--matmul auto|wasm] [--threads N] [--check]
 *
 * Without MODEL_DIR a tiny model is trained and exported first (~15 s; speed does not depend on
 * how long the model was trained: the network is the same). Prints markdown tables. --check
 * exits 1 if the best HTTP rate is below the floor of 2000 predictions/s.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpus, loadavg, tmpdir } from 'node:os';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import sharp from 'sharp';
import { initBackend, type BackendChoice, type MatMulChoice } from '../../src/backend.js';
import { readIdxImages } from '../../src/data/sources/idx.js';
import { Classifier } from '../../src/export/classifier.js';
import { scalePixels } from '../../src/export/preprocess.js';
import { mnistDataDir } from '../../src/package_paths.js';
import { scriptArgs } from '../lib/args.js';

const FLOOR = 2000;
const AIM = 5000;
const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

const { values, positionals } = scriptArgs({
  allowPositionals: true,
  options: {
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    connections: { type: 'string', default: '1,16,64' },
    workers: { type: 'string', default: '1,2' },
    'max-batch': { type: 'string', default: '64' },
    'max-wait-ms': { type: 'string', default: '2' },
    images: { type: 'string', default: '256' },
    backend: { type: 'string', default: 'wasm' },
    matmul: { type: 'string', default: 'auto' }, // wasm: tfjs's own single-threaded matMuls (as before OpenBLAS)
    threads: { type: 'string' }, // matMul threads per server process (default: cores / workers)
    check: { type: 'boolean', default: false },
  },
});
const duration = Number(values.duration);
const warmup = Number(values.warmup);
const connectionsList = values.connections.split(',').map(Number);
const workersList = values.workers.split(',').map(Number);
const log = (s: string) => process.stderr.write(s + '\n');

function run(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b) => (out += b));
    child.stderr.on('data', (b) => (err += b));
    child.on('close', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`semigan ${args[0]} failed (${code}):\n${err}`)),
    );
  });
}

// ---- model and request bodies ----
let tmp: string | null = null;
let modelDir = positionals[0];
if (!modelDir) {
  tmp = mkdtempSync(join(tmpdir(), 'semigan-bench-serve-'));
  log('no MODEL_DIR: training and exporting a tiny model (20 iterations)...');
  await run([
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
    join(tmp, 'run'),
  ]);
  await run(['export', join(tmp, 'run'), '--out', join(tmp, 'model'), '--backend', 'wasm']);
  modelDir = join(tmp, 'model');
}
const mnist = join(mnistDataDir()!, 't10k-images-idx3-ubyte');
const img = readIdxImages(mnist);
const nImages = Number(values.images);
const pngs = await Promise.all(
  Array.from({ length: nImages }, (_, i) =>
    sharp(Buffer.from(img.pixels.subarray(i * 784, (i + 1) * 784)), { raw: { width: 28, height: 28, channels: 1 } })
      .toColourspace('b-w')
      .png()
      .toBuffer(),
  ),
);

// ---- the server ----
interface Server {
  child: ChildProcess;
  url: string;
}

function startServer(workers: number): Promise<Server> {
  const args = [
    'serve',
    modelDir,
    '--port',
    '0',
    '--workers',
    String(workers),
    '--backend',
    values.backend!,
    '--max-batch',
    values['max-batch']!,
    '--max-wait-ms',
    values['max-wait-ms']!,
    '--matmul',
    values.matmul!,
    ...(values.threads ? ['--threads', values.threads] : []),
  ];
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (b) => (err += b));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (b) => {
      out += b;
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve({ child, url: JSON.parse(out.slice(0, nl)).url });
    });
    child.on('exit', (code) => reject(new Error(`server exited (${code}) before listening:\n${err}`)));
  });
}

function stopServer(s: Server): Promise<number | null> {
  return new Promise((resolve) => {
    s.child.once('exit', (code) => resolve(code));
    s.child.kill('SIGTERM');
  });
}

interface Stats {
  rows: number;
  batches: number;
}

/** Model rows and calls summed over the server's processes (/healthz on fresh connections reaches each worker in turn). */
async function serverStats(url: string, workers: number): Promise<Stats> {
  const seen = new Map<number, Stats>();
  for (let i = 0; i < 40 && seen.size < workers; i++) {
    const r = await fetch(url + '/healthz', { headers: { connection: 'close' } });
    const h = (await r.json()) as { pid: number; stats: Stats };
    seen.set(h.pid, h.stats);
  }
  const all = [...seen.values()];
  return { rows: all.reduce((s, v) => s + v.rows, 0), batches: all.reduce((s, v) => s + v.batches, 0) };
}

function load(url: string, connections: number, seconds: number): Promise<autocannon.Result> {
  return autocannon({
    url: url + '/v1/predict',
    connections,
    duration: seconds,
    requests: pngs.map((body) => ({ method: 'POST', headers: { 'content-type': 'image/png' }, body })),
  });
}

interface Row {
  server: string;
  connections: number;
  rate: number;
  p50: number;
  p90: number;
  p99: number;
  meanBatch: number | null;
  failed: number;
}

const rows: Row[] = [];
log(`${cpus().length} cores, load average ${loadavg()[0].toFixed(2)}; ${duration} s per run; model ${modelDir}`);
for (const workers of workersList) {
  const server = await startServer(workers);
  const name = workers === 1 ? '1 process' : `--workers ${workers}`;
  try {
    await load(server.url, 16, warmup);
    for (const c of connectionsList) {
      const before = await serverStats(server.url, workers);
      const r = await load(server.url, c, duration);
      const after = await serverStats(server.url, workers);
      const batches = after.batches - before.batches;
      const row: Row = {
        server: name,
        connections: c,
        rate: r.requests.average,
        p50: r.latency.p50,
        p90: r.latency.p90,
        p99: r.latency.p99,
        meanBatch: batches > 0 ? (after.rows - before.rows) / batches : null,
        failed: r.non2xx + r.errors + r.timeouts,
      };
      rows.push(row);
      log(
        `${name}, ${c} connections: ${row.rate.toFixed(0)} predictions/s, p50 ${row.p50} ms, p99 ${row.p99} ms, mean batch ${row.meanBatch?.toFixed(1) ?? '-'}, failed ${row.failed}`,
      );
    }
  } finally {
    const code = await stopServer(server);
    if (code !== 0) log(`warning: the server exited with code ${code} on SIGTERM`);
  }
}

// ---- in-process, no HTTP ----
async function rate(fn: () => unknown, per: number, seconds: number): Promise<number> {
  const warm = performance.now();
  while (performance.now() - warm < 1000) fn();
  let calls = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    fn();
    calls++;
  }
  return (calls * per) / ((performance.now() - t0) / 1000);
}
const backend = await initBackend(values.backend as BackendChoice, {
  matmul: values.matmul as MatMulChoice,
  threads: values.threads ? Number(values.threads) : null,
});
const classifier = await Classifier.load(modelDir);
const x = scalePixels(img.pixels.subarray(0, 256 * 784));
const inProcess = [
  [
    'Classifier.predict, batch 1',
    await rate(() => classifier.predict(x.subarray(0, 784), 1), 1, Math.min(duration, 5)),
  ],
  [
    'Classifier.predict, batch 64',
    await rate(() => classifier.predict(x.subarray(0, 64 * 784), 64), 64, Math.min(duration, 5)),
  ],
  ['Classifier.predict, batch 256', await rate(() => classifier.predict(x, 256), 256, Math.min(duration, 5))],
] as const;
classifier.dispose();
if (tmp) rmSync(tmp, { recursive: true, force: true });

// ---- report ----
const fmt = (v: number) => (v >= 100 ? v.toFixed(0) : v.toFixed(1));
console.log(
  `\n${cpus().length} cores (${cpus()[0]?.model ?? '?'}), load average ${loadavg()
    .map((v) => v.toFixed(2))
    .join(' ')}; backend ${backend.name}, in-process ${backend.threadsReason}; ` +
    `${duration} s per run, single 28x28 PNG per request, max batch ${values['max-batch']}, max wait ${values['max-wait-ms']} ms; load generator (autocannon) on the same machine\n`,
);
console.log('| server | concurrency | predictions/s | p50 ms | p90 ms | p99 ms | mean rows per model call | failed |');
console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
for (const r of rows) {
  console.log(
    `| ${r.server} | ${r.connections} | ${r.rate.toFixed(0)} | ${fmt(r.p50)} | ${fmt(r.p90)} | ${fmt(r.p99)} | ${r.meanBatch === null ? '-' : r.meanBatch.toFixed(1)} | ${r.failed} |`,
  );
}
console.log('\n| in-process (no HTTP) | predictions/s |');
console.log('|---|---:|');
for (const [what, v] of inProcess) console.log(`| ${what} | ${v.toFixed(0)} |`);
const best = Math.max(...rows.map((r) => r.rate));
const verdict = best >= AIM ? 'meets the aim' : best >= FLOOR ? 'meets the floor' : 'BELOW the floor';
console.log(`\nbest HTTP rate: ${best.toFixed(0)} predictions/s (floor ${FLOOR}, aim ${AIM}): ${verdict}`);
if (rows.some((r) => r.failed > 0)) console.log('some requests failed (see the failed column)');
if (values.check && (best < FLOOR || rows.some((r) => r.failed > 0))) process.exit(1);
