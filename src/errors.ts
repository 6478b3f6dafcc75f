/**
 * Errors a user can act on. The CLI prints `error: <message>` (no stack trace) and exits non-zero
 * for any SemiganError; anything else is a bug and keeps its stack.
 * Messages say what was wrong, what was expected, and where (file, line, field).
 */
export type ErrorCode =
  | 'SEMIGAN_ERR_CONFIG'
  | 'SEMIGAN_ERR_DATA'
  | 'SEMIGAN_ERR_RUN_DIR'
  | 'SEMIGAN_ERR_NAN'
  | 'SEMIGAN_ERR_BACKEND'
  | 'SEMIGAN_ERR_EXPORT' // a run that cannot be exported (e.g. minibatch discrimination)
  | 'SEMIGAN_ERR_MODEL_DIR' // an exported model directory that is missing or malformed
  | 'SEMIGAN_ERR_INPUT' // an input to predict that cannot be read (undecodable image, CSV without a tabular model)
  | 'SEMIGAN_ERR_BUSY'; // another process holds a lock for longer than semigan waits

export class SemiganError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'SemiganError';
  }
}

export const configError = (msg: string) => new SemiganError('SEMIGAN_ERR_CONFIG', msg);
export const dataError = (msg: string) => new SemiganError('SEMIGAN_ERR_DATA', msg);
export const inputError = (msg: string) => new SemiganError('SEMIGAN_ERR_INPUT', msg);
