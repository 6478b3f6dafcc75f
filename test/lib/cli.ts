/** Run the built CLI (dist/src/cli.js) as a child process, as a user would. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `node ARGS...` with `env` added to this process's environment. */
export function runNode(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => (stdout += b));
    child.stderr.on('data', (b) => (stderr += b));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

export const runCli = (args: string[], env: NodeJS.ProcessEnv = {}) => runNode([CLI, ...args], env);

export function ok(r: CliResult): CliResult {
  assert.equal(r.code, 0, `exit code ${r.code}; stderr:\n${r.stderr}`);
  return r;
}

/** A failed command: exit 1, its last stderr line `error: ...`, and no stack trace anywhere. */
export function cleanError(r: CliResult): string {
  assert.equal(r.code, 1, `expected exit 1; stdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /\n\s+at .+:\d+:\d+/, `a stack trace in:\n${r.stderr}`);
  const lines = r.stderr.split('\n').filter((l) => l.trim());
  const last = lines[lines.length - 1] ?? '';
  assert.match(last, /^error: /, `last stderr line: ${last}`);
  return last;
}
