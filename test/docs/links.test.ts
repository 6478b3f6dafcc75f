/**
 * Every relative link in README.md and docs/*.md lands: the file exists, and a #anchor names a
 * heading of the target as GitHub renders its id (lowercase, punctuation dropped, spaces to
 * hyphens, -1, -2 ... for repeats).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));

/** GitHub's heading ids of a markdown file (headings inside code fences do not count). */
export function headingIds(markdown: string): Set<string> {
  const ids = new Set<string>();
  const seen = new Map<string, number>();
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (/^\s*```/.test(line)) fenced = !fenced;
    const m = !fenced && /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const text = m[1].replace(/`/g, '').replace(/\[([^\]]*)\]\([^)]*\)/g, '$1');
    const base = text
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    ids.add(n ? `${base}-${n}` : base);
  }
  return ids;
}

/** [text](target) links outside code fences and inline code. */
function links(markdown: string): { target: string; line: number }[] {
  const out: { target: string; line: number }[] = [];
  let fenced = false;
  markdown.split('\n').forEach((line, i) => {
    if (/^\s*```/.test(line)) fenced = !fenced;
    if (fenced) return;
    const plain = line.replace(/`[^`]*`/g, '');
    for (const m of plain.matchAll(/\]\(([^)\s]+)\)/g)) out.push({ target: m[1], line: i + 1 });
  });
  return out;
}

test('headingIds follows GitHub: punctuation dropped, spaces to hyphens, repeats numbered', () => {
  const ids = headingIds(
    '# A b\n## 6. Your own data (`scripts/bench/own_data.ts`)\n## A b\n```\n# not a heading\n```\n',
  );
  assert.deepEqual([...ids], ['a-b', '6-your-own-data-scriptsbenchown_datats', 'a-b-1']);
});

test('README.md and docs/: every relative link and #anchor lands', () => {
  const files = [
    'README.md',
    ...readdirSync(join(REPO, 'docs'))
      .filter((f) => f.endsWith('.md'))
      .map((f) => join('docs', f)),
  ];
  const broken: string[] = [];
  for (const file of files) {
    const text = readFileSync(join(REPO, file), 'utf8');
    for (const { target, line } of links(text)) {
      if (/^[a-z]+:/i.test(target)) continue; // http:, https:, mailto:
      const [path, anchor] = target.split('#');
      const dest = path ? resolve(dirname(join(REPO, file)), decodeURIComponent(path)) : join(REPO, file);
      if (!existsSync(dest)) {
        broken.push(`${file}:${line}: ${target} (no such file)`);
        continue;
      }
      if (
        anchor &&
        statSync(dest).isFile() &&
        dest.endsWith('.md') &&
        !headingIds(readFileSync(dest, 'utf8')).has(anchor)
      )
        broken.push(`${file}:${line}: ${target} (no heading with that id)`);
    }
  }
  assert.deepEqual(broken, []);
});
