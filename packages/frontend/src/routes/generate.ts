import type { Request, RequestHandler, Response } from 'express';
import { toDynamoError, type Logger } from '@dynamo-ts/runtime';
import { errorBody, sendError } from '../errors';
import { startSse, waitDrain, wantsEventStream, writeSse } from '../sse';
import { compileBodySchema, validateBody } from '../validation';

/** The seed's `/generate` request, after validation (`request_id` filled in). */
export interface GenerateRequest {
  prompt: string;
  request_id: string;
}

/** One `/generate` event. */
export interface GenerateEvent {
  worker_output: string;
  request_id: string;
}

/** Runs a generate request; must stop when `signal` fires (client gone). */
export type GenerateFn = (request: GenerateRequest, options: { signal: AbortSignal }) => AsyncIterable<GenerateEvent>;

/** JSON schema of the `/generate` body. */
export const GENERATE_BODY_SCHEMA = {
  type: 'object',
  required: ['prompt'],
  properties: {
    prompt: { type: 'string', minLength: 1 },
    request_id: { type: 'string', minLength: 1, maxLength: 256 },
  },
} as const;

const validate = compileBodySchema<{ prompt: string; request_id?: string }>(GENERATE_BODY_SCHEMA);

/**
 * `POST /generate`: streams `data: {"worker_output","request_id"}` events when the client
 * accepts `text/event-stream`, else answers one JSON body with the whole output. A client that
 * disconnects cancels the work.
 */
export function generateRoute(generate: GenerateFn, logger: Logger): RequestHandler {
  return async (req: Request, res: Response): Promise<void> => {
    const body = validateBody(req, validate);
    const requestId = body.request_id ?? globalThis.crypto.randomUUID();
    res.setHeader('x-request-id', requestId);
    const abort = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) abort.abort(new Error('client disconnected'));
    });
    const stream = wantsEventStream(req.headers.accept);
    const events = generate({ prompt: body.prompt, request_id: requestId }, { signal: abort.signal });
    if (!stream) {
      let output = '';
      try {
        for await (const ev of events) output += ev.worker_output;
      } catch (e) {
        logRequestError(logger, requestId, e);
        sendError(res, e);
        return;
      }
      res.json({ worker_output: output, request_id: requestId });
      return;
    }
    const it = events[Symbol.asyncIterator]();
    let first: IteratorResult<GenerateEvent>;
    try {
      first = await it.next();
    } catch (e) {
      // Nothing sent yet: a proper HTTP error status.
      logRequestError(logger, requestId, e);
      sendError(res, e);
      return;
    }
    startSse(res);
    try {
      for (let r = first; !r.done; r = await it.next()) {
        if (abort.signal.aborted) break;
        if (!writeSse(res, r.value)) await waitDrain(res);
      }
    } catch (e) {
      logRequestError(logger, requestId, e);
      if (!abort.signal.aborted) writeSse(res, errorBody(e), 'error');
    } finally {
      if (abort.signal.aborted) await it.return?.();
    }
    res.end();
  };
}

function logRequestError(logger: Logger, requestId: string, e: unknown): void {
  const err = toDynamoError(e);
  const level = err.code === 'CANCELLED' ? 'info' : err.code === 'INTERNAL' ? 'error' : 'warn';
  logger[level]('generate failed', { request_id: requestId, code: err.code, error: err.message });
}
