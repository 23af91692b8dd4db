import type { Response } from 'express';
import {
  Cancellation,
  CancelledError,
  nextTurn,
  startHopSpan,
  TimeoutError,
  TURN_CHECK_ITEMS,
  turnIsLong,
  type CancelSource,
  type HopSpan,
  type TraceHeaders,
} from '@dynamo-ts/runtime';

/** Why a request's upstream was aborted: the client left, the timeout passed, or a stop sequence ended it. */
export type AbortCause = 'client_gone' | 'timeout' | 'stopped';

/**
 * The life of one HTTP request: the cancellation of its upstream, which fires when the client
 * disconnects before the answer is complete, when `timeoutMs` passes (0 = never) or when the route
 * ends the stream early ({@link RequestScope.abort}). It is a `CancelSource` (pass it as `parent`
 * to runtime requests); its AbortSignal is created only when {@link RequestScope.signal} is read
 * (a signal costs several microseconds, and most requests are never cancelled).
 */
export class RequestScope extends Cancellation {
  private readonly timer: NodeJS.Timeout | undefined;
  /** The read {@link RequestScope.next} is waiting on, if any. */
  private readResolve: ((r: IteratorResult<unknown>) => void) | undefined = undefined;
  private readReject: ((e: Error) => void) | undefined = undefined;
  /** Why the upstream was aborted, once it was. */
  cause: AbortCause | undefined;
  /** The request's span, when it is traced (a W3C `traceparent` continues the caller's trace). */
  readonly hop: HopSpan | undefined;
  /** Reads so far (the event loop's turn is checked every {@link TURN_CHECK_ITEMS} of them). */
  private reads = 0;

  constructor(res: Response, timeoutMs: number) {
    super();
    scopes.set(res, this);
    const req = res.req as Response['req'] | undefined;
    this.hop = req
      ? startHopSpan(`HTTP ${req.method} ${req.path}`, req.headers, {
          attributes: { 'http.request.method': req.method, 'url.path': req.path },
        })
      : undefined;
    res.on('close', onResponseClose);
    if (timeoutMs > 0) {
      this.timer = setTimeout(
        () => this.abort('timeout', new TimeoutError(`request timed out after ${timeoutMs} ms`)),
        timeoutMs,
      );
    }
  }

  /** The scope is its upstream's `parent` (see {@link GenerateOptions}). */
  get parent(): CancelSource {
    return this;
  }

  /** Headers that carry the request's trace to the upstream (typed clients send them). */
  get traceHeaders(): TraceHeaders | undefined {
    return this.hop?.headers;
  }

  /** Aborts the upstream with `reason` (the first cause wins). */
  abort(cause: AbortCause, reason: Error): void {
    if (this.cancelled) return;
    this.cause = cause;
    this.close();
    this.cancel(reason);
    const reject = this.readReject;
    this.readResolve = this.readReject = undefined;
    reject?.(reason);
  }

  /**
   * `it.next()`, rejected with the abort reason as soon as the upstream is aborted, so a stalled
   * upstream cannot hold a timed-out or abandoned request. One read at a time.
   *
   * An in-process upstream answers each read at once (promise jobs only), so a long answer would
   * run start to end without the event loop turning, every other request of the process waiting:
   * once the turn has run for a few ms (`turnIsLong`, checked every few reads) the next read waits
   * for the next turn.
   */
  next<T>(it: AsyncIterator<T>): Promise<IteratorResult<T>> {
    if (this.reason !== undefined) return Promise.reject(this.reason);
    return new Promise<IteratorResult<T>>((resolve, reject) => {
      this.readResolve = resolve as (r: IteratorResult<unknown>) => void;
      this.readReject = reject;
      if (++this.reads % TURN_CHECK_ITEMS !== 0 || !turnIsLong()) it.next().then(this.onRead, this.onReadError);
      else
        void nextTurn().then(() => {
          // Aborted meanwhile: the route releases the upstream; read nothing more.
          if (this.reason === undefined) it.next().then(this.onRead, this.onReadError);
        });
    });
  }

  private readonly onRead = (r: IteratorResult<unknown>): void => {
    const resolve = this.readResolve;
    this.readResolve = this.readReject = undefined;
    resolve?.(r);
  };

  private readonly onReadError = (e: unknown): void => {
    const reject = this.readReject;
    this.readResolve = this.readReject = undefined;
    reject?.(e instanceof Error ? e : new Error(String(e)));
  };

  /** Stops the timer (the request is answered). */
  close(): void {
    if (this.timer) clearTimeout(this.timer);
  }
}

/** The scope of each response in flight (one shared 'close' listener finds it). */
const scopes = new WeakMap<Response, RequestScope>();

function onResponseClose(this: Response): void {
  const scope = scopes.get(this);
  if (!this.writableFinished) scope?.abort('client_gone', new CancelledError('client disconnected'));
  scope?.hop?.end(scope.cause === 'client_gone' ? scope.reason : undefined, {
    'http.response.status_code': this.statusCode,
  });
}

/** Ends an upstream iterator without waiting for it (its generator's `finally` blocks run in the background). */
export function releaseUpstream(it: AsyncIterator<unknown>): void {
  it.return?.().catch(() => undefined);
}
