import * as tf from '@tensorflow/tfjs';
import { filterGradNative, nativeConvFor } from './native_conv.js';

/**
 * Conv2D / Conv2DBackpropInput (conv2dTranspose) gradients made of ops the wasm backend has.
 *
 * tfjs-backend-wasm 4.22 has no Conv2DBackpropFilter kernel, so tfjs's own gradients fail there
 * for every conv filter; and its Conv2DBackpropInput kernel is a plain loop, ~10x slower than
 * the XNNPACK Conv2D (measured here: 3.7 s vs 0.37 s for a 3x3 32->64 conv on [300,28,28,32]).
 * Both gradients below are XNNPACK convolutions plus cheap copies:
 *
 * - filter: dW[i,j,c,o] = sum_{n,y,x} xpad[n, s*y+i, s*x+j, c] dy[n,y,x,o] is itself a conv: of x
 *   as [C, H, W, N] (channels as the batch, the batch as channels) with dy as the filter
 *   [OH, OW, N, OC], dilated by the stride. On that conv it measured 1.1 s against 1.5 s for
 *   im2col (patch slices + concat + one matMul) and 1.9 s for per-offset matMuls accumulated;
 *   at stride 2 the gap is 4x. Splitting the batch into chunks only made it slower.
 * - input: dx is conv2dTranspose(dy, W), done sub-pixel: for each of the stride^2 output phases
 *   a stride-1 conv of dy with that phase's taps of the flipped W, then interleaved.
 *
 * Only the geometry (padding before row 0 / column 0, output size) of the forward conv is used,
 * so 'same', 'valid', numeric and explicit pads and dimRoundingMode all work. NCHW is transposed
 * to NHWC (the wasm backend has no NCHW conv anyway). Dilations > 1 are refused, as tfjs does.
 */
type Pad = tf.Conv2DAttrs['pad'];
type Rounding = tf.Conv2DAttrs['dimRoundingMode'];
type DataFormat = tf.Conv2DAttrs['dataFormat'];
type Strides = tf.Conv2DAttrs['strides'];
type Shape4 = [number, number, number, number];

/** The forward conv's sizes (NHWC names) and where its padded input starts. */
interface Geometry {
  n: number;
  h: number;
  w: number;
  c: number;
  kh: number;
  kw: number;
  oc: number;
  oh: number;
  ow: number;
  sh: number;
  sw: number;
  top: number;
  left: number;
}

function geometry(
  xShape: Shape4,
  filterShape: Shape4,
  strides: Strides,
  pad: Pad,
  rounding: Rounding,
  format: DataFormat,
): Geometry {
  const i = tf.backend_util.computeConv2DInfo(
    xShape,
    filterShape,
    strides,
    1,
    pad,
    rounding,
    false,
    tf.backend_util.convertConv2DDataFormat(format),
  );
  return {
    n: i.batchSize,
    h: i.inHeight,
    w: i.inWidth,
    c: i.inChannels,
    kh: i.filterHeight,
    kw: i.filterWidth,
    oc: i.outChannels,
    oh: i.outHeight,
    ow: i.outWidth,
    sh: i.strideHeight,
    sw: i.strideWidth,
    top: i.padInfo.top,
    left: i.padInfo.left,
  };
}

const toNHWC = (t: tf.Tensor4D, format: DataFormat): tf.Tensor4D => (format === 'NCHW' ? t.transpose([0, 2, 3, 1]) : t);
const fromNHWC = (t: tf.Tensor4D, format: DataFormat): tf.Tensor4D =>
  format === 'NCHW' ? t.transpose([0, 3, 1, 2]) : t;

/**
 * Rows [r0, r0+rows) and columns [c0, c0+cols) of an NHWC tensor, sliced as [N, H, W*C] so that
 * the wasm Slice kernel (JavaScript, one copy per innermost run) copies whole rows at a time.
 */
function window(t: tf.Tensor4D, r0: number, rows: number, c0: number, cols: number): tf.Tensor4D {
  const [n, h, w, c] = t.shape;
  if (r0 === 0 && c0 === 0 && rows === h && cols === w) return t;
  return t
    .reshape([n, h, w * c])
    .slice([0, r0, c0 * c], [n, rows, cols * c])
    .reshape<tf.Tensor4D>([n, rows, cols, c]);
}

function assertDilationsOne(dilations: number | number[] | undefined, kernel: string): void {
  if (dilations !== undefined && !tf.backend_util.tupleValuesAreOne(dilations))
    throw new Error(
      `${kernel} gradient: dilations must be 1 (got ${JSON.stringify(dilations)}); dilated convolutions cannot be trained`,
    );
}

/**
 * d/dfilter of conv2d(x, filter, strides, pad) given dy: tfjs's conv2DBackpropFilter (which the
 * wasm backend lacks), as one XNNPACK conv. x [N, H, W, C], dy [N, OH, OW, OC] -> [kh, kw, C, OC].
 */
export function conv2dFilterGrad(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  filterShape: Shape4,
  strides: Strides,
  pad: Pad,
  dimRoundingMode?: Rounding,
  dataFormat: DataFormat = 'NHWC',
): tf.Tensor4D {
  if (nativeConvFor(dataFormat, 1)) return filterGradNative(x, dy, filterShape, strides, pad, dimRoundingMode);
  return tf.tidy(() => {
    const g = geometry(x.shape, filterShape, strides, pad, dimRoundingMode, dataFormat);
    // Rows the conv reads: (oh-1)*sh + kh of the padded input; beyond x: zero rows (bottom > 0),
    // or x rows never read (bottom < 0, e.g. 'valid' with a remainder), which are cropped.
    const bottom = (g.oh - 1) * g.sh + g.kh - g.top - g.h;
    const right = (g.ow - 1) * g.sw + g.kw - g.left - g.w;
    const [hc, wc] = [g.h + Math.min(0, bottom), g.w + Math.min(0, right)];
    if (hc <= 0 || wc <= 0) return tf.zeros(filterShape) as tf.Tensor4D; // only padding is read
    const xc = window(toNHWC(x, dataFormat), 0, hc, 0, wc);
    // Rank-3 transposes: measured ~1.5x faster on wasm than the equivalent rank-4 ones.
    const xT = xc
      .reshape([g.n, hc * wc, g.c])
      .transpose([2, 1, 0])
      .reshape<tf.Tensor4D>([g.c, hc, wc, g.n]);
    const dyT = toNHWC(dy, dataFormat)
      .reshape([g.n, g.oh * g.ow, g.oc])
      .transpose([1, 0, 2])
      .reshape<tf.Tensor4D>([g.oh, g.ow, g.n, g.oc]);
    const padding: tf.backend_util.ExplicitPadding = [
      [0, 0],
      [g.top, Math.max(0, bottom)],
      [g.left, Math.max(0, right)],
      [0, 0],
    ];
    const dw = tf.conv2d(xT, dyT, 1, padding, 'NHWC', [g.sh, g.sw]); // [C, kh, kw, OC]
    return dw.transpose<tf.Tensor4D>([1, 2, 0, 3]);
  });
}

/**
 * d/dx of conv2d(x, filter, strides, pad) given dy, i.e. tf.conv2dTranspose(dy, filter, xShape,
 * strides, pad), as stride-1 XNNPACK convs (sub-pixel) instead of the wasm backend's slow
 * Conv2DBackpropInput loop. Built from differentiable ops, so it can also serve as a
 * conv2dTranspose forward. dy [N, OH, OW, OC], filter [kh, kw, C, OC] -> [N, H, W, C].
 */
export function conv2dInputGrad(
  xShape: Shape4,
  dy: tf.Tensor4D,
  filter: tf.Tensor4D,
  strides: Strides,
  pad: Pad,
  dimRoundingMode?: Rounding,
  dataFormat: DataFormat = 'NHWC',
): tf.Tensor4D {
  if (nativeConvFor(dataFormat, 1)) return tf.conv2dTranspose(dy, filter, xShape, strides, pad, dimRoundingMode);
  return tf.tidy(() => {
    const g = geometry(xShape, filter.shape, strides, pad, dimRoundingMode, dataFormat);
    const { sh, sw } = g;
    const dyh = toNHWC(dy, dataFormat);
    // x row y is padded row p = y + top; write top = sh*a + b. Phase r = p mod sh, row q = p div sh:
    // dx = sum_t dy[q - t] * W[r + sh*t], a correlation of dy with the flipped taps r, r+sh, ...
    // Each phase's output starts at q = a (folded into dy's padding; negative padding = rows of
    // dy never used, cropped), the phases are interleaved, and the first b rows dropped.
    const [a, b] = [Math.floor(g.top / sh), g.top % sh];
    const [al, bl] = [Math.floor(g.left / sw), g.left % sw];
    const [qh, qw] = [Math.ceil((b + g.h) / sh), Math.ceil((bl + g.w) / sw)];
    // One conv per phase with its exact th x tw taps: measured 1.2-1.5x faster than one conv with
    // all phases as output channels (zero-filled to th0 = ceil(kh/sh) taps) for 3x3 and 5x5
    // stride 2. The taps are cut with pad/reshape/transpose/slice, which (unlike stridedSlice)
    // have gradients: allTaps [sh*sw, th0, tw0, OC*C].
    const [th0, tw0] = [Math.ceil(g.kh / sh), Math.ceil(g.kw / sw)];
    const allTaps = filter
      .pad([
        [0, th0 * sh - g.kh],
        [0, tw0 * sw - g.kw],
        [0, 0],
        [0, 0],
      ])
      .reshape([th0, sh, tw0, sw, g.c, g.oc])
      .transpose([1, 3, 0, 2, 5, 4])
      .reshape<tf.Tensor4D>([sh * sw, th0, tw0, g.oc * g.c]);
    const phases: tf.Tensor4D[] = [];
    for (let rh = 0; rh < sh; rh++)
      for (let rw = 0; rw < sw; rw++) {
        const [th, tw] = [Math.ceil((g.kh - rh) / sh), Math.ceil((g.kw - rw) / sw)];
        const [before, after] = [th - 1 - a, qh + a - g.oh];
        const [beforeL, afterL] = [tw - 1 - al, qw + al - g.ow];
        const [rows, cols] = [
          g.oh + Math.min(0, before) + Math.min(0, after),
          g.ow + Math.min(0, beforeL) + Math.min(0, afterL),
        ];
        if (th <= 0 || tw <= 0 || rows <= 0 || cols <= 0) {
          phases.push(tf.zeros([g.n, qh, qw, g.c])); // no tap of W (kernel < stride) or no row of dy reaches it
          continue;
        }
        const taps = allTaps
          .slice([rh * sw + rw, 0, 0, 0], [1, th, tw, g.oc * g.c])
          .reshape<tf.Tensor4D>([th, tw, g.oc, g.c]);
        const sub = taps.reverse<tf.Tensor4D>([0, 1]); // [th, tw, OC, C]: flipped, as a correlation needs
        const dyc = window(dyh, Math.max(0, -before), rows, Math.max(0, -beforeL), cols);
        const padding: tf.backend_util.ExplicitPadding = [
          [0, 0],
          [Math.max(0, before), Math.max(0, after)],
          [Math.max(0, beforeL), Math.max(0, afterL)],
          [0, 0],
        ];
        phases.push(tf.conv2d(dyc, sub, 1, padding)); // [N, qh, qw, C]
      }
    // Interleave the phases: concat + reshape + transpose (wasm's DepthToSpace measured ~10x slower).
    const d =
      phases.length === 1
        ? phases[0]
        : tf
            .concat(phases, 3)
            .reshape([g.n, qh, qw, sh, sw, g.c])
            .transpose([0, 1, 3, 2, 4, 5])
            .reshape<tf.Tensor4D>([g.n, qh * sh, qw * sw, g.c]);
    return fromNHWC(window(d, b, g.h, bl, g.w), dataFormat);
  });
}

const first = (dy: tf.Tensor | tf.Tensor[]) => (Array.isArray(dy) ? dy[0] : dy) as tf.Tensor4D;

export const wasmConv2DGrad: tf.GradConfig = {
  kernelName: tf.Conv2D,
  inputsToSave: ['x', 'filter'],
  gradFunc: (dy, saved, attrs) => {
    const [x, filter] = saved as tf.Tensor4D[];
    const { strides, pad, dataFormat, dilations, dimRoundingMode } = attrs as unknown as tf.Conv2DAttrs;
    assertDilationsOne(dilations, 'Conv2D');
    return {
      x: () => conv2dInputGrad(x.shape, first(dy), filter, strides, pad, dimRoundingMode, dataFormat),
      filter: () => conv2dFilterGrad(x, first(dy), filter.shape, strides, pad, dimRoundingMode, dataFormat),
    };
  },
};

/** conv2dTranspose is the Conv2DBackpropInput kernel on (dy = the layer's input, filter). */
export const wasmConv2DBackpropInputGrad: tf.GradConfig = {
  kernelName: tf.Conv2DBackpropInput,
  inputsToSave: ['dy', 'filter'],
  gradFunc: (ddx, saved, attrs) => {
    const [dy, filter] = saved as tf.Tensor4D[];
    const { strides, pad, dataFormat, dimRoundingMode } = attrs as unknown as tf.Conv2DBackpropInputAttrs;
    return {
      dy: () => tf.conv2d(first(ddx), filter, strides, pad, dataFormat, 1, dimRoundingMode),
      filter: () => conv2dFilterGrad(first(ddx), dy, filter.shape, strides, pad, dimRoundingMode, dataFormat),
    };
  },
};

/** Replace tfjs's Conv2D and Conv2DBackpropInput gradients (global registry) with the ones above. */
export function useWasmConvGrads(): void {
  tf.registerGradient(wasmConv2DGrad);
  tf.registerGradient(wasmConv2DBackpropInputGrad);
}
