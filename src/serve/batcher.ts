/**
 * Micro-batching: rows submitted by concurrent requests are queued and run through the model in
 * one call. The queue is flushed when `maxBatch` rows are waiting, or `maxWaitMs` after the
 * oldest waiting row arrived, whichever comes first; each submitter gets back exactly its own
 * rows' outputs, in order. A submission larger than `maxBatch` is split over several calls.
 *
 * The model must be batch-independent (a row's output does not depend on the other rows of its
 * batch): every exported semigan model is (docs/model_format.md).
 */

/** Runs n rows (row-major, `dim` values each) and returns n * outDim values, row-major. */
export type BatchFn = (x: Float32Array, n: number) => Float32Array | Promise<Float32Array>;

export interface BatcherOptions {
  /** Values per input row. */
  dim: number;
  /** Values per output row. */
  outDim: number;
  /** Most rows per model call (>= 1). */
  maxBatch: number;
  /** Longest a row waits for others before its batch runs (>= 0; 0 = run on the next turn of the event loop). */
  maxWaitMs: number;
  /**
   * The model answers asynchronously (onnxruntime): it gets its own copy of the rows, one call
   * runs at a time, and rows arriving meanwhile form the next batch.
   */
  asyncRun?: boolean;
}

export interface BatcherStats {
  /** Submissions (one per request) and rows received. */
  submissions: number;
  rows: number;
  /** Model calls, and how many of them ran more than one row. */
  batches: number;
  multiRowBatches: number;
  /** Most rows in one model call so far. */
  maxBatchRows: number;
  /** Rows waiting now. */
  queuedRows: number;
}

interface Pending {
  x: Float32Array;
  n: number;
  /** Rows handed to the model so far. */
  taken: number;
  /** Rows whose outputs are in `out`. */
  done: number;
  out: Float32Array;
  arrived: number;
  resolve: (out: Float32Array) => void;
  reject: (err: unknown) => void;
  failed: boolean;
}

interface Part {
  p: Pending;
  from: number;
  count: number;
}

export class MicroBatcher {
  private busy = false;
  private readonly queue: Pending[] = [];
  private queuedRows = 0;
  private timer: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;
  private readonly buffer: Float32Array;
  private readonly counters = { submissions: 0, rows: 0, batches: 0, multiRowBatches: 0, maxBatchRows: 0 };

  constructor(
    private readonly run: BatchFn,
    readonly opts: BatcherOptions,
  ) {
    if (!Number.isInteger(opts.maxBatch) || opts.maxBatch < 1)
      throw new RangeError(`maxBatch must be a positive integer, got ${opts.maxBatch}`);
    if (!(opts.maxWaitMs >= 0)) throw new RangeError(`maxWaitMs must be >= 0, got ${opts.maxWaitMs}`);
    this.buffer = new Float32Array(opts.maxBatch * opts.dim);
  }

  /** Queue n rows; resolves to their n * outDim outputs. */
  submit(x: Float32Array, n: number): Promise<Float32Array> {
    if (!Number.isInteger(n) || n < 1 || x.length !== n * this.opts.dim) {
      return Promise.reject(
        new RangeError(`submit: expected n >= 1 rows of ${this.opts.dim} values, got ${x.length} values for n = ${n}`),
      );
    }
    return new Promise((resolve, reject) => {
      this.queue.push({
        x,
        n,
        taken: 0,
        done: 0,
        out: new Float32Array(n * this.opts.outDim),
        arrived: performance.now(),
        resolve,
        reject,
        failed: false,
      });
      this.queuedRows += n;
      this.counters.submissions++;
      this.counters.rows += n;
      this.schedule();
    });
  }

  stats(): BatcherStats {
    return { ...this.counters, queuedRows: this.queuedRows };
  }

  private schedule(): void {
    if (this.queuedRows === 0 || this.immediate || this.busy) return;
    if (this.queuedRows >= this.opts.maxBatch || this.opts.maxWaitMs === 0) {
      if (this.timer) (clearTimeout(this.timer), (this.timer = null));
      this.immediate = setImmediate(() => {
        this.immediate = null;
        this.flush();
        this.schedule();
      });
      return;
    }
    if (this.timer) return;
    const wait = Math.max(0, this.queue[0].arrived + this.opts.maxWaitMs - performance.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      this.flush();
      this.schedule();
    }, wait);
  }

  /** One model call on up to maxBatch rows from the head of the queue. */
  private flush(): void {
    if (this.timer) (clearTimeout(this.timer), (this.timer = null));
    if (this.busy) return;
    const { dim, maxBatch } = this.opts;
    // Take rows, oldest first; a large submission may be split over several calls.
    const parts: Part[] = [];
    let rows = 0;
    for (const p of this.queue) {
      if (rows === maxBatch) break;
      if (p.taken === p.n) continue;
      const count = Math.min(p.n - p.taken, maxBatch - rows);
      this.buffer.set(p.x.subarray(p.taken * dim, (p.taken + count) * dim), rows * dim);
      parts.push({ p, from: p.taken, count });
      p.taken += count;
      rows += count;
    }
    if (rows === 0) return;
    this.queuedRows -= rows;
    while (this.queue.length && this.queue[0].taken === this.queue[0].n) this.queue.shift();
    this.counters.batches++;
    if (rows > 1) this.counters.multiRowBatches++;
    this.counters.maxBatchRows = Math.max(this.counters.maxBatchRows, rows);

    const x = this.opts.asyncRun ? this.buffer.slice(0, rows * dim) : this.buffer.subarray(0, rows * dim);
    let result: Float32Array | Promise<Float32Array>;
    try {
      result = this.run(x, rows);
    } catch (err) {
      this.fail(parts, err);
      return;
    }
    if (result instanceof Promise) {
      this.busy = true;
      result
        .then(
          (out) => this.deliver(parts, rows, out),
          (err) => this.fail(parts, err),
        )
        .finally(() => {
          this.busy = false;
          this.schedule();
        });
      return;
    }
    this.deliver(parts, rows, result);
  }

  private fail(parts: Part[], err: unknown): void {
    for (const { p } of parts) {
      if (p.failed) continue;
      p.failed = true;
      // Rows of a split submission still queued are dropped: the submission has failed.
      this.queuedRows -= p.n - p.taken;
      p.taken = p.n;
      p.reject(err);
    }
    this.queue.splice(0, this.queue.length, ...this.queue.filter((p) => p.taken < p.n));
  }

  private deliver(parts: Part[], rows: number, out: Float32Array): void {
    const { outDim } = this.opts;
    if (out.length !== rows * outDim) {
      this.fail(
        parts,
        new Error(`the model returned ${out.length} values for ${rows} rows, expected ${rows * outDim}`),
      );
      return;
    }
    let off = 0;
    for (const { p, from, count } of parts) {
      p.out.set(out.subarray(off * outDim, (off + count) * outDim), from * outDim);
      off += count;
      p.done += count;
      if (p.done === p.n && !p.failed) p.resolve(p.out);
    }
  }
}
