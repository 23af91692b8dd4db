import {
  STRATEGY_NAMES,
  checkEngineProfile,
  isStrategyName,
  KvRouter,
  type EngineProfile,
  type KvEvent,
  type KvRouterOptions,
} from '@dynamo-ts/router';
import {
  metrics,
  nextTurn,
  turnIsLong,
  UnavailableError,
  type Component,
  type DistributedRuntime,
  type InstanceChange,
  type InstanceInfo,
  type Logger,
} from '@dynamo-ts/runtime';
import {
  defineService,
  type AnyServiceDefinition,
  type JsonSchema,
  type ServiceContext,
  type ServiceDefinition,
} from '@dynamo-ts/sdk';
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
  /**
   * Routers over the same workers share what they routed (requests in flight, fences) on the
   * workers' `router_replicas` topic, at most once per this many ms; 0: not shared (one router).
   */
  replica_sync_ms: number;
}

/** JSON-schema properties of {@link RouterConfig} (shared by every service that routes). */
export const ROUTER_CONFIG_PROPERTIES = {
  block_size: { type: 'integer', minimum: 1, maximum: 4096, default: 2 },
  strategy: { enum: [...STRATEGY_NAMES], default: 'kv' },
  kv_preset: { enum: ['tuned', 'dynamo'], default: 'tuned' },
  overlap_weight: { type: 'number', minimum: 0, maximum: 1e6 },
  temperature: { type: 'number', minimum: 0, maximum: 1e6, default: 0 },
  replica_sync_ms: { type: 'integer', minimum: 0, maximum: 60000, default: 20 },
} as const;

/** Event topic (of the workers' component) on which the routers over those workers share their state. */
export const REPLICA_TOPIC = 'router_replicas';
/** How often a router publishes its whole picture for replicas that joined late or missed messages, ms. */
const REPLICA_STATE_MS = 5000;
/** A fenced worker that nothing brought back is tried again after this long (as a marked-down instance is), ms. */
const FENCE_PROBATION_MS = 10_000;

/**
 * The engine's prefill/decode time curve a worker registers (`metadata.engine_profile`,
 * snake_case), as the router's `EngineProfile`; undefined when absent or invalid.
 */
export function engineProfileFromMetadata(metadata: Record<string, unknown> | undefined): EngineProfile | undefined {
  const p = metadata?.engine_profile;
  if (typeof p !== 'object' || p === null) return undefined;
  const w = p as Record<string, unknown>;
  const profile = {
    prefillFixedMs: w.prefill_fixed_ms,
    prefillPerTokenMs: w.prefill_per_token_ms,
    prefillAttentionMs: w.prefill_attention_ms,
    maxBatchedTokens: w.max_batched_tokens,
    decodeBaseMs: w.decode_base_ms,
    decodePerSeqMs: w.decode_per_seq_ms,
    decodePerContextTokenMs: w.decode_per_context_token_ms,
  } as EngineProfile;
  try {
    return checkEngineProfile(profile, 'engine_profile');
  } catch {
    return undefined;
  }
}

/** The workers a router follows: an endpoint client's instance view. */
export interface WorkerSet {
  instances(): InstanceInfo[];
  instanceIds(): string[];
  onChange(listener: (c: InstanceChange) => void): () => void;
}

/** A worker's KV events read straight from its engine, until closed. */
export interface KvEventSubscription {
  close(): void;
}

/**
 * Where a router reads KV events from the engines themselves (e.g. their ZMQ publishers) instead
 * of the workers' `kv_events` topic. Engine-agnostic: the engine package implements it.
 */
export interface KvEventSource {
  /**
   * Starts following `worker`'s engine (from what it registered, e.g. its metadata), feeding the
   * router's events (for `worker.instanceId`) to `emit`; undefined when the worker registered no
   * engine endpoint (its events then come over the event plane). May throw for bad metadata:
   * the router logs it and follows that worker over the event plane.
   */
  follow(worker: InstanceInfo, emit: (event: KvEvent) => void): KvEventSubscription | undefined;
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
  /**
   * Reads KV events from the engines directly: each worker it follows has its events taken from
   * there only (the same worker's events on the event plane are ignored, so nothing counts twice).
   */
  kvEventSource?: KvEventSource;
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
  private replicaTimer: NodeJS.Timeout | undefined;
  /** Workers this router fenced, with the timer that puts each on probation. */
  private readonly fenceTimers = new Map<string, NodeJS.Timeout>();
  private stateTimer: NodeJS.Timeout | undefined;
  /** Cache-hit share of each worker's decisions (for the live dashboard). */
  private readonly hits = new metrics.CacheHitShare();
  private unregisterDashboard: () => void = () => undefined;
  /** Workers whose KV events are read from their engines directly, with the subscription. */
  private readonly direct = new Map<string, KvEventSubscription>();

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
    if (cfg.replica_sync_ms > 0) options.routerId = o.runtime.instanceId;
    if (cfg.overlap_weight !== undefined) options.overlapWeight = cfg.overlap_weight;
    const s = new KvRouterService(new KvRouter(options), o);
    for (const i of o.workers.instances()) s.add(i);
    s.unwatch = o.workers.onChange((c) => (c.type === 'added' ? s.add(c.instance) : s.remove(c.instance.instanceId)));
    const signal = s.stop.signal;
    s.follow(o.workerComponent.subscribe(KV_EVENTS_TOPIC, { signal }), (d) => s.applyPlaneEvent(d), 'KV event');
    s.follow(o.workerComponent.subscribe(LOAD_METRICS_TOPIC, { signal }), (d) => s.router.applyLoad(d), 'load metric');
    if (o.progressComponent) {
      s.follow(o.progressComponent.subscribe(PROGRESS_TOPIC, { signal }), (d) => s.progress(d), 'request status');
    }
    if (cfg.replica_sync_ms > 0) {
      s.follow(o.workerComponent.subscribe(REPLICA_TOPIC, { signal }), (d) => s.applyReplicas(d), 'replica message');
      s.stateTimer = setInterval(() => s.publishReplicas([s.router.replicaState()]), REPLICA_STATE_MS);
      s.stateTimer.unref();
    }
    // Its workers' rows on the live dashboard (one source per router instance).
    s.unregisterDashboard = metrics.registerDashboardSource(`router-${o.runtime.instanceId}`, () =>
      metrics.routerStatsWorkers(s.router.stats(), s.names, s.hits.rates()),
    );
    await o.runtime.eventPlane.flush();
    if (cfg.replica_sync_ms > 0) s.publishReplicas([s.router.replicaState()]);
    return s;
  }

  /** Another router's batch of replica messages (an array; bad entries are rejected one by one). */
  private applyReplicas(d: unknown): void {
    if (!Array.isArray(d)) throw new Error('replica batch is not an array');
    for (const m of d.slice(0, 10_000)) this.router.applyReplicaMessage(m);
  }

  /** Publishes this router's pending replica messages within `replica_sync_ms` (one event a batch). */
  private syncReplicas(): void {
    if (this.o.config.replica_sync_ms <= 0 || this.replicaTimer !== undefined) return;
    this.replicaTimer = setTimeout(() => {
      this.replicaTimer = undefined;
      this.publishReplicas(this.router.takeReplicaMessages());
    }, this.o.config.replica_sync_ms);
    this.replicaTimer.unref();
  }

  private publishReplicas(messages: readonly unknown[]): void {
    const batch = messages.filter((m) => m !== undefined);
    if (batch.length === 0) return;
    this.o.workerComponent.publish(REPLICA_TOPIC, batch).catch((e: Error) => {
      this.o.logger.debug('could not publish replica messages', { error: e.message });
    });
  }

  /** A KV event from the event plane; dropped for a worker followed directly. */
  private applyPlaneEvent(d: unknown): void {
    const id = (d as { worker_id?: unknown } | null)?.worker_id;
    if (typeof id === 'string' && this.direct.has(id)) return;
    this.router.applyEvent(d);
  }

  /** Starts reading `i`'s KV events from its engine when a source is configured and it registered one. */
  private followDirect(i: InstanceInfo): void {
    const source = this.o.kvEventSource;
    if (!source || this.direct.has(i.instanceId) || this.stop.signal.aborted) return;
    const id = i.instanceId;
    try {
      const sub = source.follow(i, (e) => {
        // Only this worker's events, and only while it is followed.
        if (this.direct.has(id) && e.worker_id === id) this.router.applyEvent(e);
      });
      if (sub) {
        this.direct.set(id, sub);
        this.o.logger.info('KV events read from the engine directly', { worker_id: id, name: i.name });
      }
    } catch (e) {
      this.o.logger.warn('cannot read KV events from the engine; following the event plane', {
        worker_id: id,
        error: (e as Error).message,
      });
    }
  }

  private unfollowDirect(id: string): void {
    const sub = this.direct.get(id);
    if (!sub) return;
    this.direct.delete(id);
    sub.close();
  }

  private add(i: InstanceInfo): void {
    this.names.set(i.instanceId, i.name);
    this.router.addWorker(i.instanceId);
    this.followDirect(i);
    // (Re-)registered: whatever fenced it, it is back.
    this.unfence(i.instanceId);
    const profile = engineProfileFromMetadata(i.metadata);
    if (profile) this.router.setWorkerProfile(i.instanceId, profile);
    const blockSize = i.metadata?.block_size;
    if (blockSize !== undefined && blockSize !== this.o.config.block_size) {
      this.o.logger.warn('worker block size differs from the router; its cache hits will be missed', {
        worker_id: i.instanceId,
        worker_block_size: blockSize,
        router_block_size: this.o.config.block_size,
      });
    }
  }

  private fence(id: string): void {
    if (!this.router.fence(id, 'failed a request')) return;
    this.o.logger.warn('worker fenced: a request to it failed', { worker_id: id, name: this.names.get(id) });
    const t = setTimeout(() => this.unfence(id), FENCE_PROBATION_MS);
    t.unref();
    this.fenceTimers.set(id, t);
  }

  private unfence(id: string): void {
    const t = this.fenceTimers.get(id);
    if (t) clearTimeout(t);
    this.fenceTimers.delete(id);
    this.router.unfence(id);
  }

  private remove(id: string): void {
    this.unfollowDirect(id);
    this.unfence(id);
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
          // An in-process event plane delivers a burst (a huge prompt's KV events) without a turn.
          if (turnIsLong()) await nextTurn();
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
    if (p.status === 'first_token') this.firstToken(p.request_id);
    else if (p.status === 'finished') this.finished(p.request_id);
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
    // A caller excludes the workers that failed this request (gone, or not answering): fenced at
    // once, for every replica, until they answer again (their first token, load or KV events).
    for (const id of q.exclude_workers ?? []) this.fence(id);
    if (q.exclude_workers?.length || known.some((id) => !live.includes(id))) {
      const excluded = new Set(q.exclude_workers ?? []);
      for (const id of known) if (!live.includes(id)) excluded.add(id);
      if (known.every((id) => excluded.has(id))) {
        throw new UnavailableError(`no ${this.o.workerComponent.name} instance is live`);
      }
      exclude = excluded;
    }
    let d;
    try {
      d = this.router.route({ tokenIds: q.token_ids, requestId: q.request_id, excludeWorkers: exclude });
    } catch (e) {
      // Fences are a preference: with every usable worker fenced (all failed at once, e.g. across
      // a NATS restart), trying them beats failing every request.
      const fenced = this.router.fencedWorkers();
      if (fenced.size === 0) throw e;
      for (const id of fenced.keys()) this.unfence(id);
      d = this.router.route({ tokenIds: q.token_ids, requestId: q.request_id, excludeWorkers: exclude });
    }
    this.syncReplicas();
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
    this.syncReplicas();
  }

  /** The request ended: all its load is released. */
  finished(requestId: string): void {
    this.router.onFinished(requestId);
    this.syncReplicas();
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
    if (this.stop.signal.aborted) return;
    this.stop.abort();
    this.unwatch();
    for (const id of [...this.direct.keys()]) this.unfollowDirect(id);
    this.unregisterDashboard();
    if (this.stateTimer) clearInterval(this.stateTimer);
    if (this.replicaTimer) clearTimeout(this.replicaTimer);
    for (const t of this.fenceTimers.values()) clearTimeout(t);
    this.fenceTimers.clear();
    if (this.o.config.replica_sync_ms > 0) {
      // The other replicas release this router's requests at once.
      this.publishReplicas([
        ...this.router.takeReplicaMessages(),
        { type: 'leave', router_id: this.o.runtime.instanceId },
      ]);
    }
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
  /**
   * The engines' own KV events, for this service's config (e.g. when its `ingest` key says
   * `direct`); undefined: the workers' `kv_events` topic only.
   */
  kvEventSource?(ctx: ServiceContext<RouterConfig & Record<string, unknown>>): KvEventSource | undefined;
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
      const kvEventSource = o.kvEventSource?.(ctx as ServiceContext<RouterConfig & Record<string, unknown>>);
      const service = await KvRouterService.start({
        runtime: ctx.runtime,
        workerComponent: ctx.namespace.component(o.worker.name),
        workers,
        progressComponent: ctx.namespace.component(o.progressFrom ?? 'Processor'),
        config: ctx.config,
        logger: ctx.logger,
        ...(kvEventSource ? { kvEventSource } : {}),
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
