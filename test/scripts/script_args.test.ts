import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { PACKAGE_ROOT } from '../../src/package_paths.js';

const SCRIPTS = join(PACKAGE_ROOT, 'dist', 'scripts');

function run(script: string, args: string[]) {
  return spawnSync(process.execPath, [join(SCRIPTS, script), ...args], { encoding: 'utf8', timeout: 60_000 });
}

test('a benchmark script answers --help with its options and defaults, and exits 0', () => {
  const r = run('bench/vs_peer.js', ['--help']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^usage: node .*vs_peer\.js \[options\]\n/);
  assert.match(r.stdout, /^ {2}--iters <value> {2}\(default: 50\)$/m);
  assert.match(r.stdout, /^ {2}--before {2}\(default: false\)$/m);
});

test('an unknown option, a bad number and a missing argument are one line naming it, exit 2, no stack trace', () => {
  const cases: [string, string[], RegExp][] = [
    ['bench/vs_peer.js', ['--bogus'], /^vs_peer\.js: Unknown option '--bogus' \(--help lists the options\)\n$/],
    [
      'bench/vs_peer.js',
      ['--iters', 'x'],
      /^vs_peer\.js: --iters must be a positive integer; got x \(--help lists the options\)\n$/,
    ],
    ['experiments/budget_floor.js', ['--only', 'nope'], /^budget_floor\.js: --only: unknown run nope; known: .*\n$/],
    ['bench/engines.js', [], /^engines\.js: usage: engines\.js MODEL_DIR .*\n$/],
  ];
  for (const [script, args, expected] of cases) {
    const r = run(script, args);
    assert.equal(r.status, 2, `${script} ${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, expected);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
});

test('every script that reads options does so through scriptArgs (no bare parseArgs)', () => {
  const sources = join(PACKAGE_ROOT, 'scripts');
  const offenders = readdirSync(sources, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts') && f !== join('lib', 'args.ts'))
    .filter((f) => /\bparseArgs\(/.test(readFileSync(join(sources, f), 'utf8')));
  assert.deepEqual(offenders, []);
});
