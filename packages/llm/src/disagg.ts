import { TypeCompiler } from '@sinclair/typebox/compiler';
import { shouldPrefillRemotely } from '@dynamo-ts/router';
import { type EventSubscription, type Logger, type WorkQueue } from '@dynamo-ts/runtime';
import type { EndpointContext, ServiceContext } from '@dynamo-ts/sdk';
import { prefillDecisions, prefillFallbacks, prefillQueueDepth } from './metrics';
import { PrefillDone, type PrefillJob } from './protocol';

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

/** Options of {@link PrefillClient.start}. */
export interface PrefillClientOptions {
  ctx: ServiceContext<unknown>;
  queue: WorkQueue;
  thresholds: DisaggThresholds;
  /** How long to wait for a remote prefill before prefilling locally, ms. */
  timeoutMs: number;
  /** How often the queue depth is read, ms (between reads, pushes count up the last figure). Default 100. */
  depthSampleMs?: number;
  /** A well-formed completion nobody waits for (it came after the deadline): e.g. delete its KV state. */
  onUnclaimed?(done: PrefillDone): void;
}

const isPrefillDone = TypeCompiler.Compile(PrefillDone);

/**
 * The decode worker's side of disaggregation: decides per request (uncached prefill tokens
 * against `maxLocalPrefillLength`, the queue depth against `maxPrefillQueueSize`), pushes the
 * job, waits for its completion on its own reply subject, and falls back to a local prefill at
 * the deadline. The queue depth is sampled on a timer, not read per request. A malformed reply
 * is logged and skipped: nothing on the reply subject can end the subscription.
 */
export class PrefillClient {
  readonly stats: PrefillStats = { remote: 0, local: 0, fallback: 0 };
  private readonly waiting = new Map<string, (done: PrefillDone) => void>();
  private stopConfig: () => void = () => undefined;
  private depth = 0;
  private sampler: NodeJS.Timeout | undefined;
  private closed = false;
  private badReplies = 0;
  private readonly logger: Logger;
  private replies: EventSubscription<unknown> | undefined;

  private constructor(
    private readonly o: PrefillClientOptions,
    private readonly thresholds: DisaggThresholds,
    private readonly replySubject: string,
  ) {
    this.logger = o.ctx.logger;
  }

  /** Subscribes to completions and to live threshold updates; starts sampling the queue depth. */
  static async start(o: PrefillClientOptions): Promise<PrefillClient> {
    const subject = o.ctx.component.eventSubject(`prefill_done_${o.ctx.runtime.instanceId}`);
    const client = new PrefillClient(o, { ...o.thresholds }, subject);
    client.subscribe();
    client.stopConfig = o.ctx.namespace.watchConfig<unknown>('disagg', (v) => client.applyConfig(v));
    await client.sample();
    client.sampler = setInterval(() => void client.sample(), o.depthSampleMs ?? 100);
    client.sampler.unref();
    await o.ctx.runtime.eventPlane.flush();
    return client;
  }

  private async sample(): Promise<void> {
    try {
      this.depth = await this.o.queue.depth();
      prefillQueueDepth.set({ queue: this.o.queue.name }, this.depth);
    } catch (e) {
      // Unknown depth: the rule then says local until a read succeeds.
      this.depth = Number.POSITIVE_INFINITY;
      this.logger.debug('could not read the prefill queue depth', { error: (e as Error).message });
    }
  }

  private applyConfig(v: unknown): void {
    if (v === undefined || v === null) return;
    if (typeof v !== 'object') {
      this.logger.warn('disaggregation config ignored: not an object', { value_type: typeof v });
      return;
    }
    const r = v as Record<string, unknown>;
    const n = (x: unknown): number | undefined =>
      typeof x === 'number' && Number.isFinite(x) && x >= 0 ? x : undefined;
    const local = n(r.max_local_prefill_length);
    const size = n(r.max_prefill_queue_size);
    if (local !== undefined) this.thresholds.maxLocalPrefillLength = local;
    if (size !== undefined) this.thresholds.maxPrefillQueueSize = size;
    this.logger.info('disaggregation thresholds updated', {
      max_local_prefill_length: this.thresholds.maxLocalPrefillLength,
      max_prefill_queue_size: this.thresholds.maxPrefillQueueSize,
    });
  }

  /** Follows the reply subject; subscribes again if the subscription itself fails. */
  private subscribe(): void {
    const replies = this.o.ctx.runtime.eventPlane.subscribe<unknown>(this.replySubject);
    this.replies = replies;
    void (async () => {
      try {
        for await (const m of replies) this.reply(m.data);
      } catch (e) {
        if (this.closed) return;
        this.logger.warn('prefill reply subscription failed; subscribing again', { error: (e as Error).message });
        setTimeout(() => this.closed || this.subscribe(), 100).unref();
      }
    })();
  }

  private reply(data: unknown): void {
    if (!isPrefillDone.Check(data)) {
      // Rate-limited: one line for the first bad reply, then one per 100.
      if (this.badReplies++ % 100 === 0) {
        this.logger.warn('malformed prefill reply ignored', { bad_replies: this.badReplies });
      }
      return;
    }
    const waiter = this.waiting.get(data.request_id);
    if (waiter) waiter(data);
    else this.o.onUnclaimed?.(data);
  }

  /**
   * Prefills `tokenIds` remotely when the rule says so and a prefill worker completes it before
   * the deadline. Returns the prefill worker's completion when it was prefilled remotely (with the
   * KV state it handed over, if any), undefined when the caller must prefill locally (rule said
   * local, or the remote prefill did not come back in time).
   */
  async prefill(
    requestId: string,
    tokenIds: number[],
    uncachedTokens: number,
    ectx: EndpointContext,
  ): Promise<PrefillDone | undefined> {
    const depth = this.depth;
    const decision = shouldPrefillRemotely(
      { uncachedPrefillTokens: uncachedTokens, queueDepth: depth },
      this.thresholds,
    );
    const worker = this.o.ctx.workerName;
    prefillDecisions.inc({ worker, decision: decision.remote ? 'remote' : 'local', reason: decision.reason });
    if (!decision.remote) {
      this.stats.local++;
      return undefined;
    }
    this.stats.remote++;
    this.depth++;
    const timeoutMs = this.o.timeoutMs;
    const deadline = Date.now() + timeoutMs;
    let settle: (r: PrefillDone | undefined) => void = () => undefined;
    const done = new Promise<PrefillDone | undefined>((resolve) => {
      const finish = (r: PrefillDone | undefined): void => {
        this.waiting.delete(requestId);
        clearTimeout(timer);
        stopCancel();
        resolve(r);
      };
      const timer = setTimeout(() => finish(undefined), timeoutMs);
      const stopCancel = ectx.onCancel(() => finish(undefined));
      this.waiting.set(requestId, finish);
      settle = finish;
    });
    const job: PrefillJob = {
      request_id: requestId,
      engine_id: this.o.ctx.runtime.instanceId,
      token_ids: tokenIds,
      deadline,
      reply_to: this.replySubject,
    };
    if (ectx.traceHeaders) job.trace = { ...ectx.traceHeaders };
    try {
      await this.o.queue.push(job, { deadline });
    } catch (e) {
      settle(undefined);
      this.stats.fallback++;
      prefillFallbacks.inc({ worker, cause: 'push_failed' });
      ectx.logger.warn('could not push prefill job; prefilling locally', { error: (e as Error).message });
      return undefined;
    }
    const ok = await done;
    if (!ok && !ectx.cancelled) {
      this.stats.fallback++;
      prefillFallbacks.inc({ worker, cause: 'timeout' });
      ectx.logger.warn('remote prefill did not complete in time; prefilling locally', { timeout_ms: timeoutMs });
    }
    return ok;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.sampler) clearInterval(this.sampler);
    this.stopConfig();
    this.replies?.unsubscribe();
  }
}
