import { setTimeout as sleep } from 'node:timers/promises';
import { kvTransferKey, type WorkQueue } from '@dynamo-ts/runtime';
import { defineService, type EndpointContext } from '@dynamo-ts/sdk';
import { WORKER_REQUEST_SCHEMA, type WorkerEvent, type WorkerRequest } from './protocol';
import { KvCache } from './kv-cache';
import { detokenize, tokenize } from './tokenizer';
import { PrefillClient, PREFILL_QUEUE, type DisaggThresholds } from './disagg';
import { PrefillWorker } from './prefill-worker';

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
  /** Simulated local prefill time per prompt token, ms. */
  local_prefill_ms_per_token: number;
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
    },
  },
  async create(ctx) {
    const cfg = ctx.config;
    const workerId = ctx.runtime.instanceId;
    const cache = new KvCache({
      workerId,
      blockSize: cfg.block_size,
      capacityBlocks: cfg.cache_blocks,
      publish: (event) =>
        ctx.component.publish('kv_events', event).catch((e: Error) => {
          ctx.logger.warn('could not publish KV event', { error: e.message });
        }),
    });
    let activeBlocks = 0;
    const publishLoad = (): void => {
      ctx.component
        .publish('load_metrics', {
          worker_id: workerId,
          active_blocks: activeBlocks,
          total_blocks: cfg.cache_blocks,
          waiting: 0,
        })
        .catch(() => undefined);
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
      const blocks = Math.ceil(req.token_ids.length / cfg.block_size);
      activeBlocks += blocks;
      publishLoad();
      try {
        const cachedBlocks = cache.matchPrefix(req.token_ids);
        const uncached = req.token_ids.length - cachedBlocks * cfg.block_size;
        let prefilledRemotely = false;
        if (prefill) {
          prefilledRemotely = await prefill.prefill(req, uncached, ectx);
        }
        if (!prefilledRemotely && cfg.local_prefill_ms_per_token > 0 && uncached > 0) {
          await sleep(uncached * cfg.local_prefill_ms_per_token, undefined, { signal: ectx.signal });
        }
        cache.store(req.token_ids);
        const output = tokenize(`${detokenize(req.token_ids)}_GeneratedBy_${ctx.workerName}`);
        for (const token of output) {
          if (cfg.token_delay_ms > 0) await sleep(cfg.token_delay_ms, undefined, { signal: ectx.signal });
          if (ectx.signal.aborted) return;
          yield { token_ids: [token] };
        }
      } finally {
        activeBlocks -= blocks;
        publishLoad();
      }
    }

    return {
      metadata: { model: cfg.model, block_size: cfg.block_size, worker_name: ctx.workerName },
      endpoints: { generate: { requestSchema: WORKER_REQUEST_SCHEMA, handler: generate } },
      async close() {
        await prefill?.close();
        await queue?.close();
      },
    };
  },
});
