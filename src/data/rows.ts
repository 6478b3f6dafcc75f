/**
 * Where a dataset's rows live, behind one interface: in memory as bytes (images: scaled to
 * [0, 1] only when a batch is gathered, so a pixel costs 1 byte, not 4) or as float32 (tabular
 * features), in chunks so no single typed array caps the row count; or on disk in .npy shards
 * (./store/shard_rows.ts), read a batch at a time. Every store gathers the same float32 values.
 */

export type RowKind = 'u8' | 'f32';

export interface Rows {
  readonly n: number;
  /** Values per row (h * w * c for images). */
  readonly dim: number;
  /** 'u8': bytes, gathered as v / 255; 'f32': float32, gathered as stored. */
  readonly kind: RowKind;
  /** Bytes of row data this store holds in memory (the plan line; disk stores: their read buffers). */
  readonly residentBytes: number;
  /** Rows are read from disk: worth a prefetch. */
  readonly onDisk: boolean;
  /** Rows `indices` as float32, row-major, into `out` (allocated when not given). */
  gather(indices: ArrayLike<number>, out?: Float32Array): Float32Array;
  /**
   * Make rows `indices` ready for a later gather; resolves when they are. Memory stores are
   * always ready; disk stores read them on a reader thread while the caller computes.
   */
  prefetch(indices: ArrayLike<number>): Promise<void>;
  /** Rows `indices` as raw values (bytes for 'u8', floats for 'f32'), for writers and tests. */
  gatherRaw(indices: ArrayLike<number>): Uint8Array | Float32Array;
  /** Release what reading needs (a disk store's reader thread). */
  close(): Promise<void>;
}

/** v / 255 as float32 for every byte: the values the float path always produced. */
export const BYTE_SCALE = Float32Array.from({ length: 256 }, (_, v) => v / 255);

/** Bytes of one chunk of in-memory rows: far below every engine's typed-array limit. */
export const CHUNK_BYTES = 1 << 30;

/** Rows start..end-1 as float32 (evaluation reads the test set in order). */
export function rowRange(rows: Rows, start: number, end: number, out?: Float32Array): Float32Array {
  const idx = new Int32Array(Math.max(0, end - start));
  for (let i = 0; i < idx.length; i++) idx[i] = start + i;
  return rows.gather(idx, out);
}

/** Every row as one float32 array (small sets only: tests, the test split, reports). */
export const allRows = (rows: Rows): Float32Array => rowRange(rows, 0, rows.n);

const checkOut = (rows: Rows, count: number, out?: Float32Array): Float32Array => {
  const need = count * rows.dim;
  if (!out) return new Float32Array(need);
  if (out.length < need) throw new Error(`gather: out holds ${out.length} values, ${need} needed`); // a bug
  return out;
};

const checkRow = (rows: Rows, r: number) => {
  if (!(r >= 0 && r < rows.n && Number.isInteger(r))) throw new Error(`row ${r} out of range 0..${rows.n - 1}`); // a bug
};

/** Rows held in memory in chunks of whole rows. */
class MemoryRows implements Rows {
  readonly residentBytes: number;
  readonly onDisk = false;
  private readonly perChunk: number;

  constructor(
    readonly kind: RowKind,
    readonly dim: number,
    readonly n: number,
    private readonly chunks: (Uint8Array | Float32Array)[],
    perChunk: number,
  ) {
    this.perChunk = perChunk;
    this.residentBytes = chunks.reduce((s, c) => s + c.byteLength, 0);
  }

  gather(indices: ArrayLike<number>, out?: Float32Array): Float32Array {
    const dst = checkOut(this, indices.length, out);
    const { dim, perChunk, chunks } = this;
    for (let i = 0; i < indices.length; i++) {
      const r = indices[i];
      checkRow(this, r);
      const chunk = chunks[Math.floor(r / perChunk)];
      const from = (r % perChunk) * dim;
      const to = i * dim;
      if (this.kind === 'f32') dst.set(chunk.subarray(from, from + dim), to);
      else for (let j = 0; j < dim; j++) dst[to + j] = BYTE_SCALE[chunk[from + j]];
    }
    return dst;
  }

  gatherRaw(indices: ArrayLike<number>): Uint8Array | Float32Array {
    const { dim, perChunk, chunks } = this;
    const dst = this.kind === 'u8' ? new Uint8Array(indices.length * dim) : new Float32Array(indices.length * dim);
    for (let i = 0; i < indices.length; i++) {
      const r = indices[i];
      checkRow(this, r);
      const from = (r % perChunk) * dim;
      dst.set(chunks[Math.floor(r / perChunk)].subarray(from, from + dim), i * dim);
    }
    return dst;
  }

  prefetch(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** Rows per chunk of `dim` values of `bytesPer` bytes each. */
const rowsPerChunk = (dim: number, bytesPer: number, chunkBytes = CHUNK_BYTES) =>
  Math.max(1, Math.floor(chunkBytes / (dim * bytesPer)));

/** Rows over one array of n * dim values (bytes: pixels; floats: features), shared, not copied. */
export function memoryRows(values: Uint8Array | Float32Array, dim: number, chunkBytes = CHUNK_BYTES): Rows {
  if (dim < 1 || values.length % dim !== 0) throw new Error(`${values.length} values are not rows of ${dim}`); // a bug
  const n = values.length / dim;
  const kind: RowKind = values instanceof Uint8Array ? 'u8' : 'f32';
  const per = rowsPerChunk(dim, values.BYTES_PER_ELEMENT, chunkBytes);
  const chunks: (Uint8Array | Float32Array)[] = [];
  for (let s = 0; s < Math.max(1, n); s += per) chunks.push(values.subarray(s * dim, Math.min(n, s + per) * dim));
  return new MemoryRows(kind, dim, n, chunks, per);
}

/**
 * Builds in-memory rows a block at a time, never one array of all of them: a source of any
 * size appends rows, then `finish()` gives the Rows.
 */
export class RowsBuilder {
  private readonly per: number;
  private readonly chunks: (Uint8Array | Float32Array)[] = [];
  private current: Uint8Array | Float32Array;
  private filled = 0; // rows in `current`
  private n = 0;

  constructor(
    readonly kind: RowKind,
    readonly dim: number,
    expectedRows = 0,
    chunkBytes = CHUNK_BYTES,
  ) {
    this.per = rowsPerChunk(dim, kind === 'u8' ? 1 : 4, chunkBytes);
    this.current = this.alloc(Math.min(this.per, Math.max(1, expectedRows)));
  }

  private alloc(rows: number) {
    return this.kind === 'u8' ? new Uint8Array(rows * this.dim) : new Float32Array(rows * this.dim);
  }

  /** Append whole rows (values.length a multiple of dim). */
  append(values: Uint8Array | Float32Array): void {
    const { dim } = this;
    let rows = values.length / dim;
    let at = 0;
    while (rows > 0) {
      if (this.filled * dim === this.current.length) {
        if (this.filled === this.per) {
          this.chunks.push(this.current);
          this.current = this.alloc(this.per);
          this.filled = 0;
        } else {
          // grow the open chunk (doubling, up to a full chunk)
          const bigger = this.alloc(Math.min(this.per, Math.max(this.filled * 2, rows)));
          bigger.set(this.current);
          this.current = bigger;
        }
      }
      const take = Math.min(rows, this.current.length / dim - this.filled);
      this.current.set(values.subarray(at * dim, (at + take) * dim), this.filled * dim);
      this.filled += take;
      this.n += take;
      at += take;
      rows -= take;
    }
  }

  finish(): Rows {
    const last = this.current.subarray(0, this.filled * this.dim);
    return new MemoryRows(this.kind, this.dim, this.n, [...this.chunks, last], this.per);
  }
}

/** Rows `index` of `base`, in that order, without copying them. */
export function rowsView(base: Rows, index: Int32Array): Rows {
  if (base instanceof ViewRows)
    return new ViewRows(
      base.base,
      Int32Array.from(index, (i) => base.index[i]),
    );
  return new ViewRows(base, index);
}

class ViewRows implements Rows {
  readonly n: number;
  readonly dim: number;
  readonly kind: RowKind;
  constructor(
    readonly base: Rows,
    readonly index: Int32Array,
  ) {
    this.n = index.length;
    this.dim = base.dim;
    this.kind = base.kind;
  }
  get residentBytes(): number {
    return this.base.residentBytes;
  }
  get onDisk(): boolean {
    return this.base.onDisk;
  }
  private map(indices: ArrayLike<number>): Int32Array {
    const out = new Int32Array(indices.length);
    for (let i = 0; i < indices.length; i++) {
      checkRow(this, indices[i]);
      out[i] = this.index[indices[i]];
    }
    return out;
  }
  gather(indices: ArrayLike<number>, out?: Float32Array): Float32Array {
    return this.base.gather(this.map(indices), out);
  }
  gatherRaw(indices: ArrayLike<number>): Uint8Array | Float32Array {
    return this.base.gatherRaw(this.map(indices));
  }
  prefetch(indices: ArrayLike<number>): Promise<void> {
    return this.base.prefetch(this.map(indices));
  }
  close(): Promise<void> {
    return this.base.close();
  }
}
