/** What both engines share: the metadata's classes and input size, and the row chunks of a call. */
import type { ClassifierMetadata } from './metadata.js';

/** Rows per forward pass in predictLogits: bounds memory, and any chunking gives the same logits. */
export const PREDICT_CHUNK = 1024;

export abstract class ExportedModel {
  /** Values per example: height * width * channels. */
  readonly dim: number;
  readonly classes: readonly string[];

  protected constructor(
    readonly metadata: ClassifierMetadata,
    readonly dir: string,
  ) {
    this.classes = metadata.classes;
    this.dim = metadata.inputShape.reduce((a, b) => a * b, 1);
  }

  /** [start, end) rows of each forward pass for n inputs given as `x`, after checking x holds n rows. */
  protected chunks(x: Float32Array, n: number): [number, number][] {
    if (!Number.isInteger(n) || n < 0 || x.length !== n * this.dim)
      throw new RangeError(`predictLogits: expected ${n} x ${this.dim} = ${n * this.dim} values, got ${x.length}`);
    const out: [number, number][] = [];
    for (let s = 0; s < n; s += PREDICT_CHUNK) out.push([s, Math.min(n, s + PREDICT_CHUNK)]);
    return out;
  }
}
