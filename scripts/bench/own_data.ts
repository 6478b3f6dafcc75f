/**
 * Your-own-data benchmarks, on Fashion-MNIST written out as PNG files:
 *
 *   node dist/scripts/bench/own_data.js --dir /tmp/fashion-png [--iters 600] [--epochs 1]
 *
 * 1. Writes the 60,000 training and 10,000 test images as DIR/{train,test}/<k>-<class>/<index>.png
 *    (once; class folders numbered so they sort in the idx files' label order).
 * 2. Decoding throughput: the 60,000 training PNGs through decodeImages with an empty decode
 *    cache (first load), then again (cached load).
 * 3. Same split, same accuracy: `--data images:DIR/train --test images:DIR/test --labels 100`
 *    against the idx route `--data fashion-mnist --labels 100`, same seed and budget: the labeled
 *    images, every pixel and label, and the test accuracy after training are compared.
 *
 * --presets conv-small,mnist-mlp trains each preset on the idx route for --epochs epochs and
 * prints accuracy and seconds per epoch (in one process, one after the other).
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { initBackend } from '../../src/backend.js';
import { loadBuiltin } from '../../src/data/sources/builtin.js';
import { decodeImages } from '../../src/data/images/decode.js';
import { scanImageFolder } from '../../src/data/sources/image_folder.js';
import { loadData } from '../../src/data/load.js';
import { mapLimit } from '../../src/data/map_limit.js';
import type { TrainData } from '../../src/data/prepare.js';
import { buildModelForConfig } from '../../src/models/presets.js';
import { validateConfig, type TrainConfig } from '../../src/train/config.js';
import { Trainer } from '../../src/train/trainer.js';
import type { TrainResult } from '../../src/train/run_dir.js';
import { Rng } from '../../src/rng.js';
import { disposeParams } from '../../src/nn/params.js';
import type { Rows } from '../../src/data/rows.js';

const order = (n: number) => Int32Array.from({ length: n }, (_, i) => i);
import { idList } from '../../src/data/dataset.js';
import { scriptArgs } from '../lib/args.js';

const { values: args } = scriptArgs({
  options: {
    dir: { type: 'string', default: join(tmpdir(), 'semigan-fashion-png') },
    dataset: { type: 'string', default: 'fashion-mnist' },
    iters: { type: 'string', default: '600' },
    epochs: { type: 'string', default: '1' },
    presets: { type: 'string' },
    'skip-routes': { type: 'boolean', default: false },
  },
});
const fmt = (v: number) => Math.round(v).toLocaleString('en-US');
const safe = (name: string) => name.replace(/[^A-Za-z0-9._-]+/g, '-');

async function writePngs(dir: string): Promise<void> {
  if (existsSync(join(dir, 'DONE'))) return void console.log(`# PNG files already in ${dir}`);
  const splits = loadBuiltin(args.dataset!);
  const t0 = performance.now();
  for (const [part, d] of [
    ['train', splits.train],
    ['test', splits.test],
  ] as const) {
    const folders = d.classes.map((c, k) => join(dir, part, `${k}-${safe(c)}`));
    for (const f of folders) mkdirSync(f, { recursive: true });
    await mapLimit(
      Array.from({ length: d.n }, (_, i) => i),
      16,
      async (i) => {
        const bytes = Buffer.from(d.x.gatherRaw([i]));
        const png = await sharp(bytes, { raw: { width: 28, height: 28, channels: 1 } })
          .toColourspace('b-w')
          .png()
          .toBuffer();
        writeFileSync(join(folders[d.y[i]], `${String(i).padStart(5, '0')}.png`), png);
      },
    );
  }
  writeFileSync(join(dir, 'DONE'), '');
  console.log(`# wrote ${args.dataset} as PNG files in ${dir} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

async function decodeThroughput(dir: string): Promise<void> {
  const list = scanImageFolder(join(dir, 'train'));
  const cacheDir = mkdtempSync(join(tmpdir(), 'semigan-bench-cache-'));
  try {
    console.log(`\n## Decoding ${fmt(list.entries.length)} PNG files (${join(dir, 'train')})\n`);
    console.log('| load | seconds | images/s |\n|---|---:|---:|');
    for (const label of ['first (empty decode cache)', 'second (cached)']) {
      const d = await decodeImages(list.entries, { size: null, channels: null, cacheDir });
      console.log(`| ${label}${d.cacheHit ? '' : ' '} | ${d.seconds.toFixed(2)} | ${fmt(d.kept.length / d.seconds)} |`);
    }
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
}

function config(dataset: string, extra: Partial<TrainConfig>): Readonly<TrainConfig> {
  return validateConfig({
    dataset,
    labels: 100,
    seed: 1,
    seedData: 1,
    epochs: Number(args.epochs),
    itersPerEpoch: Number(args.iters),
    backend: 'wasm',
    preset: 'mnist-mlp',
    out: mkdtempSync(join(tmpdir(), 'semigan-bench-run-')),
    ...extra,
  });
}

async function train(c: Readonly<TrainConfig>, data: TrainData): Promise<TrainResult & { secondsPerEpoch: number[] }> {
  const model = buildModelForConfig(c, data.train.shape, data.train.classes.length);
  const secondsPerEpoch: number[] = [];
  const trainer = new Trainer(c, model, data, {
    log: (l) => (/test acc/.test(l) ? console.log(`#   ${l.trim()}`) : undefined),
  });
  trainer.initialize();
  const t = performance.now();
  const result = await trainer.run();
  secondsPerEpoch.push((performance.now() - t) / 1000 / c.epochs);
  trainer.dispose();
  rmSync(c.out, { recursive: true, force: true });
  return { ...result, secondsPerEpoch };
}

async function sameSplitSameAccuracy(dir: string): Promise<void> {
  const idxConfig = config(args.dataset!, {});
  const pngConfig = config(`images:${join(dir, 'train')}`, { test: `images:${join(dir, 'test')}` });
  const idx = await loadData(idxConfig);
  const png = await loadData(pngConfig, (l) => console.log(`# ${l}`));
  console.log(
    `\n## Same split, same accuracy: idx files vs PNG folder (${args.iters} iterations x ${args.epochs} epoch(s), seed 1, 100 labels)\n`,
  );
  // PNG row ids are <k>-<class>/<idx index>.png: the split is the same if they name the same rows.
  const idxRow = (id: string) => Number(id.split('/').pop()!.slice(0, 5));
  const sameLabeled =
    idx.labeled.length === png.labeled.length &&
    png.labeled.every((r, i) => idxRow(idList(png.train.ids!)[r]) === idx.labeled[i]);
  const sameRows =
    idList(png.train.ids!).every((id, r) => idxRow(id) === r) &&
    idList(png.test.ids!).every((id, r) => idxRow(id) === r);
  const same = (a: Rows, b: Rows) => Buffer.from(a.gatherRaw(order(a.n))).equals(Buffer.from(b.gatherRaw(order(b.n))));
  const sameX = same(idx.train.x, png.train.x) && same(idx.test.x, png.test.x);
  const sameY = idx.train.y.every((v, i) => v === png.train.y[i]) && idx.test.y.every((v, i) => v === png.test.y[i]);
  console.log(
    `labeled rows identical: ${sameLabeled} (first: ${Array.from(png.labeled.subarray(0, 5), (r) => idList(png.train.ids!)[r]).join(', ')})`,
  );
  console.log(`row order identical: ${sameRows}; pixels identical: ${sameX}; labels identical: ${sameY}\n`);
  const a = await train(idxConfig, idx);
  const b = await train(pngConfig, png);
  console.log(
    '| route | test accuracy (EMA) | errors | accuracy (current weights) | s/epoch |\n|---|---:|---:|---:|---:|',
  );
  for (const [name, r] of [
    [`idx (--data ${args.dataset})`, a],
    ['PNG folder (--data images:...)', b],
  ] as const) {
    console.log(
      `| ${name} | ${(100 * r.accuracy).toFixed(2)}% | ${r.errors} | ${(100 * r.accuracyCurrent).toFixed(2)}% | ${r.secondsPerEpoch[0].toFixed(1)} |`,
    );
  }
  console.log(`\nidentical accuracy: ${a.errors === b.errors && a.errorsCurrent === b.errorsCurrent}`);
}

async function comparePresets(presets: string[]): Promise<void> {
  const data = await loadData(config(args.dataset!, {}));
  console.log(
    `\n## Presets on ${args.dataset}, 100 labels, seed 1, ${args.epochs} epoch(s) of ${args.iters} iterations\n`,
  );
  console.log(
    '| preset | parameters (D) | test accuracy (EMA) | accuracy (current) | s/epoch |\n|---|---:|---:|---:|---:|',
  );
  for (const preset of presets) {
    const c = config(args.dataset!, { preset });
    const model = buildModelForConfig(c, data.train.shape, data.train.classes.length);
    const d = model.createD(new Rng(1));
    const params = Object.values(d.vars).reduce((n, v) => n + v.size, 0);
    disposeParams(d);
    const r = await train(c, data);
    console.log(
      `| ${preset} | ${fmt(params)} | ${(100 * r.accuracy).toFixed(2)}% | ${(100 * r.accuracyCurrent).toFixed(2)}% | ${r.secondsPerEpoch[0].toFixed(1)} |`,
    );
  }
}

await initBackend('wasm');
mkdirSync(args.dir!, { recursive: true });
await writePngs(args.dir!);
await decodeThroughput(args.dir!);
if (!args['skip-routes']) await sameSplitSameAccuracy(args.dir!);
if (args.presets) await comparePresets(args.presets.split(','));
