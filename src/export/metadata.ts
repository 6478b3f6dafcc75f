/**
 * The exported model directory (docs/model_format.md): what `semigan export` writes and what
 * `Classifier.load` reads. Plain data types and a reader; no tf here, so a server or a script can
 * inspect a model directory cheaply.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { checkMetadata } from './metadata_check.js';
import { MAX_JSON_BYTES, readModelFile } from './model_files.js';
import { SemiganError } from '../errors.js';
import type { SplitSummary } from '../data/split/split.js';
import type { TrainConfig } from '../train/config.js';

export const MODEL_FORMAT = 'semigan-classifier';
/** 2: files.sha256 (checked at load). Version 1 directories (no checksums) are still read. */
export const MODEL_FORMAT_VERSION = 2;
export const MODEL_JSON_FILE = 'model.json';
export const WEIGHTS_FILE = 'weights.bin';
export const ONNX_FILE = 'model.onnx';
export const METADATA_FILE = 'metadata.json';

/**
 * How an image becomes the model's input. Every field is what `imageToInput` does and what a
 * browser or any other client must do too.
 */
export interface ImagePreprocessing {
  type: 'image';
  height: number;
  width: number;
  channels: number; // 1 = grayscale, 3 = RGB
  colorSpace: 'grayscale' | 'rgb';
  /** 1-channel models: how colour images become gray (gray images, R = G = B, stay unchanged). */
  toGrayscale?: string;
  /** x = pixel / divisor, giving values in `range`. */
  scale: { divisor: 255; range: [0, 1] };
  /** The model input is [n, height, width, channels] (NHWC); flattened, index = (y * width + x) * channels + c. */
  layout: 'NHWC';
  flatten: 'row-major HWC';
  /** Transparent pixels are composited onto black (v' = floor(v * alpha / 255)), or onto `background`. */
  alpha: 'flatten-onto-black' | 'flatten-onto-background';
  /** Images of another size: scaled to fit inside height x width keeping the aspect ratio, padded with black (0) or `background`. */
  resize: { fit: 'contain'; background: 0 | 'background'; kernel: 'lanczos3' };
  /** [r, g, b] 0..255 the model was trained with (--background); absent = black. Gray images use r. */
  background?: [number, number, number];
  /** What the training images look like; inputs must look the same (no inversion is done). */
  polarity: string;
}

/**
 * Tabular models: the feature columns in model-input order and the standardization
 * x' = (x - mean) / std learned on the training rows; the model input is [n, 1, 1, features].
 */
export interface TabularPreprocessing {
  type: 'tabular';
  features: string[];
  mean: number[];
  std: number[];
}

export type Preprocessing = ImagePreprocessing | TabularPreprocessing;

export interface TestMetrics {
  accuracy: number;
  errors: number;
  n: number;
}

export interface ClassifierMetadata {
  format: typeof MODEL_FORMAT;
  formatVersion: number;
  semiganVersion: string;
  createdAt: string;
  /** File names inside the model directory; sha256 (hex) of the model and weight files, checked at load. */
  files: { model?: string; weights: string[]; onnx?: string; metadata: string; sha256?: Record<string, string> };
  /** Present when model.onnx was written: its opset, IR version and tensor names. */
  onnx?: { opset: number; irVersion: number; input: string; outputs: string[]; layout: string };
  /** K class names; logit k of the model is class k. */
  classes: string[];
  /** Per-example shape [height, width, channels]. */
  inputShape: [number, number, number];
  /** Model input and output tensors. */
  input: { dtype: 'float32'; shape: (number | null)[] };
  output: { name: 'logits'; shape: (number | null)[] };
  preprocessing: Preprocessing;
  /** How to read the logits (see docs/recipe.md, "The K+1 discriminator"). */
  postprocessing: {
    fakeLogit: 0;
    /** The model's logits are D's divided by this (fitted on validation rows; absent in older models: 1). */
    temperature?: number;
    probabilities: string;
    realness: string;
  };
  /** Where the weights come from. */
  training: {
    run: string;
    preset: string;
    weights: string;
    epoch: number; // completed epochs
    epochIter: number; // iterations into the next epoch (a run stopped by --max-minutes)
    step: number;
    emaSteps: number;
    data: SplitSummary;
    config: TrainConfig;
  };
  /**
   * The run's test metrics on its test split, null if the run has none for this checkpoint:
   * `test` is the exported weight set's (`weights`; absent before semigan chose: averaged).
   */
  metrics: {
    source: string;
    weights?: 'averaged' | 'current' | 'tail';
    test: TestMetrics;
    testAveragedWeights?: TestMetrics;
    testCurrentWeights: TestMetrics | null;
    testTailAveragedWeights?: TestMetrics;
  } | null;
}

const modelDirError = (msg: string) => new SemiganError('SEMIGAN_ERR_MODEL_DIR', msg);

/** True if DIR looks like an exported model (has metadata.json). */
export const isModelDir = (dir: string) => existsSync(join(dir, METADATA_FILE));

/** Parsed and checked metadata.json of a model directory. */
export function readMetadata(dir: string): ClassifierMetadata {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw modelDirError(`${dir}: no such model directory (expected the --out directory of semigan export)`);
  }
  const path = join(dir, METADATA_FILE);
  if (!existsSync(path))
    throw modelDirError(
      `${dir} is not an exported model: it has no ${METADATA_FILE} (expected the --out directory of semigan export)`,
    );
  let meta: ClassifierMetadata;
  try {
    meta = JSON.parse(readModelFile(path, MAX_JSON_BYTES, undefined).toString('utf8'));
  } catch (e) {
    if (e instanceof SemiganError) throw e;
    throw modelDirError(`${path}: not valid JSON (${(e as Error).message})`);
  }
  if (meta?.format !== MODEL_FORMAT)
    throw modelDirError(`${path}: format is ${JSON.stringify(meta?.format)}, expected "${MODEL_FORMAT}"`);
  if (typeof meta.formatVersion !== 'number' || meta.formatVersion > MODEL_FORMAT_VERSION) {
    throw modelDirError(
      `${path}: format version ${meta.formatVersion} is newer than this semigan reads (${MODEL_FORMAT_VERSION}); upgrade semigan`,
    );
  }
  checkMetadata(meta, path);
  return meta;
}
