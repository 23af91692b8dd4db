import {
  Counter,
  Gauge,
  Histogram,
  register as globalRegistry,
  type CounterConfiguration,
  type GaugeConfiguration,
  type HistogramConfiguration,
  type Metric,
  type Registry,
} from 'prom-client';

/**
 * Prometheus metrics shared by every component of a process. Several replicas of a service
 * (embedded mode) or several apps in one test process register the same names: these helpers
 * return the metric already registered under a name instead of throwing, so each component
 * declares what it needs and labels its own series (e.g. by worker).
 */
type AnyRegistry = Pick<Registry, 'getSingleMetric'>;

function getOrCreate<M extends Metric>(name: string, registry: AnyRegistry, create: () => M): M {
  const existing = registry.getSingleMetric(name);
  return (existing as M | undefined) ?? create();
}

function registryOf(registers: readonly AnyRegistry[] | undefined): AnyRegistry {
  return registers?.[0] ?? globalRegistry;
}

/** A counter named `config.name`, created on first use in its registry (default: prom-client's global one). */
export function counter<L extends string>(config: CounterConfiguration<L>): Counter<L> {
  return getOrCreate(config.name, registryOf(config.registers), () => new Counter(config));
}

/** A gauge named `config.name`, created on first use. */
export function gauge<L extends string>(config: GaugeConfiguration<L>): Gauge<L> {
  return getOrCreate(config.name, registryOf(config.registers), () => new Gauge(config));
}

/** A histogram named `config.name`, created on first use. */
export function histogram<L extends string>(config: HistogramConfiguration<L>): Histogram<L> {
  return getOrCreate(config.name, registryOf(config.registers), () => new Histogram(config));
}

/** The registry components register into unless told otherwise (prom-client's global registry). */
export const defaultRegistry: Registry = globalRegistry;

/** What the series helpers read of prom-client 15 metrics (not part of its typed API). */
interface SeriesEntry {
  labels: Record<string, unknown>;
}
interface HistogramInternals {
  hashMap: Record<string, SeriesEntry & { sum: number; count: number; bucketValues: Record<string, number> }>;
  upperBounds: number[];
}
interface ValueInternals {
  hashMap: Record<string, SeriesEntry & { value: number }>;
}

/**
 * Finds the key of the series with exactly `labels` in a prom-client metric's `hashMap` (the
 * string prom-client hashes the labels to is its own business: it is looked up, not rebuilt).
 */
function seriesLocator<E extends SeriesEntry>(
  hashMap: () => Record<string, E>,
  labels: Record<string, string | number>,
): () => E | undefined {
  const want = Object.entries(labels);
  let key: string | undefined;
  return () => {
    const map = hashMap();
    const known = key === undefined ? undefined : map[key];
    if (known !== undefined) return known;
    key = undefined;
    for (const [k, v] of Object.entries(map)) {
      const have = v.labels;
      if (Object.keys(have).length === want.length && want.every(([n, x]) => have[n] === x)) {
        key = k;
        return v;
      }
    }
    return undefined;
  };
}

/**
 * A fast `observe` for one labelled series of a histogram, for per-token or per-request
 * observations. prom-client's `labels(...).observe(v)` re-validates and re-hashes the labels on
 * every call (about 1 us; 6 % of the frontend's CPU on a 2,000-token stream); this looks the
 * series up once and then adds to its sum, count and bucket directly, as prom-client's own
 * `observe` does. It checks on each call that the series is still the registry's (a `reset()`
 * replaces it) and falls back to the public call for anything unusual (a non-finite value, an
 * unknown prom-client layout), so the exposition is the same either way (tested against the
 * public path).
 */
export function seriesObserver<L extends string>(
  h: Histogram<L>,
  labels: Partial<Record<L, string | number>>,
): SeriesObserver {
  const child = h.labels(labels);
  const internals = h as unknown as Partial<HistogramInternals>;
  const slow: SeriesObserver = {
    observe(value: number, times = 1): void {
      for (let i = 0; i < times; i++) child.observe(value);
    },
  };
  if (typeof internals.hashMap !== 'object' || !Array.isArray(internals.upperBounds)) return slow;
  const hist = internals as HistogramInternals;
  const entry = seriesLocator(() => hist.hashMap, labels as Record<string, string | number>);
  // The buckets' property names, made once (indexing by a fractional number converts it each time).
  const bounds = hist.upperBounds;
  const keys = bounds.map(String);
  return {
    observe(value: number, times = 1): void {
      const e = entry();
      if (e === undefined || !Number.isFinite(value) || !(Number.isInteger(times) && times > 0)) {
        slow.observe(value, times);
        return;
      }
      e.sum += value * times;
      e.count += times;
      for (let i = 0; i < bounds.length; i++) {
        if (value <= bounds[i]!) {
          e.bucketValues[keys[i]!]! += times;
          return;
        }
      }
    },
  };
}

/** What {@link seriesObserver} returns: `observe(value, times)` records `value` `times` times (default once). */
export interface SeriesObserver {
  observe(value: number, times?: number): void;
}

/**
 * A fast `inc` for one labelled series of a counter (see {@link seriesObserver}: the same lookup
 * once, the same fallback to prom-client's own call).
 */
export function seriesCounter<L extends string>(
  c: Counter<L>,
  labels: Partial<Record<L, string | number>>,
): { inc(value?: number): void } {
  const child = c.labels(labels);
  const internals = c as unknown as Partial<ValueInternals>;
  if (typeof internals.hashMap !== 'object') return child;
  const entry = seriesLocator(() => (internals as ValueInternals).hashMap, labels as Record<string, string | number>);
  return {
    inc(value = 1): void {
      const e = entry();
      if (e === undefined || !(Number.isFinite(value) && value >= 0)) child.inc(value);
      else e.value += value;
    },
  };
}

/** A fast `inc`/`dec` for one labelled series of a gauge (see {@link seriesCounter}). */
export function seriesGauge<L extends string>(
  g: Gauge<L>,
  labels: Partial<Record<L, string | number>>,
): { inc(value?: number): void; dec(value?: number): void } {
  const child = g.labels(labels);
  const internals = g as unknown as Partial<ValueInternals>;
  if (typeof internals.hashMap !== 'object') return child;
  const entry = seriesLocator(() => (internals as ValueInternals).hashMap, labels as Record<string, string | number>);
  const add = (delta: number): void => {
    const e = entry();
    if (e === undefined || !Number.isFinite(delta)) child.inc(delta);
    else e.value += delta;
  };
  return { inc: (value = 1) => add(value), dec: (value = 1) => add(-value) };
}

/**
 * One worker as a dashboard source reports it. Every figure but `id` is optional: a source
 * reports what it knows (a router its decisions and the load it tracks, a worker its own cache).
 */
export interface DashboardWorker {
  /** The worker's instance id. */
  id: string;
  /** Its name (`DYNAMO_WORKER_NAME`, as routing decisions label it); default the id. */
  name?: string;
  /** KV blocks in use by running sequences. */
  activeBlocks?: number;
  /** KV blocks the worker has in all. */
  totalBlocks?: number;
  /** Requests queued on the worker, not yet running. */
  waiting?: number;
  /** Requests routed to the worker and not finished. */
  inflight?: number;
  /** Distinct blocks the worker caches (as the router's index sees it). */
  cachedBlocks?: number;
  /** Share of the prompt blocks routed to this worker that were already cached there, 0..1. */
  hitRate?: number;
}

/** Returns the workers a component knows now; called on every dashboard poll and Prometheus scrape. */
export type DashboardSource = () => readonly DashboardWorker[];

const WORKER_FIGURES = ['activeBlocks', 'totalBlocks', 'waiting', 'inflight', 'cachedBlocks', 'hitRate'] as const;

/** The value if it is a finite number >= 0 (and <= 1 for a ratio), else undefined: sources relay untrusted data. */
function figure(v: unknown, ratio: boolean): number | undefined {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) return undefined;
  return ratio && v > 1 ? undefined : v;
}

/**
 * The dashboard sources of a process: components register a function that returns the workers
 * they know (the Router its routing state), and the dashboard and the `dynamo_worker_*` gauges
 * read them when asked. A source that throws or returns malformed rows costs only its own rows.
 */
export class DashboardSources {
  private readonly sources = new Map<string, DashboardSource>();

  /**
   * Adds (or replaces) the source named `name`; returns a function that removes it (a no-op once
   * another source took the name).
   */
  register(name: string, source: DashboardSource): () => void {
    this.sources.set(name, source);
    return () => {
      if (this.sources.get(name) === source) this.sources.delete(name);
    };
  }

  /** Names of the registered sources. */
  names(): string[] {
    return [...this.sources.keys()];
  }

  /**
   * Every source's workers, merged by id (a later source fills figures an earlier one left out),
   * with malformed rows and figures dropped. `onError` hears of a source that threw.
   */
  workers(onError?: (source: string, error: Error) => void): DashboardWorker[] {
    const byId = new Map<string, DashboardWorker>();
    for (const [name, source] of this.sources) {
      let rows: readonly unknown[];
      try {
        const got: unknown = source();
        rows = Array.isArray(got) ? got : [];
      } catch (e) {
        onError?.(name, e instanceof Error ? e : new Error(String(e)));
        continue;
      }
      for (const row of rows) {
        if (typeof row !== 'object' || row === null) continue;
        const r = row as Record<string, unknown>;
        if (typeof r.id !== 'string' || r.id.length === 0) continue;
        const w = byId.get(r.id) ?? { id: r.id };
        if (w.name === undefined && typeof r.name === 'string' && r.name.length > 0) w.name = r.name;
        for (const k of WORKER_FIGURES) {
          const v = figure(r[k], k === 'hitRate');
          if (w[k] === undefined && v !== undefined) w[k] = v;
        }
        byId.set(r.id, w);
      }
    }
    return [...byId.values()];
  }
}

/** The process's dashboard sources, which the frontend's `/dashboard` and `DYNAMO_METRICS_PORT` servers read. */
export const dashboardSources = new DashboardSources();

/** The `dynamo_worker_*` gauges: name, help, and the figure they show. */
const WORKER_GAUGES: ReadonlyArray<{ name: string; help: string; value: (w: DashboardWorker) => number | undefined }> =
  [
    {
      name: 'dynamo_worker_active_blocks',
      help: 'KV blocks in use by running sequences on a worker',
      value: (w) => w.activeBlocks,
    },
    { name: 'dynamo_worker_total_blocks', help: 'KV blocks a worker has in all', value: (w) => w.totalBlocks },
    {
      name: 'dynamo_worker_kv_usage_ratio',
      help: 'Share of a worker KV blocks in use (active / total)',
      value: (w) => kvUsage(w),
    },
    { name: 'dynamo_worker_waiting_requests', help: 'Requests queued on a worker', value: (w) => w.waiting },
    {
      name: 'dynamo_worker_inflight_requests',
      help: 'Requests routed to a worker and not finished',
      value: (w) => w.inflight,
    },
    {
      name: 'dynamo_worker_cached_blocks',
      help: 'Distinct KV blocks a worker caches, as the router index sees it',
      value: (w) => w.cachedBlocks,
    },
    {
      name: 'dynamo_worker_cache_hit_ratio',
      help: 'Share of the prompt blocks routed to a worker that were cached there',
      value: (w) => w.hitRate,
    },
  ];

/** A worker's KV usage (active / total blocks, at most 1), when both are known. */
export function kvUsage(w: DashboardWorker): number | undefined {
  if (w.activeBlocks === undefined || w.totalBlocks === undefined || w.totalBlocks <= 0) return undefined;
  return Math.min(1, w.activeBlocks / w.totalBlocks);
}

/**
 * Registers the `dynamo_worker_*` gauges in `registry` (once; later calls return the same
 * gauges), each filled from `sources` at every scrape and labelled by worker name.
 */
export function workerGauges(
  sources: DashboardSources = dashboardSources,
  registry: Registry = globalRegistry,
): Gauge<'worker'>[] {
  return WORKER_GAUGES.map(({ name, help, value }) =>
    gauge({
      name,
      help,
      labelNames: ['worker'] as const,
      registers: [registry],
      collect(this: Gauge<'worker'>) {
        this.reset();
        for (const w of sources.workers()) {
          const v = value(w);
          if (v !== undefined) this.set({ worker: w.name ?? w.id }, v);
        }
      },
    }),
  );
}

/**
 * Adds a dashboard source to the process's {@link dashboardSources} and makes sure the
 * `dynamo_worker_*` gauges are registered in `registry` (default prom-client's global one), so
 * one call feeds both `/dashboard` and Prometheus. Returns the function that removes the source.
 */
export function registerDashboardSource(
  name: string,
  source: DashboardSource,
  options: { sources?: DashboardSources; registry?: Registry } = {},
): () => void {
  const sources = options.sources ?? dashboardSources;
  workerGauges(sources, options.registry ?? globalRegistry);
  return sources.register(name, source);
}

/** What {@link routerStatsWorkers} reads of `@dynamo-ts/router`'s `KvRouter.stats()` (structurally). */
export interface RouterStatsLike {
  workers: ReadonlyArray<{
    workerId: string;
    activeBlocks: number;
    totalBlocks?: number;
    waiting: number;
    inflightRequests: number;
    cachedBlocks: number;
  }>;
}

/**
 * The dashboard rows of a router's stats: `names` maps instance ids to worker names, `hitRates`
 * (optional) instance ids to the worker's share of routed prompt blocks found cached. A Router
 * service registers `() => routerStatsWorkers(router.stats(), names)` as its source.
 */
export function routerStatsWorkers(
  stats: RouterStatsLike,
  names?: ReadonlyMap<string, string>,
  hitRates?: ReadonlyMap<string, number>,
): DashboardWorker[] {
  return stats.workers.map((w) => {
    const row: DashboardWorker = {
      id: w.workerId,
      activeBlocks: w.activeBlocks,
      waiting: w.waiting,
      inflight: w.inflightRequests,
      cachedBlocks: w.cachedBlocks,
    };
    const name = names?.get(w.workerId);
    if (name !== undefined) row.name = name;
    if (w.totalBlocks !== undefined) row.totalBlocks = w.totalBlocks;
    const hit = hitRates?.get(w.workerId);
    if (hit !== undefined) row.hitRate = hit;
    return row;
  });
}

/**
 * Per worker, the share of routed prompt blocks that were already cached there: a Router calls
 * {@link CacheHitShare.record} with each decision and passes {@link CacheHitShare.rates} to
 * {@link routerStatsWorkers}. Bounded: past `maxWorkers` workers it starts over.
 */
export class CacheHitShare {
  private readonly sums = new Map<string, { hit: number; blocks: number }>();

  constructor(private readonly maxWorkers = 4096) {}

  /** Records one decision: `overlapBlocks` of the prompt's `promptBlocks` full blocks were cached on `workerId`. */
  record(workerId: string, overlapBlocks: number, promptBlocks: number): void {
    if (!(Number.isFinite(overlapBlocks) && Number.isFinite(promptBlocks) && promptBlocks > 0)) return;
    let s = this.sums.get(workerId);
    if (!s) {
      if (this.sums.size >= this.maxWorkers) this.sums.clear();
      this.sums.set(workerId, (s = { hit: 0, blocks: 0 }));
    }
    s.hit += Math.min(Math.max(overlapBlocks, 0), promptBlocks);
    s.blocks += promptBlocks;
  }

  /** Forgets a worker (it left discovery). */
  remove(workerId: string): void {
    this.sums.delete(workerId);
  }

  /** Instance id -> share (0..1) of the workers with at least one recorded decision. */
  rates(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [id, s] of this.sums) out.set(id, s.hit / s.blocks);
    return out;
  }
}
