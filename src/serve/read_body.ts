/**
 * Reading a request body within the server's limits: --body-limit (413, checked against
 * Content-Length before anything is read, and while reading) and --timeout-ms (408).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError } from './http_errors.js';

/** A client that went away: nothing to answer. */
export class ClientGone extends Error {}

export interface BodyOptions {
  bodyLimit: number;
  timeoutMs: number;
  /** The client sent `Expect: 100-continue` and waits for "100 Continue" before the body. */
  expectsContinue: boolean;
}

/** The whole body, or HttpError 413 (over the limit) / 408 (not complete within timeoutMs). */
export function readBody(req: IncomingMessage, res: ServerResponse, o: BodyOptions): Promise<Buffer> {
  const limit = o.bodyLimit;
  const tooLarge = (size: string) =>
    new HttpError(
      'SEMIGAN_ERR_BODY_TOO_LARGE',
      `the body is ${size}; this server accepts at most ${limit} bytes (--body-limit)`,
    );
  const declared = Number(req.headers['content-length']);
  if (req.headers['content-length'] !== undefined && declared > limit)
    return Promise.reject(tooLarge(`${declared} bytes`));
  if (o.expectsContinue) res.writeContinue();
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let timer: NodeJS.Timeout | null = null;
    const done = (err: Error | null, body?: Buffer) => {
      if (timer) clearTimeout(timer);
      req.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
      if (err) reject(err);
      else resolve(body!);
    };
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > limit) done(tooLarge(`more than ${limit} bytes`));
      else chunks.push(c);
    };
    const onEnd = () => done(null, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size));
    const onError = () => done(new ClientGone());
    const onClose = () => done(new ClientGone());
    req.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose);
    if (o.timeoutMs > 0) {
      timer = setTimeout(
        () =>
          done(
            new HttpError(
              'SEMIGAN_ERR_TIMEOUT',
              `the request did not arrive within ${o.timeoutMs} ms (received ${size} bytes of the body); send the whole request within --timeout-ms`,
            ),
          ),
        o.timeoutMs,
      );
    }
  });
}
