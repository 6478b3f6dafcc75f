import { existsSync, readFileSync, statSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { atomicWriteFile } from '../fsutil.js';
import { SemiganError } from '../errors.js';

/**
 * One self-contained binary file per run: "SGCK" | uint32 header length | JSON header |
 * tensor bytes (little-endian, 4-byte aligned). The header holds everything that is not a
 * tensor (config, epoch, RNG state, data summary); the tensors are D, G, the EMA, both Adam
 * states and the current epoch's minibatch orders. Written atomically, so a run killed at any
 * moment leaves the previous complete checkpoint.
 */
export type CheckpointArray = Float32Array | Int32Array;

export interface StoredTensor {
  shape: number[];
  data: CheckpointArray;
}

export interface Checkpoint<M = Record<string, unknown>> {
  meta: M;
  tensors: Record<string, StoredTensor>;
}

interface HeaderEntry {
  name: string;
  dtype: 'float32' | 'int32';
  shape: number[];
  offset: number; // bytes from the start of the data section
  length: number; // elements
  crc32?: number; // of the tensor's bytes (format 2)
}

const MAGIC = 'SGCK';
/** 2: a CRC-32 per tensor, checked on read, so flipped or overwritten bytes are refused. Format 1 is still read. */
const FORMAT_VERSION = 2;

export function encodeCheckpoint(ckpt: Checkpoint<unknown>): Buffer {
  const entries: HeaderEntry[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(ckpt.tensors)) {
    const dtype = t.data instanceof Int32Array ? 'int32' : 'float32';
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    entries.push({ name, dtype, shape: t.shape, offset, length: t.data.length, crc32: crc32(bytes) });
    offset += t.data.length * 4;
  }
  const header = Buffer.from(JSON.stringify({ format: FORMAT_VERSION, meta: ckpt.meta, tensors: entries }));
  const pad = (4 - ((8 + header.length) % 4)) % 4;
  const out = Buffer.alloc(8 + header.length + pad + offset);
  out.write(MAGIC, 0, 'latin1');
  out.writeUInt32LE(header.length + pad, 4);
  header.copy(out, 8);
  out.fill(0x20, 8 + header.length, 8 + header.length + pad); // JSON-safe padding (spaces)
  const dataStart = 8 + header.length + pad;
  for (const [i, t] of Object.values(ckpt.tensors).entries()) {
    const bytes = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    bytes.copy(out, dataStart + entries[i].offset);
  }
  return out;
}

export function decodeCheckpoint<M>(buf: Buffer, path: string): Checkpoint<M> {
  const bad = (what: string) =>
    new SemiganError('SEMIGAN_ERR_RUN_DIR', `${path}: not a readable semigan checkpoint (${what})`);
  if (buf.length < 8 || buf.toString('latin1', 0, 4) !== MAGIC) throw bad(`expected the magic "${MAGIC}"`);
  const headerLen = buf.readUInt32LE(4);
  if (8 + headerLen > buf.length) throw bad(`header of ${headerLen} bytes but the file has ${buf.length}`);
  let header: { format: number; meta: M; tensors: HeaderEntry[] };
  try {
    header = JSON.parse(buf.toString('utf8', 8, 8 + headerLen));
  } catch {
    throw bad('header is not valid JSON');
  }
  if (header.format !== 1 && header.format !== FORMAT_VERSION)
    throw bad(`format ${header.format}, this semigan reads formats 1 and ${FORMAT_VERSION}`);
  if (!Array.isArray(header.tensors)) throw bad('no tensor list in the header');
  const dataStart = 8 + headerLen;
  const tensors: Record<string, StoredTensor> = {};
  for (const e of header.tensors) {
    const lengthOk = Number.isInteger(e.length) && e.length >= 0 && Number.isInteger(e.offset) && e.offset >= 0;
    if (!lengthOk || !Array.isArray(e.shape) || e.shape.reduce((a, b) => a * b, 1) !== e.length)
      throw bad(`tensor ${e.name}: shape ${JSON.stringify(e.shape)} does not hold ${e.length} values`);
    const end = dataStart + e.offset + e.length * 4;
    if (end > buf.length) throw bad(`tensor ${e.name} ends at byte ${end} but the file has ${buf.length} (truncated)`);
    // Copy out so the arrays are 4-byte aligned whatever the Buffer's pool offset is.
    const bytes = buf.subarray(dataStart + e.offset, end);
    if (header.format >= 2 && crc32(bytes) !== e.crc32)
      throw bad(`tensor ${e.name} does not match its checksum: the file was damaged; resume from a copy or start over`);
    const aligned = new ArrayBuffer(bytes.length);
    new Uint8Array(aligned).set(bytes);
    tensors[e.name] = {
      shape: e.shape,
      data: e.dtype === 'int32' ? new Int32Array(aligned) : new Float32Array(aligned),
    };
  }
  return { meta: header.meta, tensors };
}

export async function writeCheckpoint(path: string, ckpt: Checkpoint<unknown>): Promise<void> {
  await atomicWriteFile(path, encodeCheckpoint(ckpt));
}

export function readCheckpoint<M>(path: string): Checkpoint<M> {
  if (!existsSync(path)) throw new SemiganError('SEMIGAN_ERR_RUN_DIR', `${path}: no such checkpoint`);
  if (!statSync(path).isFile())
    throw new SemiganError(
      'SEMIGAN_ERR_RUN_DIR',
      `${path} is not a file; expected the run's checkpoint (remove it, or start over with --overwrite)`,
    );
  return decodeCheckpoint<M>(readFileSync(path), path);
}
