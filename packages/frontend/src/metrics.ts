import type { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { metrics } from '@dynamo-ts/runtime';

/** The route a request came in on (the `endpoint` label). */
export type FrontendEndpoint = 'generate' | 'completions' | 'chat_completions';

/** `stream` for Server-Sent Events answers, `unary` for one JSON body (the `request_type` label). */
export type RequestType = 'stream' | 'unary';

/**
 * How a request ended (the `status` label): `success`; `error` (upstream failure or timeout);
 * `cancelled` (the client left first); `rejected` (a 4xx at the edge: bad body, unknown model).
 */
export type RequestStatus = 'success' | 'error' | 'cancelled' | 'rejected';

/** The `model` label of requests that name no served model (`/generate`, rejected requests). */
export const UNSPECIFIED_MODEL = 'unspecified';

const SECONDS_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const TTFT_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const ITL_BUCKETS = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
const TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144];

/** The `dynamo_frontend_*` Prometheus metrics (DESIGN.md section 7), registered in one registry. */
export class FrontendMetrics {
  /** Requests by model, endpoint, request type and final status. */
  readonly requests: Counter<'model' | 'endpoint' | 'request_type' | 'status'>;
  /** Requests being answered now, by model. */
  readonly inflight: Gauge<'model'>;
  /** Time from the request's arrival to its last byte, by model and endpoint. */
  readonly duration: Histogram<'model' | 'endpoint'>;
  /** Time from the request's arrival to the first generated text, by model. */
  readonly ttft: Histogram<'model'>;
  /** Time between successive output tokens, by model. */
  readonly itl: Histogram<'model'>;
  /** Prompt length in tokens, by model. */
  readonly inputTokens: Histogram<'model'>;
  /** Output length in tokens, by model. */
  readonly outputTokens: Histogram<'model'>;

  constructor(readonly registry: Registry = metrics.defaultRegistry) {
    const registers = [registry];
    this.requests = metrics.counter({
      name: 'dynamo_frontend_requests_total',
      help: 'HTTP generation requests by model, endpoint, request type (stream|unary) and status',
      labelNames: ['model', 'endpoint', 'request_type', 'status'],
      registers,
    });
    this.inflight = metrics.gauge({
      name: 'dynamo_frontend_inflight_requests',
      help: 'Generation requests being answered now',
      labelNames: ['model'],
      registers,
    });
    this.duration = metrics.histogram({
      name: 'dynamo_frontend_request_duration_seconds',
      help: 'Time from the arrival of a generation request to its last byte',
      labelNames: ['model', 'endpoint'],
      buckets: SECONDS_BUCKETS,
      registers,
    });
    this.ttft = metrics.histogram({
      name: 'dynamo_frontend_time_to_first_token_seconds',
      help: 'Time from the arrival of a generation request to its first generated text',
      labelNames: ['model'],
      buckets: TTFT_BUCKETS,
      registers,
    });
    this.itl = metrics.histogram({
      name: 'dynamo_frontend_inter_token_latency_seconds',
      help: 'Time between successive output tokens of a request',
      labelNames: ['model'],
      buckets: ITL_BUCKETS,
      registers,
    });
    this.inputTokens = metrics.histogram({
      name: 'dynamo_frontend_input_sequence_tokens',
      help: 'Prompt length of generation requests, in tokens',
      labelNames: ['model'],
      buckets: TOKEN_BUCKETS,
      registers,
    });
    this.outputTokens = metrics.histogram({
      name: 'dynamo_frontend_output_sequence_tokens',
      help: 'Output length of generation requests, in tokens',
      labelNames: ['model'],
      buckets: TOKEN_BUCKETS,
      registers,
    });
  }

  private readonly perModel = new Map<string, ModelSeries>();

  /** The per-model series (label lookups done once per model, not per request or token). */
  series(model: string): ModelSeries {
    let m = this.perModel.get(model);
    if (!m) {
      // Each series is updated directly (see metrics.seriesObserver): prom-client's labelled
      // calls hash their labels on every call, several times a request.
      m = {
        inflight: metrics.seriesGauge(this.inflight, { model }),
        ttft: metrics.seriesObserver(this.ttft, { model }),
        itl: metrics.seriesObserver(this.itl, { model }),
        inputTokens: metrics.seriesObserver(this.inputTokens, { model }),
        outputTokens: metrics.seriesObserver(this.outputTokens, { model }),
        ended: new Map(),
        duration: new Map(),
      };
      // Bounded: model names come from the served list (or `unspecified`); forget all past a cap.
      if (this.perModel.size >= 256) this.perModel.clear();
      this.perModel.set(model, m);
    }
    return m;
  }

  /** The `requests` series of one model, endpoint, request type and final status. */
  ended(s: ModelSeries, model: string, endpoint: FrontendEndpoint, requestType: RequestType, status: RequestStatus) {
    const key = `${endpoint} ${requestType} ${status}`;
    let c = s.ended.get(key);
    if (!c)
      s.ended.set(
        key,
        (c = metrics.seriesCounter(this.requests, { model, endpoint, request_type: requestType, status })),
      );
    return c;
  }

  /** The `duration` series of one model and endpoint. */
  durationOf(s: ModelSeries, model: string, endpoint: FrontendEndpoint): { observe(v: number): void } {
    let h = s.duration.get(endpoint);
    if (!h) s.duration.set(endpoint, (h = metrics.seriesObserver(this.duration, { model, endpoint })));
    return h;
  }

  /** Counts a request refused at the edge (bad body, unknown model) without tracking it further. */
  rejected(endpoint: FrontendEndpoint, requestType: RequestType, model = UNSPECIFIED_MODEL): void {
    this.requests.inc({ model, endpoint, request_type: requestType, status: 'rejected' });
  }

  /** Starts tracking one accepted request (counts it in flight until {@link RequestTracker.finish}). */
  start(
    labels: { model: string; endpoint: FrontendEndpoint; requestType: RequestType },
    startedAt?: number,
  ): RequestTracker {
    return new RequestTracker(this, labels, startedAt ?? performance.now());
  }
}

/** The series of one model (prom-client children). */
interface ModelSeries {
  inflight: { inc(): void; dec(): void };
  ttft: { observe(v: number): void };
  itl: metrics.SeriesObserver;
  inputTokens: { observe(v: number): void };
  outputTokens: { observe(v: number): void };
  /** `requests` by `endpoint request_type status`. */
  ended: Map<string, { inc(): void }>;
  /** `duration` by endpoint. */
  duration: Map<string, { observe(v: number): void }>;
}

/**
 * The metrics of one request: feed it every upstream event ({@link RequestTracker.event}), then
 * {@link RequestTracker.finish} once.
 */
export class RequestTracker {
  private firstAt: number | undefined;
  private lastAt = 0;
  private lastTokens = 0;
  private promptTokens: number | undefined;
  private done = false;
  private readonly s: ModelSeries;

  constructor(
    private readonly m: FrontendMetrics,
    private readonly labels: { model: string; endpoint: FrontendEndpoint; requestType: RequestType },
    private readonly startedAt: number,
  ) {
    this.s = m.series(labels.model);
    this.s.inflight.inc();
  }

  /** Output tokens seen so far. */
  get completionTokens(): number {
    return this.lastTokens;
  }

  /**
   * Records one upstream event: `text` its output piece, `completionTokens` the cumulative
   * output token count when the upstream reports it (else each non-empty piece counts as one).
   */
  event(text: string, completionTokens?: number, promptTokens?: number): void {
    if (promptTokens !== undefined) this.promptTokens = promptTokens;
    const total = completionTokens ?? (text ? this.lastTokens + 1 : this.lastTokens);
    const added = total - this.lastTokens;
    if (added <= 0 && !text) return;
    const now = performance.now();
    if (this.firstAt === undefined) {
      this.firstAt = now;
      this.s.ttft.observe((now - this.startedAt) / 1000);
    } else if (added > 0) {
      // An event carrying several tokens spreads its gap evenly over them.
      this.s.itl.observe((now - this.lastAt) / 1000 / added, added);
    }
    this.lastAt = now;
    this.lastTokens = Math.max(total, this.lastTokens);
  }

  /** Ends the request: counts it with `status`, records its duration and sequence lengths. Idempotent. */
  finish(status: RequestStatus): void {
    if (this.done) return;
    this.done = true;
    const { model, endpoint, requestType } = this.labels;
    this.s.inflight.dec();
    this.m.ended(this.s, model, endpoint, requestType, status).inc();
    this.m.durationOf(this.s, model, endpoint).observe((performance.now() - this.startedAt) / 1000);
    if (this.promptTokens !== undefined) this.s.inputTokens.observe(this.promptTokens);
    if (status === 'success' || this.lastTokens > 0) this.s.outputTokens.observe(this.lastTokens);
  }
}
