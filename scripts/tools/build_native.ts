/**
 * Build the optional OpenBLAS matMul addon (src/native/), which lets the wasm backend's matMuls
 * use every core. Runs from `npm install` / `npm ci` (the prepare script) and by hand:
 *
 *   npm run build:native            # a one-line note and exit 0 when OpenBLAS is missing
 *   node dist/scripts/tools/build_native.js --strict   # exit 1 instead
 *
 * Needs OpenBLAS's headers and library (Debian: libopenblas-dev, which
 * scripts/install_system_deps.sh installs), a C compiler and Node's headers. Without the addon,
 * semigan runs exactly as before, on one wasm thread, and says so at start-up.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { PACKAGE_ROOT } from '../../src/package_paths.js';

const ROOT = PACKAGE_ROOT;
const NATIVE = join(ROOT, 'src', 'native');
const strict = process.argv.includes('--strict');

function give(reason: string): never {
  process.stderr.write(`semigan: native kernels addon not built (${reason}); the wasm backend will use 1 thread\n`);
  process.exit(strict ? 1 : 0);
}

/** npm's own node-gyp (npm sets npm_config_node_gyp in scripts), else the one npm ships. */
function nodeGyp(): string | null {
  const candidates = [
    process.env.npm_config_node_gyp,
    join(
      dirname(process.execPath),
      '..',
      'lib',
      'node_modules',
      'npm',
      'node_modules',
      'node-gyp',
      'bin',
      'node-gyp.js',
    ),
  ];
  return candidates.find((p): p is string => !!p && existsSync(p)) ?? null;
}

/** Node's headers where this node is installed (no download: machines may be offline). */
function nodeDir(): string | null {
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  const prefix = resolve(dirname(process.execPath), '..');
  return existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? prefix : null;
}

const gyp = nodeGyp();
if (!gyp) give('node-gyp not found; it ships with npm');
const dir = nodeDir();
if (!dir) give(`Node's headers not found next to ${process.execPath}`);
const run = spawnSync(process.execPath, [gyp, 'rebuild', `--nodedir=${dir}`, '--directory', NATIVE], {
  encoding: 'utf8',
});
if (run.status !== 0) {
  const out = `${run.stdout ?? ''}\n${run.stderr ?? ''}`;
  if (/cblas\.h.*No such file|cannot find -lopenblas/.test(out))
    give('OpenBLAS not installed: apt-get install libopenblas-dev');
  const firstError =
    out
      .split('\n')
      .find((l) => /error/i.test(l) && !/^gyp ERR! (stack|cwd|node -v|node-gyp -v|System|command)/.test(l)) ??
    `exit ${run.status}`;
  give(`node-gyp failed: ${firstError.trim()}`);
}
process.stderr.write(
  `semigan: built the native kernels addon (${join('src', 'native', 'build', 'Release', 'semigan_native.node')})\n`,
);
