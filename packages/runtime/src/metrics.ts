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
