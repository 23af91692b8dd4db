import type { ValidateFunction } from 'ajv';
import type { Request, RequestHandler, Response } from 'express';
import { admitRequest, type Release } from '../admission';
import { HttpError } from '../errors';
import type { RequestType } from '../metrics';
import {
  checkModel,
  serveCompletion,
  type CompletionFormat,
  type CompletionJob,
  type OpenAiDeps,
} from '../openai/completion';
import type { CommonBody } from '../openai/schemas';
import { validateBody } from '../validation';
import { samplingOf } from './generate';

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
): Pick<CompletionJob, 'model' | 'stop' | 'stream' | 'includeUsage' | 'startedAt' | 'sampling'> {
  const stop = body.stop == null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop;
  return {
    model: body.model,
    stop,
    sampling: samplingOf(body),
    stream: body.stream === true,
    includeUsage: body.stream === true && body.stream_options?.include_usage === true,
    startedAt,
  };
}

/**
 * An OpenAI completion route: validates the body, refuses what is unsupported, checks the model,
 * builds the job (`parse` gives the route's prompt and token limit, throwing an HttpError for what
 * the route refuses), then serves it in `format`. Requests refused at the edge are counted as rejected.
 */
export function completionRoute<B extends CommonBody>(
  deps: OpenAiDeps,
  endpoint: CompletionJob['endpoint'],
  format: CompletionFormat,
  validate: ValidateFunction<B>,
  parse: (body: B) => Pick<CompletionJob, 'prompt' | 'maxTokens' | 'messages'>,
): RequestHandler {
  return async (req: Request, res: Response): Promise<void> => {
    const startedAt = performance.now();
    let job: CompletionJob;
    let release: Release;
    try {
      const body = validateBody(req, validate);
      rejectUnsupported(body);
      const parsed = parse(body);
      await checkModel(deps.models, body.model);
      job = { ...commonJob(body, startedAt), endpoint, requestId: requestIdOf(req), ...parsed };
      release = await admitRequest(deps.admission, body.model, res);
    } catch (e) {
      deps.metrics.rejected(endpoint, requestTypeOf(req));
      throw e;
    }
    try {
      await serveCompletion(res, deps, job, format);
    } finally {
      release();
    }
  };
}
