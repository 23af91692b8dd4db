import { ALL_STRATEGY_NAMES, isStrategyName, KvRouter, type KvRouterOptions } from '@dynamo-ts/router';
import {
  metrics,
  UnavailableError,
  type Component,
  type DistributedRuntime,
  type InstanceChange,
  type InstanceInfo,
  type Logger,
} from '@dynamo-ts/runtime';
import { defineService, type AnyServiceDefinition, type JsonSchema, type ServiceDefinition } from '@dynamo-ts/sdk';
import { routerDecisions, routerOverlapBlocks } from './metrics';
import {
  KV_EVENTS_TOPIC,
  LOAD_METRICS_TOPIC,
  PROGRESS_TOPIC,
  RouterApi,
  type RequestProgress,
  type RouteQuery,
  type RouteResult,
} from './protocol';

/** Config keys of a KV router (the Router service's section, or the Processor's in-process mode). */
export interface RouterConfig {
  /** KV block size in tokens (must match the workers'). */
  block_size: number;
  /** `kv`, `round-robin`, `random`, `least-loaded`, `power-of-two`, or a peer policy (docs/router.md). */
  strategy: string;
  /** `tuned` (default) or `dynamo`: the kv cost's weights (docs/router.md). */
  kv_preset: 'tuned' | 'dynamo';
  /** Weight of the prefill term in the kv cost; default the preset's. */
  overlap_weight?: number;
  /** 0: always the lowest cost; > 0: sample softmax(-cost/T). */
  temperature: number;
}

/** JSON-schema properties of {@link RouterConfig} (shared by every service that routes). */
export const ROUTER_CONFIG_PROPERTIES = {
  block_size: { type: 'integer', minimum: 1, maximum: 4096, default: 2 },
  strategy: { enum: [...ALL_STRATEGY_NAMES], default: 'kv' },
  kv_preset: { enum: ['tuned', 'dynamo'], default: 'tuned' },
  overlap_weight: { type: 'number', minimum: 0, maximum: 1e6 },
  temperature: { type: 'number', minimum: 0, maximum: 1e6, default: 0 },
} as const;

/** The workers a router follows: an endpoint client's instance view. */
export interface WorkerSet {
  instances(): InstanceInfo[];
  instanceIds(): string[];
  onChange(listener: (c: InstanceChange) => void): () => void;
}

/** Options of {@link KvRouterService.start}. */
export interface KvRouterServiceOptions {
  runtime: DistributedRuntime;
  /** The workers' component: its `kv_events` and `load_metrics` topics are followed. */
  workerComponent: Component;
  /** The workers' endpoint instances (membership, metadata). */
  workers: WorkerSet;
  /**
   * The component whose `request_status` topic carries {@link RequestProgress} (the Processor), for
   * a router served on its own; omitted when the caller reports progress itself (in-process mode).
   */
  progressComponent?: Component;
  config: RouterConfig;
  logger: Logger;
}

/**
 * A KV router kept up to date: follows the workers through discovery, their KV events and load
 * metrics through the event plane, and (served on its own) the Processors' request progress;
 * answers each query with the worker whose cache holds the longest prefix, weighed against its
 * load. The same object serves the Router component's unary `route` endpoint and, in-process,
 * a Processor that routes without a hop.
 */
export class KvRouterService {
  private readonly names = new Map<string, string>();
  private readonly stop = new AbortController();
  private readonly noneExcluded: ReadonlySet<string> = new Set();
  private readonly overlapBlocks: { observe(v: number): void };
  private readonly decisions = new Map<string, { inc(): void }>();
  private unwatch: () => void = () => undefined;
  /** Cache-hit share of each worker's decisions (for the live dashboard). */
  private readonly hits = new metrics.CacheHitShare();
  private unregisterDashboard: () => void = () => undefined;

  private constructor(
    readonly router: KvRouter,
    private readonly o: KvRouterServiceOptions,
  ) {
    this.overlapBlocks = metrics.seriesObserver(routerOverlapBlocks, { strategy: o.config.strategy });
  }

  /** Starts following workers, events and progress; resolves once subscribed. */
  static async start(o: KvRouterServiceOptions): Promise<KvRouterService> {
    const cfg = o.config;
    if (!isStrategyName(cfg.strategy)) throw new Error(`unknown strategy ${cfg.strategy}`);
    const options: KvRouterOptions = {
      blockSize: cfg.block_size,
      strategy: cfg.strategy,
      kvPreset: cfg.kv_preset,
      temperature: cfg.temperature,
      onWarning: (message, fields) => o.logger.warn(message, fields),
    };
    if (cfg.overlap_weight !== undefined) options.overlapWeight = cfg.overlap_weight;
    const s = new KvRouterService(new KvRouter(options), o);
    for (const i of o.workers.instances()) s.add(i);
    s.unwatch = o.workers.onChange((c) => (c.type === 'added' ? s.add(c.instance) : s.remove(c.instance.instanceId)));
    const signal = s.stop.signal;
    s.follow(o.workerComponent.subscribe(KV_EVENTS_TOPIC, { signal }), (d) => s.router.applyEvent(d), 'KV event');
    s.follow(o.workerComponent.subscribe(LOAD_METRICS_TOPIC, { signal }), (d) => s.router.applyLoad(d), 'load metric');
    if (o.progressComponent) {
      s.follow(o.progressComponent.subscribe(PROGRESS_TOPIC, { signal }), (d) => s.progress(d), 'request status');
    }
    // Its workers' rows on the live dashboard (one source per router instance).
    s.unregisterDashboard = metrics.registerDashboardSource(`router-${o.runtime.instanceId}`, () =>
      metrics.routerStatsWorkers(s.router.stats(), s.names, s.hits.rates()),
    );
    await o.runtime.eventPlane.flush();
    return s;
  }

  private add(i: InstanceInfo): void {
    this.names.set(i.instanceId, i.name);
    this.router.addWorker(i.instanceId);
    const blockSize = i.metadata?.block_size;
    if (blockSize !== undefined && blockSize !== this.o.config.block_size) {
      this.o.logger.warn('worker block size differs from the router; its cache hits will be missed', {
        worker_id: i.instanceId,
        worker_block_size: blockSize,
        router_block_size: this.o.config.block_size,
      });
    }
  }

  private remove(id: string): void {
    this.router.removeWorker(id);
    this.names.delete(id);
    this.hits.remove(id);
  }

  /** Applies each message of a subscription; a bad one is logged and skipped, never ends it. */
  private follow(it: AsyncIterable<{ data: unknown }>, apply: (d: unknown) => void, what: string): void {
    void (async () => {
      try {
        for await (const m of it) {
          try {
            apply(m.data);
          } catch (e) {
            this.o.logger.warn(`bad ${what} ignored`, { error: (e as Error).message });
          }
        }
      } catch (e) {
        if (!this.stop.signal.aborted)
          this.o.logger.error(`${what} subscription ended`, { error: (e as Error).message });
      }
    })();
  }

  private progress(d: unknown): void {
    const p = d as Partial<RequestProgress> | null;
    if (typeof p?.request_id !== 'string') throw new Error('request status without a request_id');
    if (p.status === 'first_token') this.router.onFirstToken(p.request_id);
    else if (p.status === 'finished') this.router.onFinished(p.request_id);
    else throw new Error(`unknown request status ${JSON.stringify(p.status)}`);
  }

  /** The worker for `q`; UNAVAILABLE when no worker is live (or all are excluded). */
  route(q: RouteQuery): RouteResult {
    const live = this.o.workers.instanceIds();
    if (live.length === 0) throw new UnavailableError(`no ${this.o.workerComponent.name} instance is live`);
    // Workers that failed this request, or that discovery lists but a caller marked down, are
    // skipped for this decision only: they keep their place (and cache state) in the router.
    const known = this.router.workers();
    let exclude = this.noneExcluded;
    if (q.exclude_workers?.length || known.some((id) => !live.includes(id))) {
      const excluded = new Set(q.exclude_workers ?? []);
      for (const id of known) if (!live.includes(id)) excluded.add(id);
      if (known.every((id) => excluded.has(id))) {
        throw new UnavailableError(`no ${this.o.workerComponent.name} instance is live`);
      }
      exclude = excluded;
    }
    const d = this.router.route({ tokenIds: q.token_ids, requestId: q.request_id, excludeWorkers: exclude });
    const name = this.names.get(d.worker_id);
    this.decisionsOf(name ?? d.worker_id).inc();
    this.overlapBlocks.observe(d.overlap_blocks);
    this.hits.record(d.worker_id, d.overlap_blocks, Math.floor(q.token_ids.length / this.o.config.block_size));
    const r: RouteResult = { worker_id: d.worker_id, overlap_blocks: d.overlap_blocks };
    if (name !== undefined) r.worker_name = name;
    return r;
  }

  /** The request's first token arrived: its prefill load is released. */
  firstToken(requestId: string): void {
    this.router.onFirstToken(requestId);
  }

  /** The request ended: all its load is released. */
  finished(requestId: string): void {
    this.router.onFinished(requestId);
  }

  private decisionsOf(worker: string): { inc(): void } {
    let c = this.decisions.get(worker);
    if (!c) {
      if (this.decisions.size >= 1024) this.decisions.clear();
      c = metrics.seriesCounter(routerDecisions, { strategy: this.o.config.strategy, worker });
      this.decisions.set(worker, c);
    }
    return c;
  }

  /** Stops following. Idempotent. */
  close(): void {
    this.stop.abort();
    this.unwatch();
    this.unregisterDashboard();
  }
}

/** Options of {@link routerService}. */
export interface RouterServiceOptions {
  /** Component name. Default `Router`. */
  name?: string;
  /** The worker service it routes over (its `generate` endpoint's instances). */
  worker: AnyServiceDefinition;
  /** The service whose request progress it follows. Default `Processor`. */
  progressFrom?: string;
  /** Overrides of {@link ROUTER_CONFIG_PROPERTIES} (e.g. the engines' block size as the default). */
  configProperties?: Record<string, JsonSchema>;
}

/**
 * The KV-aware Router component: a {@link KvRouterService} behind a unary `route` endpoint
 * ({@link RouterApi}), configured by {@link RouterConfig}.
 */
export function routerService(o: RouterServiceOptions): ServiceDefinition<RouterConfig, typeof RouterApi> {
  return defineService<RouterConfig, typeof RouterApi>({
    name: o.name ?? 'Router',
    api: RouterApi,
    dependencies: [o.worker],
    configSchema: { properties: { ...ROUTER_CONFIG_PROPERTIES, ...o.configProperties } },
    async create(ctx) {
      const workers = await ctx.client(o.worker.name, 'generate');
      const service = await KvRouterService.start({
        runtime: ctx.runtime,
        workerComponent: ctx.namespace.component(o.worker.name),
        workers,
        progressComponent: ctx.namespace.component(o.progressFrom ?? 'Processor'),
        config: ctx.config,
        logger: ctx.logger,
      });
      const debug = ctx.logger.isLevelEnabled('debug');
      return {
        endpoints: {
          route: (q, ectx) => {
            const r = service.route(q);
            if (debug) ectx.logger.debug('route decision', { ...r });
            return r;
          },
        },
        async close() {
          service.close();
        },
      };
    },
  });
}
