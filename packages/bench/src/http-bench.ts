/**
 * `dynamo-ts bench http`: closed-loop HTTP load against a running frontend (`/generate` or the
 * OpenAI routes), measuring requests/s, time to first token and end-to-end latency.
 *
 * The load generator is plain `node:http` with one keep-alive socket per concurrent client, so
 * the sdk needs no HTTP-client dependency and the same code measures JSON and SSE answers:
 * `concurrency` clients each send a request, read the whole answer, and send the next, until
 * `durationS` has passed (or `requests` were sent).
 */
import http from 'node:http';
import { InvalidArgumentError } from '@dynamo-ts/runtime';
import { positiveIntFlag, positiveNumberFlag } from './flags';

/** Which frontend route to load. */
export type HttpBenchRoute = 'generate' | 'chat' | 'completions';

/** The routes {@link HttpBenchRoute} names. */
export const HTTP_BENCH_ROUTES: readonly HttpBenchRoute[] = ['generate', 'chat', 'completions'];

/** Options of {@link runHttpBench}. */
export interface HttpBenchOptions {
  /** Base URL of the frontend, e.g. `http://127.0.0.1:8000` (a path, when given, replaces the route's). */
  url: string;
  /** Concurrent clients (closed loop: each waits for its answer before the next request). */
  concurrency: number;
  /** Seconds to send requests for. */
  durationS: number;
  /** Stop after this many requests in all (whichever of this and `durationS` comes first). */
  requests?: number;
  route: HttpBenchRoute;
  /** Ask for Server-Sent Events (`accept: text/event-stream`, or `stream: true` on the OpenAI routes). */
  stream: boolean;
  /** Prompt sent with every request. Default `Tell me a joke`. */
  prompt?: string;
  /** Model name on the OpenAI routes. Default `hello-world`. */
  model?: string;
  /** `max_tokens` on the OpenAI routes (omitted when undefined). */
  maxTokens?: number;
  /** A request that has not finished after this long counts as an error. Default 30000 ms. */
  timeoutMs?: number;
  /** Record latencies (default true; off keeps memory flat over very long runs). */
  record?: boolean;
}

/** Latency percentiles, milliseconds. */
export interface LatencySummary {
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  max: number;
}

/** What {@link runHttpBench} measured. */
export interface HttpBenchResult {
  url: string;
  route: HttpBenchRoute;
  stream: boolean;
  concurrency: number;
  /** Wall time of the run, seconds. */
  duration_s: number;
  /** Requests answered with 2xx and no error event. */
  requests: number;
  /** Requests that failed (non-2xx status, an SSE `error` event, a socket error or a timeout). */
  errors: number;
  /** Failures by kind: `status_503`, `sse_error`, `timeout`, `socket: ECONNREFUSED`, ... */
  error_kinds: Record<string, number>;
  /** Successful requests per second. */
  requests_per_s: number;
  /** Time to the first byte of the answer's body (with SSE: the first event), ms. */
  ttft_ms: LatencySummary;
  /** Time to the end of the answer, ms. */
  e2e_ms: LatencySummary;
  /** SSE `data:` events received in all (`[DONE]` not counted); 0 without `stream`. */
  events: number;
  /** Events per second over the run. */
  events_per_s: number;
  /** Response body bytes received. */
  bytes: number;
}

/** Progress callback: seconds elapsed of the run's total, requests done so far. */
export type HttpBenchProgress = (elapsedS: number, totalS: number, requests: number) => void;

const EMPTY_SUMMARY: LatencySummary = { p50: 0, p90: 0, p99: 0, mean: 0, max: 0 };

/** The `q`-quantile (0..1) of ascending `sorted` by nearest rank; 0 for an empty list. */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return 0;
  const rank = Math.ceil(q * n);
  return sorted[Math.min(n - 1, Math.max(0, rank - 1))]!;
}

/** Summarizes latencies (ms). `values` is sorted in place. */
export function summarize(values: Float64Array | number[]): LatencySummary {
  if (values.length === 0) return { ...EMPTY_SUMMARY };
  const sorted = values instanceof Float64Array ? values.sort() : values.sort((a, b) => a - b);
  let sum = 0;
  for (let i = 0; i < sorted.length; i++) sum += sorted[i]!;
  return {
    p50: percentile(sorted, 0.5),
    p90: percentile(sorted, 0.9),
    p99: percentile(sorted, 0.99),
    mean: sum / sorted.length,
    max: sorted[sorted.length - 1]!,
  };
}

/** A growable list of float64 values (latencies) without per-value allocation. */
class Samples {
  private buf = new Float64Array(1024);
  length = 0;
  push(v: number): void {
    if (this.length === this.buf.length) {
      const next = new Float64Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.length++] = v;
  }
  values(): Float64Array {
    return this.buf.slice(0, this.length);
  }
}

/**
 * Checks and completes raw options (from flags or a caller), throwing INVALID_ARGUMENT naming
 * the flag (`--concurrency`, ...) that is wrong.
 */
export function compileHttpBenchOptions(raw: {
  url?: unknown;
  concurrency?: unknown;
  duration?: unknown;
  requests?: unknown;
  route?: unknown;
  stream?: unknown;
  prompt?: unknown;
  model?: unknown;
  maxTokens?: unknown;
  timeoutMs?: unknown;
}): HttpBenchOptions {
  if (typeof raw.url !== 'string' || raw.url === '') throw new InvalidArgumentError('--url is required');
  let u: URL;
  try {
    u = new URL(raw.url);
  } catch {
    throw new InvalidArgumentError(`--url must be an http:// URL, got ${JSON.stringify(raw.url)}`);
  }
  if (u.protocol !== 'http:') throw new InvalidArgumentError(`--url must be an http:// URL, got ${raw.url}`);
  const int = (name: string, v: unknown, fallback: number | undefined): number | undefined =>
    v === undefined ? fallback : positiveIntFlag(name, v);
  const duration = positiveNumberFlag('duration', raw.duration === undefined ? 10 : raw.duration, 'seconds');
  const route = raw.route === undefined ? 'generate' : raw.route;
  if (typeof route !== 'string' || !(HTTP_BENCH_ROUTES as readonly string[]).includes(route)) {
    throw new InvalidArgumentError(
      `--route must be one of ${HTTP_BENCH_ROUTES.join(', ')}, got ${JSON.stringify(route)}`,
    );
  }
  if (raw.stream !== undefined && typeof raw.stream !== 'boolean') {
    throw new InvalidArgumentError('--stream takes no value');
  }
  if (raw.prompt !== undefined && (typeof raw.prompt !== 'string' || raw.prompt === '')) {
    throw new InvalidArgumentError('--prompt must be a non-empty string');
  }
  if (raw.model !== undefined && (typeof raw.model !== 'string' || raw.model === '')) {
    throw new InvalidArgumentError('--model must be a non-empty string');
  }
  return {
    url: raw.url,
    concurrency: int('concurrency', raw.concurrency, 8)!,
    durationS: duration,
    requests: int('requests', raw.requests, undefined),
    route: route as HttpBenchRoute,
    stream: raw.stream ?? false,
    prompt: raw.prompt as string | undefined,
    model: raw.model as string | undefined,
    maxTokens: int('max-tokens', raw.maxTokens, undefined),
    timeoutMs: int('timeout-ms', raw.timeoutMs, undefined),
  };
}

/** Path and JSON body of one request of `options`. */
export function buildRequest(options: HttpBenchOptions, n: number): { path: string; body: string } {
  const prompt = options.prompt ?? 'Tell me a joke';
  const model = options.model ?? 'hello-world';
  const base = new URL(options.url);
  const custom = base.pathname !== '/' && base.pathname !== '' ? base.pathname : undefined;
  const extra = options.maxTokens !== undefined ? { max_tokens: options.maxTokens } : {};
  switch (options.route) {
    case 'generate':
      return {
        path: custom ?? '/generate',
        body: JSON.stringify({ prompt, request_id: `bench-${process.pid}-${n}` }),
      };
    case 'completions':
      return {
        path: custom ?? '/v1/completions',
        body: JSON.stringify({ model, prompt, stream: options.stream, ...extra }),
      };
    case 'chat':
      return {
        path: custom ?? '/v1/chat/completions',
        body: JSON.stringify({
          model,
          messages: [{ role: 'user', content: prompt }],
          stream: options.stream,
          ...extra,
        }),
      };
  }
}

interface OneResult {
  ok: boolean;
  kind?: string;
  ttftMs: number;
  e2eMs: number;
  events: number;
  bytes: number;
}

const DATA = Buffer.from('data:');
const ERROR_EVENT = Buffer.from('event: error');
const DONE_EVENT = Buffer.from('data: [DONE]');

/** Counts occurrences of `needle` in `hay` (non-overlapping). */
function count(hay: Buffer, needle: Buffer): number {
  let n = 0;
  for (let i = hay.indexOf(needle); i >= 0; i = hay.indexOf(needle, i + needle.length)) n++;
  return n;
}

/** Sends one request and reads the whole answer. Never rejects. */
function once(
  agent: http.Agent,
  target: URL,
  path: string,
  body: string,
  stream: boolean,
  timeoutMs: number,
): Promise<OneResult> {
  return new Promise((resolve) => {
    const start = performance.now();
    let ttft = -1;
    let events = 0;
    let bytes = 0;
    let sseError = false;
    let sawDone = false;
    // An SSE marker may straddle two chunks: keep the last few bytes of the previous chunk.
    let tail: Buffer = Buffer.alloc(0);
    let settled = false;
    const done = (r: Omit<OneResult, 'e2eMs' | 'ttftMs' | 'events' | 'bytes'>): void => {
      if (settled) return;
      settled = true;
      const e2e = performance.now() - start;
      resolve({ ...r, ttftMs: ttft < 0 ? e2e : ttft, e2eMs: e2e, events, bytes });
    };
    const req = http.request(
      {
        agent,
        host: target.hostname,
        port: target.port || 80,
        method: 'POST',
        path,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          accept: stream ? 'text/event-stream' : 'application/json',
        },
      },
      (res) => {
        const status = res.statusCode ?? 0;
        res.on('data', (chunk: Buffer) => {
          if (ttft < 0) ttft = performance.now() - start;
          bytes += chunk.length;
          if (!stream) return;
          const buf = tail.length ? Buffer.concat([tail, chunk]) : chunk;
          events += count(buf, DATA);
          if (!sseError && buf.includes(ERROR_EVENT)) sseError = true;
          if (buf.includes(DONE_EVENT)) sawDone = true;
          // Keep fewer bytes than the shortest marker so nothing is counted twice.
          tail = buf.subarray(Math.max(0, buf.length - (DATA.length - 1)));
        });
        res.on('end', () => {
          if (sawDone) events -= 1;
          if (status < 200 || status >= 300) done({ ok: false, kind: `status_${status}` });
          else if (sseError) done({ ok: false, kind: 'sse_error' });
          else done({ ok: true });
        });
        res.on('error', (e: NodeJS.ErrnoException) => done({ ok: false, kind: `socket: ${e.code ?? e.message}` }));
      },
    );
    req.setTimeout(timeoutMs, () => {
      done({ ok: false, kind: 'timeout' });
      req.destroy();
    });
    req.on('error', (e: NodeJS.ErrnoException) => done({ ok: false, kind: `socket: ${e.code ?? e.message}` }));
    req.end(body);
  });
}

/**
 * Runs the load and measures it. Resolves when the duration has passed (or `requests` were
 * sent) and every request in flight has finished. Progress is reported about four times a second.
 */
export async function runHttpBench(
  options: HttpBenchOptions,
  hooks: { onProgress?: HttpBenchProgress; signal?: AbortSignal } = {},
): Promise<HttpBenchResult> {
  const target = new URL(options.url);
  const timeoutMs = options.timeoutMs ?? 30_000;
  const record = options.record ?? true;
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.concurrency });
  const ttft = new Samples();
  const e2e = new Samples();
  const errorKinds: Record<string, number> = {};
  let ok = 0;
  let errors = 0;
  let events = 0;
  let bytes = 0;
  let sent = 0;
  const limit = options.requests ?? Number.POSITIVE_INFINITY;
  const start = performance.now();
  const end = start + options.durationS * 1000;
  const progress = options.durationS;
  const timer = hooks.onProgress
    ? setInterval(
        () => hooks.onProgress!(Math.min(progress, (performance.now() - start) / 1000), progress, ok + errors),
        250,
      )
    : undefined;
  const client = async (): Promise<void> => {
    while (sent < limit && performance.now() < end && !hooks.signal?.aborted) {
      const n = sent++;
      const { path, body } = buildRequest(options, n);
      const r = await once(agent, target, path, body, options.stream, timeoutMs);
      events += r.events;
      bytes += r.bytes;
      if (r.ok) {
        ok++;
        if (record) {
          ttft.push(r.ttftMs);
          e2e.push(r.e2eMs);
        }
      } else {
        errors++;
        const kind = r.kind ?? 'unknown';
        errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
        // A server that refuses connections fails instantly: do not spin.
        if (kind.startsWith('socket')) await new Promise((res) => setTimeout(res, 10));
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: options.concurrency }, client));
  } finally {
    if (timer) clearInterval(timer);
    agent.destroy();
  }
  const durationS = (performance.now() - start) / 1000;
  hooks.onProgress?.(progress, progress, ok + errors);
  return {
    url: options.url,
    route: options.route,
    stream: options.stream,
    concurrency: options.concurrency,
    duration_s: durationS,
    requests: ok,
    errors,
    error_kinds: errorKinds,
    requests_per_s: ok / durationS,
    ttft_ms: summarize(ttft.values()),
    e2e_ms: summarize(e2e.values()),
    events,
    events_per_s: events / durationS,
    bytes,
  };
}

/** Formats numbers for tables: 3 significant digits below 100, integers above. */
export function fmt(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Math.abs(v) >= 100) return Math.round(v).toLocaleString('en-US');
  return v.toPrecision(3);
}

/** A plain-text table: a header row, a rule, then rows, columns padded to their widest cell. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** The human table of one or more results (one row each). */
export function formatHttpBenchTable(results: HttpBenchResult | readonly HttpBenchResult[]): string {
  const list = Array.isArray(results) ? results : [results as HttpBenchResult];
  const rows = list.map((r) => [
    `${r.route}${r.stream ? ' (SSE)' : ''} c=${r.concurrency}`,
    String(r.requests),
    String(r.errors),
    fmt(r.requests_per_s),
    `${fmt(r.ttft_ms.p50)} / ${fmt(r.ttft_ms.p99)}`,
    `${fmt(r.e2e_ms.p50)} / ${fmt(r.e2e_ms.p99)}`,
    r.stream ? fmt(r.events_per_s) : '-',
  ]);
  let out = formatTable(['load', 'ok', 'errors', 'req/s', 'TTFT p50 / p99 ms', 'e2e p50 / p99 ms', 'events/s'], rows);
  for (const r of list) {
    const kinds = Object.entries(r.error_kinds);
    if (kinds.length) out += `\nerrors (${r.route}): ${kinds.map(([k, n]) => `${k} x${n}`).join(', ')}`;
  }
  return out;
}
