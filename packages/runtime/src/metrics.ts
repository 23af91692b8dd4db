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
