/**
 * Build the optional OpenBLAS matMul addon (src/native/), which lets the wasm backend's matMuls
 * use every core. Runs from `npm install` / `npm ci` (the prepare script) and by hand:
 *
 *   npm run build:native            # a one-line note and exit 0 when OpenBLAS is missing
 *   node dist/scripts/tools/build_native.js --strict   # exit 1 instead
 *   node dist/scripts/tools/build_native.js --if-stale # only when the addon is missing or older
 *       than its sources, silent when there is nothing to do (npm start and npm test run this,
 *       so OpenBLAS installed after `npm install` is picked up by the next start or test run)
 *
 * Needs OpenBLAS's headers and library (Debian: libopenblas-openmp-dev, which
 * scripts/install_system_deps.sh installs), a C compiler and Node's headers. Without the addon,
 * semigan runs exactly as before, on one wasm thread, and says so at start-up.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { PACKAGE_ROOT } from '../../src/package_paths.js';

const ROOT = PACKAGE_ROOT;
const NATIVE = join(ROOT, 'src', 'native');
const strict = process.argv.includes('--strict');
const ifStale = process.argv.includes('--if-stale');
const ADDON = join(NATIVE, 'build', 'Release', 'semigan_native.node');
/** Where Debian's and most distributions' OpenBLAS put cblas.h. */
const CBLAS_HEADERS = [
  '/usr/include/cblas.h',
  '/usr/include/openblas/cblas.h',
  '/usr/include/x86_64-linux-gnu/cblas.h',
  '/usr/include/aarch64-linux-gnu/cblas.h',
];

const NATIVE_SOURCES = ['semigan_native.c', 'semigan_conv.c', 'semigan_conv.h', 'binding.gyp'];
const mtime = (p: string) => (existsSync(p) ? statSync(p).mtimeMs : -1);
if (ifStale) {
  const built = mtime(ADDON);
  const sources = Math.max(...NATIVE_SOURCES.map((f) => mtime(join(NATIVE, f))));
  if (built >= sources) process.exit(0); // up to date
  // Missing and no OpenBLAS to build it with: the start-up line already says so, once.
  if (built < 0 && !CBLAS_HEADERS.some((h) => existsSync(h))) process.exit(0);
}

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
    give(
      'OpenBLAS not installed: run scripts/install_system_deps.sh as root, or apt-get install libopenblas-openmp-dev',
    );
  const firstError =
    out
      .split('\n')
      .find((l) => /error/i.test(l) && !/^gyp ERR! (stack|cwd|node -v|node-gyp -v|System|command)/.test(l)) ??
    `exit ${run.status}`;
  give(`node-gyp failed: ${firstError.trim()}`);
}
const convs = existsSync('/usr/include/oneapi/dnnl/dnnl.h')
  ? 'convs on oneDNN'
  : 'convs on im2col + OpenBLAS; scripts/install_system_deps.sh adds oneDNN';
process.stderr.write(
  `semigan: built the native kernels addon (${join('src', 'native', 'build', 'Release', 'semigan_native.node')}; ${convs})\n`,
);
