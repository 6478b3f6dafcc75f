/**
 * The test suite (npm test): node --test over dist/test, with the system temp dir pointed at a
 * fresh folder that is removed afterwards, whatever the tests and the processes they start leave
 * in it.
 *
 *   node dist/scripts/tools/run_tests.js            # everything (CI)
 *   node dist/scripts/tools/run_tests.js --quick    # the developer loop: no browser, no child
 *                                                   # servers, no multi-epoch runs (npm run test:quick)
 *   node dist/scripts/tools/run_tests.js FILE...    # chosen files (dist/test/...js)
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { PACKAGE_ROOT } from '../../src/package_paths.js';

/** Files left out of --quick: each takes tens of seconds (a browser, child servers, real runs). */
const SLOW = [
  'viz/report.test.js',
  'serve/hostile_clients.test.js',
  'serve/server.test.js',
  'export/exporter.test.js',
  'export/onnx.test.js',
  'export/model_dir_integrity.test.js',
  'models/conv_models.test.js',
  'train/trainer.test.js',
  'train/run_safety.test.js',
  'train/techniques.test.js',
  'train/beyond_paper.test.js',
  'commands/own_data.test.js',
  'commands/sweep.test.js',
  'backend_threads.test.js',
];

const TEST_DIR = join(PACKAGE_ROOT, 'dist', 'test');
const all = (dir: string): string[] =>
  readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? all(p) : f.endsWith('.test.js') ? [p] : [];
  });

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const chosen = args.filter((a) => a !== '--quick');
const files = chosen.length
  ? chosen
  : quick
    ? all(TEST_DIR).filter((f) => !SLOW.includes(relative(TEST_DIR, f)))
    : [TEST_DIR + '/'];

const root = mkdtempSync(join(tmpdir(), 'semigan-tests-'));
let status = 1;
try {
  const r = spawnSync(process.execPath, ['--test', '--test-reporter=spec', ...files], {
    stdio: 'inherit',
    env: { ...process.env, TMPDIR: root },
  });
  status = r.status ?? 1;
} finally {
  rmSync(root, { recursive: true, force: true });
}
process.exit(status);
