/**
 * The two ways to run an exported model: TensorFlow.js (model.json, the tfjs backend semigan
 * initialized) or onnxruntime (model.onnx). Both give each input's K logits; the server and its
 * micro-batching take either.
 */
import { SemiganError } from '../errors.js';
import { Classifier } from './classifier.js';
import type { ClassifierMetadata } from './metadata.js';
import { readMetadata } from './metadata.js';
import { loadOnnxRuntime, OnnxClassifier } from './onnx_classifier.js';

export const ENGINES = ['auto', 'tfjs', 'onnx'] as const;
export type EngineChoice = (typeof ENGINES)[number];

export interface ClassifierEngine {
  readonly engine: 'tfjs' | 'onnx';
  readonly dim: number;
  readonly classes: readonly string[];
  readonly metadata: ClassifierMetadata;
  readonly dir: string;
  /** Logits [n, K] row-major; onnxruntime answers asynchronously. */
  predictLogits(x: Float32Array, n: number): Float32Array | Promise<Float32Array>;
  dispose(): void;
}

/** Which engine `choice` means for `dir`, and why (auto: onnx when onnxruntime loads and the directory has model.onnx). */
export function resolveEngine(dir: string, choice: EngineChoice): { engine: 'tfjs' | 'onnx'; reason: string } {
  if (choice !== 'auto') return { engine: choice, reason: `--engine ${choice}` };
  const meta = readMetadata(dir);
  const hasTfjs = !meta.files || !!meta.files.model;
  if (!meta.files?.onnx) return { engine: 'tfjs', reason: 'the model directory has no model.onnx' };
  const { ort, reason } = loadOnnxRuntime();
  if (ort) return { engine: 'onnx', reason: 'onnxruntime-node loads and the model directory has model.onnx' };
  if (!hasTfjs)
    throw new SemiganError(
      'SEMIGAN_ERR_BACKEND',
      `${dir} holds only an ONNX model, and ${reason}; install onnxruntime-node`,
    );
  return { engine: 'tfjs', reason };
}

/** Load `dir` on `engine` (tfjs: the backend must be initialized first). */
export async function loadEngine(
  dir: string,
  engine: 'tfjs' | 'onnx',
  opts: { threads?: number } = {},
): Promise<ClassifierEngine> {
  return engine === 'onnx' ? OnnxClassifier.load(dir, opts) : Classifier.load(dir);
}
