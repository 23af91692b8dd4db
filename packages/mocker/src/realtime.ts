/**
 * `RealTimeEngine`: a {@link SimEngine} served in real time, e.g. behind a worker endpoint.
 * Requests stream their tokens as an async iterable; KV events and load metrics go to listeners
 * (publish them on the event plane). Time comes from an injected {@link EngineScheduler}, so tests
 * can drive it by hand and the engine itself owns no timer.
 *
 * ```ts
 * const engine = new RealTimeEngine({ workerId, speedupRatio: 10 }, systemScheduler, {
 *   onKvEvent: (e) => publish('kv_events', e),
 *   onLoadMetrics: (m) => publish('load_metrics', m),
 * });
 * for await (const batch of engine.submit({ requestId, tokenIds, maxTokens: 16 }, { signal })) { ... }
 * ```
 * @packageDocumentation
 */
import { RouterError, type KvEvent, type LoadMetrics } from '@dynamo-ts/router';
import { SimEngine, type SimEngineOptions, type SimRequest } from './engine';

/** Where the real-time engine gets its time from. */
export interface EngineScheduler {
  /** Current time, ms. */
  now(): number;
  /** Calls `fn` after `ms` ms; returns a handle for {@link EngineScheduler.cancel}. */
  setTimer(fn: () => void, ms: number): unknown;
  /** Cancels a timer. */
  cancel(handle: unknown): void;
}

/** The process clock and `setTimeout`: the scheduler for serving. */
export const systemScheduler: EngineScheduler = {
  now: () => performance.now(),
  setTimer: (fn, ms) => setTimeout(fn, ms),
  cancel: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

/** Listeners of {@link RealTimeEngine}. */
export interface RealTimeEngineListeners {
  /** A KV event (publish on `kv_events`). */
  onKvEvent?(event: KvEvent): void;
  /** The engine's load changed (publish on `load_metrics`). */
  onLoadMetrics?(metrics: LoadMetrics): void;
}

/** Tokens a request received at the end of one engine step. */
export interface TokenBatch {
  /** Token ids generated (synthetic, deterministic for the request id and position). */
  tokenIds: number[];
  /** Index of the first of them in the output. */
  index: number;
  /** Whether this batch ends prefill (the first token). */
  first: boolean;
  /** Whether the request is finished. */
  done: boolean;
  /** Prompt tokens found in the cache (on the first batch). */
  cachedTokens?: number;
}

interface Stream {
  queue: TokenBatch[];
  wake: (() => void) | undefined;
  done: boolean;
  error: Error | undefined;
  cachedTokens: number | undefined;
  seed: number;
}

/** See the module comment. */
export class RealTimeEngine {
  /** The simulated engine. */
  readonly engine: SimEngine;
  private readonly scheduler: EngineScheduler;
  private readonly listeners: RealTimeEngineListeners;
  private readonly streams = new Map<string, Stream>();
  private timer: unknown;
  private stepping = false;
  private closed = false;

  constructor(options: SimEngineOptions, scheduler: EngineScheduler, listeners: RealTimeEngineListeners = {}) {
    this.engine = new SimEngine(options);
    this.scheduler = scheduler;
    this.listeners = listeners;
  }

  /** Requests in flight. */
  get inflight(): number {
    return this.streams.size;
  }

  /**
   * Queues a request and streams its tokens, one batch per engine step. Stopping the iteration or
   * aborting `signal` cancels the request.
   * @throws RouterInvalidArgumentError (synchronously) for a malformed request
   */
  submit(request: SimRequest, options: { signal?: AbortSignal } = {}): AsyncIterable<TokenBatch> {
    if (this.closed) throw new RouterError('UNAVAILABLE', 'engine is closed');
    const load = this.engine.submit(request);
    const id = request.requestId;
    const st: Stream = {
      queue: [],
      wake: undefined,
      done: false,
      error: undefined,
      cachedTokens: undefined,
      seed: hashString(id),
    };
    this.streams.set(id, st);
    this.listeners.onLoadMetrics?.(load);
    this.kick();
    const signal = options.signal;
    const cancel = (): void => {
      if (this.streams.delete(id) && this.engine.cancel(id)) {
        this.listeners.onLoadMetrics?.(this.engine.loadMetrics());
      }
    };
    const onAbort = (): void => {
      const reason: unknown = signal?.reason;
      st.error = reason instanceof Error ? reason : new Error(`request ${id} was aborted`);
      cancel();
      st.wake?.();
    };
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
    return {
      [Symbol.asyncIterator]: () => ({
        next: async (): Promise<IteratorResult<TokenBatch>> => {
          for (;;) {
            const b = st.queue.shift();
            if (b !== undefined) return { value: b, done: false };
            if (st.error !== undefined) throw st.error;
            if (st.done) {
              signal?.removeEventListener('abort', onAbort);
              return { value: undefined, done: true };
            }
            await new Promise<void>((resolve) => (st.wake = resolve));
            st.wake = undefined;
          }
        },
        return: async (): Promise<IteratorResult<TokenBatch>> => {
          signal?.removeEventListener('abort', onAbort);
          if (!st.done) cancel();
          st.done = true;
          return { value: undefined, done: true };
        },
      }),
    };
  }

  /** Stops stepping and fails requests in flight. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== undefined) this.scheduler.cancel(this.timer);
    this.timer = undefined;
    for (const [id, st] of this.streams) {
      this.engine.cancel(id);
      st.error = new RouterError('UNAVAILABLE', 'engine closed');
      st.wake?.();
    }
    this.streams.clear();
  }

  private kick(): void {
    if (this.stepping || this.closed || !this.engine.hasWork) return;
    const step = this.engine.step(this.scheduler.now());
    if (step === null) return;
    this.stepping = true;
    this.timer = this.scheduler.setTimer(() => {
      this.timer = undefined;
      this.stepping = false;
      for (const e of step.kvEvents) this.listeners.onKvEvent?.(e);
      for (const a of step.admitted) {
        const st = this.streams.get(a.requestId);
        if (st !== undefined) st.cachedTokens = a.cachedTokens;
      }
      for (const t of step.tokens) {
        const st = this.streams.get(t.requestId);
        if (st === undefined) continue;
        const batch: TokenBatch = {
          tokenIds: [syntheticToken(st.seed, t.index)],
          index: t.index,
          first: t.index === 0,
          done: t.done,
        };
        if (t.index === 0 && st.cachedTokens !== undefined) batch.cachedTokens = st.cachedTokens;
        st.queue.push(batch);
        if (t.done) {
          st.done = true;
          this.streams.delete(t.requestId);
        }
        st.wake?.();
      }
      this.listeners.onLoadMetrics?.(step.load);
      this.kick();
    }, step.durationMs);
  }
}

function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** A synthetic token id in [0, 32000) for output position `i` of a request. */
function syntheticToken(seed: number, i: number): number {
  let x = (seed ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b) >>> 0;
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35) >>> 0;
  return ((x ^ (x >>> 16)) >>> 0) % 32000;
}
