/**
 * Image bytes -> model input, as an exported model's metadata.preprocessing says
 * (docs/model_format.md). The pipeline itself lives in data/images/pipeline.ts (training data goes
 * through the same one, so served inputs get exactly the pixels the model was trained on):
 * decode, auto-orient, composite alpha onto black, fit inside height x width ("contain", padded
 * with black, lanczos3), convert to the model's channels, scale by 1/255, flatten row-major HWC;
 * PNGs of the model's size take a zlib-only fast path with identical values.
 */
import { inputError } from '../errors.js';
import type { ClassifierMetadata, ImagePreprocessing } from './metadata.js';
import { decodeImageBuffer, ImageDecodeError, scalePixels } from '../data/images/pipeline.js';

export { decodePngFast, isPng, PngTooMuchData } from '../data/images/png.js';
export { scalePixels } from '../data/images/pipeline.js';

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

/**
 * Image bytes (PNG, JPEG, WebP, GIF, TIFF, AVIF, SVG...; any size and channel count) -> the
 * model's input: Float32Array of height * width * channels values in [0, 1], row-major HWC.
 * Undecodable bytes give a SemiganError naming the input.
 */
export async function imageToInput(
  buf: Buffer,
  meta: ClassifierMetadata | ImagePreprocessing,
  opts: ImageToInputOptions = {},
): Promise<Float32Array> {
  const name = opts.name ?? 'input';
  const p = imagePreprocessing(meta, name);
  try {
    const spec = {
      height: p.height,
      width: p.width,
      channels: p.channels as 1 | 3,
      ...(p.background ? { background: p.background } : {}),
    };
    return scalePixels(await decodeImageBuffer(buf, spec, { fastPath: opts.fastPath }));
  } catch (e) {
    if (e instanceof ImageDecodeError) throw inputError(`${name}: ${e.message}`);
    throw e;
  }
}
