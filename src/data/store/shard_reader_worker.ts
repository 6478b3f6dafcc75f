/**
 * Reads rows of .npy shards off the main thread: each request names rows as (shard, row in
 * shard) pairs; the reply carries their bytes, in request order, in a transferred buffer. The
 * trainer asks for the next batch's rows while it computes the current one.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';

export interface ReaderSetup {
  paths: string[];
  dataOffsets: number[];
  rowBytes: number;
}
export interface ReadRequest {
  id: number;
  shard: Int32Array;
  row: Int32Array;
}
export interface ReadReply {
  id: number;
  bytes?: Uint8Array;
  error?: string;
}

const setup = workerData as ReaderSetup;
const fds: (number | undefined)[] = new Array(setup.paths.length);

parentPort!.on('message', (req: ReadRequest) => {
  const { rowBytes } = setup;
  const bytes = new Uint8Array(req.row.length * rowBytes);
  try {
    for (let i = 0; i < req.row.length; i++) {
      const s = req.shard[i];
      const fd = (fds[s] ??= openSync(setup.paths[s], 'r'));
      const at = setup.dataOffsets[s] + req.row[i] * rowBytes;
      const got = readSync(fd, bytes, i * rowBytes, rowBytes, at);
      if (got !== rowBytes)
        throw new Error(`${setup.paths[s]}: ${got} bytes at offset ${at}, ${rowBytes} expected (truncated?)`);
    }
    parentPort!.postMessage({ id: req.id, bytes } satisfies ReadReply, [bytes.buffer]);
  } catch (e) {
    parentPort!.postMessage({ id: req.id, error: (e as Error).message } satisfies ReadReply);
  }
});

parentPort!.on('close', () => fds.forEach((fd) => fd !== undefined && closeSync(fd)));
