/**
 * What an image file is, without decoding its pixels: size after auto-orientation, bands, format.
 * For `semigan data inspect` and for choosing a dataset's size and channels. Plain 8/16-bit PNGs
 * are read from their first bytes; everything else through sharp's metadata (headers only).
 */
import { open } from 'node:fs/promises';
import sharp from '../../sharp.js';
import { IMAGE_FORMATS_TEXT, ImageDecodeError, oneLine } from './pipeline.js';
import { DEFAULT_CONCURRENCY, mapLimit } from '../map_limit.js';
import { pngHeader } from './png.js';

export interface ImageProbe {
  /** After EXIF orientation, as decoding sees it. */
  width: number;
  height: number;
  /** Bands in the file, alpha included (e.g. 2 = gray + alpha, 4 = RGBA or CMYK). */
  bands: number;
  hasAlpha: boolean;
  /** The channels it decodes to without losing colour: 1 = grayscale, 3 = colour (palette images count as colour). */
  channels: 1 | 3;
  /** sharp's format name: png, jpeg, webp, gif, tiff, heif (AVIF), svg... */
  format: string;
}

const HEAD_BYTES = 64 * 1024;
/** probeImages' decode check shrinks to at most this many pixels a side as it decodes. */
const DECODE_CHECK_SIZE = 64;
const PNG_BANDS: Record<number, number> = { 0: 1, 2: 3, 4: 2, 6: 4 };
/** Chunks that make sharp report something else than IHDR says (rotation, added alpha). */
const PNG_SURPRISES = ['eXIf', 'tRNS', 'PLTE'];

/** The probe from a PNG's IHDR alone, or null when sharp must look (palette, tRNS, eXIf, not a PNG...). */
function probePngHead(head: Uint8Array): ImageProbe | null {
  const h = pngHeader(head);
  const bands = h ? PNG_BANDS[h.colorType] : undefined;
  if (!h || !bands || h.chunks.some((c) => PNG_SURPRISES.includes(c))) return null;
  const hasAlpha = bands === 2 || bands === 4;
  return {
    width: h.width,
    height: h.height,
    bands,
    hasAlpha,
    channels: bands - (hasAlpha ? 1 : 0) === 1 ? 1 : 3,
    format: 'png',
  };
}

async function probeWithSharp(input: string | Buffer): Promise<ImageProbe> {
  let m: sharp.Metadata;
  try {
    m = await sharp(input).metadata();
  } catch (e) {
    throw new ImageDecodeError(`cannot read as an image (${oneLine(e)}); expected ${IMAGE_FORMATS_TEXT}`);
  }
  const bands = m.channels;
  const hasAlpha = m.hasAlpha ?? false;
  return {
    width: m.autoOrient?.width ?? m.width,
    height: m.autoOrient?.height ?? m.height,
    bands,
    hasAlpha,
    channels: bands - (hasAlpha ? 1 : 0) === 1 ? 1 : 3,
    format: m.format,
  };
}

async function readHead(path: string): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(HEAD_BYTES);
    const { bytesRead } = await fh.read(buf, 0, HEAD_BYTES, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** Probe a whole file's bytes (throws ImageDecodeError like probeImageFile). */
export async function probeImageBuffer(buf: Buffer): Promise<ImageProbe> {
  return probePngHead(buf) ?? probeWithSharp(buf);
}

/**
 * Probe one file. Throws ImageDecodeError when its header is not an image's; a file whose pixels
 * are truncated or corrupt probes fine (only decoding finds that: see probeImages' `decode`).
 */
export async function probeImageFile(path: string): Promise<ImageProbe> {
  return probePngHead(await readHead(path)) ?? probeWithSharp(path);
}

export type ImageCheck = { ok: true; probe: ImageProbe } | { ok: false; error: string };
export type ProbeResult = { path: string } & ImageCheck;

/**
 * Probe one image, a file or its bytes; `decode: true` also decodes it fully, so truncated or
 * corrupt pixels show up as errors too (slower). Never throws for a bad image: the result
 * carries the reason. I/O errors (permissions) are reported the same way.
 */
export async function checkImage(src: string | Buffer, decode: boolean): Promise<ImageCheck> {
  try {
    const probe = typeof src === 'string' ? await probeImageFile(src) : await probeImageBuffer(src);
    if (decode) {
      try {
        // Every pixel is read (a truncated file fails), streamed through a shrink so memory stays
        // bounded whatever the image's size (a 16383x16383 decode would take 800 MB).
        await sharp(src).resize(DECODE_CHECK_SIZE, DECODE_CHECK_SIZE, { fit: 'inside' }).raw().toBuffer();
      } catch (e) {
        throw new ImageDecodeError(`cannot decode (${oneLine(e)})`);
      }
    }
    return { ok: true, probe };
  } catch (e) {
    return { ok: false, error: oneLine(e) };
  }
}

/** checkImage over many files, `concurrency` at a time. */
export async function probeImages(
  paths: readonly string[],
  opts: { concurrency?: number; decode?: boolean } = {},
): Promise<ProbeResult[]> {
  return mapLimit(paths, opts.concurrency ?? DEFAULT_CONCURRENCY, async (path) => ({
    path,
    ...(await checkImage(path, opts.decode ?? false)),
  }));
}
