/**
 * NumPy's .npy format (version 1.0) for uint8 arrays: what `numpy.load(path, mmap_mode="r")`
 * reads. The header is padded so the data starts at a multiple of 64 bytes, as numpy writes it.
 */

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY
/** Magic, version and header length: the fixed prefix every .npy starts with. */
const PREFIX = 10;
/** Headers past this are not ours (numpy's own are < 200 bytes for these arrays). */
const MAX_HEADER = 4096;

/** The header bytes of a C-ordered uint8 array of `shape`; the data follows right after. */
export function npyHeader(shape: readonly number[]): Buffer {
  const dict = `{'descr': '|u1', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const unpadded = PREFIX + dict.length + 1; // + '\n'
  const total = Math.ceil(unpadded / 64) * 64;
  const header = Buffer.alloc(total, 0x20);
  MAGIC.copy(header, 0);
  header[6] = 1; // version 1.0
  header[7] = 0;
  header.writeUInt16LE(total - PREFIX, 8);
  header.write(dict, PREFIX, 'latin1');
  header[total - 1] = 0x0a;
  return header;
}

export interface NpyLayout {
  shape: number[];
  /** Byte offset of the first value. */
  dataOffset: number;
}

/**
 * The shape and data offset of a uint8 .npy from its first bytes (at least the header); a
 * string saying what is wrong when it is not one.
 */
export function parseNpyHeader(head: Uint8Array): NpyLayout | string {
  const b = Buffer.from(head.buffer, head.byteOffset, head.byteLength);
  if (b.length < PREFIX || !b.subarray(0, 6).equals(MAGIC)) return 'not a .npy file (no \\x93NUMPY magic)';
  if (b[6] !== 1) return `.npy version ${b[6]}.${b[7]}, expected 1.0`;
  const len = b.readUInt16LE(8);
  if (len > MAX_HEADER || b.length < PREFIX + len) return `.npy header of ${len} bytes is truncated or too long`;
  const dict = b.toString('latin1', PREFIX, PREFIX + len);
  const descr = /'descr':\s*'([^']*)'/.exec(dict)?.[1];
  if (descr !== '|u1') return `.npy holds ${descr ?? 'an unknown type'}, expected uint8 ('|u1')`;
  if (!/'fortran_order':\s*False/.test(dict)) return '.npy is Fortran-ordered, expected C order';
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(dict)?.[1];
  if (shapeText === undefined) return '.npy header has no shape';
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map(Number);
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) return `.npy shape (${shapeText}) is not a list of sizes`;
  return { shape, dataOffset: PREFIX + len };
}

/** Bytes to read to be sure to hold any header this module writes or accepts. */
export const NPY_HEAD_BYTES = PREFIX + MAX_HEADER;
