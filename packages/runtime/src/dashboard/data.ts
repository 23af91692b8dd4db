import {
  register as globalRegistry,
  type MetricObjectWithValues,
  type MetricValueWithName,
  type Registry,
} from 'prom-client';
import { dashboardSources as processSources, kvUsage, type DashboardSources } from '../metrics';

/**
 * The numbers of the live dashboard, read from what the process already has: its Prometheus
 * registry (the frontend's request metrics, the Router's decisions, the prefill queue gauge) and
 * its dashboard sources (workers' load and KV figures, see `metrics.registerDashboardSource`).
 */

/** The metric names the dashboard reads (defined by the frontend and the hello-world components). */
export const DASHBOARD_METRICS = {
  requests: 'dynamo_frontend_requests_total',
  inflight: 'dynamo_frontend_inflight_requests',
  ttft: 'dynamo_frontend_time_to_first_token_seconds',
  itl: 'dynamo_frontend_inter_token_latency_seconds',
  decisions: 'dynamo_router_decisions_total',
  overlap: 'dynamo_router_overlap_blocks',
  queueDepth: 'dynamo_prefill_queue_depth',
  prefillDecisions: 'dynamo_prefill_decisions_total',
} as const;

/** Percentiles of a latency, ms; null where no observation falls in the window. */
export interface Percentiles {
  p50: number | null;
  p90: number | null;
  p99: number | null;
  /** Observations in the window. */
  count: number;
}

/** One worker row of the dashboard (null: not reported by any source). */
export interface DashboardWorkerRow {
  /** Instance id, when a source reported it. */
  id: string | null;
  /** Worker name (as routing decisions label it), else the id. */
  name: string;
  /** Routing decisions that chose this worker (cumulative). */
  decisions: number;
  /** This worker's share of all decisions, 0..1 (null before the first decision). */
  decision_share: number | null;
  active_blocks: number | null;
  total_blocks: number | null;
  /** active / total blocks, 0..1. */
  kv_usage: number | null;
  waiting: number | null;
  inflight: number | null;
  cached_blocks: number | null;
  /** Share of routed prompt blocks found cached on the worker, 0..1. */
  hit_rate: number | null;
}

/** One point of the charts: figures over the interval that ends at `t`. */
export interface HistoryPoint {
  /** Epoch ms. */
  t: number;
  /** Requests answered per second. */
  rate: number | null;
  ttft_p50_ms: number | null;
  ttft_p99_ms: number | null;
  itl_p50_ms: number | null;
  inflight: number;
}

/** What `GET /dashboard/data` answers. */
export interface DashboardData {
  /** Epoch ms of the reading. */
  time: number;
  /** Span of the headline rate and percentiles, s (0 before a second reading: cumulative figures). */
  window_s: number;
  requests: {
    /** Requests answered since start (any status). */
    total: number;
    /** Requests answered per second over the window (null before a second reading). */
    rate_per_s: number | null;
    inflight: number;
    /** By final status (`success`, `error`, `cancelled`, `rejected`). */
    by_status: Record<string, number>;
  };
  ttft_ms: Percentiles;
  itl_ms: Percentiles;
  router: {
    decisions: number;
    /** Mean leading prompt blocks cached on the chosen worker, per decision. */
    overlap_blocks_mean: number | null;
  };
  prefill: {
    /** Jobs waiting, summed over queues (null: no queue reported). */
    queue_depth: number | null;
    queues: Array<{ name: string; depth: number }>;
    /** Prefill decisions of decode workers: pushed to the queue / done locally. */
    remote: number;
    local: number;
  };
  workers: DashboardWorkerRow[];
  history: HistoryPoint[];
}

/** Options of {@link DashboardCollector}. */
export interface DashboardCollectorOptions {
  /** Where the metrics are (default prom-client's global registry). */
  registry?: Pick<Registry, 'getMetricsAsJSON'>;
  /** Where the worker figures are (default the process's `metrics.dashboardSources`). */
  sources?: DashboardSources;
  /** Span of the headline rate and percentiles, ms. Default 60 000. */
  windowMs?: number;
  /** How much history the charts keep, ms. Default 600 000 (10 minutes). */
  historyMs?: number;
  /** Readings closer than this reuse the last answer (several open pages share one reading), ms. Default 1000. */
  minIntervalMs?: number;
  /** Clock (epoch ms), for tests. */
  now?: () => number;
  /** Hears of a dashboard source that threw. */
  onSourceError?: (source: string, error: Error) => void;
}

/** Cumulative bucket counts of a histogram, summed over its series: upper bound -> count. */
type Buckets = Map<number, number>;

/** One reading of the cumulative figures. */
interface Sample {
  t: number;
  requests: number;
  inflight: number;
  ttft: Buckets;
  itl: Buckets;
}

/** Sums of a metric's values by one label (or `''` for all), optionally for one `metricName`. */
function sumBy(
  m: MetricObjectWithValues<MetricValueWithName<string>> | undefined,
  label?: string,
  metricName?: string,
) {
  const out = new Map<string, number>();
  if (!m) return out;
  for (const v of m.values) {
    if (metricName !== undefined && v.metricName !== metricName) continue;
    if (!Number.isFinite(v.value)) continue;
    const key = label === undefined ? '' : String((v.labels as Record<string, unknown>)[label] ?? '');
    out.set(key, (out.get(key) ?? 0) + v.value);
  }
  return out;
}

function bucketsOf(m: MetricObjectWithValues<MetricValueWithName<string>> | undefined): Buckets {
  const out: Buckets = new Map();
  if (!m) return out;
  for (const v of m.values) {
    if (v.metricName !== `${m.name}_bucket`) continue;
    const le = (v.labels as Record<string, unknown>).le;
    const bound = le === '+Inf' ? Infinity : Number(le);
    if (Number.isNaN(bound) || !Number.isFinite(v.value)) continue;
    out.set(bound, (out.get(bound) ?? 0) + v.value);
  }
  return out;
}

/** `now - before`, bucket by bucket; undefined when a count went down (a reset: no delta). */
function bucketDelta(now: Buckets, before: Buckets | undefined): Buckets | undefined {
  if (!before) return now;
  const out: Buckets = new Map();
  for (const [le, c] of now) {
    const d = c - (before.get(le) ?? 0);
    if (d < 0) return undefined;
    out.set(le, d);
  }
  return out;
}

/**
 * The `q` quantile of cumulative buckets, interpolated linearly inside the bucket it falls in
 * (as Prometheus's `histogram_quantile` does); the largest finite bound when it falls in `+Inf`.
 */
export function bucketQuantile(q: number, buckets: ReadonlyMap<number, number>): number | null {
  const sorted = [...buckets].sort((a, b) => a[0] - b[0]);
  const total = sorted.length ? sorted[sorted.length - 1]![1] : 0;
  if (!(total > 0)) return null;
  const rank = q * total;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const [le, count] of sorted) {
    if (count >= rank) {
      if (le === Infinity) return lowerBound;
      const inBucket = count - lowerCount;
      if (inBucket <= 0) return le;
      return lowerBound + ((le - lowerBound) * (rank - lowerCount)) / inBucket;
    }
    lowerBound = le === Infinity ? lowerBound : le;
    lowerCount = count;
  }
  return lowerBound;
}

function percentiles(b: Buckets | undefined): Percentiles {
  const ms = (q: number): number | null => {
    const v = b ? bucketQuantile(q, b) : null;
    return v === null ? null : v * 1000;
  };
  const count = b ? Math.max(0, ...b.values()) : 0;
  return { p50: ms(0.5), p90: ms(0.9), p99: ms(0.99), count };
}

/**
 * Reads the dashboard's numbers on demand and keeps the recent readings for the rate and the
 * charts (no timer of its own: the history fills while someone polls).
 */
export class DashboardCollector {
  private readonly registry: Pick<Registry, 'getMetricsAsJSON'>;
  private readonly sources: DashboardSources;
  private readonly windowMs: number;
  private readonly historyMs: number;
  private readonly minIntervalMs: number;
  private readonly now: () => number;
  private readonly samples: Sample[] = [];
  private readonly points: HistoryPoint[] = [];
  private last: { at: number; data: Promise<DashboardData> } | undefined;

  constructor(private readonly options: DashboardCollectorOptions = {}) {
    this.registry = options.registry ?? globalRegistry;
    this.sources = options.sources ?? processSources;
    this.windowMs = options.windowMs ?? 60_000;
    this.historyMs = options.historyMs ?? 600_000;
    this.minIntervalMs = options.minIntervalMs ?? 1000;
    this.now = options.now ?? Date.now;
    for (const [k, v] of Object.entries({ windowMs: this.windowMs, historyMs: this.historyMs })) {
      if (!Number.isFinite(v) || v <= 0) throw new RangeError(`${k} must be a number > 0 (got ${v})`);
    }
    if (!Number.isFinite(this.minIntervalMs) || this.minIntervalMs < 0) {
      throw new RangeError(`minIntervalMs must be a number >= 0 (got ${this.minIntervalMs})`);
    }
  }

  /** The numbers now (or the last reading, when it is younger than `minIntervalMs`). */
  read(): Promise<DashboardData> {
    const at = this.now();
    if (this.last && at - this.last.at < this.minIntervalMs && at >= this.last.at) return this.last.data;
    const data = this.take(at);
    this.last = { at, data };
    data.catch(() => {
      if (this.last?.data === data) this.last = undefined;
    });
    return data;
  }

  private async take(t: number): Promise<DashboardData> {
    const all = await this.registry.getMetricsAsJSON();
    const byName = new Map(all.map((m) => [m.name, m as MetricObjectWithValues<MetricValueWithName<string>>]));
    const get = (n: string) => byName.get(n);
    const M = DASHBOARD_METRICS;

    const byStatus = Object.fromEntries(sumBy(get(M.requests), 'status'));
    const requests = Object.values(byStatus).reduce((a, b) => a + b, 0);
    const inflight = sumBy(get(M.inflight)).get('') ?? 0;
    const sample: Sample = { t, requests, inflight, ttft: bucketsOf(get(M.ttft)), itl: bucketsOf(get(M.itl)) };

    // Keep the history; the window's base is the oldest reading within it.
    const prev = this.samples[this.samples.length - 1];
    if (prev && t < prev.t) this.samples.length = 0; // the clock went back: start over
    const before = this.samples[this.samples.length - 1];
    if (before) this.points.push(this.point(before, sample));
    this.samples.push(sample);
    while (this.samples.length > 1 && this.samples[0]!.t < t - this.historyMs) this.samples.shift();
    while (this.points.length > 0 && this.points[0]!.t < t - this.historyMs) this.points.shift();
    const base = this.samples.find((s) => s.t >= t - this.windowMs && s !== sample);
    const dt = base ? (t - base.t) / 1000 : 0;
    const reqDelta = base ? requests - base.requests : -1;

    const decisionsByWorker = sumBy(get(M.decisions), 'worker');
    const decisions = [...decisionsByWorker.values()].reduce((a, b) => a + b, 0);
    const overlap = get(M.overlap);
    const overlapSum = sumBy(overlap, undefined, `${M.overlap}_sum`).get('') ?? 0;
    const overlapCount = sumBy(overlap, undefined, `${M.overlap}_count`).get('') ?? 0;
    const queues = [...sumBy(get(M.queueDepth), 'queue')].map(([name, depth]) => ({ name, depth }));
    const prefillDecisions = sumBy(get(M.prefillDecisions), 'decision');

    return {
      time: t,
      window_s: dt,
      requests: {
        total: requests,
        rate_per_s: dt > 0 && reqDelta >= 0 ? reqDelta / dt : null,
        inflight,
        by_status: byStatus,
      },
      ttft_ms: percentiles(base ? bucketDelta(sample.ttft, base.ttft) : sample.ttft),
      itl_ms: percentiles(base ? bucketDelta(sample.itl, base.itl) : sample.itl),
      router: { decisions, overlap_blocks_mean: overlapCount > 0 ? overlapSum / overlapCount : null },
      prefill: {
        queue_depth: queues.length ? queues.reduce((a, q) => a + q.depth, 0) : null,
        queues,
        remote: prefillDecisions.get('remote') ?? 0,
        local: prefillDecisions.get('local') ?? 0,
      },
      workers: this.workers(decisionsByWorker, decisions),
      history: [...this.points],
    };
  }

  private point(a: Sample, b: Sample): HistoryPoint {
    const dt = (b.t - a.t) / 1000;
    const dReq = b.requests - a.requests;
    const ttft = bucketDelta(b.ttft, a.ttft);
    const itl = bucketDelta(b.itl, a.itl);
    const q = (x: Buckets | undefined, p: number): number | null => {
      const v = x ? bucketQuantile(p, x) : null;
      return v === null ? null : v * 1000;
    };
    return {
      t: b.t,
      rate: dt > 0 && dReq >= 0 ? dReq / dt : null,
      ttft_p50_ms: q(ttft, 0.5),
      ttft_p99_ms: q(ttft, 0.99),
      itl_p50_ms: q(itl, 0.5),
      inflight: b.inflight,
    };
  }

  /** Source rows merged with the decisions per worker (matched by name, then id). */
  private workers(decisionsByWorker: Map<string, number>, total: number): DashboardWorkerRow[] {
    const rows = new Map<string, DashboardWorkerRow>();
    for (const w of this.sources.workers(this.options.onSourceError)) {
      const name = w.name ?? w.id;
      const decisions = (decisionsByWorker.get(name) ?? 0) + (name !== w.id ? (decisionsByWorker.get(w.id) ?? 0) : 0);
      rows.set(name, {
        id: w.id,
        name,
        decisions,
        decision_share: total > 0 ? decisions / total : null,
        active_blocks: w.activeBlocks ?? null,
        total_blocks: w.totalBlocks ?? null,
        kv_usage: kvUsage(w) ?? null,
        waiting: w.waiting ?? null,
        inflight: w.inflight ?? null,
        cached_blocks: w.cachedBlocks ?? null,
        hit_rate: w.hitRate ?? null,
      });
      decisionsByWorker.delete(name);
      decisionsByWorker.delete(w.id);
    }
    // Workers known only from routing decisions (no source reports them): their decisions alone.
    for (const [name, decisions] of decisionsByWorker) {
      if (name === '' || rows.has(name)) continue;
      rows.set(name, {
        id: null,
        name,
        decisions,
        decision_share: total > 0 ? decisions / total : null,
        active_blocks: null,
        total_blocks: null,
        kv_usage: null,
        waiting: null,
        inflight: null,
        cached_blocks: null,
        hit_rate: null,
      });
    }
    return [...rows.values()].sort((a, b) => a.name.localeCompare(b.name));
  }
}
