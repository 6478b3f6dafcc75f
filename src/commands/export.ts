import { initBackendAndSay, type BackendChoice, type MatMulChoice } from '../backend.js';
import { exportRun, type ExportFormat, type ExportResult } from '../export/exporter.js';

const log = (line: string) => process.stderr.write(line + '\n');

/** `semigan export RUN_DIR --out MODEL_DIR`: the run's EMA discriminator as TensorFlow.js and/or ONNX files + metadata.json. */
export async function exportCommand(
  runDir: string,
  out: string,
  opts: {
    overwrite?: boolean;
    format?: ExportFormat;
    name?: string;
    backend?: BackendChoice;
    threads?: number | null;
    matmul?: MatMulChoice;
  } = {},
): Promise<ExportResult> {
  await initBackendAndSay(opts.backend ?? 'auto', { threads: opts.threads, matmul: opts.matmul });
  const r = await exportRun(runDir, out, { overwrite: opts.overwrite, format: opts.format, name: opts.name });
  const acc =
    r.testAccuracy === null
      ? 'no test accuracy recorded for this checkpoint'
      : `test accuracy ${(100 * r.testAccuracy).toFixed(2)}% (as measured by the run)`;
  log(
    `exported ${runDir} -> ${r.out} (${r.files.join(', ')}): ${r.layers} layers, ${r.parameters} parameters, ${r.classes.length} classes, input ${r.inputShape.join('x')}; ${acc}; self-check max |logit diff| ${r.maxAbsLogitDiff.toExponential(2)}`,
  );
  return r;
}
