/**
 * Imports in src/ run one way, down this order of layers (a file may import its own layer's
 * folder and anything below; a layer never imports one above it), and no files import each other
 * in a circle:
 *
 *   cli.ts > commands/ > serve/ > export/ > train/ (with the run directory) > eval/ (inference,
 *   metrics) > models/ > backend.ts > nn/ > viz/ > data/ > base (errors, fsutil, package_paths, rng, sharp, version)
 *
 * Read from the TypeScript sources, so a new file in a new folder fails until it has a place here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = resolve(fileURLToPath(new URL('../../src', import.meta.url)));

/** Layers from the top; each entry matches files by their path under src/. */
export const LAYERS: { name: string; match: (path: string) => boolean }[] = [
  { name: 'cli.ts', match: (p) => p === 'cli.ts' },
  { name: 'commands/', match: (p) => p.startsWith('commands/') },
  { name: 'serve/', match: (p) => p.startsWith('serve/') },
  { name: 'export/', match: (p) => p.startsWith('export/') },
  { name: 'train/', match: (p) => p.startsWith('train/') },
  { name: 'eval/', match: (p) => p.startsWith('eval/') },
  { name: 'models/', match: (p) => p.startsWith('models/') },
  { name: 'backend.ts', match: (p) => p === 'backend.ts' },
  { name: 'nn/', match: (p) => p.startsWith('nn/') },
  { name: 'viz/', match: (p) => p.startsWith('viz/') },
  { name: 'data/', match: (p) => p.startsWith('data/') },
  {
    name: 'base',
    match: (p) => ['errors.ts', 'fsutil.ts', 'package_paths.ts', 'rng.ts', 'sharp.ts', 'version.ts'].includes(p),
  },
];

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) return f === 'build' ? [] : sources(p);
    return p.endsWith('.ts') && !p.endsWith('.d.ts') ? [p] : [];
  });
}

/** Relative imports of a file (static, re-exports and import('...') with a literal), as src/ paths. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs = [
    ...text.matchAll(
      /(?:^|\n)\s*(?:import|export)\s[^;]*?\sfrom\s+'([^']+)'|import\(\s*'([^']+)'\s*\)|(?:^|\n)\s*import\s+'([^']+)'/g,
    ),
  ].map((m) => m[1] ?? m[2] ?? m[3]);
  return specs
    .filter((s) => s.startsWith('.'))
    .map((s) => relative(SRC, resolve(dirname(file), s)).replace(/\.js$/, '.ts'));
}

const layerOf = (path: string) => LAYERS.findIndex((l) => l.match(path));
const folderOf = (path: string) => (path.includes('/') ? path.slice(0, path.indexOf('/')) : path);

const files = sources(SRC).map((f) => relative(SRC, f));
const graph = new Map(files.map((f) => [f, importsOf(join(SRC, f))]));

test('every source file has a layer', () => {
  const homeless = files.filter((f) => layerOf(f) < 0);
  assert.deepEqual(homeless, [], `files outside every layer: ${homeless.join(', ')}`);
});

test('imports only go down the layers (or stay in the folder)', () => {
  const violations: string[] = [];
  for (const [from, targets] of graph) {
    for (const to of targets) {
      if (!graph.has(to)) {
        violations.push(`${from} imports ${to}, which does not exist`);
        continue;
      }
      const [lf, lt] = [layerOf(from), layerOf(to)];
      const sameRoom = lf === lt && (folderOf(from) === folderOf(to) || LAYERS[lf].name === 'base');
      if (lt < lf || (lt === lf && !sameRoom))
        violations.push(`${from} (${LAYERS[lf].name}) imports ${to} (${LAYERS[lt].name})`);
    }
  }
  assert.deepEqual(violations, []);
});

test('no import cycles between files', () => {
  const state = new Map<string, 'active' | 'done'>();
  const cycles: string[] = [];
  const visit = (f: string, path: string[]) => {
    if (state.get(f) === 'done') return;
    if (state.get(f) === 'active') {
      cycles.push([...path.slice(path.indexOf(f)), f].join(' -> '));
      return;
    }
    state.set(f, 'active');
    for (const t of graph.get(f) ?? []) if (graph.has(t)) visit(t, [...path, f]);
    state.set(f, 'done');
  };
  for (const f of files) visit(f, []);
  assert.deepEqual(cycles, []);
});

test('the checker sees imports: the trainer imports the run directory, the CLI the commands', () => {
  assert.ok(graph.get('train/trainer.ts')?.includes('train/run_dir.ts'));
  assert.ok(graph.get('cli.ts')?.includes('commands/train.ts'));
  assert.ok(files.length > 50, `only ${files.length} files found under ${SRC}`);
});
