import * as tf from '@tensorflow/tfjs';

/**
 * A model is a record of named variables plus pure apply functions (nanoGPT style): the trainer,
 * the optimizer, the EMA and the checkpoint all address parameters by these stable names.
 * Variables get engine-unique ids; `names` are ours and never collide across models.
 */
export interface Params {
  vars: Record<string, tf.Variable>;
  /** Names the optimizer updates; the rest are fixed after data-dependent init. */
  trainable: string[];
}

export type Tensors = Record<string, tf.Tensor>;

export function makeParams(init: Record<string, tf.Tensor>, trainable: string[]): Params {
  const vars: Record<string, tf.Variable> = {};
  for (const [name, t] of Object.entries(init)) {
    vars[name] = tf.variable(t, trainable.includes(name));
    t.dispose();
  }
  return { vars, trainable };
}

/** Plain tensors view (for apply functions that also take EMA tensors). */
export const asTensors = (p: Params): Tensors => p.vars;

export function disposeParams(p: Params): void {
  for (const v of Object.values(p.vars)) v.dispose();
}

/** Copy values from `src` into `p` (same names and shapes). */
export function assignParams(p: Params, src: Tensors): void {
  for (const [name, v] of Object.entries(p.vars)) {
    const t = src[name];
    if (!t) throw new Error(`missing parameter ${name}`);
    v.assign(t);
  }
}
