/**
 * The server under load and under hostile input, for two builds side by side (e.g. the release
 * before the reliability work and this one): 20 s of single-PNG requests at 32 and 256
 * connections (predictions/s, p99 latency, errors, the server's peak RSS), SIGTERM in the middle
 * of a 32-connection load (answers, connection resets), and a PNG decompression bomb (its answer,
 * time, /healthz meanwhile, RSS). The load generator (autocannon) runs in this process.
 *
 *   npx tsc -p . && node dist/scripts/bench/reliability.js MODEL_DIR [--before /path/to/old/dist/src/cli.js]
 *       [--duration 20] [--connections 32,256] [--threads 1]
 *
 * Each build serves MODEL_DIR (an export of the matching version: pass --before-model for the
 * old build's). Prints a markdown table; asserts nothing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { crc32, deflateSync } from 'node:zlib';
import autocannon from 'autocannon';
import sharp from 'sharp';
import { readIdxImages } from '../../src/data/sources/idx.js';
import { mnistDataDir } from '../../src/package_paths.js';
import { failUsage, scriptArgs } from '../lib/args.js';

const { values, positionals } = scriptArgs({
  allowPositionals: true,
  options: {
    before: { type: 'string' },
    'before-model': { type: 'string' },
    duration: { type: 'string', default: '20' },
    connections: { type: 'string', default: '32,256' },
    threads: { type: 'string', default: '1' },
  },
});
const log = (s: string) => process.stderr.write(s + '\n');
const THIS_CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
const builds: { name: string; cli: string; model: string }[] = [
  ...(values.before ? [{ name: 'before', cli: values.before, model: values['before-model'] ?? positionals[0] }] : []),
  { name: 'after', cli: THIS_CLI, model: positionals[0] },
];
if (!positionals[0]) failUsage('usage: reliability.js MODEL_DIR [--before OLD_CLI --before-model OLD_MODEL]');

const img = readIdxImages(join(mnistDataDir()!, 't10k-images-idx3-ubyte'));
const pngs = await Promise.all(
  Array.from({ length: 64 }, (_, i) =>
    sharp(Buffer.from(img.pixels.subarray(i * 784, (i + 1) * 784)), { raw: { width: 28, height: 28, channels: 1 } })
      .png()
      .toBuffer(),
  ),
);

interface Server {
  child: ChildProcess;
  url: string;
  exit: Promise<number | null>;
}
function startServer(cli: string, model: string): Promise<Server> {
  const child = spawn(
    process.execPath,
    [cli, 'serve', model, '--port', '0', '--backend', 'wasm', '--threads', values.threads!],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const exit = new Promise<number | null>((r) => child.once('exit', r));
  let err = '';
  child.stderr!.on('data', (b) => (err += b));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (b) => {
      out += b;
      if (out.includes('\n')) resolve({ child, url: JSON.parse(out.split('\n')[0]).url, exit });
    });
    void exit.then((c) => reject(new Error(`serve exited ${c}: ${err}`)));
  });
}
const rssMb = (pid: number) => {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
  } catch {
    return 0;
  }
};

/** autocannon with connection errors counted by code, and the server's peak RSS sampled. */
async function load(s: Server, connections: number, seconds: number, during?: () => void) {
  const codes: Record<string, number> = {};
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, rssMb(s.child.pid!))), 200);
  let inst: autocannon.Instance;
  const done = new Promise<autocannon.Result>((resolve, reject) => {
    inst = autocannon(
      {
        url: s.url + '/v1/predict',
        connections,
        duration: seconds,
        requests: pngs.map((body) => ({ method: 'POST', headers: { 'content-type': 'image/png' }, body })),
      },
      (err, result) => (err ? reject(err) : resolve(result)),
    );
  });
  inst!.on(
    'reqError',
    (e: NodeJS.ErrnoException) => (codes[e.code ?? e.message] = (codes[e.code ?? e.message] ?? 0) + 1),
  );
  if (during) setTimeout(during, 3000);
  const r = await done;
  clearInterval(sampler);
  return { r, codes, peak };
}

async function bomb(s: Server) {
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc32(body), 8 + data.length);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(28, 0);
  ihdr.writeUInt32BE(28, 4);
  ihdr[8] = 8;
  const png = Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(Buffer.alloc(900_000_000), { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
  const t0 = performance.now();
  const answer = fetch(s.url + '/v1/predict', { method: 'POST', headers: { 'content-type': 'image/png' }, body: png });
  const health = fetch(s.url + '/healthz').then(() => performance.now() - t0);
  let peak = rssMb(s.child.pid!);
  const sampler = setInterval(() => (peak = Math.max(peak, rssMb(s.child.pid!))), 50);
  const r = await answer;
  const ms = performance.now() - t0;
  clearInterval(sampler);
  peak = Math.max(peak, rssMb(s.child.pid!));
  return { bytes: png.length, status: r.status, ms, healthMs: await health, peak };
}

const rows: string[] = [];
const codesText = (c: Record<string, number>) =>
  Object.entries(c)
    .map(([k, v]) => `${v} ${k}`)
    .join(', ') || 'none';
for (const b of builds) {
  for (const c of values.connections!.split(',').map(Number)) {
    const s = await startServer(b.cli, b.model);
    await load(s, c, 2); // warm-up
    const { r, codes, peak } = await load(s, c, Number(values.duration));
    rows.push(
      `| ${b.name} | load, ${c} connections, ${values.duration} s | ${Math.round(r.requests.average)} | ${r.latency.p99} | ${r.non2xx} non-2xx; ${codesText(codes)} | ${Math.round(peak)} |`,
    );
    log(rows[rows.length - 1]);
    s.child.kill('SIGTERM');
    await s.exit;
  }
  const s = await startServer(b.cli, b.model);
  await load(s, 32, 2);
  const { r, codes, peak } = await load(s, 32, 6, () => s.child.kill('SIGTERM'));
  const code = await s.exit;
  rows.push(
    `| ${b.name} | SIGTERM 3 s into 32 connections (exit ${code}) | ${Math.round(r.requests.average)} | ${r.latency.p99} | ${r.non2xx} non-2xx; ${codesText(codes)} | ${Math.round(peak)} |`,
  );
  log(rows[rows.length - 1]);
  const s2 = await startServer(b.cli, b.model);
  const x = await bomb(s2);
  rows.push(
    `| ${b.name} | a ${Math.round(x.bytes / 1024)} KB PNG inflating to 900 MB | - | ${Math.round(x.ms)} (healthz ${Math.round(x.healthMs)}) | HTTP ${x.status} | ${Math.round(x.peak)} |`,
  );
  log(rows[rows.length - 1]);
  s2.child.kill('SIGTERM');
  await s2.exit;
}
console.log('| build | case | answers/s | p99 ms | errors | server peak RSS MB |');
console.log('|---|---|---:|---:|---|---:|');
for (const r of rows) console.log(r);
