import { EventEmitter } from 'node:events';
import type { KvEvent, LoadMetrics } from '@dynamo-ts/router';
import { kvTransferKey, type Logger, type WorkQueue } from '@dynamo-ts/runtime';
import {
  defineService,
  type AnyServiceDefinition,
  type EndpointContext,
  type JsonSchema,
  type ServiceContext,
  type ServiceDefinition,
} from '@dynamo-ts/sdk';
import { PrefillClient } from './disagg';
import {
  KV_EVENTS_TOPIC,
  LOAD_METRICS_TOPIC,
  PREFILL_QUEUE,
  WorkerApi,
  type EngineOutputWire,
  type EngineRequestWire,
  type KvStateRef,
  type KvTransferMetadata,
  type WireFinishReason,
} from './protocol';

/** One request as the engine sees it. */
export interface EngineRequest {
  readonly requestId: string;
  /** The prompt. */
  readonly promptTokenIds: readonly number[];
  /**
   * Tokens generated for this request before (by a worker that died mid-stream, or received by a
   * client whose stream broke): the engine continues after them, prefilling prompt + these.
   */
  readonly generatedTokenIds: readonly number[];
  /** Prompt + generated tokens: what the engine must have in its KV cache before decoding. */
  readonly contextTokenIds: readonly number[];
  /** Most tokens still to generate (`max_tokens` less the generated ones); undefined: the engine's own limit. */
  readonly maxNewTokens: number | undefined;
  readonly temperature?: number;
  readonly topP?: number;
  readonly seed?: number;
  /** A prefill worker already prefilled the context. */
  readonly prefilledRemotely: boolean;
  /** The KV state the prefill worker handed over (engines that can load it skip the prefill). */
  readonly prefilledKv?: KvStateRef;
}

/** One step of an engine's output: the tokens it produced; `finishReason` on the last. */
export interface EngineStep {
  tokenIds: number[];
  finishReason?: WireFinishReason;
}

/** Load an engine reports (the router's `load_metrics` fields, less the worker id). */
export interface EngineLoad {
  activeBlocks: number;
  totalBlocks: number;
  /** Requests waiting for a slot. */
  waiting: number;
}

/** An inference engine behind the worker base. */
export interface Engine {
  /** Generates after `req.contextTokenIds`; stops when `ctx` is cancelled. */
  generate(req: EngineRequest, ctx: EndpointContext): AsyncIterable<EngineStep>;
  /** Leading full blocks of `tokens` already in the cache (for the disaggregation rule). Default 0. */
  cachedBlocks?(tokens: readonly number[]): number;
  /**
   * Its load, read whenever the worker publishes load metrics; without it the worker base counts
   * each running request's context blocks as active and nothing as waiting.
   */
  load?(): EngineLoad;
  /** True when the engine publishes its own load metrics ({@link EngineHost.publishLoad}). */
  readonly publishesLoad?: boolean;
  /** Extra discovery metadata (e.g. the model's context length). */
  metadata?(): Record<string, unknown>;
  /** A handed-over KV state no request will load (its completion came too late): free it. */
  discardKvState?(ref: KvStateRef): void;
  close?(): Promise<void> | void;
}

/** What an engine is given: where its KV events and load go. */
export interface EngineHost {
  readonly workerId: string;
  readonly workerName: string;
  readonly blockSize: number;
  readonly totalBlocks: number;
  readonly logger: Logger;
  /** Publishes a KV event in the router's wire format (stored/removed/cleared blocks). */
  publishKvEvent(event: KvEvent): void;
  /** Publishes a load report at once (engines that set {@link Engine.publishesLoad}). */
  publishLoad(metrics: LoadMetrics): void;
  /** The engine's {@link Engine.load} changed: published within `load_metrics_interval_ms`. */
  loadChanged(): void;
}

/** Config keys every worker has. */
export interface WorkerBaseConfig {
  /** KV block size in tokens (must match the Router's). */
  block_size: number;
  /** Blocks the engine's KV cache holds. */
  cache_blocks: number;
  /** Model name served (registered in discovery metadata). */
  model: string;
  /** Disaggregated mode: push long prefills onto the prefill queue. */
  remote_prefill: boolean;
  /** Prefill remotely only when more than this many prompt tokens are not cached. */
  max_local_prefill_length: number;
  /** ... and fewer than this many jobs wait on the queue. */
  max_prefill_queue_size: number;
  /** How long to wait for a remote prefill before prefilling locally, ms. */
  prefill_timeout_ms: number;
  /** Load reports go out at most once per this many ms (0: one per change). */
  load_metrics_interval_ms: number;
}

/** JSON-schema properties of {@link WorkerBaseConfig}. */
export const WORKER_BASE_CONFIG_PROPERTIES = {
  block_size: { type: 'integer', minimum: 1, maximum: 4096, default: 2 },
  cache_blocks: { type: 'integer', minimum: 1, maximum: 1 << 30, default: 16384 },
  model: { type: 'string', minLength: 1, maxLength: 256, default: 'hello-world' },
  remote_prefill: { type: 'boolean', default: false },
  max_local_prefill_length: { type: 'integer', minimum: 0, default: 1000 },
  max_prefill_queue_size: { type: 'integer', minimum: 0, default: 2 },
  prefill_timeout_ms: { type: 'integer', minimum: 1, maximum: 2 ** 31 - 1, default: 5000 },
  load_metrics_interval_ms: { type: 'number', minimum: 0, maximum: 10000, default: 10 },
} as const;

/** What {@link workerEvents} carries. */
export interface WorkerRequestEvent {
  request_id: string;
  worker_name: string;
}

/**
 * In-process notifications of worker handlers (for tests and diagnostics): `request_started`
 * when a handler starts, `request_cancelled` when a cancelled handler stops (caller gone).
 */
export const workerEvents = new EventEmitter<{
  request_started: [WorkerRequestEvent];
  request_cancelled: [WorkerRequestEvent];
}>();

/** Options of {@link workerService}. */
export interface WorkerServiceOptions<C> {
  /** Component name, e.g. `DummyWorker`. */
  name: string;
  /** Config properties of the engine, beside {@link WorkerBaseConfig}'s (which it may override). */
  configProperties?: Record<string, JsonSchema>;
  /** Workers the embedded graph starts. Default 2. */
  embeddedReplicas?: number;
  /** Workers the embedded graph starts, read from the config (wins over `embeddedReplicas`). */
  embeddedReplicasFor?(config: C & WorkerBaseConfig): number;
  /** The prefill worker service, served with the workers in the embedded graph (0 replicas unless configured). */
  prefillWorker?: AnyServiceDefinition;
  /** Builds the engine of one worker. */
  createEngine(host: EngineHost, ctx: ServiceContext<C & WorkerBaseConfig>): Engine | Promise<Engine>;
}

/**
 * The worker base any engine plugs into: serves `generate` ({@link WorkerApi}) with cancellation,
 * migration continuation (`generated_token_ids`) and `max_tokens`; publishes the engine's KV events
 * and load metrics; registers its metadata (model, block size, cache size); and, in disaggregated
 * mode, sends long prefills to the prefill queue (decision, push, wait, local fallback).
 */
export function workerService<C = Record<string, never>>(
  o: WorkerServiceOptions<C>,
): ServiceDefinition<C & WorkerBaseConfig, typeof WorkerApi> {
  type Config = C & WorkerBaseConfig;
  return defineService<Config, typeof WorkerApi>({
    name: o.name,
    api: WorkerApi,
    embeddedReplicas: o.embeddedReplicas ?? 2,
    embeddedReplicasFor: o.embeddedReplicasFor,
    dependencies: o.prefillWorker ? [o.prefillWorker] : [],
    configSchema: { properties: { ...WORKER_BASE_CONFIG_PROPERTIES, ...o.configProperties } },
    async create(ctx) {
      const cfg = ctx.config;
      const workerId = ctx.runtime.instanceId;
      // Set once the engine is built (it may report load while being built).
      const built: { engine?: Engine } = {};
      let activeBlocks = 0;
      let loadTimer: NodeJS.Timeout | undefined;
      const sendLoad = (): void => {
        loadTimer = undefined;
        const l = built.engine?.load?.() ?? { activeBlocks, totalBlocks: cfg.cache_blocks, waiting: 0 };
        host.publishLoad({
          worker_id: workerId,
          active_blocks: l.activeBlocks,
          total_blocks: l.totalBlocks,
          waiting: l.waiting,
        });
      };
      const host: EngineHost = {
        workerId,
        workerName: ctx.workerName,
        blockSize: cfg.block_size,
        totalBlocks: cfg.cache_blocks,
        logger: ctx.logger,
        publishKvEvent(event) {
          ctx.component.publish(KV_EVENTS_TOPIC, event).catch((e: Error) => {
            ctx.logger.warn('could not publish KV event', { error: e.message });
          });
        },
        publishLoad(m) {
          ctx.component.publish(LOAD_METRICS_TOPIC, m).catch(() => undefined);
        },
        loadChanged() {
          if (built.engine?.publishesLoad) return;
          if (cfg.load_metrics_interval_ms <= 0) sendLoad();
          else if (!loadTimer) {
            loadTimer = setTimeout(sendLoad, cfg.load_metrics_interval_ms);
            loadTimer.unref();
          }
        },
      };
      const eng = (built.engine = await o.createEngine(host, ctx));

      let prefill: PrefillClient | undefined;
      let queue: WorkQueue | undefined;
      if (cfg.remote_prefill) {
        queue = await ctx.runtime.openQueue({ namespace: ctx.settings.namespace, name: PREFILL_QUEUE });
        prefill = await PrefillClient.start({
          ctx,
          queue,
          thresholds: {
            maxLocalPrefillLength: cfg.max_local_prefill_length,
            maxPrefillQueueSize: cfg.max_prefill_queue_size,
          },
          timeoutMs: cfg.prefill_timeout_ms,
          onUnclaimed: (d) => d.kv_state && eng.discardKvState?.(d.kv_state),
        });
        // What a prefill worker needs to push KV blocks to this engine (the seed's NIXL metadata).
        const meta: KvTransferMetadata = {
          engine_id: workerId,
          name: ctx.workerName,
          block_size: cfg.block_size,
          model: cfg.model,
        };
        await ctx.runtime.discovery.put(kvTransferKey(ctx.settings.namespace, workerId), JSON.stringify(meta), {
          lease: true,
        });
      }

      async function* generate(req: EngineRequestWire, ectx: EndpointContext): AsyncGenerator<EngineOutputWire> {
        const note: WorkerRequestEvent = { request_id: req.request_id, worker_name: ctx.workerName };
        workerEvents.emit('request_started', note);
        const generated = req.generated_token_ids ?? [];
        const context = generated.length ? req.token_ids.concat(generated) : req.token_ids;
        const limit = req.max_tokens;
        if (limit !== undefined && generated.length >= limit) {
          yield { token_ids: [], finish_reason: 'length' };
          return;
        }
        const blocks = Math.ceil(context.length / cfg.block_size);
        activeBlocks += blocks;
        host.loadChanged();
        try {
          let remote: Awaited<ReturnType<PrefillClient['prefill']>>;
          if (prefill) {
            const uncached = context.length - (eng.cachedBlocks?.(context) ?? 0) * cfg.block_size;
            remote = await prefill.prefill(req.request_id, context, uncached, ectx);
          }
          const room = limit === undefined ? undefined : limit - generated.length;
          const input: EngineRequest = {
            requestId: req.request_id,
            promptTokenIds: req.token_ids,
            generatedTokenIds: generated,
            contextTokenIds: context,
            maxNewTokens: room,
            temperature: req.temperature,
            topP: req.top_p,
            seed: req.seed,
            prefilledRemotely: remote !== undefined,
            ...(remote?.kv_state ? { prefilledKv: remote.kv_state } : {}),
          };
          let sent = 0;
          for await (const step of eng.generate(input, ectx)) {
            if (ectx.cancelled) return;
            let ids = step.tokenIds;
            let finish = step.finishReason;
            if (room !== undefined && sent + ids.length >= room) {
              // `max_tokens` reached: cut the step there; the end is `length` unless the engine
              // stopped on its own exactly at the limit.
              if (sent + ids.length > room || finish === undefined) finish = 'length';
              ids = ids.slice(0, room - sent);
            }
            sent += ids.length;
            yield finish === undefined ? { token_ids: ids } : { token_ids: ids, finish_reason: finish };
            if (finish !== undefined) return;
          }
        } finally {
          // Read `cancelled`, not the signal: a request nobody cancels never creates one.
          if (ectx.cancelled) workerEvents.emit('request_cancelled', note);
          activeBlocks -= blocks;
          host.loadChanged();
        }
      }

      return {
        metadata: {
          model: cfg.model,
          block_size: cfg.block_size,
          total_blocks: cfg.cache_blocks,
          worker_name: ctx.workerName,
          ...eng.metadata?.(),
        },
        endpoints: { generate },
        async close() {
          if (loadTimer) clearTimeout(loadTimer);
          await eng.close?.();
          await prefill?.close();
          await queue?.close();
        },
      };
    },
  });
}
