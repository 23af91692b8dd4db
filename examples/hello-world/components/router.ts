import { ALL_STRATEGY_NAMES, isStrategyName, KvRouter } from '@dynamo-ts/router';
import { metrics, UnavailableError } from '@dynamo-ts/runtime';
import { defineService, type EndpointContext } from '@dynamo-ts/sdk';
import { routerDecisions, routerOverlapBlocks } from './metrics';
import { ROUTE_REQUEST_SCHEMA, type RequestStatus, type RouteDecision, type RouteRequest } from './protocol';
import { DummyWorker } from './worker';

/** Config of the Router. */
export interface RouterConfig {
  /** KV block size in tokens (must match the workers'). */
  block_size: number;
  /** `kv`, `round-robin`, `random`, `least-loaded`, `power-of-two`, or a peer policy (docs/router.md). */
  strategy: string;
  /** `tuned` (default) or `dynamo`: the kv cost's weights (docs/router.md, "Presets and tuning"). */
  kv_preset: 'tuned' | 'dynamo';
  /** Weight of the prefill term in the kv cost; default the preset's. */
  overlap_weight?: number;
  /** 0: always the lowest cost; > 0: sample softmax(-cost/T). */
  temperature: number;
}

/**
 * The KV-aware router: follows the DummyWorkers through discovery, their KV events and load
 * metrics through the event plane, and the Processor's request status; answers each request
 * with the worker whose cache holds the longest prefix of the prompt, weighed against its load.
 */
export const Router = defineService<RouterConfig>({
  name: 'Router',
  dependencies: [DummyWorker],
  configSchema: {
    properties: {
      block_size: { type: 'integer', minimum: 1, maximum: 4096, default: 2 },
      strategy: { enum: [...ALL_STRATEGY_NAMES], default: 'kv' },
      kv_preset: { enum: ['tuned', 'dynamo'], default: 'tuned' },
      overlap_weight: { type: 'number', minimum: 0 },
      temperature: { type: 'number', minimum: 0, default: 0 },
    },
  },
  async create(ctx) {
    const cfg = ctx.config;
    if (!isStrategyName(cfg.strategy)) throw new Error(`unknown strategy ${cfg.strategy}`);
    const router = new KvRouter({
      blockSize: cfg.block_size,
      strategy: cfg.strategy,
      kvPreset: cfg.kv_preset,
      ...(cfg.overlap_weight !== undefined ? { overlapWeight: cfg.overlap_weight } : {}),
      temperature: cfg.temperature,
      onWarning: (message, fields) => ctx.logger.warn(message, fields),
    });
    const names = new Map<string, string>();
    const workers = await ctx.client(DummyWorker, 'generate');
    const add = (id: string, name: string, blockSize: unknown): void => {
      names.set(id, name);
      router.addWorker(id);
      if (blockSize !== undefined && blockSize !== cfg.block_size) {
        ctx.logger.warn('worker block size differs from the router; its cache hits will be missed', {
          worker_id: id,
          worker_block_size: blockSize,
          router_block_size: cfg.block_size,
        });
      }
    };
    for (const i of workers.instances()) add(i.instanceId, i.name, i.metadata.block_size);
    workers.onChange((c) => {
      if (c.type === 'added') add(c.instance.instanceId, c.instance.name, c.instance.metadata.block_size);
      else {
        router.removeWorker(c.instance.instanceId);
        names.delete(c.instance.instanceId);
      }
    });

    const stop = new AbortController();
    const follow = <T>(it: AsyncIterable<{ data: T }>, apply: (d: T) => void, what: string): void => {
      void (async () => {
        try {
          for await (const m of it) {
            try {
              apply(m.data);
            } catch (e) {
              ctx.logger.warn(`bad ${what} ignored`, { error: (e as Error).message });
            }
          }
        } catch (e) {
          if (!stop.signal.aborted) ctx.logger.error(`${what} subscription ended`, { error: (e as Error).message });
        }
      })();
    };
    const dummy = ctx.namespace.component(DummyWorker.name);
    follow(dummy.subscribe('kv_events', { signal: stop.signal }), (d) => router.applyEvent(d), 'KV event');
    follow(dummy.subscribe('load_metrics', { signal: stop.signal }), (d) => router.applyLoad(d), 'load metric');
    follow(
      ctx.namespace.component('Processor').subscribe<RequestStatus>('request_status', { signal: stop.signal }),
      (s) => (s.status === 'first_token' ? router.onFirstToken(s.request_id) : router.onFinished(s.request_id)),
      'request status',
    );
    await ctx.runtime.eventPlane.flush();

    const noneExcluded: ReadonlySet<string> = new Set();
    // Metric series looked up once, not per decision (see metrics.seriesObserver).
    const overlapBlocks = metrics.seriesObserver(routerOverlapBlocks, { strategy: cfg.strategy });
    const decisions = new Map<string, { inc(): void }>();
    const decisionsOf = (worker: string): { inc(): void } => {
      let c = decisions.get(worker);
      if (!c) {
        if (decisions.size >= 1024) decisions.clear();
        decisions.set(worker, (c = metrics.seriesCounter(routerDecisions, { strategy: cfg.strategy, worker })));
      }
      return c;
    };
    async function* generate(req: RouteRequest, ectx: EndpointContext): AsyncGenerator<RouteDecision> {
      const live = workers.instanceIds();
      if (live.length === 0) throw new UnavailableError('no DummyWorker instance is live');
      // Workers that failed this request, or that discovery lists but a caller marked down, are
      // skipped for this decision only: they keep their place (and cache state) in the router.
      // (The usual request excludes none: no sets built for it.)
      const known = router.workers();
      let exclude = noneExcluded;
      if (req.exclude_workers?.length || known.some((id) => !live.includes(id))) {
        const excluded = new Set(req.exclude_workers ?? []);
        for (const id of known) if (!live.includes(id)) excluded.add(id);
        if (known.every((id) => excluded.has(id))) throw new UnavailableError('no DummyWorker instance is live');
        exclude = excluded;
      }
      const d = router.route({ tokenIds: req.token_ids, requestId: req.request_id, excludeWorkers: exclude });
      const name = names.get(d.worker_id);
      decisionsOf(name ?? d.worker_id).inc();
      overlapBlocks.observe(d.overlap_blocks);
      const decision: RouteDecision = { worker_id: d.worker_id, overlap_blocks: d.overlap_blocks, worker_name: name };
      if (ctx.logger.isLevelEnabled('debug')) ectx.logger.debug('route decision', { ...decision });
      yield decision;
    }

    return {
      endpoints: { generate: { requestSchema: ROUTE_REQUEST_SCHEMA, handler: generate } },
      async close() {
        stop.abort();
      },
    };
  },
});
