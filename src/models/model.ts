import type * as tf from '@tensorflow/tfjs';
import type { Rng } from '../rng.js';
import type { Params, Tensors } from '../nn/params.js';

export interface DiscriminatorOutput {
  /** [B, K] class logits; the fake class's logit is fixed at 0 and not computed. */
  logits: tf.Tensor2D;
  /** [B, F] the layer feature matching compares. */
  features: tf.Tensor2D;
}

/** Noise on (training: pass the Rng) or off (evaluation: null). */
export interface ApplyOptions {
  noise: Rng | null;
  /**
   * Consecutive row counts that form separate minibatches (default: all rows one batch). Only
   * batch-dependent layers (minibatch discrimination) look at it: the trainer concatenates
   * labeled, unlabeled and generated rows into one pass, and each source gets its own statistics.
   */
  groups?: number[];
}

/** The training options that change the networks (techniques that live in D or G). */
export interface ModelTechniques {
  fmLayer: number; // which hidden layer of D is matched: 0-based, negative counts from the last (-1 = last)
  mbd: boolean; // minibatch discrimination before D's output layer
  mbdKernels: number; // B in the paper (100)
  mbdDim: number; // C in the paper (5)
  vbn: boolean; // virtual batch norm in G instead of batch norm
  dNoise: [number, number] | null; // std of D's Gaussian noise on its input and after each hidden layer; null: the preset's own
  dWidths: number[] | null; // D's widths (the MLPs: each hidden layer; conv-small: pairs of convs, one pair per stage; conv-large: its 2 blocks); null: the preset's own
  gWidths: number[] | null; // G's widths (the MLPs: each hidden layer; conv-small: its dense layer's channels and its middle deconv's; conv-large: dense channels and its 2 BN deconvs); null: the preset's own
  dDropout: [number, number] | null; // conv presets: D's dropout rate on its input and before each later stage; null: the preset's own
  dHead: DHead | null; // conv presets: what D's features (and logits) are made of; null: the preset's own (pool)
}

/**
 * What a conv D's output layer sees: `pool` the global average of its last feature map (the
 * official CIFAR model's, where an object may be anywhere), `flatten` the whole map (it keeps
 * where things are, as an MLP does, for aligned images such as Fashion-MNIST's).
 */
export const D_HEADS = ['pool', 'flatten'] as const;
export type DHead = (typeof D_HEADS)[number];

/** The paper's MNIST recipe: feature matching on the last hidden layer, nothing else. */
export const PAPER_TECHNIQUES: Readonly<ModelTechniques> = Object.freeze({
  fmLayer: -1,
  mbd: false,
  mbdKernels: 100,
  mbdDim: 5,
  vbn: false,
  dNoise: null,
  dWidths: null,
  gWidths: null,
  dDropout: null,
  dHead: null,
});

/** What picks and shapes a model: a preset (auto: chosen from the data spec) and the techniques. */
export interface ModelSpec extends ModelTechniques {
  preset: string;
  dataset: string;
}

/**
 * One layer of the exported classifier (export/exporter.ts turns these into tfjs built-in layers):
 * D without noise, weight norm folded into plain kernels, the K logits out. Tensors: caller disposes.
 */
export type ClassifierLayer =
  | { kind: 'flatten' }
  | { kind: 'dense'; kernel: tf.Tensor2D; bias: tf.Tensor1D; activation: 'relu' | 'linear' }
  | { kind: 'conv2d'; kernel: tf.Tensor4D; bias: tf.Tensor1D; stride: number; padding: 'same' | 'valid' }
  | { kind: 'leakyRelu'; alpha: number }
  | { kind: 'globalAveragePool' };

/** A D/G pair for a data shape: what a preset builds and the trainer drives. */
export interface GanModel {
  preset: string;
  zDim: number;
  createD(rng: Rng): Params;
  createG(rng: Rng): Params;
  /** Data-dependent init of D's weight-normed layers on a batch of real inputs. */
  initD(d: Params, x: tf.Tensor2D, opts: ApplyOptions): void;
  applyD(d: Tensors, x: tf.Tensor2D, opts: ApplyOptions): DiscriminatorOutput;
  /**
   * D's parameters with whatever applyD derives from them alone (weight-normed kernels) computed
   * once, for several applyD calls with fixed D (the G step). applyD(foldD(d)) = applyD(d).
   */
  foldD?(d: Tensors): Tensors;
  /** True when D's output for a row depends on the other rows of its batch (minibatch discrimination). */
  batchDependentD: boolean;
  /**
   * D (or its EMA weights `d`) as plain classifier layers, the same logits as applyD without
   * noise; absent when the model cannot be exported (a batch-dependent D).
   */
  classifierLayers?(d: Tensors): ClassifierLayer[];
  /** z [B, zDim] -> samples [B, dim] in the data's range. */
  applyG(g: Tensors, z: tf.Tensor2D): tf.Tensor2D;
}
