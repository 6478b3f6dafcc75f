/**
 * The exported classifier as an ONNX model (model.onnx), written from the same layer list as the
 * TensorFlow.js export (GanModel.classifierLayers) with the official onnx.proto messages (npm
 * onnx-proto), no Python.
 *
 * - Input `input`: float32 [N, H, W, C], NHWC as semigan preprocesses (the same metadata.json
 *   describes both files); N is dynamic. Conv models transpose to NCHW inside the graph, once.
 * - Outputs `logits` [N, K] (the K class logits; the "generated" logit is the constant 0) and
 *   `probabilities` [N, K] = softmax(logits).
 * - Dense: Gemm with the [in, out] kernel as B. Conv2D: tfjs kernels [kh, kw, in, out] become
 *   ONNX's [out, in, kh, kw]; TF's 'same' padding (the extra row/column at the end) becomes
 *   explicit pads. GlobalAveragePool + Flatten give tfjs's [N, C].
 */
import onnxProto from 'onnx-proto';
import type { onnx as OnnxTypes } from 'onnx-proto';

const { onnx } = onnxProto;
import type { ClassifierLayer } from '../models/model.js';

export const ONNX_OPSET = 13;
export const ONNX_IR_VERSION = 7; // the IR version of opset 13
export const ONNX_INPUT = 'input';
export const ONNX_OUTPUTS = ['logits', 'probabilities'] as const;

const FLOAT = onnx.TensorProto.DataType.FLOAT;

/** A tensor's values as an initializer (float32, little-endian raw data). */
function initializer(name: string, dims: number[], values: Float32Array): OnnxTypes.ITensorProto {
  const raw = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  return { name, dims, dataType: FLOAT, rawData: raw };
}

const valueInfo = (name: string, dims: (number | string)[]): OnnxTypes.IValueInfoProto => ({
  name,
  type: {
    tensorType: {
      elemType: FLOAT,
      shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) },
    },
  },
});

const ints = (name: string, v: number[]): OnnxTypes.IAttributeProto => ({
  name,
  type: onnx.AttributeProto.AttributeType.INTS,
  ints: v,
});
const int = (name: string, v: number): OnnxTypes.IAttributeProto => ({
  name,
  type: onnx.AttributeProto.AttributeType.INT,
  i: v,
});
const float = (name: string, v: number): OnnxTypes.IAttributeProto => ({
  name,
  type: onnx.AttributeProto.AttributeType.FLOAT,
  f: v,
});

/** [kh, kw, in, out] -> [out, in, kh, kw]. */
function convKernelToOihw(k: Float32Array, kh: number, kw: number, cin: number, cout: number): Float32Array {
  const out = new Float32Array(k.length);
  for (let y = 0; y < kh; y++)
    for (let x = 0; x < kw; x++)
      for (let i = 0; i < cin; i++)
        for (let o = 0; o < cout; o++) out[((o * cin + i) * kh + y) * kw + x] = k[((y * kw + x) * cin + i) * cout + o];
  return out;
}

/** TF padding as explicit ONNX pads [top, left, bottom, right] and the output size, per spatial axis. */
function tfPads(
  size: number,
  k: number,
  stride: number,
  padding: 'same' | 'valid',
): { begin: number; end: number; out: number } {
  if (padding === 'valid') return { begin: 0, end: 0, out: Math.floor((size - k) / stride) + 1 };
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + k - size, 0);
  return { begin: Math.floor(total / 2), end: total - Math.floor(total / 2), out };
}

export interface OnnxModelInfo {
  bytes: Uint8Array;
  /** Node op types in graph order (e.g. for a check that the file decodes to what was meant). */
  ops: string[];
}

/**
 * The ONNX model of `layers` (weights read now; the caller still owns the tensors) for inputs of
 * `inputShape` [H, W, C] and K = the last dense layer's units.
 */
export function classifierToOnnx(
  layers: ClassifierLayer[],
  inputShape: [number, number, number],
  producerVersion: string,
): OnnxModelInfo {
  const nodes: OnnxTypes.INodeProto[] = [];
  const inits: OnnxTypes.ITensorProto[] = [];
  let [h, w] = inputShape;
  let current = ONNX_INPUT;
  let nchw = false;
  let k = 0;
  const lastDense = layers.map((l) => l.kind).lastIndexOf('dense');
  const node = (opType: string, inputs: string[], attribute: OnnxTypes.IAttributeProto[] = [], output?: string) => {
    const name = `${opType.toLowerCase()}_${nodes.length}`;
    const out = output ?? name;
    nodes.push({ opType, name, input: inputs, output: [out], attribute });
    current = out;
  };
  layers.forEach((l, i) => {
    switch (l.kind) {
      case 'flatten':
        // tfjs flattens NHWC maps: back to that order first, so the dense kernel's rows line up.
        if (nchw) {
          node('Transpose', [current], [ints('perm', [0, 2, 3, 1])]);
          nchw = false;
        }
        node('Flatten', [current], [int('axis', 1)]);
        break;
      case 'dense': {
        const [nin, nout] = l.kernel.shape;
        const base = `dense_${i}`;
        inits.push(initializer(`${base}/kernel`, [nin, nout], l.kernel.dataSync() as Float32Array));
        inits.push(initializer(`${base}/bias`, [nout], l.bias.dataSync() as Float32Array));
        const last = i === lastDense;
        node(
          'Gemm',
          [current, `${base}/kernel`, `${base}/bias`],
          [],
          last && l.activation === 'linear' ? 'logits' : undefined,
        );
        if (l.activation === 'relu') node('Relu', [current], [], last ? 'logits' : undefined);
        if (last) k = nout;
        break;
      }
      case 'conv2d': {
        if (!nchw) {
          node('Transpose', [current], [ints('perm', [0, 3, 1, 2])]);
          nchw = true;
        }
        const [kh, kw, cin, cout] = l.kernel.shape;
        const base = `conv_${i}`;
        const kernel = convKernelToOihw(l.kernel.dataSync() as Float32Array, kh, kw, cin, cout);
        inits.push(initializer(`${base}/kernel`, [cout, cin, kh, kw], kernel));
        inits.push(initializer(`${base}/bias`, [cout], l.bias.dataSync() as Float32Array));
        const py = tfPads(h, kh, l.stride, l.padding);
        const px = tfPads(w, kw, l.stride, l.padding);
        node(
          'Conv',
          [current, `${base}/kernel`, `${base}/bias`],
          [
            ints('kernel_shape', [kh, kw]),
            ints('strides', [l.stride, l.stride]),
            ints('pads', [py.begin, px.begin, py.end, px.end]),
          ],
        );
        [h, w] = [py.out, px.out];
        break;
      }
      case 'leakyRelu':
        node('LeakyRelu', [current], [float('alpha', l.alpha)]);
        break;
      case 'globalAveragePool':
        node('GlobalAveragePool', [current]);
        node('Flatten', [current], [int('axis', 1)]);
        break;
    }
  });
  if (current !== 'logits' || k === 0)
    throw new Error('the classifier layers do not end in a dense layer (the logits)');
  node('Softmax', ['logits'], [int('axis', 1)], 'probabilities');
  const [H, W, C] = inputShape;
  const model: OnnxTypes.IModelProto = {
    irVersion: ONNX_IR_VERSION,
    opsetImport: [{ domain: '', version: ONNX_OPSET }],
    producerName: 'semigan',
    producerVersion,
    docString: 'semigan classifier: input NHWC float32 in [0, 1] (or standardized tabular rows), see metadata.json',
    graph: {
      name: 'semigan_classifier',
      node: nodes,
      initializer: inits,
      input: [valueInfo(ONNX_INPUT, ['N', H, W, C])],
      output: [valueInfo('logits', ['N', k]), valueInfo('probabilities', ['N', k])],
    },
  };
  return { bytes: onnx.ModelProto.encode(model).finish(), ops: nodes.map((n) => n.opType!) };
}

/**
 * The declared shapes of a model.onnx's graph inputs and outputs (a dimension is its number, or
 * null when symbolic), read from the file without running it; null for bytes that are not an
 * ONNX model. The reader's check of the file against metadata.json starts here.
 */
export function onnxGraphShapes(bytes: Uint8Array): Record<string, (number | null)[]> | null {
  let m: OnnxTypes.ModelProto;
  try {
    m = onnx.ModelProto.decode(bytes);
  } catch {
    return null;
  }
  const out: Record<string, (number | null)[]> = {};
  for (const v of [...(m.graph?.input ?? []), ...(m.graph?.output ?? [])]) {
    const dims = v.type?.tensorType?.shape?.dim ?? [];
    out[v.name ?? ''] = dims.map((d) => (d.dimValue != null && d.dimParam == null ? Number(d.dimValue) : null));
  }
  return out;
}
