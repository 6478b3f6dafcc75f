/**
 * config.pbtxt of a Triton model repository entry (onnxruntime backend) for the exported ONNX
 * model: input and output names, dtypes and per-example shapes, a dynamic batch dimension. Triton
 * itself was not run here (docs/serving.md says how to use it).
 */
import type { ClassifierMetadata } from './metadata.js';
import { ONNX_INPUT, ONNX_OUTPUTS } from './onnx_writer.js';

/** The largest batch Triton may form (its dynamic batcher joins requests up to this). */
export const TRITON_MAX_BATCH = 256;

export function tritonConfig(name: string, meta: ClassifierMetadata): string {
  const k = meta.classes.length;
  const tensor = (n: string, dims: number[]) =>
    `  {\n    name: "${n}"\n    data_type: TYPE_FP32\n    dims: [ ${dims.join(', ')} ]\n  }`;
  return [
    `name: "${name}"`,
    `platform: "onnxruntime_onnx"`,
    `max_batch_size: ${TRITON_MAX_BATCH}`,
    `input [\n${tensor(ONNX_INPUT, meta.inputShape)}\n]`,
    `output [\n${ONNX_OUTPUTS.map((o) => tensor(o, [k])).join(',\n')}\n]`,
    `dynamic_batching { }`,
    `instance_group [ { kind: KIND_CPU } ]`,
    '',
  ].join('\n');
}
