import * as tf from '@tensorflow/tfjs';
import type { NativeAddon, WasmBackendInternals } from './native_addon.js';
import { replaceWasmKernel, restoreWasmKernel } from './wasm_kernels.js';
import { activationGrad } from './native_layers.js';

/**
 * Conv2D, its input gradient (Conv2DBackpropInput, also conv2dTranspose) and its filter gradient
 * (Conv2DBackpropFilter, which the wasm backend lacks) as native kernels on the wasm heap, on
 * every thread: through oneDNN when the addon was built with it, else im2col + OpenBLAS over
 * images. tfjs keeps the autodiff: its own Conv2D gradients call these kernels.
 *
 * NHWC with dilation 1 (every conv semigan's models have) goes native; anything else runs tfjs's
 * wasm kernels or, for the gradients, conv_grad.ts's compositions of them.
 */
export type ConvRoute = 'onednn' | 'im2col' | 'wasm';
export const CONV_ROUTES = ['auto', 'onednn', 'im2col', 'wasm'] as const;
export type ConvChoice = (typeof CONV_ROUTES)[number];

const KIND = { forward: 0, inputGrad: 1, filterGrad: 2 } as const;
const CONV_FILTER_GRAD = 'Conv2DBackpropFilter';

let native: NativeAddon | null = null;
let route: ConvRoute = 'wasm';
let threads = 1;

/** Whether a conv with these attributes runs natively (else tfjs's wasm kernels). */
export function nativeConvFor(dataFormat: string | undefined, dilations: number | number[] | undefined): boolean {
  return (
    route !== 'wasm' &&
    tf.getBackend() === 'wasm' &&
    (dataFormat ?? 'NHWC') === 'NHWC' &&
    (dilations === undefined || tf.backend_util.tupleValuesAreOne(dilations))
  );
}

type Shape4 = [number, number, number, number];
type ConvAttrs = {
  strides: number | [number, number];
  pad: tf.Conv2DAttrs['pad'];
  dimRoundingMode?: tf.Conv2DAttrs['dimRoundingMode'];
};

/** The addon's geometry: n h w c oc kh kw oh ow sh sw top left bottom right. */
function geometry(xShape: Shape4, filterShape: Shape4, a: ConvAttrs): Int32Array {
  const i = tf.backend_util.computeConv2DInfo(xShape, filterShape, a.strides, 1, a.pad, a.dimRoundingMode);
  const p = i.padInfo;
  return Int32Array.of(
    i.batchSize,
    i.inHeight,
    i.inWidth,
    i.inChannels,
    i.outChannels,
    i.filterHeight,
    i.filterWidth,
    i.outHeight,
    i.outWidth,
    i.strideHeight,
    i.strideWidth,
    p.top,
    p.left,
    p.bottom,
    p.right,
  );
}

/** The forward conv's epilogue: + bias, then leaky ReLU of that slope (null: none). */
type Epilogue = { bias: tf.TensorInfo | null; slope: number | null };
const NO_EPILOGUE: Epilogue = { bias: null, slope: null };

/** Run the addon's conv of `kind` on a, b into a new tensor of `outShape`. */
function run(
  backendArg: unknown,
  kind: number,
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  outShape: number[],
  g: Int32Array,
  ep = NO_EPILOGUE,
) {
  const backend = backendArg as WasmBackendInternals;
  const out = backend.makeOutput(outShape, 'float32') as tf.TensorInfo;
  const off = (t: tf.TensorInfo) => backend.dataIdMap.get(t.dataId)!.memoryOffset;
  const size = (shape: number[]) => shape.reduce((p, d) => p * d, 1);
  if (size(a.shape) === 0 || size(b.shape) === 0) {
    // An empty batch (or an output smaller than one window): nothing to sum, so zeros.
    const n = size(outShape);
    if (n > 0) new Float32Array(backend.wasm.HEAPU8.buffer, off(out), n).fill(0);
    return out;
  }
  native!.conv(
    backend.wasm.HEAPU8.buffer as ArrayBuffer,
    kind,
    off(a),
    off(b),
    off(out),
    g,
    threads,
    route === 'onednn' ? 0 : 1,
    ep.bias ? off(ep.bias) : -1,
    ep.slope !== null,
    ep.slope ?? 0,
  );
  return out;
}

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };
const kernelFunc = (f: (args: KernelArgs) => tf.TensorInfo) => f as unknown as tf.KernelFunc;

function registerKernels(): void {
  replaceWasmKernel(tf.Conv2D, (original) =>
    kernelFunc((args) => {
      const attrs = args.attrs as unknown as tf.Conv2DAttrs;
      if (!nativeConvFor(attrs.dataFormat, attrs.dilations)) return original(args as never) as tf.TensorInfo;
      const { x, filter } = args.inputs as { x: tf.TensorInfo; filter: tf.TensorInfo };
      const g = geometry(x.shape as Shape4, filter.shape as Shape4, attrs);
      return run(args.backend, KIND.forward, x, filter, [g[0], g[7], g[8], g[4]], g);
    }),
  );
  replaceWasmKernel(tf.Conv2DBackpropInput, (original) =>
    kernelFunc((args) => {
      const attrs = args.attrs as unknown as tf.Conv2DBackpropInputAttrs;
      if (!nativeConvFor(attrs.dataFormat, undefined)) return original(args as never) as tf.TensorInfo;
      const { dy, filter } = args.inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
      const xShape = attrs.inputShape as Shape4;
      return run(args.backend, KIND.inputGrad, dy, filter, xShape, geometry(xShape, filter.shape as Shape4, attrs));
    }),
  );
  if (!tf.getKernel(CONV_FILTER_GRAD, 'wasm'))
    tf.registerKernel({
      kernelName: CONV_FILTER_GRAD,
      backendName: 'wasm',
      kernelFunc: kernelFunc((args) => {
        const attrs = args.attrs as unknown as tf.Conv2DBackpropFilterAttrs;
        if (!nativeConvFor(attrs.dataFormat, undefined))
          throw new Error(`${CONV_FILTER_GRAD} on wasm: only NHWC runs natively (conv_grad.ts composes the rest)`);
        const { x, dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
        const filterShape = attrs.filterShape as Shape4;
        return run(args.backend, KIND.filterGrad, x, dy, filterShape, geometry(x.shape as Shape4, filterShape, attrs));
      }),
    });
}

/** d/dfilter of an NHWC conv through the native Conv2DBackpropFilter kernel (nativeConvFor must hold). */
export function filterGradNative(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  filterShape: Shape4,
  strides: ConvAttrs['strides'],
  pad: ConvAttrs['pad'],
  dimRoundingMode?: ConvAttrs['dimRoundingMode'],
): tf.Tensor4D {
  const attrs = { strides, pad, dataFormat: 'NHWC', dimRoundingMode, filterShape };
  return tf.engine().runKernel(CONV_FILTER_GRAD, { x, dy }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor4D;
}

const CONV_LAYER = 'SemiganConvLayer';

/**
 * leakyRelu(conv2d(x, w, stride, padding) + b) in one native call (the bias and the activation as
 * the conv's epilogue: oneDNN post-op, or after im2col's sgemm); its gradient is one call for the
 * activation and bias (nn/native_layers.ts) and the two conv gradients. The same float32
 * operations as the tfjs ops (conv, then + b, then x * (x > 0 ? 1 : slope)).
 */
export function convLayer(
  x: tf.Tensor4D,
  w: tf.Tensor4D,
  b: tf.Tensor1D,
  stride: number,
  padding: 'same' | 'valid',
  slope: number,
): tf.Tensor4D {
  return tf.engine().runKernel(CONV_LAYER, { x, w, b }, { stride, padding, slope }) as tf.Tensor4D;
}

function registerConvLayer(): void {
  tf.registerKernel({
    kernelName: CONV_LAYER,
    backendName: 'wasm',
    kernelFunc: kernelFunc(({ inputs, backend, attrs }) => {
      const { x, w, b } = inputs as { x: tf.TensorInfo; w: tf.TensorInfo; b: tf.TensorInfo };
      const { stride, padding, slope } = attrs as unknown as {
        stride: number;
        padding: 'same' | 'valid';
        slope: number;
      };
      const g = geometry(x.shape as Shape4, w.shape as Shape4, { strides: stride, pad: padding });
      return run(backend, KIND.forward, x, w, [g[0], g[7], g[8], g[4]], g, { bias: b, slope });
    }),
  });
  tf.registerGradient({
    kernelName: CONV_LAYER,
    inputsToSave: ['x', 'w'],
    outputsToSave: [true],
    gradFunc: (dy, saved, attrs) => {
      const [x, w, y] = saved as tf.Tensor4D[];
      const { stride, padding, slope } = attrs as unknown as {
        stride: number;
        padding: 'same' | 'valid';
        slope: number;
      };
      const oc = y.shape[3];
      const [dz2, db] = activationGrad((dy as tf.Tensor).reshape([-1, oc]), y.reshape([-1, oc]), 'leakyrelu', slope);
      const dz = dz2.reshape(y.shape) as tf.Tensor4D;
      return {
        x: () => tf.conv2dTranspose(dz, w, x.shape, stride, padding),
        w: () => filterGradNative(x, dz, w.shape, stride, padding),
        b: () => db,
      };
    },
  });
}

/** Why a conv route cannot be used with this addon, or null. */
export function convRouteUnavailable(addon: NativeAddon | null, want: ConvRoute): string | null {
  if (want === 'wasm') return null;
  if (!addon) return 'no native addon';
  if (want === 'onednn' && !addon.convRoutes().startsWith('onednn'))
    return 'the native addon was built without oneDNN (scripts/install_system_deps.sh installs libdnnl-dev; then npm run build:native)';
  return null;
}

/** The route `auto` stands for with this addon (the best it has), or the route chosen. */
export const resolveConvRoute = (addon: NativeAddon | null, choice: ConvChoice): ConvRoute =>
  choice !== 'auto' ? choice : !addon ? 'wasm' : addon.convRoutes().startsWith('onednn') ? 'onednn' : 'im2col';

/**
 * Route the wasm backend's convs: `auto` takes the best the addon has (oneDNN, else im2col +
 * OpenBLAS), else tfjs's kernels. Returns the route and one line for the start-up message.
 */
export function useNativeConvs(
  addon: NativeAddon | null,
  choice: ConvChoice,
  threadCount: number,
): { route: ConvRoute; line: string } {
  const want = resolveConvRoute(addon, choice);
  const why = convRouteUnavailable(addon, want);
  if (why) throw new Error(`conv route ${want}: ${why}`); // callers check first
  native = addon;
  route = want;
  threads = threadCount;
  if (route === 'wasm') {
    restoreWasmKernel(tf.Conv2D);
    restoreWasmKernel(tf.Conv2DBackpropInput);
    return { route, line: 'convs on 1 wasm thread' };
  }
  registerKernels();
  if (!tf.getKernel(CONV_LAYER, 'wasm')) registerConvLayer();
  const engine =
    route === 'onednn' ? addon!.convRoutes().split(',')[0].replace('onednn', 'oneDNN') : 'im2col + OpenBLAS';
  return { route, line: `convs on ${threadCount} thread${threadCount === 1 ? '' : 's'} (${engine})` };
}
