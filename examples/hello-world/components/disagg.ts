import { shouldPrefillRemotely } from '@dynamo-ts/router';
import type { EventSubscription, WorkQueue } from '@dynamo-ts/runtime';
import type { EndpointContext, ServiceContext } from '@dynamo-ts/sdk';
import { prefillDecisions, prefillFallbacks, prefillQueueDepth } from './metrics';
import type { WorkerRequest } from './protocol';

/** Name of the prefill work queue (stream `DYNAMO_{NS}_PREFILL`). */
export const PREFILL_QUEUE = 'prefill';

/** A prefill job, as pushed by a decode worker. */
export interface PrefillJob {
  request_id: string;
  /** Instance id of the decode worker (its KV-transfer metadata key). */
  engine_id: string;
  token_ids: number[];
  /** Epoch ms after which the decode worker prefills locally; a job pulled later is dropped. */
  deadline: number;
  /** Event-plane subject the completion goes to. */
  reply_to: string;
}

/** Sent by a prefill worker to `reply_to` when the prefill is done. */
export interface PrefillDone {
  request_id: string;
  engine_id: string;
  prefill_worker: string;
}

/** JSON schema of {@link PrefillJob}. */
export const PREFILL_JOB_SCHEMA = {
  type: 'object',
  required: ['request_id', 'engine_id', 'token_ids', 'deadline', 'reply_to'],
  properties: {
    request_id: { type: 'string', minLength: 1 },
    engine_id: { type: 'string', minLength: 1 },
    token_ids: { type: 'array', items: { type: 'integer', minimum: 0 } },
    deadline: { type: 'number' },
    reply_to: { type: 'string', minLength: 1 },
  },
};

/** Thresholds of the disaggregation rule; live-updatable through `dynamo/{ns}/config/disagg`. */
export interface DisaggThresholds {
  maxLocalPrefillLength: number;
  maxPrefillQueueSize: number;
}

/** Counters of a decode worker's prefill decisions. */
export interface PrefillStats {
  remote: number;
  local: number;
  /** Remote prefills that did not complete in time and were done locally. */
  fallback: number;
}

/**
 * The decode worker's side of disaggregation: decides per request, pushes jobs, and waits for
 * their completion on its own reply subject.
 */
export class PrefillClient {
  readonly stats: PrefillStats = { remote: 0, local: 0, fallback: 0 };
  private readonly waiting = new Map<string, () => void>();
  private stopConfig: () => void = () => undefined;

  private constructor(
    private readonly ctx: ServiceContext<unknown>,
    private readonly queue: WorkQueue,
    private readonly thresholds: DisaggThresholds,
    private readonly timeoutMs: number,
    private readonly replySubject: string,
    private readonly replies: EventSubscription<PrefillDone>,
  ) {}

  /** Subscribes to completions and to live threshold updates. */
  static async start(o: {
    ctx: ServiceContext<unknown>;
    queue: WorkQueue;
    thresholds: DisaggThresholds;
    timeoutMs: number;
  }): Promise<PrefillClient> {
    const subject = o.ctx.component.eventSubject(`prefill_done_${o.ctx.runtime.instanceId}`);
    const replies = o.ctx.runtime.eventPlane.subscribe<PrefillDone>(subject);
    const client = new PrefillClient(o.ctx, o.queue, { ...o.thresholds }, o.timeoutMs, subject, replies);
    void client.listen();
    client.stopConfig = o.ctx.namespace.watchConfig<Partial<Record<string, unknown>>>('disagg', (v) =>
      client.applyConfig(v),
    );
    await o.ctx.runtime.eventPlane.flush();
    return client;
  }

  private applyConfig(v: Partial<Record<string, unknown>> | undefined): void {
    if (!v) return;
    const n = (x: unknown): number | undefined => (typeof x === 'number' && x >= 0 ? x : undefined);
    const local = n(v.max_local_prefill_length);
    const size = n(v.max_prefill_queue_size);
    if (local !== undefined) this.thresholds.maxLocalPrefillLength = local;
    if (size !== undefined) this.thresholds.maxPrefillQueueSize = size;
    this.ctx.logger.info('disaggregation thresholds updated', {
      max_local_prefill_length: this.thresholds.maxLocalPrefillLength,
      max_prefill_queue_size: this.thresholds.maxPrefillQueueSize,
    });
  }

  private async listen(): Promise<void> {
    try {
      for await (const m of this.replies) {
        this.waiting.get(m.data.request_id)?.();
      }
    } catch (e) {
      this.ctx.logger.warn('prefill reply subscription ended', { error: (e as Error).message });
    }
  }

  /**
   * Prefills `req` remotely when the rule says so and a prefill worker completes it before the
   * deadline. Returns true when it was prefilled remotely, false when the caller must prefill
   * locally (rule said local, or the remote prefill did not come back in time).
   */
  async prefill(req: WorkerRequest, uncachedTokens: number, ectx: EndpointContext): Promise<boolean> {
    const depth = await this.queue.depth().catch(() => Number.POSITIVE_INFINITY);
    if (Number.isFinite(depth)) prefillQueueDepth.set({ queue: this.queue.name }, depth);
    const decision = shouldPrefillRemotely(
      { uncachedPrefillTokens: uncachedTokens, queueDepth: depth },
      this.thresholds,
    );
    const worker = this.ctx.workerName;
    prefillDecisions.inc({ worker, decision: decision.remote ? 'remote' : 'local', reason: decision.reason });
    if (!decision.remote) {
      this.stats.local++;
      ectx.logger.debug('prefill locally', {
        reason: decision.reason,
        uncached_tokens: uncachedTokens,
        queue_depth: depth,
      });
      return false;
    }
    this.stats.remote++;
    const deadline = Date.now() + this.timeoutMs;
    let settle: (ok: boolean) => void = () => undefined;
    const done = new Promise<boolean>((resolve) => {
      const finish = (ok: boolean): void => {
        this.waiting.delete(req.request_id);
        clearTimeout(timer);
        ectx.signal.removeEventListener('abort', onAbort);
        resolve(ok);
      };
      const onAbort = (): void => finish(false);
      const timer = setTimeout(() => finish(false), this.timeoutMs);
      this.waiting.set(req.request_id, () => finish(true));
      ectx.signal.addEventListener('abort', onAbort, { once: true });
      settle = finish;
    });
    const job: PrefillJob = {
      request_id: req.request_id,
      engine_id: this.ctx.runtime.instanceId,
      token_ids: req.token_ids,
      deadline,
      reply_to: this.replySubject,
    };
    try {
      await this.queue.push(job, { deadline });
    } catch (e) {
      settle(false);
      this.stats.fallback++;
      prefillFallbacks.inc({ worker, cause: 'push_failed' });
      ectx.logger.warn('could not push prefill job; prefilling locally', { error: (e as Error).message });
      return false;
    }
    ectx.logger.debug('prefill pushed to queue', { uncached_tokens: uncachedTokens, queue_depth: depth });
    const ok = await done;
    if (!ok && !ectx.signal.aborted) {
      this.stats.fallback++;
      prefillFallbacks.inc({ worker, cause: 'timeout' });
      ectx.logger.warn('remote prefill did not complete in time; prefilling locally', { timeout_ms: this.timeoutMs });
    }
    return ok;
  }

  async close(): Promise<void> {
    this.stopConfig();
    this.replies.unsubscribe();
  }
}
