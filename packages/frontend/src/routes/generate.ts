import type { Request, RequestHandler, Response } from 'express';
import { toDynamoError, type CancelSource, type Logger } from '@dynamo-ts/runtime';
import { admitRequest, type Admission, type Release } from '../admission';
import { errorBody, sendError } from '../errors';
import { UNSPECIFIED_MODEL, type FrontendMetrics } from '../metrics';
import { RequestScope, releaseUpstream } from '../request-scope';
import { endSse, startSse, waitDrain, wantsEventStream, writeSse } from '../sse';
import { compileBodySchema, validateBody } from '../validation';

/** A generation request as the frontend hands it upstream (`request_id` filled in). */
export interface GenerateRequest {
  prompt: string;
  request_id: string;
  /** Generate at most this many tokens (the upstream stops there and says `finish_reason: 'length'`). */
  max_tokens?: number;
  /** The model asked for (already checked to be served). */
  model?: string;
  /** A chat's conversation (role + text of each turn), for the model's chat template; `prompt` is its last user message. */
  messages?: ChatTurn[];
  /** Sampling: 0 = greedy (deterministic); absent = the engine's default. */
  temperature?: number;
  top_p?: number;
  /** With `temperature` > 0: the same seed gives the same text. */
  seed?: number;
}

/** One turn of a chat as the frontend hands it upstream. */
export interface ChatTurn {
  role: string;
  content: string;
}

/** The sampling fields of a {@link GenerateRequest}. */
export type SamplingParams = Pick<GenerateRequest, 'temperature' | 'top_p' | 'seed'>;

/** The sampling fields of a validated body that are set (null and absent are left out). */
export function samplingOf(body: {
  temperature?: number | null;
  top_p?: number | null;
  seed?: number | null;
}): SamplingParams {
  const out: SamplingParams = {};
  if (body.temperature != null) out.temperature = body.temperature;
  if (body.top_p != null) out.top_p = body.top_p;
  if (body.seed != null) out.seed = body.seed;
  return out;
}

/** Why a generation ended: `length` when `max_tokens` cut it. */
export type FinishReason = 'stop' | 'length';

/** One upstream event. */
export interface GenerateEvent {
  /** A piece of the output text (may be `''`, e.g. on the last event). */
  worker_output: string;
  request_id: string;
  /** The prompt's length in tokens. */
  prompt_tokens?: number;
  /** Output tokens so far (cumulative). */
  completion_tokens?: number;
  /** On the last event only. */
  finish_reason?: FinishReason;
}

/** How a generation request is cancelled (client gone, timeout, stop sequence). */
export interface GenerateOptions {
  /** Fires when the request must stop (an AbortSignal, created when first read). */
  readonly signal: AbortSignal;
  /** The same cancellation without an AbortSignal: pass it as `parent` to runtime requests. */
  readonly parent: CancelSource;
  /**
   * When the request is traced: headers carrying its span to the upstream call (a typed client
   * given `parent` sends them itself).
   */
  readonly traceHeaders?: Readonly<Record<string, string>>;
}

/** Runs a generation request; must stop when it is cancelled (see {@link GenerateOptions}). */
export type GenerateFn = (request: GenerateRequest, options: GenerateOptions) => AsyncIterable<GenerateEvent>;

/** JSON schema of the `/generate` body. */
export const GENERATE_BODY_SCHEMA = {
  type: 'object',
  required: ['prompt'],
  properties: {
    prompt: { type: 'string', minLength: 1 },
    // Echoed in the x-request-id header: printable ASCII only.
    request_id: { type: 'string', minLength: 1, maxLength: 256, pattern: '^[ -~]+$' },
    temperature: { type: 'number', minimum: 0, maximum: 2 },
    top_p: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
    seed: { type: 'integer', minimum: 0, maximum: 4294967295 },
  },
} as const;

type GenerateBody = { prompt: string; request_id?: string } & SamplingParams;
const validate = compileBodySchema<GenerateBody>(GENERATE_BODY_SCHEMA);

/** What {@link generateRoute} needs from the app. */
export interface GenerateRouteOptions {
  generate: GenerateFn;
  logger: Logger;
  metrics: FrontendMetrics;
  /** Per-request timeout, ms; 0 = none. */
  timeoutMs: number;
  /** Load shedding (`/generate` names no model: one queue for the route); undefined admits every request. */
  admission?: Admission;
}

/**
 * `POST /generate` (the seed's route): streams `data: {"worker_output","request_id"}` events when
 * the client accepts `text/event-stream`, else answers one JSON body with the whole output. A
 * client that disconnects, or the timeout, cancels the work.
 */
export function generateRoute(options: GenerateRouteOptions): RequestHandler {
  const { generate, logger, metrics, timeoutMs } = options;
  return async (req: Request, res: Response): Promise<void> => {
    const startedAt = performance.now();
    const stream = wantsEventStream(req.headers.accept);
    const requestType = stream ? 'stream' : 'unary';
    let body: GenerateBody;
    let release: Release;
    try {
      body = validateBody(req, validate);
      release = await admitRequest(options.admission, UNSPECIFIED_MODEL, res);
    } catch (e) {
      metrics.rejected('generate', requestType);
      throw e;
    }
    const requestId = body.request_id ?? globalThis.crypto.randomUUID();
    res.setHeader('x-request-id', requestId);
    const scope = new RequestScope(res, timeoutMs);
    const tracker = metrics.start({ model: UNSPECIFIED_MODEL, endpoint: 'generate', requestType }, startedAt);
    let it: AsyncIterator<GenerateEvent> | undefined;
    let streaming = false;
    try {
      it = generate({ prompt: body.prompt, request_id: requestId, ...samplingOf(body) }, scope)[Symbol.asyncIterator]();
      // The first event comes before any byte is sent, so an upstream failure gets a real status.
      let r = await scope.next(it);
      let output = '';
      // The seed's event shape `{"worker_output","request_id"}`, the request id encoded once.
      const idJson = JSON.stringify(requestId);
      if (stream) {
        startSse(res);
        streaming = true;
      }
      for (; !r.done; r = await scope.next(it)) {
        const ev = r.value;
        tracker.event(ev.worker_output, ev.completion_tokens, ev.prompt_tokens);
        if (!ev.worker_output) continue;
        if (!streaming) output += ev.worker_output;
        // The seed's exact event shape, whatever else the upstream reports.
        else if (!writeSse(res, `{"worker_output":${JSON.stringify(ev.worker_output)},"request_id":${idJson}}`)) {
          await waitDrain(res);
        }
      }
      if (scope.cause === 'client_gone') throw scope.reason!;
      if (streaming) endSse(res);
      else res.json({ worker_output: output, request_id: requestId });
      tracker.finish('success');
    } catch (e) {
      if (scope.cause === 'client_gone') {
        tracker.finish('cancelled');
        logger.info('client left; request cancelled', { request_id: requestId });
        if (!res.writableEnded) res.end();
        return;
      }
      const err = scope.cause === 'timeout' ? scope.reason! : e;
      tracker.finish('error');
      logRequestError(logger, requestId, err);
      if (!streaming) {
        sendError(res, err);
        return;
      }
      writeSse(res, errorBody(err), 'error');
      endSse(res);
    } finally {
      scope.close();
      release();
      if (it) releaseUpstream(it);
    }
  };
}

function logRequestError(logger: Logger, requestId: string, e: unknown): void {
  const err = toDynamoError(e);
  const level = err.code === 'CANCELLED' ? 'info' : err.code === 'INTERNAL' ? 'error' : 'warn';
  logger[level]('generate failed', { request_id: requestId, code: err.code, error: err.message });
}
