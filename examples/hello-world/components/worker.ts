import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { RealTimeEngine, systemScheduler } from '@dynamo-ts/router/sim';
import { kvTransferKey, type WorkQueue } from '@dynamo-ts/runtime';
import { defineService, type EndpointContext } from '@dynamo-ts/sdk';
import { WORKER_REQUEST_SCHEMA, type WorkerEvent, type WorkerRequest } from './protocol';
import { KvCache } from './kv-cache';
import { tokenize } from './tokenizer';
import { PrefillClient, PREFILL_QUEUE, type DisaggThresholds } from './disagg';
import { PrefillWorker } from './prefill-worker';

/** What {@link workerEvents} carries. */
export interface WorkerRequestEvent {
  request_id: string;
  worker_name: string;
}

/**
 * In-process notifications of DummyWorker handlers (for tests and diagnostics): `request_started`
 * when a handler starts, `request_cancelled` when a cancelled handler stops (caller gone).
 */
export const workerEvents = new EventEmitter<{
  request_started: [WorkerRequestEvent];
  request_cancelled: [WorkerRequestEvent];
}>();

/** Config of the DummyWorker. */
export interface DummyWorkerConfig {
  /** Delay between generated tokens, ms. */
  token_delay_ms: number;
  /** KV block size in tokens (must match the Router's). */
  block_size: number;
  /** Blocks the simulated cache holds before evicting the least recently used. */
  cache_blocks: number;
  /** Model name served (listed by discovery metadata). */
  model: string;
  /** Disaggregated mode: push long prefills onto the prefill queue. */
  remote_prefill: boolean;
  /** Prefill remotely only when more than this many prompt tokens are not cached. */
  max_local_prefill_length: number;
  /** ... and fewer than this many jobs wait on the queue. */
  max_prefill_queue_size: number;
  /** How long to wait for a remote prefill before prefilling locally, ms. */
  prefill_timeout_ms: number;
  /** Simulated local prefill time per prompt token, ms (`dummy` engine). */
  local_prefill_ms_per_token: number;
  /**
   * `dummy`: fixed `token_delay_ms` per token and a simple LRU block cache; `mocker`: the
   * simulated engine of `@dynamo-ts/router/sim` (paged KV cache, continuous batching, Dynamo's
   * mocker timing divided by `speedup_ratio`), which paces the tokens and publishes KV events.
   */
  engine: 'dummy' | 'mocker';
  /** `mocker`: time divisor of the timing formulas. */
  speedup_ratio: number;
  /** `mocker`: most sequences running at once. */
  max_num_seqs: number;
  /** `mocker`: most tokens per engine step. */
  max_batched_tokens: number;
  /**
   * Load reports (`load_metrics`) go out at most once per this many ms, with the state at the end
   * of the interval (a request's start and end within one interval cost one message); 0 = one per change.
   */
  load_metrics_interval_ms: number;
}

/**
 * The dummy decode (or monolith) worker: answers `<prompt>_GeneratedBy_<worker name>` as a
 * token stream, records the prompt's blocks in a simulated KV cache and publishes KV events
 * so the Router knows what it holds. In disaggregated mode it pushes the prefill onto the
 * prefill queue and waits for a PrefillWorker, falling back to a local prefill at the deadline.
 */
export const DummyWorker = defineService<DummyWorkerConfig>({
  name: 'DummyWorker',
  embeddedReplicas: 2,
  // Not called directly: prefill workers pull from the queue. Listed so the embedded graph serves
  // them too (with `PrefillWorker.replicas`, 0 unless the config asks for disaggregation).
  dependencies: [PrefillWorker],
  configSchema: {
    properties: {
      token_delay_ms: { type: 'number', minimum: 0, maximum: 60000, default: 0 },
      block_size: { type: 'integer', minimum: 1, maximum: 4096, default: 2 },
      cache_blocks: { type: 'integer', minimum: 1, default: 16384 },
      model: { type: 'string', minLength: 1, default: 'hello-world' },
      remote_prefill: { type: 'boolean', default: false },
      max_local_prefill_length: { type: 'integer', minimum: 0, default: 1000 },
      max_prefill_queue_size: { type: 'integer', minimum: 0, default: 2 },
      prefill_timeout_ms: { type: 'integer', minimum: 1, default: 5000 },
      local_prefill_ms_per_token: { type: 'number', minimum: 0, default: 0 },
      engine: { enum: ['dummy', 'mocker'], default: 'dummy' },
      speedup_ratio: { type: 'number', exclusiveMinimum: 0, default: 10 },
      max_num_seqs: { type: 'integer', minimum: 1, default: 256 },
      max_batched_tokens: { type: 'integer', minimum: 1, default: 8192 },
      load_metrics_interval_ms: { type: 'number', minimum: 0, maximum: 10000, default: 10 },
    },
  },
  async create(ctx) {
    const cfg = ctx.config;
    const workerId = ctx.runtime.instanceId;
    const publishKv = (event: unknown): void => {
      ctx.component.publish('kv_events', event).catch((e: Error) => {
        ctx.logger.warn('could not publish KV event', { error: e.message });
      });
    };
    // The mocker engine keeps its own paged cache and publishes its own KV events and load.
    const mocker =
      cfg.engine === 'mocker'
        ? new RealTimeEngine(
            {
              workerId,
              blockSize: cfg.block_size,
              numBlocks: cfg.cache_blocks,
              maxNumSeqs: cfg.max_num_seqs,
              maxBatchedTokens: cfg.max_batched_tokens,
              speedupRatio: cfg.speedup_ratio,
            },
            systemScheduler,
            {
              onKvEvent: publishKv,
              onLoadMetrics: (m) => void ctx.component.publish('load_metrics', m).catch(() => undefined),
            },
          )
        : undefined;
    let engineSeq = 0;
    const cache = mocker
      ? undefined
      : new KvCache({ workerId, blockSize: cfg.block_size, capacityBlocks: cfg.cache_blocks, publish: publishKv });
    let activeBlocks = 0;
    let loadTimer: NodeJS.Timeout | undefined;
    const sendLoad = (): void => {
      loadTimer = undefined;
      ctx.component
        .publish('load_metrics', {
          worker_id: workerId,
          active_blocks: activeBlocks,
          total_blocks: cfg.cache_blocks,
          waiting: 0,
        })
        .catch(() => undefined);
    };
    const publishLoad = (): void => {
      if (mocker) return;
      if (cfg.load_metrics_interval_ms <= 0) sendLoad();
      else if (!loadTimer) {
        loadTimer = setTimeout(sendLoad, cfg.load_metrics_interval_ms);
        loadTimer.unref();
      }
    };

    let prefill: PrefillClient | undefined;
    let queue: WorkQueue | undefined;
    if (cfg.remote_prefill) {
      queue = await ctx.runtime.openQueue({ namespace: ctx.settings.namespace, name: PREFILL_QUEUE });
      const thresholds: DisaggThresholds = {
        maxLocalPrefillLength: cfg.max_local_prefill_length,
        maxPrefillQueueSize: cfg.max_prefill_queue_size,
      };
      prefill = await PrefillClient.start({ ctx, queue, thresholds, timeoutMs: cfg.prefill_timeout_ms });
      // What a prefill worker needs to push KV blocks to this engine (the seed's NIXL metadata).
      await ctx.runtime.discovery.put(
        kvTransferKey(ctx.settings.namespace, workerId),
        JSON.stringify({ engine_id: workerId, name: ctx.workerName, block_size: cfg.block_size, model: cfg.model }),
        { lease: true },
      );
    }

    async function* generate(req: WorkerRequest, ectx: EndpointContext): AsyncGenerator<WorkerEvent> {
      const note: WorkerRequestEvent = { request_id: req.request_id, worker_name: ctx.workerName };
      workerEvents.emit('request_started', note);
      const generated = req.generated_token_ids ?? [];
      // What the engine has to prefill: the prompt, plus what was generated before a migration.
      const context = generated.length ? req.token_ids.concat(generated) : req.token_ids;
      const blocks = Math.ceil(context.length / cfg.block_size);
      activeBlocks += blocks;
      publishLoad();
      try {
        const cachedBlocks = cache ? cache.matchPrefix(context) : 0;
        const uncached = context.length - cachedBlocks * cfg.block_size;
        let prefilledRemotely = false;
        if (prefill) {
          prefilledRemotely = await prefill.prefill({ request_id: req.request_id, token_ids: context }, uncached, ectx);
        }
        const items = answer(req, generated.length);
        if (mocker) {
          // One answer item per engine token: the engine's steps pace the stream.
          let i = 0;
          const run = mocker.submit(
            {
              requestId: `${req.request_id}#${++engineSeq}`,
              tokenIds: context,
              maxTokens: Math.max(1, items.length),
            },
            { signal: ectx.signal },
          );
          for await (const batch of run) {
            for (let k = 0; k < batch.tokenIds.length && i < items.length; k++) yield items[i++]!;
          }
          return;
        }
        if (!prefilledRemotely && cfg.local_prefill_ms_per_token > 0 && uncached > 0) {
          await sleep(uncached * cfg.local_prefill_ms_per_token, undefined, { signal: ectx.signal });
        }
        cache!.store(context);
        for (const item of items) {
          if (cfg.token_delay_ms > 0) await sleep(cfg.token_delay_ms, undefined, { signal: ectx.signal });
          if (ectx.cancelled) return;
          yield item;
        }
      } finally {
        // Read `cancelled`, not the signal: a request nobody cancels never creates one.
        if (ectx.cancelled) workerEvents.emit('request_cancelled', note);
        activeBlocks -= blocks;
        publishLoad();
      }
    }

    /**
     * The dummy model's answer items: the prompt echoed token by token, then
     * `_GeneratedBy_<worker name>` as one item (so a stream broken anywhere can be continued by
     * any worker into a well-formed answer), skipping the `skip` tokens generated before a
     * migration and cut at `max_tokens`; the last item carries the finish reason.
     */
    const suffix = tokenize(`_GeneratedBy_${ctx.workerName}`);
    function answer(req: WorkerRequest, skip: number): WorkerEvent[] {
      // The prompt's own tokens decode to the prompt text: no need to tokenize it again.
      const echo = req.token_ids;
      const limit = req.max_tokens ?? Number.POSITIVE_INFINITY;
      // The answer was complete (its suffix sent) when the previous worker died.
      if (skip > echo.length) return [{ token_ids: [], finish_reason: 'stop' }];
      const items: WorkerEvent[] = [];
      for (let n = skip; n < echo.length; n++) {
        if (n >= limit) return [...items, { token_ids: [], finish_reason: 'length' }];
        items.push({ token_ids: [echo[n]!] });
      }
      const room = limit - echo.length;
      if (room < suffix.length) items.push({ token_ids: suffix.slice(0, Math.max(0, room)), finish_reason: 'length' });
      else items.push({ token_ids: suffix, finish_reason: 'stop' });
      return items;
    }

    return {
      metadata: { model: cfg.model, block_size: cfg.block_size, worker_name: ctx.workerName },
      endpoints: { generate: { requestSchema: WORKER_REQUEST_SCHEMA, handler: generate } },
      async close() {
        if (loadTimer) clearTimeout(loadTimer);
        mocker?.close();
        await prefill?.close();
        await queue?.close();
      },
    };
  },
});
