import { RetryPolicy } from '@dynamo-ts/runtime';
import {
  defineService,
  type AnyServiceDefinition,
  type JsonSchema,
  type ServiceContext,
  type ServiceDefinition,
} from '@dynamo-ts/sdk';
import { LocalRouteSource, ProcessorPipeline, RemoteRouteSource, type RouteSource } from './processor';
import { ProcessorApi, type RouterApi, type WorkerApi } from './protocol';
import { KvRouterService, ROUTER_CONFIG_PROPERTIES, type RouterConfig } from './router-service';
import type { AsyncTokenizer, Tokenizer } from './tokenizer';

/** Config of a Processor service. */
export interface ProcessorConfig extends RouterConfig {
  /** Workers tried for one request when the chosen one is unavailable before its first token. */
  max_route_attempts: number;
  /** Times one stream may move to another worker after its worker died mid-stream. */
  migration_limit: number;
  /** Pause before the n-th retry or migration: n times this, ms. */
  retry_backoff_ms: number;
  /**
   * `remote`: ask the Router component (one unary call per request); `local`: hold the KV router
   * in this process (no hop; it follows the workers' events itself, configured by this section's
   * router keys, and sees only this Processor's requests).
   */
  router_mode: 'remote' | 'local';
}

/** JSON-schema properties of {@link ProcessorConfig}. */
export const PROCESSOR_CONFIG_PROPERTIES = {
  ...ROUTER_CONFIG_PROPERTIES,
  max_route_attempts: { type: 'integer', minimum: 1, maximum: 16, default: 5 },
  migration_limit: { type: 'integer', minimum: 0, maximum: 16, default: 3 },
  retry_backoff_ms: { type: 'number', minimum: 0, maximum: 10000, default: 50 },
  router_mode: { enum: ['remote', 'local'], default: 'remote' },
} as const;

/** The retry policy a processor's config describes. */
export function processorRetryPolicy(cfg: ProcessorConfig): RetryPolicy {
  return new RetryPolicy({
    attempts: cfg.max_route_attempts,
    migrations: cfg.migration_limit,
    backoffMs: cfg.retry_backoff_ms,
  });
}

/** Options of {@link processorService}. */
export interface ProcessorServiceOptions {
  /** Component name. Default `Processor`. */
  name?: string;
  /** The Router service (its unary `route` endpoint, {@link RouterApi}). */
  router: ServiceDefinition<RouterConfig, typeof RouterApi>;
  /** The worker service (its `generate` endpoint, {@link WorkerApi}). */
  worker: ServiceDefinition<never, typeof WorkerApi> | AnyServiceDefinition;
  /** Config properties beside (or overriding) {@link PROCESSOR_CONFIG_PROPERTIES}, e.g. the tokenizer's path. */
  configProperties?: Record<string, JsonSchema>;
  /** The model's tokenizer. */
  tokenizer(
    ctx: ServiceContext<ProcessorConfig & Record<string, unknown>>,
  ): Tokenizer | AsyncTokenizer | Promise<Tokenizer | AsyncTokenizer>;
}

/**
 * The Processor component: a {@link ProcessorPipeline} behind the `generate` endpoint
 * ({@link ProcessorApi}), routing through the Router component or in-process (`router_mode`).
 */
export function processorService(o: ProcessorServiceOptions): ServiceDefinition<ProcessorConfig, typeof ProcessorApi> {
  return defineService<ProcessorConfig, typeof ProcessorApi>({
    name: o.name ?? 'Processor',
    api: ProcessorApi,
    dependencies: [o.router, o.worker],
    configSchema: { properties: { ...PROCESSOR_CONFIG_PROPERTIES, ...o.configProperties } },
    async create(ctx) {
      const cfg = ctx.config;
      const retry = processorRetryPolicy(cfg);
      const tokenizer = await o.tokenizer(ctx as ServiceContext<ProcessorConfig & Record<string, unknown>>);
      const workersRaw = await ctx.client(o.worker.name, 'generate');
      const workers = await ctx.client(workerDefinition(o.worker), 'generate');
      const log = (type: string, name: string, id: string): void =>
        ctx.logger.info(type === 'added' ? 'worker joined' : 'worker left', { name, instance_id: id });
      for (const i of workersRaw.instances()) log('added', i.name, i.instanceId);
      workersRaw.onChange((c) => log(c.type, c.instance.name, c.instance.instanceId));
      let router: RouteSource;
      if (cfg.router_mode === 'local') {
        const service = await KvRouterService.start({
          runtime: ctx.runtime,
          workerComponent: ctx.namespace.component(o.worker.name),
          workers: workersRaw,
          config: cfg,
          logger: ctx.logger,
        });
        router = new LocalRouteSource(service);
      } else {
        router = new RemoteRouteSource(await ctx.client(o.router, 'route'), ctx.component, retry, ctx.logger);
      }
      const pipeline = new ProcessorPipeline({ tokenizer, router, workers, retry, logger: ctx.logger });
      return {
        endpoints: { generate: (req, ectx) => pipeline.generate(req, ectx) },
        async close() {
          router.close?.();
        },
      };
    },
  });
}

/** The worker service as a declaration of {@link WorkerApi} (its clients are typed by it). */
function workerDefinition(w: AnyServiceDefinition): ServiceDefinition<never, typeof WorkerApi> {
  if (!Object.hasOwn(w.api, 'generate')) throw new Error(`${w.name} declares no generate endpoint (WorkerApi)`);
  return w as ServiceDefinition<never, typeof WorkerApi>;
}
