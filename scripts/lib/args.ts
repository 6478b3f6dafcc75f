import { basename, relative } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** Stop a script on bad input: one line naming the script and what was expected, no stack trace. */
export function failUsage(message: string): never {
  process.stderr.write(`${basename(process.argv[1] ?? 'script')}: ${message} (--help lists the options)\n`);
  process.exit(2);
}

/**
 * node:util's parseArgs for a script's command line, plus `--help` (the options with their
 * defaults) and a one-line error for an unknown or malformed option instead of a stack trace.
 */
export function scriptArgs<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  const args = config.args ?? process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    const options = Object.entries(config.options ?? {}).map(([name, o]) => {
      const value = o.type === 'boolean' ? '' : ` <${o.multiple ? 'value...' : 'value'}>`;
      return `  --${name}${value}${o.default === undefined ? '' : `  (default: ${String(o.default)})`}`;
    });
    const positionals = config.allowPositionals ? ' [args...]' : '';
    process.stdout.write(
      `usage: node ${relative(process.cwd(), process.argv[1] ?? 'script')} [options]${positionals}\n${options.join('\n')}\n`,
    );
    process.exit(0);
  }
  try {
    return parseArgs(config);
  } catch (e) {
    failUsage((e as Error).message.split('\n')[0].replace(/\. To specify a positional argument.*$/, ''));
  }
}

/** A benchmark option that must be a positive integer (parseArgs gives strings). */
export function positiveIntOption(values: Record<string, unknown>, name: string): number {
  const v = Number(values[name]);
  if (!Number.isInteger(v) || v <= 0) failUsage(`--${name} must be a positive integer; got ${values[name]}`);
  return v;
}
