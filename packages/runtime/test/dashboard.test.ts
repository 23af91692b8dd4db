import { Registry } from 'prom-client';
import { dashboard, metrics } from '@dynamo-ts/runtime';

const { DashboardCollector, bucketQuantile, DASHBOARD_METRICS: M } = dashboard;

/** The metrics the dashboard reads, declared as the frontend and the hello-world components declare them. */
function declare(registry: Registry) {
  const registers = [registry];
  return {
    requests: metrics.counter({ name: M.requests, help: 'h', labelNames: ['status'], registers }),
    inflight: metrics.gauge({ name: M.inflight, help: 'h', labelNames: ['model'], registers }),
    ttft: metrics.histogram({ name: M.ttft, help: 'h', labelNames: ['model'], buckets: [0.01, 0.1, 1], registers }),
    itl: metrics.histogram({ name: M.itl, help: 'h', labelNames: ['model'], buckets: [0.001, 0.01], registers }),
    decisions: metrics.counter({ name: M.decisions, help: 'h', labelNames: ['strategy', 'worker'], registers }),
    overlap: metrics.histogram({
      name: M.overlap,
      help: 'h',
      labelNames: ['strategy'],
      buckets: [0, 4, 16],
      registers,
    }),
    queue: metrics.gauge({ name: M.queueDepth, help: 'h', labelNames: ['queue'], registers }),
    prefill: metrics.counter({ name: M.prefillDecisions, help: 'h', labelNames: ['worker', 'decision'], registers }),
  };
}

describe('bucketQuantile', () => {
  it('interpolates inside the bucket the rank falls in, as histogram_quantile does', () => {
    // 10 observations <= 1, 10 more in (1, 2]: the median is the top of the first bucket,
    // p75 halfway through the second.
    const b = new Map([
      [1, 10],
      [2, 20],
      [Infinity, 20],
    ]);
    expect(bucketQuantile(0.5, b)).toBe(1);
    expect(bucketQuantile(0.75, b)).toBe(1.5);
  });

  it('gives the largest finite bound for ranks in +Inf, and null without observations', () => {
    expect(
      bucketQuantile(
        0.99,
        new Map([
          [1, 1],
          [Infinity, 10],
        ]),
      ),
    ).toBe(1);
    expect(bucketQuantile(0.5, new Map([[Infinity, 0]]))).toBeNull();
    expect(bucketQuantile(0.5, new Map())).toBeNull();
  });
});

describe('DashboardCollector', () => {
  it('reads totals, windowed rate and percentiles, decisions per worker and queue depth', async () => {
    const registry = new Registry();
    const m = declare(registry);
    let now = 1_000_000;
    const sources = new metrics.DashboardSources();
    const c = new DashboardCollector({ registry, sources, now: () => now, windowMs: 60_000, minIntervalMs: 0 });

    m.requests.inc({ status: 'success' }, 5);
    m.ttft.observe({ model: 'x' }, 0.5); // before the window: not in the windowed percentiles
    const first = await c.read();
    expect(first.requests.total).toBe(5);
    expect(first.requests.rate_per_s).toBeNull(); // one reading: no rate yet
    expect(first.window_s).toBe(0);
    expect(first.ttft_ms.p50).toBeCloseTo(550, 5); // cumulative until a second reading

    now += 10_000;
    m.requests.inc({ status: 'success' }, 18);
    m.requests.inc({ status: 'error' }, 2);
    m.inflight.inc({ model: 'x' }, 3);
    for (let i = 0; i < 10; i++) m.ttft.observe({ model: 'x' }, 0.005);
    m.itl.observe({ model: 'x' }, 0.0005);
    m.decisions.inc({ strategy: 'kv', worker: 'node-0' }, 3);
    m.decisions.inc({ strategy: 'kv', worker: 'node-1' }, 1);
    m.overlap.observe({ strategy: 'kv' }, 2);
    m.overlap.observe({ strategy: 'kv' }, 4);
    m.queue.set({ queue: 'prefill' }, 7);
    m.prefill.inc({ worker: 'node-0', decision: 'remote' }, 4);
    m.prefill.inc({ worker: 'node-0', decision: 'local' });
    const d = await c.read();

    expect(d.window_s).toBe(10);
    expect(d.requests.total).toBe(25);
    expect(d.requests.rate_per_s).toBeCloseTo(2, 10); // 20 more in 10 s
    expect(d.requests.by_status).toEqual({ success: 23, error: 2 });
    expect(d.requests.inflight).toBe(3);
    expect(d.ttft_ms.count).toBe(10);
    expect(d.ttft_ms.p50).toBeCloseTo(5, 5); // 10 in the first bucket [0, 10 ms]: half way
    expect(d.itl_ms.p99).toBeCloseTo(0.99, 5);
    expect(d.router).toEqual({ decisions: 4, overlap_blocks_mean: 3 });
    expect(d.prefill).toEqual({ queue_depth: 7, queues: [{ name: 'prefill', depth: 7 }], remote: 4, local: 1 });
    expect(d.workers.map((w) => [w.name, w.decisions, w.decision_share])).toEqual([
      ['node-0', 3, 0.75],
      ['node-1', 1, 0.25],
    ]);
    expect(d.workers[0]!.kv_usage).toBeNull(); // no source reports load
    expect(d.history).toHaveLength(1);
    expect(d.history[0]).toMatchObject({ t: now, rate: 2, inflight: 3 });
    expect(d.history[0]!.ttft_p50_ms).toBeCloseTo(5, 5);
  });

  it('merges source rows with the decisions by worker name and drops malformed figures', async () => {
    const registry = new Registry();
    const m = declare(registry);
    m.decisions.inc({ strategy: 'kv', worker: 'node-0' }, 2);
    m.decisions.inc({ strategy: 'kv', worker: 'gone' }, 1);
    const sources = new metrics.DashboardSources();
    sources.register('router', () => [
      { id: 'a1', name: 'node-0', activeBlocks: 30, totalBlocks: 120, cachedBlocks: 40, hitRate: 0.5, inflight: 1 },
      { id: 'b2', name: 'node-1', activeBlocks: Number.NaN, totalBlocks: -1, hitRate: 7, waiting: 2 },
      { name: 'no id' } as unknown as metrics.DashboardWorker,
    ]);
    const errors: string[] = [];
    sources.register('broken', () => {
      throw new Error('boom');
    });
    const c = new DashboardCollector({ registry, sources, onSourceError: (s, e) => errors.push(`${s}: ${e.message}`) });
    const d = await c.read();
    expect(errors).toEqual(['broken: boom']);
    expect(d.workers).toEqual([
      {
        id: null,
        name: 'gone',
        decisions: 1,
        decision_share: 1 / 3,
        active_blocks: null,
        total_blocks: null,
        kv_usage: null,
        waiting: null,
        inflight: null,
        cached_blocks: null,
        hit_rate: null,
      },
      {
        id: 'a1',
        name: 'node-0',
        decisions: 2,
        decision_share: 2 / 3,
        active_blocks: 30,
        total_blocks: 120,
        kv_usage: 0.25,
        waiting: null,
        inflight: 1,
        cached_blocks: 40,
        hit_rate: 0.5,
      },
      {
        id: 'b2',
        name: 'node-1',
        decisions: 0,
        decision_share: 0,
        active_blocks: null,
        total_blocks: null,
        kv_usage: null,
        waiting: 2,
        inflight: null,
        cached_blocks: null,
        hit_rate: null,
      },
    ]);
  });

  it('reuses a reading younger than minIntervalMs and forgets history older than historyMs', async () => {
    const registry = new Registry();
    const m = declare(registry);
    let now = 0;
    const c = new DashboardCollector({
      registry,
      sources: new metrics.DashboardSources(),
      now: () => now,
      minIntervalMs: 1000,
      historyMs: 5000,
    });
    const a = await c.read();
    m.requests.inc({ status: 'success' });
    now = 500;
    expect(await c.read()).toBe(a);
    for (let i = 1; i <= 10; i++) {
      now = i * 1000;
      await c.read();
    }
    const d = await c.read();
    expect(d.history.length).toBe(6); // t = 5000 ... 10000
    expect(d.history.every((p) => p.t >= now - 5000)).toBe(true);
  });

  it('treats a counter that went down (a reset) as a new start, not a negative rate', async () => {
    const registry = new Registry();
    const m = declare(registry);
    let now = 0;
    const c = new DashboardCollector({ registry, sources: new metrics.DashboardSources(), now: () => now });
    m.requests.inc({ status: 'success' }, 10);
    await c.read();
    registry.resetMetrics();
    m.requests.inc({ status: 'success' }, 1);
    now = 5000;
    const d = await c.read();
    expect(d.requests.rate_per_s).toBeNull();
    expect(d.history[0]!.rate).toBeNull();
  });

  it('refuses nonsense options', () => {
    expect(() => new DashboardCollector({ windowMs: 0 })).toThrow(/windowMs/);
    expect(() => new DashboardCollector({ historyMs: Number.NaN })).toThrow(/historyMs/);
    expect(() => new DashboardCollector({ minIntervalMs: -1 })).toThrow(/minIntervalMs/);
  });
});

describe('registerDashboardSource', () => {
  it('feeds the dynamo_worker_* gauges at every scrape, labelled by worker name', async () => {
    const registry = new Registry();
    const sources = new metrics.DashboardSources();
    let active = 10;
    const stop = metrics.registerDashboardSource(
      'router',
      () => [{ id: 'abc', name: 'node-0', activeBlocks: active, totalBlocks: 40, hitRate: 0.25 }],
      { sources, registry },
    );
    let text = await registry.metrics();
    expect(text).toContain('dynamo_worker_active_blocks{worker="node-0"} 10');
    expect(text).toContain('dynamo_worker_kv_usage_ratio{worker="node-0"} 0.25');
    expect(text).toContain('dynamo_worker_cache_hit_ratio{worker="node-0"} 0.25');
    active = 20;
    text = await registry.metrics();
    expect(text).toContain('dynamo_worker_active_blocks{worker="node-0"} 20');
    stop();
    expect(sources.names()).toEqual([]);
    expect(await registry.metrics()).not.toContain('worker="node-0"');
  });

  it('maps a router stats snapshot to rows', () => {
    const rows = metrics.routerStatsWorkers(
      {
        workers: [
          { workerId: 'a', activeBlocks: 3, totalBlocks: 9, waiting: 1, inflightRequests: 2, cachedBlocks: 5 },
          { workerId: 'b', activeBlocks: 0, waiting: 0, inflightRequests: 0, cachedBlocks: 0 },
        ],
      },
      new Map([['a', 'node-0']]),
      new Map([['a', 0.5]]),
    );
    expect(rows).toEqual([
      {
        id: 'a',
        name: 'node-0',
        activeBlocks: 3,
        totalBlocks: 9,
        waiting: 1,
        inflight: 2,
        cachedBlocks: 5,
        hitRate: 0.5,
      },
      { id: 'b', activeBlocks: 0, waiting: 0, inflight: 0, cachedBlocks: 0 },
    ]);
  });

  it('tracks the cache-hit share per worker from decisions', () => {
    const hits = new metrics.CacheHitShare(2);
    hits.record('a', 3, 4);
    hits.record('a', 1, 4);
    hits.record('b', 9, 2); // more overlap than blocks counts as all cached
    hits.record('b', 0, 0); // no full block: nothing to count
    hits.record('b', Number.NaN, 4);
    expect(hits.rates()).toEqual(
      new Map([
        ['a', 0.5],
        ['b', 1],
      ]),
    );
    hits.remove('a');
    hits.record('c', 0, 1);
    hits.record('d', 1, 1); // past maxWorkers: starts over
    expect(hits.rates()).toEqual(new Map([['d', 1]]));
  });
});
