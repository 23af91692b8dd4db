import type { Request } from 'express';
import { HttpError } from '../errors';
import type { RequestType } from '../metrics';
import type { CompletionJob } from '../openai/completion';
import type { CommonBody } from '../openai/schemas';

const REQUEST_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,255}$/;

/** The request id: the client's `x-request-id` header when well-formed, else a new UUID. */
export function requestIdOf(req: Request): string {
  const h = req.headers['x-request-id'];
  return typeof h === 'string' && REQUEST_ID.test(h) ? h : globalThis.crypto.randomUUID();
}

/** `stream` or `unary`, from the (maybe invalid) body, for the metrics of rejected requests. */
export function requestTypeOf(req: Request): RequestType {
  const body: unknown = req.body;
  return typeof body === 'object' && body !== null && (body as { stream?: unknown }).stream === true
    ? 'stream'
    : 'unary';
}

/** Refuses what one completion per request cannot honour (`n` > 1). */
export function rejectUnsupported(body: CommonBody): void {
  if (body.n != null && body.n > 1) {
    throw new HttpError(
      400,
      'invalid_request_error',
      'unsupported',
      `n must be 1 (got ${body.n}): one choice per request is supported`,
      'n',
    );
  }
}

/** The parts of a {@link CompletionJob} both OpenAI bodies give the same way. */
export function commonJob(
  body: CommonBody,
  startedAt: number,
): Pick<CompletionJob, 'model' | 'stop' | 'stream' | 'includeUsage' | 'startedAt'> {
  const stop = body.stop == null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop;
  return {
    model: body.model,
    stop,
    stream: body.stream === true,
    includeUsage: body.stream === true && body.stream_options?.include_usage === true,
    startedAt,
  };
}
