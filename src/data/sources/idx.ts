/**
 * IDX files (the MNIST / Fashion-MNIST format): big-endian header `0 0 type ndims`, then ndims
 * uint32 sizes, then the payload. Only type 0x08 (unsigned byte) exists in the datasets we read.
 * Files may be gzipped (as distributed); we detect that by content, not by name.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { dataError } from '../../errors.js';

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

export interface IdxImages {
  n: number;
  rows: number;
  cols: number;
  /** [n, rows, cols] row-major. */
  pixels: Uint8Array;
}

const TYPE_UBYTE = 0x08;
const hex32 = (v: number) => '0x' + (v >>> 0).toString(16).padStart(8, '0');

function readMaybeGzip(path: string): Uint8Array {
  if (!existsSync(path)) throw dataError(`${path}: file not found (expected an IDX file)`);
  if (!statSync(path).isFile()) throw dataError(`${path}: is not a file (expected an IDX file)`);
  const raw = readFileSync(path);
  if (raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b) {
    try {
      return gunzipSync(raw);
    } catch (e) {
      throw dataError(`${path}: starts like gzip but could not be decompressed (${(e as Error).message})`);
    }
  }
  return raw;
}

export function readIdx(path: string): IdxArray {
  const buf = readMaybeGzip(path);
  if (buf.length < 4) {
    throw dataError(`${path}: ${buf.length} bytes, too short for an IDX header (expected at least 4)`);
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const magic = view.getUint32(0);
  const ndims = buf[3];
  if (buf[0] !== 0 || buf[1] !== 0 || buf[2] !== TYPE_UBYTE || ndims === 0) {
    throw dataError(
      `${path}: wrong magic number ${hex32(magic)}, expected 0x00000801 (labels) or 0x00000803 (images)` +
        ` (unsigned-byte IDX)`,
    );
  }
  const headerLen = 4 + 4 * ndims;
  if (buf.length < headerLen) {
    throw dataError(`${path}: truncated header, expected ${headerLen} bytes for ${ndims} dims, found ${buf.length}`);
  }
  const dims: number[] = [];
  for (let i = 0; i < ndims; i++) dims.push(view.getUint32(4 + 4 * i));
  const expected = dims.reduce((a, b) => a * b, 1);
  const found = buf.length - headerLen;
  if (found !== expected) {
    const what = found < expected ? 'truncated' : 'trailing bytes';
    throw dataError(`${path}: ${what}: dims [${dims.join(', ')}] need ${expected} payload bytes, found ${found}`);
  }
  return { dims, data: buf.subarray(headerLen) };
}

function expectDims(path: string, dims: number[], want: number, what: string): void {
  if (dims.length !== want) {
    throw dataError(`${path}: expected ${what} (${want} dims), found ${dims.length} dims [${dims.join(', ')}]`);
  }
}

export function readIdxImages(path: string): IdxImages {
  const { dims, data } = readIdx(path);
  expectDims(path, dims, 3, 'an image file [n, rows, cols]');
  return { n: dims[0], rows: dims[1], cols: dims[2], pixels: data };
}

export function readIdxLabels(path: string): Uint8Array {
  const { dims, data } = readIdx(path);
  expectDims(path, dims, 1, 'a label file [n]');
  return data;
}
