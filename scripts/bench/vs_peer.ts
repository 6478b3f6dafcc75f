/**
 * ms per training iteration of semigan (wasm, the real Trainer) and of the PyTorch peer
 * (../shared/peers/torch_improved_gan.py), measured one after the other in one command, so both
 * figures see the same machine load.
 *
 *   npx tsc -p . && node dist/scripts/bench/vs_peer.js [--iters 50] [--peer-iters 50] [--rounds 3] [--peer-threads N] [--before]
 *
 * Each round times semigan, then the peer; the ratio is the median of the rounds' ratios, so a
 * swing of the machine's speed (these are shared machines) hits both sides of a ratio alike.
 * --before also times semigan with its layers composed of tfjs ops (as before nn/native_layers.ts).
 *
 * The peer runs as `/usr/bin/python3 ../shared/peers/torch_improved_gan.py --data mnist --bench 50`
 * from the project root (its default data path is relative to it) and prints a JSON line with
 * iter_ms_median. Without the peer (file missing, or python3 without torch) semigan's figure is
 * still printed, followed by why the peer could not run (exit code 2).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { resolve } from 'node:path';
import { initBackend } from '../../src/backend.js';
import { useNativeLayers } from '../../src/nn/native_layers.js';
import { blasMacsDone } from '../../src/nn/blas_matmul.js';
import { loadNative } from '../../src/nn/native_addon.js';
import { sgemmGflops } from '../lib/sgemm.js';
import { benchConfig, loadBenchData, median, quantile, timeIterations, wasmInfo } from '../lib/trainer_timing.js';
import { PACKAGE_ROOT } from '../../src/package_paths.js';
import { positiveIntOption, scriptArgs } from '../lib/args.js';

// dist/scripts/bench/vs_peer.js -> project root
const ROOT = PACKAGE_ROOT;

const { values } = scriptArgs({
  options: {
    iters: { type: 'string', default: '50' }, // semigan timed iterations
    'peer-iters': { type: 'string', default: '50' },
    'peer-threads': { type: 'string' }, // default: the peer's own (2)
    python: { type: 'string', default: '/usr/bin/python3' },
    peer: { type: 'string', default: resolve(ROOT, '../shared/peers/torch_improved_gan.py') },
    'train-limit': { type: 'string' }, // default: all 60000, as the peer
    threads: { type: 'string' }, // semigan's matMul threads (default: every core)
    before: { type: 'boolean', default: false }, // also time semigan with tfjs's own layer ops (before the native layers)
    rounds: { type: 'string', default: '3' }, // semigan then the peer, this many times
  },
});
const int = (name: 'iters' | 'peer-iters' | 'peer-threads' | 'train-limit' | 'threads' | 'rounds') =>
  positiveIntOption(values, name);
const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
const fmt = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '-');

interface PeerResult {
  iter_ms_median: number;
  iter_ms_min?: number;
  d_step_ms_median?: number;
  g_step_ms_median?: number;
  bench_iters?: number;
  env?: { threads?: number; interop_threads?: number; torch?: string };
}

/** Why the peer cannot run here, or null when it can. */
function peerUnavailable(python: string, peer: string): string | null {
  if (!existsSync(peer)) return `peer script not found: ${peer} (pass --peer PATH)`;
  if (!existsSync(python)) return `${python} not found (pass --python PATH)`;
  const probe = spawnSync(python, ['-c', 'import torch, numpy; print(torch.__version__)'], { encoding: 'utf8' });
  if (probe.error) return `${python} could not be started: ${probe.error.message}`;
  if (probe.status !== 0) {
    const last = probe.stderr.trim().split('\n').pop() ?? '';
    return `${python} cannot import torch/numpy (${last}); install python3-torch and libopenblas0-openmp (see ../shared/peers/README.md)`;
  }
  return null;
}

/** One run of the peer: its JSON result, or why there is none. */
function runPeer(python: string, peer: string, peerIters: number): { res: PeerResult | null; error: string | null } {
  const args = [peer, '--data', 'mnist', '--bench', String(peerIters)];
  if (values['peer-threads']) args.push('--threads', String(int('peer-threads')));
  console.log(
    `# peer: ${python} ${args.map((a) => (a === peer ? values.peer : a)).join(' ')} (cwd ${ROOT}), loadavg ${load()}`,
  );
  const run = spawnSync(python, args, { cwd: ROOT, encoding: 'utf8', timeout: 30 * 60_000, maxBuffer: 64 << 20 });
  const lines = (run.stdout ?? '').split('\n');
  const jsonLine = [...lines].reverse().find((l) => l.trim().startsWith('{') && l.includes('iter_ms_median'));
  if (run.status === 0 && jsonLine) {
    const res = JSON.parse(jsonLine) as PeerResult;
    console.log(
      `# peer: median ${fmt(res.iter_ms_median)} ms (D ${fmt(res.d_step_ms_median ?? NaN)} + G ${fmt(res.g_step_ms_median ?? NaN)}), env ${JSON.stringify(res.env)}`,
    );
    return { res, error: null };
  }
  const err = (run.stderr ?? '').trim().split('\n').slice(-5).join('\n  ');
  const how = run.error ? run.error.message : `exit ${run.status}${run.signal ? `, ${run.signal}` : ''}`;
  return { res: null, error: `peer failed (${how}), no iter_ms_median line${err ? `:\n  ${err}` : ''}` };
}

async function main(): Promise<void> {
  const iters = int('iters');
  const peerIters = int('peer-iters');
  const rounds = int('rounds');
  const python = values.python!;
  const peer = resolve(values.peer!);

  const backend = await initBackend('wasm', { threads: values.threads ? int('threads') : null });
  const config = benchConfig(values['train-limit'] ? { trainLimit: int('train-limit') } : { trainLimit: null });
  const data = loadBenchData(config);
  console.log(`# node ${process.version}, ${cpus().length} cores`);
  console.log(
    `# semigan: ${config.preset} mode ${config.mode}, ${await wasmInfo()} (${backend.reason}); ${backend.threadsReason}; data ${data.summaryText}`,
  );
  const why = peerUnavailable(python, peer);
  const native = loadNative();
  // Rounds alternate semigan and the peer, never concurrently, so both see the machine's swings.
  const ours: number[] = [];
  const befores: number[] = [];
  const peers: PeerResult[] = [];
  let peerError = why;
  let gflop = NaN;
  for (let r = 1; r <= rounds; r++) {
    console.log(
      `# round ${r}/${rounds}: semigan, >= ${iters} iterations (whole epochs of 10) after a warm-up epoch, loadavg ${load()}`,
    );
    useNativeLayers(native.ok ? native.addon : null);
    const timing = await timeIterations(config, data, { iters, counter: blasMacsDone });
    ours.push(median(timing.ms));
    gflop = (2 * timing.countPerIter) / 1e9;
    console.log(
      `# semigan: median ${fmt(ours.at(-1)!)} ms (p25 ${fmt(quantile(timing.ms, 0.25))}, p75 ${fmt(quantile(timing.ms, 0.75))}, min ${fmt(Math.min(...timing.ms))}, n ${timing.ms.length})`,
    );
    if (values.before) {
      // The step with its layers, G's activation and D's losses composed of tfjs ops.
      useNativeLayers(null);
      befores.push(median((await timeIterations(config, data, { iters })).ms));
      console.log(`# semigan with tfjs's layer ops: median ${fmt(befores.at(-1)!)} ms`);
    }
    if (!why) {
      const p = runPeer(python, peer, peerIters);
      if (p.res) peers.push(p.res);
      else peerError = p.error;
    }
  }
  // The step's floor on this machine: its matMul FLOPs at the rate of one large sgemm.
  const sgemm = native.ok ? sgemmGflops(native.addon, backend.threads) : NaN;
  const limit = (gflop / sgemm) * 1000;
  const oursMs = median(ours);

  console.log('');
  console.log(
    `| round | semigan ms/iter |${values.before ? ' with tfjs layer ops |' : ''} peer ms/iter | semigan / peer |`,
  );
  console.log(`|---:|---:|${values.before ? '---:|' : ''}---:|---:|`);
  for (let r = 0; r < rounds; r++) {
    const p = peers[r]?.iter_ms_median ?? NaN;
    console.log(
      `| ${r + 1} | ${fmt(ours[r])} |${values.before ? ` ${fmt(befores[r])} |` : ''} ${fmt(p)} | ${fmt(ours[r] / p, 2)}x |`,
    );
  }
  console.log('');
  console.log(`semigan ms/iter: ${fmt(oursMs)} (median of ${rounds} rounds; ${backend.threads} threads)`);
  if (values.before)
    console.log(
      `with tfjs's layer ops: ${fmt(median(befores))}; native layers: ${fmt(oursMs / median(befores), 2)}x of it`,
    );
  console.log(
    `sgemm limit: ${fmt(gflop, 2)} GFLOP of matMuls per iteration at ${fmt(sgemm, 0)} GFLOP/s (1000^3 sgemm, ${backend.threads} threads) = ${fmt(limit)} ms; semigan ${fmt(oursMs / limit, 2)}x of it`,
  );
  if (peers.length === 0) {
    console.log(`peer: not measured: ${peerError}`);
    process.exitCode = 2;
    return;
  }
  const ratios = peers.map((p, r) => ours[r] / p.iter_ms_median);
  const peerMs = median(peers.map((p) => p.iter_ms_median));
  console.log(
    `peer ms/iter:    ${fmt(peerMs)} (median of ${peers.length}; threads ${peers[0].env?.threads ?? '?'}, interop ${peers[0].env?.interop_threads ?? '?'}); ${fmt(peerMs / limit, 2)}x the sgemm limit`,
  );
  console.log(
    `ratio semigan / peer: ${median(ratios).toFixed(2)}x (median of the rounds' ratios: ${ratios.map((x) => x.toFixed(2)).join(', ')})`,
  );
  console.log(
    JSON.stringify({
      bench: 'vs_peer',
      rounds,
      semigan_ms_median: oursMs,
      peer_ms_median: peerMs,
      ratio: median(ratios),
      ratios,
      ...(values.before ? { semigan_tfjs_layers_ms_median: median(befores) } : {}),
      matmul_gflop_per_iter: gflop,
      sgemm_gflops: sgemm,
      sgemm_limit_ms: limit,
      semigan_threads: backend.threads,
      loadavg: loadavg()[0],
    }),
  );
}

main().catch((e) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : e);
  process.exit(1);
});
