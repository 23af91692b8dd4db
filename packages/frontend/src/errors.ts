import type { Response } from 'express';
import { toDynamoError, type ErrorCode } from '@dynamo-ts/runtime';

/** The one table from error code to HTTP status and OpenAI error type. */
export const HTTP_ERRORS: Record<ErrorCode, { status: number; type: string }> = {
  INVALID_ARGUMENT: { status: 400, type: 'invalid_request_error' },
  UNAUTHENTICATED: { status: 401, type: 'authentication_error' },
  NOT_FOUND: { status: 404, type: 'not_found_error' },
  PAYLOAD_TOO_LARGE: { status: 413, type: 'invalid_request_error' },
  RESOURCE_EXHAUSTED: { status: 429, type: 'rate_limit_error' },
  CANCELLED: { status: 499, type: 'cancelled' },
  INTERNAL: { status: 500, type: 'internal_error' },
  UNAVAILABLE: { status: 503, type: 'service_unavailable' },
  CLOSED: { status: 503, type: 'service_unavailable' },
  TIMEOUT: { status: 504, type: 'timeout' },
};

/** The OpenAI-shaped error body. */
export interface ErrorBody {
  error: { message: string; type: string; code: string; param?: string | null };
}

/** Builds the OpenAI-shaped error body of any thrown value. */
export function errorBody(e: unknown, param?: string): ErrorBody {
  const err = toDynamoError(e);
  return {
    error: {
      message: err.message,
      type: HTTP_ERRORS[err.code].type,
      code: err.code.toLowerCase(),
      param: param ?? null,
    },
  };
}

/** HTTP status of any thrown value. */
export function errorStatus(e: unknown): number {
  return HTTP_ERRORS[toDynamoError(e).code].status;
}

/** Answers `res` with the error's status and OpenAI-shaped body (unless headers were sent). */
export function sendError(res: Response, e: unknown, param?: string): void {
  if (res.headersSent) return;
  res.status(errorStatus(e)).json(errorBody(e, param));
}

/** An error with an explicit HTTP status (for conditions with no runtime code, e.g. 415). */
export class HttpError extends Error {
  /** Headers the error answer carries (e.g. `Retry-After`). */
  headers: Record<string, string> | undefined = undefined;

  constructor(
    readonly status: number,
    readonly type: string,
    readonly code: string,
    message: string,
    readonly param?: string,
  ) {
    super(message);
    this.name = 'HttpError';
  }
  body(): ErrorBody {
    return { error: { message: this.message, type: this.type, code: this.code, param: this.param ?? null } };
  }
}
