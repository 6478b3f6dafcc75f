/**
 * A data spec names where examples come from: a built-in dataset (`mnist`, `fashion-mnist`), an
 * image folder (`images:DIR`), an image manifest (`manifest:FILE.csv`), Parquet files of encoded
 * images (`parquet:FILE_OR_DIR`) or a tabular CSV (`csv:FILE.csv`). `--data` and `--test` take one each.
 */
import { resolve } from 'node:path';
import { configError } from '../../errors.js';
import { BUILTIN_DATASETS, type BuiltinName } from './builtin.js';

export type DataSpec =
  | { kind: 'builtin'; name: BuiltinName }
  | { kind: 'images'; path: string }
  | { kind: 'manifest'; path: string }
  | { kind: 'parquet'; path: string }
  | { kind: 'csv'; path: string };

export const SPEC_KINDS = ['images', 'manifest', 'parquet', 'csv'] as const;
export const SPEC_HELP = `${BUILTIN_DATASETS.join(', ')}, images:DIR, manifest:FILE.csv, parquet:FILE_OR_DIR or csv:FILE.csv`;

export function parseDataSpec(spec: string, flag = '--data'): DataSpec {
  if ((BUILTIN_DATASETS as readonly string[]).includes(spec)) return { kind: 'builtin', name: spec as BuiltinName };
  const colon = spec.indexOf(':');
  const kind = colon > 0 ? spec.slice(0, colon) : '';
  const path = spec.slice(colon + 1);
  if (!(SPEC_KINDS as readonly string[]).includes(kind) || path === '') {
    throw configError(`${flag} ${JSON.stringify(spec)}: expected ${SPEC_HELP}`);
  }
  return { kind: kind as DataSpec['kind'] & string, path } as DataSpec;
}

/** The spec with its path made absolute, so a run can be evaluated or resumed from another directory. */
export function absoluteSpec(spec: string): string {
  const s = parseDataSpec(spec);
  return s.kind === 'builtin' ? spec : `${s.kind}:${resolve(s.path)}`;
}

export const isImageSpec = (s: DataSpec) => s.kind !== 'csv';
