import type { Response } from 'express';
import type { Admission } from '../admission';
import { CancelledError, UnavailableError, toDynamoError, type Logger } from '@dynamo-ts/runtime';
import { HttpError, errorBody, sendError } from '../errors';
import type { FrontendEndpoint, FrontendMetrics } from '../metrics';
import { RequestScope, releaseUpstream } from '../request-scope';
import type { ChatTurn, FinishReason, GenerateEvent, GenerateFn, SamplingParams } from '../routes/generate';
import { endSse, startSse, waitDrain, writeSse } from '../sse';
import { StopMatcher } from './stop';

/** The models served now (ids), for `GET /v1/models` and the check of a request's `model`. */
export type ModelsFn = () => readonly string[] | Promise<readonly string[]>;

/** What the OpenAI routes need from the app. */
export interface OpenAiDeps {
  generate: GenerateFn;
  models: ModelsFn | undefined;
  metrics: FrontendMetrics;
  logger: Logger;
  /** Per-request timeout, ms; 0 = none. */
  timeoutMs: number;
  /** Load shedding per model; undefined admits every request. */
  admission?: Admission;
}

/** One accepted completion request, whatever route it came in on. */
export interface CompletionJob {
  endpoint: Exclude<FrontendEndpoint, 'generate'>;
  requestId: string;
  model: string;
  prompt: string;
  /** A chat's conversation (the chat route only). */
  messages?: ChatTurn[];
  maxTokens: number | undefined;
  /** Sampling fields the client set (passed on to the engine). */
  sampling: SamplingParams;
  stop: string[];
  stream: boolean;
  includeUsage: boolean;
  /** `performance.now()` at the request's arrival. */
  startedAt: number;
}

/** Token counts of an answer, as OpenAI reports them. */
export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** How one route shapes its answers (chat vs text completions). */
export interface CompletionFormat {
  /** Prefix of response ids (`chatcmpl-`, `cmpl-`). */
  idPrefix: string;
  /** `object` of the unary answer. */
  object: string;
  /** `object` of each streamed chunk. */
  chunkObject: string;
  /** The choice of the first streamed chunk, if the format has one (chat: the assistant role). */
  openingChoice?: () => Record<string, unknown>;
  /** The choice of a streamed chunk carrying `text`. */
  textChoice(text: string): Record<string, unknown>;
  /** The choice of the last streamed chunk. */
  closingChoice(finish: FinishReason): Record<string, unknown>;
  /** The choice of the unary answer. */
  fullChoice(text: string, finish: FinishReason): Record<string, unknown>;
}

/** `/v1/chat/completions` answers. */
export const CHAT_FORMAT: CompletionFormat = {
  idPrefix: 'chatcmpl-',
  object: 'chat.completion',
  chunkObject: 'chat.completion.chunk',
  openingChoice: () => ({ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }),
  textChoice: (text) => ({ index: 0, delta: { content: text }, logprobs: null, finish_reason: null }),
  closingChoice: (finish) => ({ index: 0, delta: {}, logprobs: null, finish_reason: finish }),
  fullChoice: (text, finish) => ({
    index: 0,
    message: { role: 'assistant', content: text, refusal: null },
    logprobs: null,
    finish_reason: finish,
  }),
};

/** `/v1/completions` answers. */
export const TEXT_FORMAT: CompletionFormat = {
  idPrefix: 'cmpl-',
  object: 'text_completion',
  chunkObject: 'text_completion',
  textChoice: (text) => ({ index: 0, text, logprobs: null, finish_reason: null }),
  closingChoice: (finish) => ({ index: 0, text: '', logprobs: null, finish_reason: finish }),
  fullChoice: (text, finish) => ({ index: 0, text, logprobs: null, finish_reason: finish }),
};

/**
 * Checks that `model` is served: 404 `model_not_found` when it is not, 503 when no model is
 * served at all (no worker yet). Without a `models` callback every model is accepted.
 */
export async function checkModel(models: ModelsFn | undefined, model: string): Promise<void> {
  if (!models) return;
  const served = await models();
  if (served.includes(model)) return;
  if (served.length === 0) throw new UnavailableError(`no model is served yet (asked for '${model}')`);
  throw new HttpError(
    404,
    'invalid_request_error',
    'model_not_found',
    `The model '${model}' does not exist (served: ${served.join(', ')})`,
    'model',
  );
}

/**
 * Runs `job` against the upstream and answers it in `format`: Server-Sent Events chunks ending
 * with `data: [DONE]` when streaming, else one JSON body with `usage`. Text is cut before the
 * first stop sequence (the upstream is then aborted); a client that disconnects, or the timeout,
 * aborts the upstream too.
 */
export async function serveCompletion(
  res: Response,
  deps: OpenAiDeps,
  job: CompletionJob,
  format: CompletionFormat,
): Promise<void> {
  res.setHeader('x-request-id', job.requestId);
  const scope = new RequestScope(res, deps.timeoutMs);
  const tracker = deps.metrics.start(
    { model: job.model, endpoint: job.endpoint, requestType: job.stream ? 'stream' : 'unary' },
    job.startedAt,
  );
  const id = format.idPrefix + job.requestId;
  const created = Math.floor(Date.now() / 1000);
  const envelope = (object: string, extra: Record<string, unknown>): Record<string, unknown> => ({
    id,
    object,
    created,
    model: job.model,
    ...extra,
  });
  const stop = new StopMatcher(job.stop);
  let promptTokens = 0;
  let finish: FinishReason = 'stop';
  let text = '';
  let streaming = false;

  let it: AsyncIterator<GenerateEvent> | undefined;
  const usage = (): Usage => ({
    prompt_tokens: promptTokens,
    completion_tokens: tracker.completionTokens,
    total_tokens: promptTokens + tracker.completionTokens,
  });
  const streamUsage = job.includeUsage ? { usage: null } : {};
  const emit = async (piece: string): Promise<void> => {
    if (!streaming) {
      text += piece;
      return;
    }
    const chunk = envelope(format.chunkObject, { choices: [format.textChoice(piece)], ...streamUsage });
    if (!writeSse(res, chunk)) await waitDrain(res);
  };
  const take = (ev: GenerateEvent): { text: string; stopped: boolean } => {
    tracker.event(ev.worker_output, ev.completion_tokens, ev.prompt_tokens);
    if (ev.prompt_tokens !== undefined) promptTokens = ev.prompt_tokens;
    if (ev.finish_reason) finish = ev.finish_reason;
    return stop.push(ev.worker_output);
  };

  try {
    it = deps
      .generate(
        {
          prompt: job.prompt,
          request_id: job.requestId,
          model: job.model,
          ...(job.maxTokens !== undefined ? { max_tokens: job.maxTokens } : {}),
          ...(job.messages !== undefined ? { messages: job.messages } : {}),
          ...job.sampling,
        },
        scope,
      )
      [Symbol.asyncIterator]();
    // The first event comes before any byte is sent, so an upstream failure gets a real status.
    let r = await scope.next(it);
    if (job.stream) {
      startSse(res);
      streaming = true;
      if (format.openingChoice)
        writeSse(res, envelope(format.chunkObject, { choices: [format.openingChoice()], ...streamUsage }));
    }
    for (; !r.done; r = await scope.next(it)) {
      const piece = take(r.value);
      if (piece.text) await emit(piece.text);
      if (piece.stopped) {
        finish = 'stop';
        scope.abort('stopped', new CancelledError('stop sequence reached'));
        break;
      }
    }
    if (!stop.done) {
      const tail = stop.flush();
      if (tail) await emit(tail);
      // The stream ended while a stop sequence waited on a longer candidate: it stopped there.
      if (stop.done) finish = 'stop';
    }
    if (scope.cause === 'client_gone') throw scope.reason!;
    if (streaming) {
      writeSse(res, envelope(format.chunkObject, { choices: [format.closingChoice(finish)], ...streamUsage }));
      if (job.includeUsage) writeSse(res, envelope(format.chunkObject, { choices: [], usage: usage() }));
      writeSse(res, '[DONE]');
      endSse(res);
    } else {
      res.json(envelope(format.object, { choices: [format.fullChoice(text, finish)], usage: usage() }));
    }
    tracker.finish('success');
  } catch (e) {
    if (scope.cause === 'client_gone') {
      tracker.finish('cancelled');
      deps.logger.info('client left; request cancelled', { request_id: job.requestId });
      if (!res.writableEnded) res.end();
      return;
    }
    const err = scope.cause === 'timeout' ? scope.reason! : e;
    tracker.finish('error');
    const de = toDynamoError(err);
    deps.logger[de.code === 'INTERNAL' ? 'error' : 'warn']('completion failed', {
      request_id: job.requestId,
      code: de.code,
      error: de.message,
    });
    if (!streaming) {
      sendError(res, err);
      return;
    }
    // Headers are gone: the error travels as a data event, which OpenAI clients raise.
    writeSse(res, errorBody(err));
    writeSse(res, '[DONE]');
    endSse(res);
  } finally {
    scope.close();
    if (it) releaseUpstream(it);
  }
}
