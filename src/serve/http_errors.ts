/**
 * The HTTP server's error codes: one table, code -> HTTP status, and when each is returned.
 * docs/serving.md reproduces this table (test/serve/server.test.ts checks that they match), and every
 * error response is `{"error": {"code": CODE, "message": "..."}}` with this status. Codes are
 * stable: clients may branch on them; messages say what was wrong and what was expected, and may
 * change.
 */

export const HTTP_ERRORS = {
  SEMIGAN_ERR_MALFORMED_JSON: { status: 400, when: 'a JSON body that does not parse' },
  SEMIGAN_ERR_INVALID_BODY: {
    status: 400,
    when: 'JSON that is not an object with exactly one of "inputs" (an array of rows) or "images" (an array of strings)',
  },
  SEMIGAN_ERR_EMPTY_INPUT: { status: 400, when: 'an empty body, "inputs": [] or "images": []' },
  SEMIGAN_ERR_FEATURE_COUNT: {
    status: 400,
    when: "an input row whose length is not the model's height x width x channels (names the input, expected and received length)",
  },
  SEMIGAN_ERR_NON_NUMERIC: {
    status: 400,
    when: 'an input value that is not a finite number (names the input and position)',
  },
  SEMIGAN_ERR_OUT_OF_RANGE: { status: 400, when: 'an input value outside [0, 1] (pixels must be divided by 255)' },
  SEMIGAN_ERR_BAD_BASE64: { status: 400, when: 'an "images" entry that is not a base64 string' },
  SEMIGAN_ERR_BAD_PARAMETER: { status: 400, when: 'a bad query parameter (top_k)' },
  SEMIGAN_ERR_BAD_HTTP: { status: 400, when: 'a request that is not valid HTTP/1.1 (the connection is closed)' },
  SEMIGAN_ERR_UNAUTHORIZED: {
    status: 401,
    when: 'the server has a token and the request has no `Authorization: Bearer TOKEN` header or a wrong token',
  },
  SEMIGAN_ERR_NOT_FOUND: { status: 404, when: 'an unknown path' },
  SEMIGAN_ERR_METHOD_NOT_ALLOWED: {
    status: 405,
    when: 'a known path with the wrong method (the `Allow` header lists the right one)',
  },
  SEMIGAN_ERR_TIMEOUT: { status: 408, when: 'the request (headers and body) did not arrive within --timeout-ms' },
  SEMIGAN_ERR_BODY_TOO_LARGE: { status: 413, when: 'a body larger than --body-limit' },
  SEMIGAN_ERR_TOO_MANY_ROWS: { status: 413, when: 'more "inputs" rows or "images" in one request than --max-rows' },
  SEMIGAN_ERR_TOO_MANY_PIXELS: {
    status: 413,
    when: 'images whose pixels, summed from their headers before any is decoded, exceed --max-request-pixels (default 64 million)',
  },
  SEMIGAN_ERR_UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    when: 'a POST whose Content-Type is not image/png, image/jpeg, image/webp or application/json, or whose body is compressed (Content-Encoding)',
  },
  SEMIGAN_ERR_UNDECODABLE_IMAGE: { status: 422, when: 'image bytes that cannot be decoded (names the image)' },
  SEMIGAN_ERR_IMAGE_TOO_LARGE: {
    status: 422,
    when: 'an image of more pixels than --max-image-pixels (default 25 million), from its header',
  },
  SEMIGAN_ERR_HEADERS_TOO_LARGE: { status: 431, when: "request headers larger than Node's limit (16 KiB)" },
  SEMIGAN_ERR_INTERNAL: { status: 500, when: 'a failure inside the server (a bug; the message says what failed)' },
  SEMIGAN_ERR_SHUTTING_DOWN: {
    status: 503,
    when: 'a new connection while the server drains after SIGTERM (retry on another instance; Retry-After: 1)',
  },
} as const satisfies Record<string, { status: number; when: string }>;

export type HttpErrorCode = keyof typeof HTTP_ERRORS;

export const httpStatusOf = (code: HttpErrorCode): number => HTTP_ERRORS[code].status;

/** An error answered as `{"error": {"code", "message"}}` with the table's status (and optional extra headers). */
export class HttpError extends Error {
  constructor(
    readonly code: HttpErrorCode,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }

  get status(): number {
    return httpStatusOf(this.code);
  }

  /** The response body. */
  toJSON(): { error: { code: HttpErrorCode; message: string } } {
    return { error: { code: this.code, message: this.message } };
  }
}
