/**
 * Image bytes -> model input, as an exported model's metadata.preprocessing says
 * (docs/model_format.md): decode (any format sharp reads), auto-orient, composite alpha onto
 * black, fit inside height x width keeping the aspect ratio ("contain", padded with black,
 * lanczos3), convert to the model's channels, scale by 1/255, flatten row-major HWC.
 *
 * Fast path: a PNG that already has the model's size, 8 bits per sample, no palette, no
 * interlacing and no chunk that could change its colours (ICC profile, tRNS, EXIF) is decoded
 * here with zlib alone (tens of thousands per second for 28x28, against ~1-2 thousand through
 * sharp). It gives exactly sharp's values: compositing is floor(v * a / 255), as libvips does, and
 * an RGB image only becomes grayscale this way when R = G = B (otherwise sharp converts it).
 * Anything else goes through sharp.
 */
import sharp from 'sharp';
import { inflateSync } from 'node:zlib';
import { SemiganError } from '../errors.js';
import type { ClassifierMetadata, ImagePreprocessing } from '../export/metadata.js';

const inputError = (msg: string) => new SemiganError('SEMIGAN_ERR_INPUT', msg);

/** v / 255 as float32, for every byte (the same values as the built-in datasets' x). */
const SCALE = Float32Array.from({ length: 256 }, (_, v) => v / 255);

export interface ImageToInputOptions {
  /** Names the input in error messages (a file name, an upload's field). */
  name?: string;
  /** Allow the PNG fast path (default true). Off: always sharp (tests compare both). */
  fastPath?: boolean;
}

function imagePreprocessing(meta: ClassifierMetadata | ImagePreprocessing, name: string): ImagePreprocessing {
  const p = 'preprocessing' in meta ? meta.preprocessing : meta;
  if (p.type !== 'image') throw inputError(`${name}: this model takes ${p.type} input, not images`);
  return p;
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** Chunks that do not change what sharp decodes (checked against sharp in test/export.test.ts). */
const HARMLESS_CHUNKS = new Set(['IHDR', 'IDAT', 'IEND', 'pHYs', 'tEXt', 'zTXt', 'iTXt', 'tIME', 'gAMA', 'cHRM', 'sRGB', 'bKGD', 'sBIT']);
/** PNG colour type -> samples per pixel (8-bit, no palette). */
const PNG_CHANNELS: Record<number, number> = { 0: 1, 2: 3, 4: 2, 6: 4 };

export const isPng = (buf: Uint8Array) => buf.length >= 8 && PNG_SIGNATURE.equals(buf.subarray(0, 8));

/**
 * The PNG's 8-bit pixels as `channels` (1 or 3) samples per pixel, alpha composited onto black,
 * or null when the fast path does not apply (another size, bit depth, palette, interlacing, a
 * colour-changing chunk, RGB that is not gray for a 1-channel model, or any decoding problem:
 * sharp then decodes it, or reports the error).
 */
export function decodePngFast(buf: Uint8Array, width: number, height: number, channels: number): Uint8Array | null {
  if (!isPng(buf) || (channels !== 1 && channels !== 3)) return null;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let off = 8;
  let ihdr = false;
  let depth = 0;
  let samples = 0;
  const idat: Uint8Array[] = [];
  for (;;) {
    if (off + 12 > buf.length) return null;
    const len = view.getUint32(off);
    const type = String.fromCharCode(buf[off + 4], buf[off + 5], buf[off + 6], buf[off + 7]);
    const data = off + 8;
    if (data + len + 4 > buf.length) return null;
    if (!HARMLESS_CHUNKS.has(type)) return null;
    if (type === 'IHDR') {
      if (len !== 13) return null;
      const w = view.getUint32(data);
      const h = view.getUint32(data + 4);
      depth = buf[data + 8];
      samples = PNG_CHANNELS[buf[data + 9]] ?? 0;
      const interlace = buf[data + 12];
      if (w !== width || h !== height || depth !== 8 || samples === 0 || interlace !== 0) return null;
      ihdr = true;
    } else if (type === 'IDAT') {
      idat.push(buf.subarray(data, data + len));
    } else if (type === 'IEND') {
      break;
    }
    off = data + len + 4;
  }
  if (!ihdr || idat.length === 0) return null;
  let raw: Buffer;
  try {
    raw = inflateSync(idat.length === 1 ? idat[0] : Buffer.concat(idat));
  } catch {
    return null;
  }
  const stride = width * samples;
  if (raw.length !== height * (stride + 1)) return null;
  // Undo the per-row filters in place (bytes per pixel = samples at 8 bits).
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
        case 0: v = x; break;
        case 1: v = x + a; break;
        case 2: v = x + b; break;
        case 3: v = x + ((a + b) >> 1); break;
        case 4: {
          const p = a + b - c;
          const pa = Math.abs(p - a);
          const pb = Math.abs(p - b);
          const pc = Math.abs(p - c);
          v = x + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
          break;
        }
        default: return null;
      }
      px[row + i] = v & 0xff;
    }
  }
  // To the model's channels, compositing alpha onto black as libvips does: floor(v * a / 255).
  const n = width * height;
  const out = new Uint8Array(n * channels);
  const color = samples >= 3;
  const alpha = samples === 2 || samples === 4;
  for (let p = 0; p < n; p++) {
    const s = p * samples;
    const a = alpha ? px[s + samples - 1] : 255;
    if (color) {
      const r = px[s], g = px[s + 1], b = px[s + 2];
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

/** Any image sharp reads -> height x width x channels bytes (see the file comment). */
async function decodeWithSharp(buf: Buffer, p: ImagePreprocessing, name: string): Promise<Uint8Array> {
  let pipeline = sharp(buf)
    .rotate() // EXIF orientation
    .flatten({ background: { r: 0, g: 0, b: 0 } })
    .resize(p.width, p.height, { fit: 'contain', background: { r: 0, g: 0, b: 0, alpha: 1 }, kernel: 'lanczos3' });
  pipeline = p.channels === 1 ? pipeline.greyscale() : pipeline.toColourspace('srgb');
  let data: Buffer;
  let info: sharp.OutputInfo;
  try {
    ({ data, info } = await pipeline.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true }));
  } catch (e) {
    const why = (e as Error).message.replace(/\s+/g, ' ').trim();
    throw inputError(`${name}: cannot decode as an image (${why}); expected PNG, JPEG, WebP, GIF, TIFF, AVIF or SVG`);
  }
  if (info.width !== p.width || info.height !== p.height || info.channels !== p.channels) {
    throw inputError(`${name}: decoded to ${info.width}x${info.height}x${info.channels}, expected ${p.width}x${p.height}x${p.channels}`);
  }
  return data;
}

/**
 * Image bytes (PNG, JPEG, WebP, GIF, TIFF, AVIF, SVG...; any size and channel count) -> the
 * model's input: Float32Array of height * width * channels values in [0, 1], row-major HWC.
 * Undecodable bytes give a SemiganError naming the input.
 */
export async function imageToInput(buf: Buffer, meta: ClassifierMetadata | ImagePreprocessing, opts: ImageToInputOptions = {}): Promise<Float32Array> {
  const name = opts.name ?? 'input';
  const p = imagePreprocessing(meta, name);
  const pixels = (opts.fastPath !== false && decodePngFast(buf, p.width, p.height, p.channels)) || (await decodeWithSharp(buf, p, name));
  return scalePixels(pixels);
}

/** Bytes (0..255, row-major HWC) -> model input values (v / 255), as imageToInput scales them. */
export function scalePixels(pixels: Uint8Array): Float32Array {
  const x = new Float32Array(pixels.length);
  for (let i = 0; i < x.length; i++) x[i] = SCALE[pixels[i]];
  return x;
}
