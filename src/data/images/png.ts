/**
 * PNG without sharp, for the common case only: 8-bit, no palette, no interlacing, no chunk that
 * could change colours. Decoding such a file with zlib alone runs at tens of thousands of 28x28
 * images per second, against ~1-2 thousand through sharp, and gives exactly sharp's values:
 * compositing is floor(v * a / 255) as libvips does, and RGB only becomes 1-channel here when
 * R = G = B (otherwise sharp's grayscale conversion applies). Anything else returns null and goes
 * through sharp. test/export/exporter.test.ts checks the equality against sharp.
 */
import { inflateSync } from 'node:zlib';

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** Chunks that do not change what sharp decodes. */
const HARMLESS_CHUNKS = new Set([
  'IHDR',
  'IDAT',
  'IEND',
  'pHYs',
  'tEXt',
  'zTXt',
  'iTXt',
  'tIME',
  'gAMA',
  'cHRM',
  'sRGB',
  'bKGD',
  'sBIT',
]);
/** PNG colour type -> samples per pixel (8-bit, no palette). */
const PNG_CHANNELS: Record<number, number> = { 0: 1, 2: 3, 4: 2, 6: 4 };

/** A PNG whose compressed pixels inflate beyond what its header allows. */
export class PngTooMuchData extends Error {}

export const isPng = (buf: Uint8Array) => buf.length >= 8 && PNG_SIGNATURE.equals(buf.subarray(0, 8));

interface Chunk {
  type: string;
  data: Uint8Array;
}

/** The chunks up to IEND (or up to `stopAt`), or null if the chunk structure is broken. */
function pngChunks(buf: Uint8Array, stopAt?: string): Chunk[] | null {
  if (!isPng(buf)) return null;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const chunks: Chunk[] = [];
  for (let off = 8; ;) {
    if (off + 12 > buf.length) return null;
    const len = view.getUint32(off);
    const type = String.fromCharCode(buf[off + 4], buf[off + 5], buf[off + 6], buf[off + 7]);
    const data = off + 8;
    // The chunk we stop at need not be complete (a probe reads only the file's first bytes).
    if (type === stopAt) return [...chunks, { type, data: buf.subarray(data, data + len) }];
    if (data + len + 4 > buf.length) return null;
    chunks.push({ type, data: buf.subarray(data, data + len) });
    if (type === 'IEND') return chunks;
    off = data + len + 4;
  }
}

export interface PngHeader {
  width: number;
  height: number;
  bitDepth: number;
  /** 0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA. */
  colorType: number;
  interlaced: boolean;
  /** The chunk types before the first IDAT (eXIf may rotate, tRNS adds alpha, PLTE...). */
  chunks: string[];
}

/** IHDR and the chunk types before the pixels; null if `buf` does not start with a readable PNG header up to IDAT. */
export function pngHeader(buf: Uint8Array): PngHeader | null {
  const chunks = pngChunks(buf, 'IDAT');
  const ihdr = chunks?.[0];
  if (!chunks || ihdr?.type !== 'IHDR' || ihdr.data.length !== 13) return null;
  const v = new DataView(ihdr.data.buffer, ihdr.data.byteOffset, 13);
  return {
    width: v.getUint32(0),
    height: v.getUint32(4),
    bitDepth: ihdr.data[8],
    colorType: ihdr.data[9],
    interlaced: ihdr.data[12] !== 0,
    chunks: chunks.map((c) => c.type),
  };
}

/** Undo the per-row filters (bytes per pixel = samples at 8 bits); null on an unknown filter type. */
function unfilter(raw: Uint8Array, width: number, height: number, samples: number): Uint8Array | null {
  const stride = width * samples;
  const px = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const src = y * (stride + 1) + 1;
    const row = y * stride;
    const prev = row - stride;
    for (let i = 0; i < stride; i++) {
      const a = i >= samples ? px[row + i - samples] : 0;
      const b = y > 0 ? px[prev + i] : 0;
      const c = y > 0 && i >= samples ? px[prev + i - samples] : 0;
      const x = raw[src + i];
      let v: number;
      switch (filter) {
        case 0:
          v = x;
          break;
        case 1:
          v = x + a;
          break;
        case 2:
          v = x + b;
          break;
        case 3:
          v = x + ((a + b) >> 1);
          break;
        case 4: {
          const p = a + b - c;
          const pa = Math.abs(p - a);
          const pb = Math.abs(p - b);
          const pc = Math.abs(p - c);
          v = x + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
          break;
        }
        default:
          return null;
      }
      px[row + i] = v & 0xff;
    }
  }
  return px;
}

/**
 * The PNG's 8-bit pixels as `channels` (1 or 3) samples per pixel, alpha composited onto black,
 * or null when the fast path does not apply (another size, bit depth, palette, interlacing, a
 * colour-changing chunk, RGB that is not gray for a 1-channel output, transparency with a
 * background other than black, or any decoding problem: sharp then decodes it, or reports the error).
 * Throws PngTooMuchData for pixel data that inflates beyond the header's size.
 */
export function decodePngFast(
  buf: Uint8Array,
  width: number,
  height: number,
  channels: number,
  background: readonly [number, number, number] = [0, 0, 0],
): Uint8Array | null {
  if (channels !== 1 && channels !== 3) return null;
  const chunks = pngChunks(buf);
  if (!chunks || chunks[0].type !== 'IHDR' || chunks.some((c) => !HARMLESS_CHUNKS.has(c.type))) return null;
  const head = pngHeader(buf);
  const samples = head ? (PNG_CHANNELS[head.colorType] ?? 0) : 0;
  if (
    !head ||
    head.width !== width ||
    head.height !== height ||
    head.bitDepth !== 8 ||
    samples === 0 ||
    head.interlaced
  )
    return null;
  const alpha = samples === 2 || samples === 4;
  // libvips' flatten onto another colour rounds differently: leave it to sharp.
  if (alpha && background.some((v) => v !== 0)) return null;
  const idat = chunks.filter((c) => c.type === 'IDAT').map((c) => c.data);
  if (idat.length === 0) return null;
  // The header fixes the inflated size; stop there, so a few KB that inflate to gigabytes (a
  // decompression bomb) cost no more than a proper image.
  const size = height * (width * samples + 1);
  let raw: Buffer;
  try {
    raw = inflateSync(idat.length === 1 ? idat[0] : Buffer.concat(idat), { maxOutputLength: size });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE')
      throw new PngTooMuchData(
        `its pixel data inflates to more than the ${size} bytes a ${width}x${height} PNG holds (a damaged file or a decompression bomb); refused`,
      );
    return null;
  }
  if (raw.length !== size) return null;
  const px = unfilter(raw, width, height, samples);
  if (!px) return null;
  // To the output channels, compositing alpha onto black as libvips does: floor(v * a / 255).
  const n = width * height;
  const out = new Uint8Array(n * channels);
  const color = samples >= 3;
  for (let p = 0; p < n; p++) {
    const s = p * samples;
    const a = alpha ? px[s + samples - 1] : 255;
    if (color) {
      const r = px[s],
        g = px[s + 1],
        b = px[s + 2];
      if (channels === 1) {
        if (r !== g || g !== b) return null; // real colour: sharp's grayscale conversion applies
        out[p] = alpha ? Math.floor((r * a) / 255) : r;
      } else {
        out[3 * p] = alpha ? Math.floor((r * a) / 255) : r;
        out[3 * p + 1] = alpha ? Math.floor((g * a) / 255) : g;
        out[3 * p + 2] = alpha ? Math.floor((b * a) / 255) : b;
      }
    } else {
      const v = alpha ? Math.floor((px[s] * a) / 255) : px[s];
      if (channels === 1) out[p] = v;
      else out[3 * p] = out[3 * p + 1] = out[3 * p + 2] = v;
    }
  }
  return out;
}
