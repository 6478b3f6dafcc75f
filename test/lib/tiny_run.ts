/** A tiny real training run and its export, for tests that need a model but not a good one. */
import { crc32, deflateSync } from 'node:zlib';
import { ok, runCli } from './cli.js';

/** wasm, one thread: what every tiny run and export in the tests uses. */
export const WASM_1 = ['--backend', 'wasm', '--threads', '1'];

/** `semigan train` on 200 MNIST images for 2 iterations of 20 (plus `extra`), into `run`. */
export async function trainTiny(run: string, extra: string[] = []): Promise<void> {
  ok(
    await runCli([
      'train',
      ...WASM_1,
      '--train-limit',
      '200',
      '--test-limit',
      '50',
      '--epochs',
      '1',
      '--iters-per-epoch',
      '2',
      '--batch-size',
      '20',
      '--out',
      run,
      ...extra,
    ]),
  );
}

/** trainTiny, then `semigan export run --out model` (default format: all). */
export async function trainAndExportTiny(run: string, model: string, extra: string[] = []): Promise<void> {
  await trainTiny(run, extra);
  ok(await runCli(['export', run, '--out', model, ...WASM_1]));
}

/** An 8-bit gray PNG of width x height whose IDAT is `raw` deflated (raw need not fit the header). */
export function grayPng(width: number, height: number, raw: Buffer): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const out = Buffer.alloc(8 + data.length + 4);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc32(body), 8 + data.length);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // gray
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw, { level: 1 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}
