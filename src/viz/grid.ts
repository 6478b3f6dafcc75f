/**
 * Tile images (e.g. generator samples) into one PNG.
 *
 * Layout, for `rows` x `cols` cells of h x w pixels separated and surrounded by `pad` pixels:
 *   width  = cols * (w + pad) + pad
 *   height = rows * (h + pad) + pad
 *   image i goes to cell (r, c) = (floor(i / cols), i % cols), top-left pixel at
 *   (x, y) = (pad + c * (w + pad), pad + r * (h + pad)).
 * Cells without an image and the padding are GRID_BACKGROUND.
 */
import sharp from '../sharp.js';
import { atomicWriteFile } from '../fsutil.js';

/** Dark grey rather than black, so cell borders stay visible around MNIST's black backgrounds. */
export const GRID_BACKGROUND = 40;

export interface GridOptions {
  /** Default: enough rows for the images, at most 10. */
  rows?: number;
  /** Default: min(10, number of images). */
  cols?: number;
  /** Pixels between and around cells. Default 2. */
  pad?: number;
  /** Upscale the whole grid by this integer factor, nearest neighbour (3: a 28x28 digit is 84x84). Default 1. */
  scale?: number;
}

/** The grid's pixel size and cell count for `n` images of shape [h, w, c]; exported for tests and callers. */
export function gridLayout(n: number, shape: [number, number, number], opts: GridOptions = {}) {
  const [h, w] = shape;
  const pad = opts.pad ?? 2;
  const cols = opts.cols ?? Math.max(1, Math.min(10, n));
  const rows = opts.rows ?? Math.max(1, Math.min(10, Math.ceil(n / cols)));
  for (const [k, v] of Object.entries({ rows, cols }))
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`grid ${k} must be a positive integer, got ${v}`);
  if (!Number.isInteger(pad) || pad < 0) throw new RangeError(`grid pad must be a non-negative integer, got ${pad}`);
  return { rows, cols, pad, width: cols * (w + pad) + pad, height: rows * (h + pad) + pad };
}

/**
 * Write `images` ([n, h*w*c] row-major, values in [0, 1], c = 1 or 3) as a PNG grid of the first
 * rows*cols images. Values are clipped to [0, 1] and scaled to 0..255 with rounding.
 */
export async function writeImageGrid(
  path: string,
  images: Float32Array,
  shape: [number, number, number],
  opts: GridOptions = {},
): Promise<void> {
  const [h, w, c] = shape;
  if (c !== 1 && c !== 3) throw new RangeError(`writeImageGrid: channels must be 1 or 3, got ${c}`);
  const dim = h * w * c;
  if (dim === 0 || images.length % dim !== 0) {
    throw new RangeError(`writeImageGrid: ${images.length} values is not a whole number of ${h}x${w}x${c} images`);
  }
  const n = images.length / dim;
  const { rows, cols, pad, width, height } = gridLayout(n, shape, opts);

  const pixels = Buffer.alloc(width * height * c, GRID_BACKGROUND);
  const shown = Math.min(n, rows * cols);
  for (let i = 0; i < shown; i++) {
    const x0 = pad + (i % cols) * (w + pad);
    const y0 = pad + Math.floor(i / cols) * (h + pad);
    for (let y = 0; y < h; y++) {
      const src = i * dim + y * w * c;
      const dst = ((y0 + y) * width + x0) * c;
      for (let j = 0; j < w * c; j++) {
        const v = images[src + j];
        // NaN (a diverged generator) renders as 0 rather than throwing.
        pixels[dst + j] = v > 0 ? Math.round(Math.min(v, 1) * 255) : 0;
      }
    }
  }

  const scale = opts.scale ?? 1;
  if (!Number.isInteger(scale) || scale < 1)
    throw new RangeError(`grid scale must be a positive integer, got ${scale}`);
  let img = sharp(pixels, { raw: { width, height, channels: c } });
  if (scale > 1) img = img.resize(width * scale, height * scale, { kernel: 'nearest' });
  const png = await img.png().toBuffer();
  await atomicWriteFile(path, png);
}
