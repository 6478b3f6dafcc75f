/**
 * An exported model directory's model.onnx run by onnxruntime-node (an optional dependency): the
 * same interface as the tfjs Classifier (logits per input; the server micro-batches it the same
 * way), with onnxruntime's intra-op threads set from --threads. The file is checked like every
 * model file (inside the directory, size, sha256) before onnxruntime parses it.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { SemiganError } from '../errors.js';
import { METADATA_FILE, ONNX_FILE, readMetadata, type ClassifierMetadata } from './metadata.js';
import { modelDirPath, readModelFile } from './model_files.js';
import { ONNX_INPUT, onnxGraphShapes } from './onnx_writer.js';
import { ExportedModel } from './exported_model.js';

// The part of onnxruntime-node's API used here, declared locally: the package is optional, and
// compiling semigan must not need it.
interface OrtTensor {
  data: unknown;
  dims: readonly number[];
}
interface OrtSession {
  inputNames: readonly string[];
  outputNames: readonly string[];
  run(feeds: Record<string, OrtTensor>, fetches?: string[]): Promise<Record<string, OrtTensor>>;
  release(): Promise<void>;
}
interface Ort {
  InferenceSession: { create(model: Uint8Array, options: object): Promise<OrtSession> };
  Tensor: new (type: 'float32', data: Float32Array, dims: number[]) => OrtTensor;
}

const modelDirError = (msg: string) => new SemiganError('SEMIGAN_ERR_MODEL_DIR', msg);
/** model.onnx above this is not read (semigan's largest preset, conv-large, is ~5 MB). */
const MAX_ONNX_BYTES = 1024 * 1024 * 1024;

/** onnxruntime-node, or null with the reason it cannot be loaded here. */
export function loadOnnxRuntime(): { ort: Ort | null; reason: string } {
  try {
    // SEMIGAN_ONNXRUNTIME: another module path (as SEMIGAN_NATIVE_ADDON for the addon), e.g. to check the fallback.
    const ort = createRequire(import.meta.url)(process.env.SEMIGAN_ONNXRUNTIME || 'onnxruntime-node') as Ort;
    return { ort, reason: 'onnxruntime-node loaded' };
  } catch (e) {
    return {
      ort: null,
      reason: `onnxruntime-node is not installed or cannot load (${(e as Error).message.split('\n')[0]})`,
    };
  }
}

export const ONNX_INSTALL_HINT =
  'install it with `npm install onnxruntime-node` (its CPU binary is in the npm package; its install script only fetches CUDA files and may be skipped)';

export class OnnxClassifier extends ExportedModel {
  readonly engine = 'onnx';

  private constructor(
    metadata: ClassifierMetadata,
    private readonly ort: Ort,
    private readonly session: OrtSession,
    dir: string,
  ) {
    super(metadata, dir);
  }

  static async load(dir: string, opts: { threads?: number } = {}): Promise<OnnxClassifier> {
    const metadata = readMetadata(dir);
    const { ort, reason } = loadOnnxRuntime();
    if (!ort) throw new SemiganError('SEMIGAN_ERR_BACKEND', `--engine onnx: ${reason}; ${ONNX_INSTALL_HINT}`);
    const name = metadata.files?.onnx;
    if (!name)
      throw modelDirError(
        `${dir} holds no ONNX model (${METADATA_FILE} names no files.onnx: exported with --format tfjs or by semigan before 0.2); export the run again with --format all, or serve it with --engine tfjs`,
      );
    const path = modelDirPath(dir, name, 'files.onnx', join(dir, METADATA_FILE));
    const bytes = readModelFile(path, MAX_ONNX_BYTES, metadata.files?.sha256?.[name]);
    checkGraphShapes(bytes, metadata, path);
    let session: OrtSession;
    try {
      session = await ort.InferenceSession.create(bytes, {
        intraOpNumThreads: opts.threads ?? 1,
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
      });
    } catch (e) {
      throw modelDirError(`${path}: onnxruntime cannot load it (${(e as Error).message.split('\n')[0]})`);
    }
    const k = metadata.classes.length;
    if (!session.inputNames.includes(ONNX_INPUT) || !session.outputNames.includes('logits'))
      throw modelDirError(
        `${path}: inputs [${session.inputNames}] and outputs [${session.outputNames}], expected "${ONNX_INPUT}" and "logits"`,
      );
    const c = new OnnxClassifier(metadata, ort, session, dir);
    // One row through it now: a graph that does not fit the metadata fails here, not at the first request.
    const out = await c.predictLogits(new Float32Array(c.dim), 1);
    if (out.length !== k)
      throw modelDirError(`${path}: gives ${out.length} logits per input, ${METADATA_FILE} names ${k} classes`);
    return c;
  }

  /** Class logits, row-major [n, K], for n inputs row-major [n, h, w, c] (as metadata.preprocessing says). */
  async predictLogits(x: Float32Array, n: number): Promise<Float32Array> {
    const k = this.classes.length;
    const out = new Float32Array(n * k);
    const shape = this.metadata.inputShape;
    for (const [s, e] of this.chunks(x, n)) {
      const input = new this.ort.Tensor('float32', x.subarray(s * this.dim, e * this.dim), [e - s, ...shape]);
      const r = await this.session.run({ [ONNX_INPUT]: input }, ['logits']);
      const dims = r.logits.dims;
      if (dims.length !== 2 || dims[0] !== e - s || dims[1] !== k)
        throw modelDirError(
          `${this.dir}: the ONNX model gave logits of shape [${dims}] for ${e - s} inputs; ${METADATA_FILE} names ${k} classes`,
        );
      out.set(r.logits.data as Float32Array, s * k);
    }
    return out;
  }

  dispose(): void {
    void this.session.release();
  }
}

export { ONNX_FILE };

/**
 * model.onnx's declared input [N, h, w, c] and logits [N, K] against metadata.json's inputShape
 * and classes, before onnxruntime runs anything: the checks the tfjs engine makes on model.json.
 */
function checkGraphShapes(bytes: Uint8Array, metadata: ClassifierMetadata, path: string): void {
  const shapes = onnxGraphShapes(bytes);
  if (!shapes) throw modelDirError(`${path}: not an ONNX model (it does not decode as onnx.ModelProto)`);
  const input = shapes[ONNX_INPUT];
  const logits = shapes.logits;
  if (!input || !logits)
    throw modelDirError(
      `${path}: declares inputs/outputs [${Object.keys(shapes).join(', ')}], expected "${ONNX_INPUT}" and "logits"`,
    );
  const k = metadata.classes.length;
  if (logits.length !== 2 || logits[1] !== k)
    throw modelDirError(
      `${path}: its logits have shape [${logits.map((d) => d ?? 'N')}] but ${METADATA_FILE} names ${k} classes`,
    );
  const want = metadata.inputShape;
  if (input.length !== 4 || input.slice(1).join(',') !== want.join(','))
    throw modelDirError(
      `${path}: it takes input [${input.map((d) => d ?? 'N')}] but ${METADATA_FILE} says inputShape [${want}] (NHWC)`,
    );
}
