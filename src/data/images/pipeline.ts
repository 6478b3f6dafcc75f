/**
 * Image bytes -> height x width x channels bytes, the one pipeline shared by training data and
 * served models (docs/model_format.md): decode (any format sharp reads), auto-orient, composite
 * alpha onto the background (black by default), fit inside height x width keeping the aspect
 * ratio ("contain", padded with the background, lanczos3), convert to 1 (sharp's grayscale) or 3
 * (sRGB) channels. PNGs the zlib fast path handles (./png.ts) skip sharp, with identical bytes.
 *
 * sharp flattens a gray image onto background[0] only (its first band), as it does in serving.
 */
import sharp from '../../sharp.js';
import { decodePngFast, PngTooMuchData } from './png.js';

export type Rgb = [number, number, number];

export interface ImageSpec {
  height: number;
  width: number;
  channels: 1 | 3;
  /** Alpha and padding colour, 0..255 each; default black. */
  background?: Readonly<Rgb>;
}

/** Why bytes could not become pixels; callers prefix the input's name and pick the error code. */
export class ImageDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ImageDecodeError';
  }
}

export const IMAGE_FORMATS_TEXT = 'PNG, JPEG, WebP, GIF, TIFF, AVIF or SVG';

/** sharp's message on one line (libvips' can span several). */
export const oneLine = (e: unknown) => (e instanceof Error ? e.message : String(e)).replace(/\s+/g, ' ').trim();

async function decodeWithSharp(buf: Buffer, spec: ImageSpec): Promise<Uint8Array> {
  const [r, g, b] = spec.background ?? [0, 0, 0];
  let pipeline = sharp(buf)
    .rotate() // EXIF orientation
    .flatten({ background: { r, g, b } })
    .resize(spec.width, spec.height, { fit: 'contain', background: { r, g, b, alpha: 1 }, kernel: 'lanczos3' });
  pipeline = spec.channels === 1 ? pipeline.greyscale() : pipeline.toColourspace('srgb');
  let data: Buffer;
  let info: sharp.OutputInfo;
  try {
    ({ data, info } = await pipeline.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true }));
  } catch (e) {
    throw new ImageDecodeError(`cannot decode as an image (${oneLine(e)}); expected ${IMAGE_FORMATS_TEXT}`);
  }
  if (info.width !== spec.width || info.height !== spec.height || info.channels !== spec.channels) {
    throw new ImageDecodeError(
      `decoded to ${info.width}x${info.height}x${info.channels}, expected ${spec.width}x${spec.height}x${spec.channels}`,
    );
  }
  return data;
}

/**
 * Any image sharp reads -> spec.height * spec.width * spec.channels bytes, row-major HWC.
 * Throws ImageDecodeError when the bytes are not a readable image. `fastPath: false` forces sharp
 * (tests compare both paths).
 */
export async function decodeImageBuffer(
  buf: Buffer,
  spec: ImageSpec,
  opts: { fastPath?: boolean } = {},
): Promise<Uint8Array> {
  let fast: Uint8Array | null = null;
  try {
    if (opts.fastPath !== false) fast = decodePngFast(buf, spec.width, spec.height, spec.channels, spec.background);
  } catch (e) {
    if (e instanceof PngTooMuchData) throw new ImageDecodeError(e.message);
    throw e;
  }
  return fast ?? decodeWithSharp(buf, spec);
}

/** v / 255 as float32, for every byte (the same values as the built-in datasets' x). */
const SCALE = Float32Array.from({ length: 256 }, (_, v) => v / 255);

/** Bytes (0..255, row-major HWC) -> model input values (v / 255), written into `out` if given. */
export function scalePixels(pixels: Uint8Array, out = new Float32Array(pixels.length)): Float32Array {
  for (let i = 0; i < pixels.length; i++) out[i] = SCALE[pixels[i]];
  return out;
}
