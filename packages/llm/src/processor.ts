import {
  InternalError,
  isDynamoError,
  type RetryPolicy,
  type CancelSource,
  type Component,
  type Logger,
} from '@dynamo-ts/runtime';
import type { EndpointContext, TypedClient } from '@dynamo-ts/sdk';
import {
  PROGRESS_TOPIC,
  type EngineOutputWire,
  type EngineRequestWire,
  type LlmEvent,
  type LlmRequest,
  type RequestProgress,
  type RouteQuery,
  type RouteResult,
  type WireFinishReason,
} from './protocol';
import type { KvRouterService } from './router-service';
import type { AsyncTokenizer, Tokenizer } from './tokenizer';

/**
 * Where a processor gets its routing decisions, and where it reports each request's progress
 * (first token, end) so the router releases the load it counted.
 */
export interface RouteSource {
  route(query: RouteQuery, options: { parent: CancelSource; requestId: string }): Promise<RouteResult> | RouteResult;
  firstToken(requestId: string, workerId: string): void;
  finished(requestId: string, workerId: string): void;
  close?(): void;
}

/**
 * Routing through the Router component: one unary call per decision; progress published on the
 * Processor's `request_status` topic. A `first_token` goes out at the end of the event loop's
 * turn, so a stream that finished within that turn sends only `finished` (which releases the
 * prefill load too): one event, not two.
 */
export class RemoteRouteSource implements RouteSource {
  private pending = new Map<string, RequestProgress>();
  private timer: NodeJS.Immediate | undefined;
  private readonly flushBound = this.flush.bind(this);

  constructor(
    private readonly router: TypedClient<RouteQuery, RouteResult>,
    private readonly progress: Component,
    private readonly retry: RetryPolicy,
    private readonly logger: Logger,
  ) {}

  route(query: RouteQuery, o: { parent: CancelSource; requestId: string }): Promise<RouteResult> {
    return this.router.call(query, {
      parent: o.parent,
      requestId: o.requestId,
      waitForInstanceMs: 2000,
      retry: this.retry,
    });
  }

  firstToken(requestId: string, workerId: string): void {
    this.pending.set(requestId, { request_id: requestId, worker_id: workerId, status: 'first_token' });
    this.timer ??= setImmediate(this.flushBound);
  }

  finished(requestId: string, workerId: string): void {
    this.pending.delete(requestId);
    this.publish({ request_id: requestId, worker_id: workerId, status: 'finished' });
  }

  private flush(): void {
    const pending = this.pending;
    this.pending = new Map();
    this.timer = undefined;
    for (const p of pending.values()) this.publish(p);
  }

  private publish(p: RequestProgress): void {
    this.progress.publish(PROGRESS_TOPIC, p).catch((e: Error) => {
      this.logger.warn('could not publish request status', { request_id: p.request_id, error: e.message });
    });
  }

  close(): void {
    if (this.timer) clearImmediate(this.timer);
    this.flush();
  }
}

/** Routing in the processor's own process: the {@link KvRouterService} is called directly (no hop). */
export class LocalRouteSource implements RouteSource {
  constructor(private readonly service: KvRouterService) {}
  route(query: RouteQuery): RouteResult {
    return this.service.route(query);
  }
  firstToken(requestId: string): void {
    this.service.firstToken(requestId);
  }
  finished(requestId: string): void {
    this.service.finished(requestId);
  }
  close(): void {
    this.service.close();
  }
}

/** Options of a {@link ProcessorPipeline}. */
export interface ProcessorPipelineOptions {
  tokenizer: Tokenizer | AsyncTokenizer;
  router: RouteSource;
  /** The workers' `generate` endpoint. */
  workers: TypedClient<EngineRequestWire, EngineOutputWire>;
  /** Re-routing before the first token (`attempts`), migration after it (`migrations`), pauses. */
  retry: RetryPolicy;
  /** The service's logger (its level decides whether per-request debug lines are built). */
  logger: Logger;
}

/** Errors that mean the worker (not the request) failed: its instance is gone or stopped answering. */
const WORKER_GONE = new Set(['UNAVAILABLE', 'NOT_FOUND', 'TIMEOUT']);

/** A worker sent something that is not an {@link EngineOutputWire}: treated as a failed worker. */
class MalformedOutputError extends InternalError {}

/**
 * The processor: tokenize, route, call the chosen worker, detokenize its stream. A worker that
 * turns out to be gone before its first token is marked down and the request is routed again;
 * one that dies mid-stream (or sends garbage) is marked down and the stream migrates: prompt +
 * tokens generated so far go to another worker, which continues after them, so the caller's
 * stream has no gap and no duplicate. One {@link RetryPolicy} sets both limits and the pauses.
 */
export class ProcessorPipeline {
  private readonly debug: boolean;
  /** The tokenizer's encoding that yields to the event loop, when it has one. */
  private readonly encode: (text: string) => number[] | Promise<number[]>;

  constructor(private readonly o: ProcessorPipelineOptions) {
    this.debug = o.logger.isLevelEnabled('debug');
    const t = o.tokenizer;
    this.encode = 'encodeAsync' in t && t.encodeAsync ? t.encodeAsync.bind(t) : t.encode.bind(t);
  }

  async *generate(req: LlmRequest, ectx: EndpointContext): AsyncGenerator<LlmEvent> {
    const { tokenizer, router, workers, retry } = this.o;
    // A chat is rendered through the model's template when the tokenizer has one; anything else is raw.
    const prompt =
      req.messages !== undefined && tokenizer.encodeChat !== undefined
        ? await tokenizer.encodeChat(req.messages)
        : await this.encode(req.prompt);
    const requestId = req.request_id;
    // Tokens the caller has already received (a resumed stream), then what comes now.
    const generated: number[] = req.generated_token_ids ? [...req.generated_token_ids] : [];
    let unsent: number[] = [];
    const detok = tokenizer.decoder();
    const failed: string[] = [];
    let failovers = 0;
    let migrations = 0;
    for (;;) {
      // Every worker failed this request already (e.g. all briefly unreachable while NATS
      // reconnects): after the pause, any of them may answer again.
      if (failed.length > 0 && workers.instanceIds().every((id) => failed.includes(id))) failed.length = 0;
      const query: RouteQuery = {
        token_ids: generated.length ? prompt.concat(generated) : prompt,
        request_id: requestId,
      };
      if (failed.length) query.exclude_workers = failed;
      const decision = await router.route(query, { parent: ectx, requestId });
      if (this.debug) {
        ectx.logger.debug('routed', {
          worker_id: decision.worker_id,
          overlap_blocks: decision.overlap_blocks,
          failovers,
          migrations,
        });
      }
      let started = false;
      let finish: WireFinishReason | undefined;
      try {
        const stream = workers.generate(workerRequest(req, prompt, generated), {
          instanceId: decision.worker_id,
          parent: ectx,
          requestId,
        });
        for await (const ev of stream) {
          if (!started) {
            started = true;
            router.firstToken(requestId, decision.worker_id);
          }
          const ids = (ev as Partial<EngineOutputWire> | null)?.token_ids;
          if (!Array.isArray(ids)) throw new MalformedOutputError('worker sent an item without token_ids');
          let text = '';
          for (const t of ids) {
            if (!Number.isInteger(t) || t < 0) throw new MalformedOutputError(`worker sent token ${String(t)}`);
            generated.push(t);
            unsent.push(t);
            const piece = detok.push(t);
            text += typeof piece === 'string' ? piece : await piece;
          }
          if (ev.finish_reason) finish = ev.finish_reason;
          if (text) {
            yield event(text, requestId, prompt.length, generated.length, unsent);
            unsent = [];
          }
        }
      } catch (e) {
        const workerFailed = e instanceof MalformedOutputError || (isDynamoError(e) && WORKER_GONE.has(e.code));
        if (ectx.cancelled || !workerFailed) throw e;
        const midStream = generated.length > 0;
        if (midStream ? !retry.mayMigrate(migrations) : !retry.mayRetry(failovers + 1)) throw e;
        if (midStream) migrations++;
        else failovers++;
        workers.markDown(decision.worker_id);
        failed.push(decision.worker_id);
        ectx.logger.warn(midStream ? 'worker died mid-stream; migrating' : 'worker unavailable; routing again', {
          worker_id: decision.worker_id,
          generated_tokens: generated.length,
          failovers,
          migrations,
          error: (e as Error).message,
        });
        await retry.pause(failovers + migrations, ectx);
        continue;
      } finally {
        router.finished(requestId, decision.worker_id);
      }
      yield event(detok.flush(), requestId, prompt.length, generated.length, unsent, finish ?? 'stop');
      return;
    }
  }
}

/** The worker request of one attempt: optional fields only when set. */
function workerRequest(req: LlmRequest, prompt: number[], generated: number[]): EngineRequestWire {
  const w: EngineRequestWire = { request_id: req.request_id, token_ids: prompt };
  if (generated.length) w.generated_token_ids = generated;
  if (req.max_tokens !== undefined) w.max_tokens = req.max_tokens;
  if (req.temperature !== undefined) w.temperature = req.temperature;
  if (req.top_p !== undefined) w.top_p = req.top_p;
  if (req.seed !== undefined) w.seed = req.seed;
  return w;
}

/** One event of the processor's stream: `tokenIds` are the tokens `text` decodes (sent once). */
function event(
  text: string,
  requestId: string,
  promptTokens: number,
  completionTokens: number,
  tokenIds: number[],
  finish?: WireFinishReason,
): LlmEvent {
  const ev: LlmEvent = {
    worker_output: text,
    request_id: requestId,
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    token_ids: tokenIds,
  };
  if (finish) ev.finish_reason = finish;
  return ev;
}
