/**
 * Training progress: a bar redrawn in place on a terminal, periodic plain lines otherwise (logs,
 * CI, pipes), where carriage returns would leave garbage.
 *
 *   epoch 3/10 [########............] 412/600 38s<17s 0.09s/it loss_lab 0.012 loss_unl 0.451
 */

/** The subset of a write stream we use; process.stderr fits, and so does a test fake. */
export interface ProgressStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressOptions {
  /** Iterations in this run of the bar (e.g. batches per epoch). */
  total: number;
  /** Prefix, e.g. "epoch 3/10". */
  label: string;
  /** Default process.stderr, so stdout stays clean for results. */
  stream?: ProgressStream;
  /** Non-TTY only: print every `interval` iterations. Default: about every 10% of total. */
  interval?: number;
  /** Clock in ms; injectable for tests. */
  now?: () => number;
  /** Appended to each line, e.g. the whole run's time left ("run 1h02m left"); null: nothing. */
  suffix?: (i: number, secondsPerIteration: number) => string | null;
}

export interface Progress {
  /** `i` = iterations completed so far (1..total); stats are printed in insertion order. */
  tick(i: number, stats: Record<string, number>): void;
  /** End the bar line and print `summaryLine`. */
  done(summaryLine: string): void;
}

const BAR_WIDTH = 20;
/** Redraw at most ~5 times per second: faster is unreadable and costs terminal I/O. */
const REDRAW_MS = 200;
/** Non-TTY: a line at least this often, whatever the interval (slow iterations: conv-large). */
const PLAIN_EVERY_MS = 60_000;

export function createProgress(opts: ProgressOptions): Progress {
  const stream = opts.stream ?? process.stderr;
  const now = opts.now ?? (() => performance.now());
  const tty = stream.isTTY === true;
  const total = Math.max(0, opts.total);
  const interval = Math.max(1, Math.round(opts.interval ?? total / 10));
  const start = now();
  let lastDraw = -Infinity;
  let lastPlain = start;
  let barShown = false;

  const line = (i: number, stats: Record<string, number>) => {
    const elapsed = (now() - start) / 1000;
    const perIt = i > 0 ? elapsed / i : NaN;
    const parts = [opts.label];
    if (tty) {
      const filled = total > 0 ? Math.min(BAR_WIDTH, Math.round((i / total) * BAR_WIDTH)) : 0;
      parts.push(`[${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}]`);
    }
    parts.push(`${i}/${total}`, `${formatDuration(elapsed)}<${formatDuration(perIt * (total - i))}`, formatRate(perIt));
    for (const [k, v] of Object.entries(stats)) parts.push(`${k} ${formatStat(v)}`);
    const extra = opts.suffix?.(i, perIt);
    if (extra) parts.push(extra);
    return parts.join(' ');
  };

  return {
    tick(i, stats) {
      if (tty) {
        const t = now();
        if (t - lastDraw < REDRAW_MS && i < total) return;
        lastDraw = t;
        let text = line(i, stats);
        // A wrapped line cannot be redrawn with \r, so cut it to the terminal width.
        if (stream.columns && text.length >= stream.columns) text = text.slice(0, stream.columns - 1);
        stream.write(`\r${text}\x1b[K`);
        barShown = true;
      } else if (i % interval === 0 || i === total || now() - lastPlain >= PLAIN_EVERY_MS) {
        lastPlain = now();
        stream.write(line(i, stats) + '\n');
      }
    },
    done(summaryLine) {
      if (barShown) stream.write('\r\x1b[K');
      barShown = false;
      stream.write(summaryLine + '\n');
    },
  };
}

/** 7s, 1m12s, 2h05m; "?" when unknown. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

function formatRate(secPerIt: number): string {
  if (!Number.isFinite(secPerIt)) return '?s/it';
  return secPerIt < 0.1 ? `${(secPerIt * 1000).toFixed(1)}ms/it` : `${secPerIt.toFixed(2)}s/it`;
}

/** Three decimals fit losses and accuracies; tiny or huge values switch to exponent form. */
function formatStat(v: number): string {
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(2) : v.toFixed(3);
}
