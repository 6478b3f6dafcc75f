/**
 * Unlabeled data at scale: peak memory and speed of `semigan train` on image folders of 60k, 600k
 * and 2M unlabeled 32x32 colour images (docs/scale.md).
 *
 *   node dist/scripts/bench/scale.js make --out /work/scale/2m --unlabeled 2000000
 *   node dist/scripts/bench/scale.js train --data /work/scale/2m [--data-store auto|memory|disk] [--old DIST]
 *   node dist/scripts/bench/scale.js make-parquet --out /work/scale/120k.parquet --unlabeled 120000
 *   node dist/scripts/bench/scale.js train --data /work/scale/120k.parquet
 *
 * `make` builds a folder from real images: each is a Fashion-MNIST or MNIST training image
 * (alternating; image i uses base image floor(i / 2) mod 60,000 of its set), placed at a random
 * offset in a 32x32 black frame (a shift of 0-4 pixels each way) and tinted by a random colour
 * (each channel 64-255, pixel = round(v * colour / 255)); the random draws are seeded by i. 100
 * labeled images per Fashion-MNIST class (from the Fashion-MNIST test set, so no labeled image is
 * also an unlabeled one) go in DIR/<class>/, the unlabeled ones in DIR/unlabeled/<thousands>/.
 * PNGs are written by a small encoder here (zlib level 1), 8 writers at a time.
 *
 * `make-parquet` writes the same images (PNG bytes, 10,000 rows per row group, snappy) and labels
 * (the class name, null for unlabeled rows) as one Parquet file, with parquet-wasm (a dev
 * dependency), for `--data parquet:FILE`.
 *
 * `train` runs `semigan train --data images:DIR` (or `parquet:FILE`) for 2 epochs of 200 iterations under
 * /usr/bin/time and prints its peak RSS (the kernel's maximum resident set), the decode line, and
 * ms per iteration (the second epoch's training time / 200). $SEMIGAN_CACHE_DIR defaults to
 * DIR/../cache. `--old DIST` runs another build's cli.js (e.g. an older commit's dist) instead.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { deflateSync } from 'node:zlib';
import { loadBuiltin } from '../../src/data/sources/builtin.js';
import { mapLimit } from '../../src/data/map_limit.js';
import { PACKAGE_ROOT } from '../../src/package_paths.js';

const arg = (name: string, fallback?: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};

// PNG: signature, IHDR, one IDAT, IEND; CRC-32 per chunk.
const CRC = Int32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c;
});
function crc32(b: Buffer): number {
  let c = -1;
  for (let i = 0; i < b.length; i++) c = CRC[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}
function chunk(type: string, data: Buffer): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}
const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** An 8-bit RGB PNG of h x w HWC bytes. */
function encodeRgbPng(px: Uint8Array, h: number, w: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // truecolour
  const raw = Buffer.alloc(h * (1 + 3 * w));
  for (let y = 0; y < h; y++) Buffer.from(px.buffer, px.byteOffset + y * 3 * w, 3 * w).copy(raw, y * (1 + 3 * w) + 1);
  return Buffer.concat([
    SIGNATURE,
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw, { level: 1 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** A small seeded generator per image (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A 28x28 gray image shifted into a 32x32 frame and tinted, as RGB bytes. */
function shiftedTinted(gray: Uint8Array, seed: number): Uint8Array {
  const r = rng(seed);
  const dx = Math.floor(r() * 5);
  const dy = Math.floor(r() * 5);
  const colour = [0, 1, 2].map(() => 64 + Math.floor(r() * 192));
  const out = new Uint8Array(32 * 32 * 3);
  for (let y = 0; y < 28; y++)
    for (let x = 0; x < 28; x++) {
      const v = gray[y * 28 + x];
      const o = ((y + dy) * 32 + x + dx) * 3;
      for (let c = 0; c < 3; c++) out[o + c] = Math.round((v * colour[c]) / 255);
    }
  return out;
}

const fashion = () => loadBuiltin('fashion-mnist');
const mnist = () => loadBuiltin('mnist');

/** 100 labeled images per Fashion-MNIST class (test split rows) as [row, class, PNG]. */
function labeledImages(): [number, string, Buffer][] {
  const f = fashion();
  const perClass = new Array<number>(10).fill(0);
  const out: [number, string, Buffer][] = [];
  for (let i = 0; i < f.test.n && out.length < 1000; i++) {
    const c = f.test.y[i];
    if (perClass[c] < 100) {
      perClass[c]++;
      const png = encodeRgbPng(shiftedTinted(f.test.x.gatherRaw([i]) as Uint8Array, -1 - i), 32, 32);
      out.push([i, f.test.classes[c].replace(/[^A-Za-z0-9-]/g, '_'), png]);
    }
  }
  return out;
}

/** Unlabeled image i as a PNG: Fashion-MNIST and MNIST training images in turn. */
function unlabeledPng(sets: ReturnType<typeof fashion>[], i: number): Buffer {
  const set = sets[i % 2].train;
  return encodeRgbPng(shiftedTinted(set.x.gatherRaw([Math.floor(i / 2) % 60_000]) as Uint8Array, i), 32, 32);
}

async function makeParquet(): Promise<void> {
  const { Binary, Table, Utf8, tableToIPC, vectorFromArray } = await import('apache-arrow');
  const pw = await import('parquet-wasm/node');
  const out = resolve(arg('out')!);
  const n = Number(arg('unlabeled'));
  const t0 = performance.now();
  const sets = [fashion(), mnist()];
  const labeled = labeledImages();
  const images: Uint8Array[] = labeled.map((l) => l[2]);
  const labels: (string | null)[] = labeled.map((l) => l[1]);
  for (let i = 0; i < n; i++) {
    images.push(unlabeledPng(sets, i));
    labels.push(null);
  }
  const table = new Table({
    image: vectorFromArray(images, new Binary()),
    label: vectorFromArray(labels, new Utf8()),
  });
  const props = new pw.WriterPropertiesBuilder()
    .setMaxRowGroupSize(10_000)
    .setCompression(pw.Compression.SNAPPY)
    .build();
  const bytes = pw.writeParquet(pw.Table.fromIPCStream(tableToIPC(table, 'stream')), props);
  mkdirSync(dirname(out), { recursive: true });
  await writeFile(out, bytes);
  console.log(
    `${out}: ${images.length.toLocaleString('en-US')} rows, ${(bytes.length / 2 ** 20).toFixed(0)} MiB, in ${((performance.now() - t0) / 1000).toFixed(0)} s`,
  );
}

async function make(): Promise<void> {
  const out = resolve(arg('out')!);
  const n = Number(arg('unlabeled'));
  const t0 = performance.now();
  await mapLimit(labeledImages(), 8, async ([i, name, png]) => {
    mkdirSync(join(out, name), { recursive: true });
    await writeFile(join(out, name, `${i}.png`), png);
  });
  const sets = [fashion(), mnist()];
  let done = 0;
  const indices = Array.from({ length: Math.ceil(n / 1000) }, (_, k) => k);
  await mapLimit(indices, 2, async (k) => {
    const dir = join(out, 'unlabeled', String(k).padStart(5, '0'));
    mkdirSync(dir, { recursive: true });
    const rows = Array.from({ length: Math.min(1000, n - k * 1000) }, (_, j) => k * 1000 + j);
    await mapLimit(rows, 4, (i) => writeFile(join(dir, `${i}.png`), unlabeledPng(sets, i)));
    done += rows.length;
    if (k % 100 === 0) console.log(`${done} of ${n} written, ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  });
  console.log(
    `${out}: 1,000 labeled + ${n.toLocaleString('en-US')} unlabeled PNGs in ${((performance.now() - t0) / 1000).toFixed(0)} s`,
  );
}

function train(): void {
  const data = resolve(arg('data')!);
  const store = arg('data-store', 'auto')!;
  const cli = arg('old') ? join(resolve(arg('old')!), 'src', 'cli.js') : join(PACKAGE_ROOT, 'dist', 'src', 'cli.js');
  const runDir = join(dirname(data), 'runs', `${data.split('/').pop()}-${store}${arg('old') ? '-old' : ''}`);
  const env = { ...process.env, SEMIGAN_CACHE_DIR: process.env.SEMIGAN_CACHE_DIR ?? join(dirname(data), 'cache') };
  const args = [
    '-f',
    '%M %e',
    process.execPath,
    cli,
    'train',
    '--data',
    data.endsWith('.parquet') ? `parquet:${data}` : `images:${data}`,
    '--epochs',
    '2',
    '--iters-per-epoch',
    '200',
    '--threads',
    arg('threads', '2')!,
    '--seed',
    '1',
    '--out',
    runDir,
    '--overwrite',
    ...(arg('old') ? [] : ['--data-store', store]),
    ...(arg('preset') ? ['--preset', arg('preset')!] : []),
  ];
  const r = spawnSync('/usr/bin/time', args, { env, encoding: 'utf8', maxBuffer: 1 << 28 });
  const lines = (r.stdout + r.stderr).split('\n');
  const [maxKb, wall] = lines
    .filter((l) => /^\d+ [\d.]+$/.test(l))
    .pop()
    ?.split(' ')
    .map(Number) ?? [NaN, NaN];
  for (const l of lines) if (/images:|decod|error|store/i.test(l) && l.length < 400) console.log('  ' + l.trim());
  let msPerIter = NaN;
  try {
    const metrics = readFileSync(join(runDir, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    msPerIter = (metrics[1].epoch_seconds / 200) * 1000;
  } catch {
    console.log(lines.slice(-15).join('\n'));
  }
  console.log(
    `${data} --data-store ${store}${arg('old') ? ' (old build)' : ''}: exit ${r.status}, peak RSS ${(maxKb / 1024).toFixed(0)} MiB, wall ${wall.toFixed(0)} s, ${msPerIter.toFixed(1)} ms/iter (epoch 2)`,
  );
}

if (process.argv[2] === 'make') await make();
else if (process.argv[2] === 'make-parquet') await makeParquet();
else if (process.argv[2] === 'train') train();
else {
  console.error('usage: scale.js make --out DIR --unlabeled N | train --data DIR [--data-store W] [--old DIST]');
  process.exit(2);
}
export {};
