import { readFileSync } from 'node:fs';

/** semigan's version, from package.json (two levels up from dist/src/). */
export const SEMIGAN_VERSION: string = JSON.parse(
  readFileSync(new URL('../../package.json', import.meta.url), 'utf8'),
).version;
