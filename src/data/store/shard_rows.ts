/**
 * Rows read from .npy shards on disk (uint8 [rows, h, w, c] each), so memory grows with the batch,
 * not with the data. `prefetch` hands the rows of a coming batch to a reader thread
 * (./shard_reader_worker.ts), whose positional reads overlap the training step; `gather` takes
 * rows from the last few prefetched batches, and reads any other row synchronously.
 */
import { openSync, readSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { dataError } from '../../errors.js';
import { BYTE_SCALE, type Rows } from '../rows.js';
import type { ReadReply, ReadRequest, ReaderSetup } from './shard_reader_worker.js';

export interface ShardFile {
  path: string;
  /** Rows the shard holds. */
  rows: number;
  /** Byte offset of its first row (after the .npy header). */
  dataOffset: number;
}

/** Prefetched batches kept for gathering: the one being trained on and the ones read ahead. */
const KEPT_BATCHES = 4;

interface Fetched {
  /** row -> index of the row in `bytes` */
  at: Map<number, number>;
  bytes: Uint8Array;
}

export class ShardRows implements Rows {
  readonly kind = 'u8' as const;
  readonly onDisk = true;
  readonly n: number;
  /** First global row of each shard, and n at the end. */
  private readonly starts: Float64Array;
  private readonly fds: (number | undefined)[];
  private readonly scratch: Uint8Array;
  private fetched: Fetched[] = [];
  private worker: Worker | null = null;
  private nextId = 0;
  private readonly waiting = new Map<number, { resolve: () => void; reject: (e: Error) => void; rows: Int32Array }>();

  constructor(
    private readonly shards: readonly ShardFile[],
    readonly dim: number,
  ) {
    this.starts = new Float64Array(shards.length + 1);
    shards.forEach((s, i) => (this.starts[i + 1] = this.starts[i] + s.rows));
    this.n = this.starts[shards.length];
    this.fds = new Array(shards.length);
    this.scratch = new Uint8Array(dim);
  }

  get residentBytes(): number {
    return this.fetched.reduce((s, f) => s + f.bytes.byteLength, 0);
  }

  /** The shard holding global row r (binary search over the shard starts). */
  private shardOf(r: number): number {
    if (!(r >= 0 && r < this.n && Number.isInteger(r))) throw new Error(`row ${r} out of range 0..${this.n - 1}`); // a bug
    let lo = 0;
    let hi = this.shards.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid] <= r) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Row r's bytes: from a prefetched batch, else read now. */
  private rowBytes(r: number): Uint8Array {
    for (let k = this.fetched.length - 1; k >= 0; k--) {
      const f = this.fetched[k];
      const i = f.at.get(r);
      if (i !== undefined) return f.bytes.subarray(i * this.dim, (i + 1) * this.dim);
    }
    const s = this.shardOf(r);
    const shard = this.shards[s];
    const fd = (this.fds[s] ??= openSync(shard.path, 'r'));
    const at = shard.dataOffset + (r - this.starts[s]) * this.dim;
    const got = readSync(fd, this.scratch, 0, this.dim, at);
    if (got !== this.dim)
      throw dataError(`${shard.path}: ${got} bytes at offset ${at}, ${this.dim} expected: the shard is truncated`);
    return this.scratch;
  }

  gather(indices: ArrayLike<number>, out?: Float32Array): Float32Array {
    const { dim } = this;
    const dst = out ?? new Float32Array(indices.length * dim);
    for (let i = 0; i < indices.length; i++) {
      const src = this.rowBytes(indices[i]);
      const to = i * dim;
      for (let j = 0; j < dim; j++) dst[to + j] = BYTE_SCALE[src[j]];
    }
    return dst;
  }

  gatherRaw(indices: ArrayLike<number>): Uint8Array {
    const dst = new Uint8Array(indices.length * this.dim);
    for (let i = 0; i < indices.length; i++) dst.set(this.rowBytes(indices[i]), i * this.dim);
    return dst;
  }

  prefetch(indices: ArrayLike<number>): Promise<void> {
    const rows = Int32Array.from(indices);
    const shard = new Int32Array(rows.length);
    const row = new Int32Array(rows.length);
    for (let i = 0; i < rows.length; i++) {
      shard[i] = this.shardOf(rows[i]);
      row[i] = rows[i] - this.starts[shard[i]];
    }
    const worker = this.reader();
    const id = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject, rows });
      worker.postMessage({ id, shard, row } satisfies ReadRequest);
    });
  }

  private reader(): Worker {
    if (this.worker) return this.worker;
    const setup: ReaderSetup = {
      paths: this.shards.map((s) => s.path),
      dataOffsets: this.shards.map((s) => s.dataOffset),
      rowBytes: this.dim,
    };
    const worker = new Worker(new URL('./shard_reader_worker.js', import.meta.url), { workerData: setup });
    worker.unref(); // a run ends when training does, not when the reader is idle
    worker.on('message', (reply: ReadReply) => {
      const w = this.waiting.get(reply.id);
      if (!w) return;
      this.waiting.delete(reply.id);
      if (reply.error !== undefined) return w.reject(dataError(reply.error));
      const at = new Map<number, number>();
      w.rows.forEach((r, i) => at.set(r, i));
      this.fetched.push({ at, bytes: reply.bytes! });
      if (this.fetched.length > KEPT_BATCHES) this.fetched.shift();
      w.resolve();
    });
    worker.on('error', (e) => {
      for (const w of this.waiting.values()) w.reject(e);
      this.waiting.clear();
      this.worker = null;
    });
    this.worker = worker;
    return worker;
  }

  /** Stop the reader thread (tests; a run's process exit does it anyway). */
  async close(): Promise<void> {
    await this.worker?.terminate();
    this.worker = null;
  }
}
