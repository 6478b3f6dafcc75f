/**
 * A 32x32 colour image folder from real photographs, for timing conv presets on colour data
 * (docs/speed.md): 32x32 crops of scikit-image's colour sample photos (Debian: python3-skimage;
 * astronaut, cat, coffee, Hubble deep field, IHC stain, motorcycle, retina, rocket), one class
 * per photo, each crop taken at 1, 1/2 or 1/4 of the photo's size. Train crops come from the
 * left 80% of each (scaled) photo, test crops from the right 20%, so no pixel is in both.
 *
 *   npx tsc -p . && node dist/scripts/bench/photo_patches.js --out /tmp/photos32 [--train 50000] [--test 10000]
 *   node dist/src/cli.js train --data images:/tmp/photos32/train --test images:/tmp/photos32/test --labels-per-class 10 --epochs 1
 *
 * Writes OUT/{train,test}/<k>-<name>/<i>.png; prints what it wrote.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { positiveIntOption, scriptArgs } from '../lib/args.js';
import { Rng } from '../../src/rng.js';

const { values } = scriptArgs({
  options: {
    out: { type: 'string', default: '/tmp/photos32' },
    from: { type: 'string', default: '/usr/lib/python3/dist-packages/skimage/data' },
    train: { type: 'string', default: '50000' },
    test: { type: 'string', default: '10000' },
    seed: { type: 'string', default: '1' },
  },
});
const PHOTOS = [
  'astronaut.png',
  'chelsea.png',
  'coffee.png',
  'hubble_deep_field.jpg',
  'ihc.png',
  'motorcycle_left.png',
  'retina.jpg',
  'rocket.jpg',
];
const SIZE = 32;
const SCALES = [1, 0.5, 0.25];
const TRAIN_SHARE = 0.8;

type Raw = { data: Buffer; width: number; height: number };

async function scaled(path: string): Promise<Raw[]> {
  const meta = await sharp(path).metadata();
  return Promise.all(
    SCALES.map(async (s) => {
      const { data, info } = await sharp(path)
        .removeAlpha()
        .toColourspace('srgb')
        .resize(Math.round(meta.width! * s), Math.round(meta.height! * s))
        .raw()
        .toBuffer({ resolveWithObject: true });
      return { data, width: info.width, height: info.height };
    }),
  );
}

/** A 32x32 RGB crop at (x, y). */
function crop(img: Raw, x: number, y: number): Buffer {
  const out = Buffer.alloc(SIZE * SIZE * 3);
  for (let r = 0; r < SIZE; r++)
    img.data.copy(out, r * SIZE * 3, ((y + r) * img.width + x) * 3, ((y + r) * img.width + x + SIZE) * 3);
  return out;
}

async function main(): Promise<void> {
  const rng = new Rng(positiveIntOption(values, 'seed'));
  const counts = { train: positiveIntOption(values, 'train'), test: positiveIntOption(values, 'test') };
  const photos = await Promise.all(PHOTOS.map((p) => scaled(join(values.from!, p))));
  const t0 = performance.now();
  for (const split of ['train', 'test'] as const) {
    const dirs = PHOTOS.map((p, k) => join(values.out!, split, `${k}-${p.replace(/\.\w+$/, '')}`));
    for (const d of dirs) mkdirSync(d, { recursive: true });
    for (let i = 0; i < counts[split]; i++) {
      const k = i % PHOTOS.length;
      const img = photos[k][rng.int(SCALES.length)];
      const cut = Math.floor(img.width * TRAIN_SHARE);
      const [x0, x1] = split === 'train' ? [0, cut - SIZE] : [cut, img.width - SIZE];
      const x = x0 + rng.int(x1 - x0 + 1);
      const y = rng.int(img.height - SIZE + 1);
      await sharp(crop(img, x, y), { raw: { width: SIZE, height: SIZE, channels: 3 } })
        .png()
        .toFile(join(dirs[k], `${i}.png`));
    }
    console.log(`${split}: ${counts[split]} PNGs in ${PHOTOS.length} classes under ${join(values.out!, split)}`);
  }
  console.log(`written in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
