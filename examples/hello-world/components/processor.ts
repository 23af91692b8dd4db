import { isDynamoError } from '@dynamo-ts/runtime';
import { defineService, type EndpointContext } from '@dynamo-ts/sdk';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  PROCESSOR_REQUEST_SCHEMA,
  type FinishReason,
  type ProcessorEvent,
  type ProcessorRequest,
  type RequestStatus,
  type RouteDecision,
  type RouteRequest,
  type WorkerEvent,
  type WorkerRequest,
} from './protocol';
import { Router } from './router';
import { IncrementalDetokenizer, tokenize } from './tokenizer';
import { DummyWorker } from './worker';

/** Config of the Processor. */
export interface ProcessorConfig {
  /** Workers tried for one request when the chosen one is unavailable before its first token. */
  max_route_attempts: number;
  /** Times one stream may move to another worker after its worker died mid-stream. */
  migration_limit: number;
  /** Pause before the n-th retry or migration: n times this, ms. */
  retry_backoff_ms: number;
}

/** Errors that mean the worker (not the request) failed: its instance is gone or stopped answering. */
const WORKER_GONE = new Set(['UNAVAILABLE', 'NOT_FOUND', 'TIMEOUT']);

/**
 * Pre/post-processing: tokenizes the prompt, asks the Router for the best worker, calls that
 * worker directly, detokenizes its token stream. A worker that turns out to be gone before its
 * first token is marked down and the request is routed again (`max_route_attempts`); one that
 * dies mid-stream is marked down and the stream migrates: prompt + tokens generated so far go
 * to another worker, which continues after them, so the client's stream has no gap or
 * duplicate (`migration_limit`).
 */
export const Processor = defineService<ProcessorConfig>({
  name: 'Processor',
  dependencies: [Router, DummyWorker],
  configSchema: {
    properties: {
      max_route_attempts: { type: 'integer', minimum: 1, maximum: 16, default: 5 },
      migration_limit: { type: 'integer', minimum: 0, maximum: 16, default: 3 },
      retry_backoff_ms: { type: 'number', minimum: 0, maximum: 10000, default: 50 },
    },
  },
  async create(ctx) {
    const router = await ctx.client(Router, 'generate');
    const workers = await ctx.client(DummyWorker, 'generate');
    for (const i of workers.instances()) ctx.logger.info('worker joined', { name: i.name, instance_id: i.instanceId });
    workers.onChange((c) =>
      ctx.logger.info(c.type === 'added' ? 'worker joined' : 'worker left', {
        name: c.instance.name,
        instance_id: c.instance.instanceId,
      }),
    );
    const status = (s: RequestStatus): void => {
      ctx.component.publish('request_status', s).catch((e: Error) => {
        ctx.logger.warn('could not publish request status', { request_id: s.request_id, error: e.message });
      });
    };
    // `first_token` goes out at the end of the event loop's turn; a stream that finished within
    // that turn sends only `finished` (which releases the prefill load too): one event, not two.
    // One timer per turn for all of them. Each attempt withdraws its own pending status object
    // (found by identity: no key string built and hashed twice a request).
    let firstTokenPending = new Set<RequestStatus>();
    let firstTokenTimer: NodeJS.Immediate | undefined;
    const sendFirstTokens = (): void => {
      const pending = firstTokenPending;
      firstTokenPending = new Set();
      firstTokenTimer = undefined;
      for (const s of pending) status(s);
    };
    const firstToken = (requestId: string, workerId: string): RequestStatus => {
      const s: RequestStatus = { request_id: requestId, worker_id: workerId, status: 'first_token' };
      firstTokenPending.add(s);
      firstTokenTimer ??= setImmediate(sendFirstTokens);
      return s;
    };
    const finished = (requestId: string, workerId: string, first: RequestStatus | undefined): void => {
      if (first !== undefined) firstTokenPending.delete(first);
      status({ request_id: requestId, worker_id: workerId, status: 'finished' });
    };

    async function* generate(req: ProcessorRequest, ectx: EndpointContext): AsyncGenerator<ProcessorEvent> {
      // The request's logger is made on first use: check the level on the service's.
      const debug = ctx.logger.isLevelEnabled('debug');
      const prompt = tokenize(req.prompt);
      const requestId = req.request_id;
      // Tokens the caller has already received (a resumed stream), then what comes now.
      const generated: number[] = req.generated_token_ids ? [...req.generated_token_ids] : [];
      let unsent: number[] = [];
      const detok = new IncrementalDetokenizer();
      const failed: string[] = [];
      let failovers = 0;
      let migrations = 0;
      for (;;) {
        // Every worker failed this request already (e.g. all briefly unreachable while NATS
        // reconnects): after the backoff, any of them may answer again.
        if (failed.length > 0 && workers.instanceIds().every((id) => failed.includes(id))) failed.length = 0;
        const context = generated.length ? prompt.concat(generated) : prompt;
        let decision: RouteDecision | undefined;
        const routeReq: RouteRequest = { token_ids: context, request_id: requestId };
        if (failed.length) routeReq.exclude_workers = failed;
        for await (const d of router.generate<RouteDecision>(routeReq, {
          parent: ectx,
          requestId,
          waitForInstanceMs: 2000,
        })) {
          decision = d;
        }
        if (!decision) throw new Error('router answered nothing');
        if (debug) {
          ectx.logger.debug('routed', {
            worker_id: decision.worker_id,
            overlap_blocks: decision.overlap_blocks,
            failovers,
            migrations,
          });
        }
        // This attempt's `first_token` status, once its first item arrived.
        let first: RequestStatus | undefined;
        let finish: FinishReason | undefined;
        try {
          // Optional fields only when set (no spread of a temporary object per request).
          const workerReq: WorkerRequest = { request_id: requestId, token_ids: prompt };
          if (generated.length) workerReq.generated_token_ids = generated;
          if (req.max_tokens !== undefined) workerReq.max_tokens = req.max_tokens;
          const stream = workers.generate<WorkerEvent>(workerReq, {
            instanceId: decision.worker_id,
            parent: ectx,
            requestId,
          });
          for await (const ev of stream) {
            first ??= firstToken(requestId, decision.worker_id);
            let text = '';
            for (const t of ev.token_ids) {
              generated.push(t);
              unsent.push(t);
              text += detok.push(t);
            }
            if (ev.finish_reason) finish = ev.finish_reason;
            if (text) {
              yield event(text, requestId, prompt.length, generated.length, unsent);
              unsent = [];
            }
          }
        } catch (e) {
          if (ectx.cancelled || !isDynamoError(e) || !WORKER_GONE.has(e.code)) throw e;
          const midStream = generated.length > 0;
          if (midStream ? migrations >= ctx.config.migration_limit : failovers + 1 >= ctx.config.max_route_attempts) {
            throw e;
          }
          if (midStream) migrations++;
          else failovers++;
          workers.markDown(decision.worker_id);
          failed.push(decision.worker_id);
          ectx.logger.warn(midStream ? 'worker died mid-stream; migrating' : 'worker unavailable; routing again', {
            worker_id: decision.worker_id,
            generated_tokens: generated.length,
            failovers,
            migrations,
            error: e.message,
          });
          const pause = (failovers + migrations) * ctx.config.retry_backoff_ms;
          if (pause > 0) await sleep(pause, undefined, { signal: ectx.signal });
          continue;
        } finally {
          finished(requestId, decision.worker_id, first);
        }
        yield event(detok.flush(), requestId, prompt.length, generated.length, unsent, finish ?? 'stop');
        return;
      }
    }

    return { endpoints: { generate: { requestSchema: PROCESSOR_REQUEST_SCHEMA, handler: generate } } };
  },
});

/** One event of the Processor's stream: `tokenIds` are the tokens `text` decodes (sent once). */
function event(
  text: string,
  requestId: string,
  promptTokens: number,
  completionTokens: number,
  tokenIds: number[],
  finish?: FinishReason,
): ProcessorEvent {
  const ev: ProcessorEvent = {
    worker_output: text,
    request_id: requestId,
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    token_ids: tokenIds,
  };
  if (finish) ev.finish_reason = finish;
  return ev;
}
