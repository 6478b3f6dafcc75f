/**
 * What images that are tiny in bytes and huge in pixels cost, for two builds side by side (e.g.
 * the commit before the second reliability round and this one):
 *
 * - serve: one JSON request of N lossless 5000x5000 WebPs (~1 KB each, 25 million pixels each):
 *   its answer, its time, and the server's CPU seconds until it is idle again (sampled from
 *   /proc, capped at --cap seconds), with a 28x28 PNG request's latency meanwhile;
 * - data inspect: peak RSS and time on a folder of K lossless WebPs of SIDExSIDE black pixels.
 *
 *   npx tsc -p . && node dist/scripts/bench/hostile_pixels.js MODEL_DIR [--before OLD/dist/src/cli.js]
 *       [--images 700] [--cap 60] [--inspect 4] [--side 16383]
 *
 * Prints a markdown table; asserts nothing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { failUsage, scriptArgs } from '../lib/args.js';

const { values, positionals } = scriptArgs({
  allowPositionals: true,
  options: {
    before: { type: 'string' },
    images: { type: 'string', default: '700' },
    cap: { type: 'string', default: '60' },
    inspect: { type: 'string', default: '4' },
    side: { type: 'string', default: '16383' },
  },
});
if (!positionals[0]) failUsage('usage: hostile_pixels.js MODEL_DIR [--before OLD_CLI]');
const log = (s: string) => process.stderr.write(s + '\n');
const THIS_CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
const builds = [...(values.before ? [{ name: 'before', cli: values.before }] : []), { name: 'after', cli: THIS_CLI }];
const TICK = 100; // clock ticks per second of /proc/PID/stat

const cpuSeconds = (pid: number) => {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / TICK; // utime + stime
  } catch {
    return NaN;
  }
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function startServer(cli: string): Promise<{ child: ChildProcess; url: string; exit: Promise<unknown> }> {
  const child = spawn(
    process.execPath,
    [cli, 'serve', positionals[0], '--port', '0', '--backend', 'wasm', '--threads', '1', '--body-limit', '8mb'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const exit = new Promise((r) => child.once('exit', r));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (b) => {
      out += b;
      if (out.includes('\n')) resolve({ child, url: JSON.parse(out.split('\n')[0]).url, exit });
    });
    void exit.then(() => reject(new Error('serve exited')));
  });
}

const webp = await sharp({ create: { width: 5000, height: 5000, channels: 3, background: { r: 0, g: 0, b: 0 } } })
  .webp({ lossless: true })
  .toBuffer();
const body = JSON.stringify({ images: new Array(Number(values.images)).fill(webp.toString('base64')) });
const small = await sharp({ create: { width: 28, height: 28, channels: 3, background: { r: 0, g: 0, b: 0 } } })
  .png()
  .toBuffer();

const rows: string[] = [];
for (const b of builds) {
  const s = await startServer(b.cli);
  const pid = s.child.pid!;
  const cpu0 = cpuSeconds(pid);
  const t0 = performance.now();
  const ac = new AbortController();
  const cap = Number(values.cap) * 1000;
  const timer = setTimeout(() => ac.abort(), cap);
  const answer = fetch(s.url + '/v1/predict', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
    signal: ac.signal,
  })
    .then((r) => `HTTP ${r.status}`)
    .catch(() => `no answer in ${values.cap} s`);
  await sleep(500);
  const s0 = performance.now();
  const smallStatus = await fetch(s.url + '/v1/predict', {
    method: 'POST',
    headers: { 'content-type': 'image/png' },
    body: small as unknown as BodyInit,
    signal: AbortSignal.timeout(cap),
  })
    .then((r) => r.status)
    .catch(() => 'none');
  const smallMs = performance.now() - s0;
  const status = await answer;
  const ms = performance.now() - t0;
  clearTimeout(timer);
  // CPU until idle (two quiet seconds) or the cap.
  let last = cpuSeconds(pid);
  while (performance.now() - t0 < cap) {
    await sleep(1000);
    const now = cpuSeconds(pid);
    if (now - last < 0.05) break;
    last = now;
  }
  const cpu = cpuSeconds(pid) - cpu0;
  rows.push(
    `| ${b.name} | serve: ${values.images} lossless 5000x5000 WebPs in one JSON body (${(body.length / 1e6).toFixed(2)} MB) | ${status} after ${(ms / 1000).toFixed(1)} s | ${cpu.toFixed(1)} s (capped at ${values.cap} s) | a 28x28 PNG meanwhile: ${smallStatus} in ${(smallMs / 1000).toFixed(2)} s |`,
  );
  log(rows.at(-1)!);
  s.child.kill('SIGKILL');
  await s.exit;
}

// data inspect on huge lossless WebPs.
const dir = mkdtempSync(join(tmpdir(), 'semigan-hostile-pixels-'));
const side = Number(values.side);
const big = await sharp({ create: { width: side, height: side, channels: 3, background: { r: 0, g: 0, b: 0 } } })
  .webp({ lossless: true })
  .toBuffer();
for (const c of ['a', 'b']) mkdirSync(join(dir, c), { recursive: true });
for (let i = 0; i < Number(values.inspect); i++) writeFileSync(join(dir, i % 2 ? 'a' : 'b', `${i}.webp`), big);
for (const b of builds) {
  const t0 = performance.now();
  const child = spawn(
    process.execPath,
    [
      '--import',
      'data:text/javascript,process.on("exit",()=>process.stderr.write("maxrss "+process.resourceUsage().maxRSS+"\\n"))',
      b.cli,
      'data',
      'inspect',
      `images:${dir}`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, SEMIGAN_CACHE_DIR: join(dir, 'cache') } },
  );
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const code = await new Promise((r) => child.once('exit', r));
  const kb = Number(/maxrss (\d+)/.exec(err)?.[1] ?? NaN);
  rows.push(
    `| ${b.name} | data inspect: ${values.inspect} lossless ${side}x${side} WebPs (${(big.length / 1024).toFixed(0)} KB each) | exit ${code} after ${((performance.now() - t0) / 1000).toFixed(1)} s | - | peak RSS ${(kb / 1024).toFixed(0)} MB |`,
  );
  log(rows.at(-1)!);
}
rmSync(dir, { recursive: true, force: true });

console.log('| build | case | answer | server CPU | also |');
console.log('|---|---|---|---:|---|');
for (const r of rows) console.log(r);
