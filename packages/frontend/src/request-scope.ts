import type { Response } from 'express';
import { Cancellation, CancelledError, TimeoutError, type CancelSource } from '@dynamo-ts/runtime';

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
  /** Rejects the read {@link RequestScope.next} is waiting on, if any. */
  private rejectRead: ((e: Error) => void) | undefined;
  /** Why the upstream was aborted, once it was. */
  cause: AbortCause | undefined;

  constructor(res: Response, timeoutMs: number) {
    super();
    res.on('close', () => {
      if (!res.writableFinished) this.abort('client_gone', new CancelledError('client disconnected'));
    });
    if (timeoutMs > 0) {
      this.timer = setTimeout(
        () => this.abort('timeout', new TimeoutError(`request timed out after ${timeoutMs} ms`)),
        timeoutMs,
      );
    }
  }

  /** Aborts the upstream with `reason` (the first cause wins). */
  abort(cause: AbortCause, reason: Error): void {
    if (this.cancelled) return;
    this.cause = cause;
    this.close();
    this.cancel(reason);
    this.rejectRead?.(reason);
  }

  /**
   * `it.next()`, rejected with the abort reason as soon as the upstream is aborted, so a stalled
   * upstream cannot hold a timed-out or abandoned request.
   */
  next<T>(it: AsyncIterator<T>): Promise<IteratorResult<T>> {
    if (this.reason !== undefined) return Promise.reject(this.reason);
    return new Promise<IteratorResult<T>>((resolve, reject) => {
      this.rejectRead = reject;
      it.next().then(
        (r) => {
          if (this.rejectRead === reject) this.rejectRead = undefined;
          resolve(r);
        },
        (e: unknown) => {
          if (this.rejectRead === reject) this.rejectRead = undefined;
          reject(e instanceof Error ? e : new Error(String(e)));
        },
      );
    });
  }

  /** Stops the timer (the request is answered). */
  close(): void {
    if (this.timer) clearTimeout(this.timer);
  }
}

/** Ends an upstream iterator without waiting for it (its generator's `finally` blocks run in the background). */
export function releaseUpstream(it: AsyncIterator<unknown>): void {
  it.return?.().catch(() => undefined);
}

/** The {@link GenerateOptions} of a request: its scope as `parent`, its signal read lazily. */
export function upstreamOptions(scope: RequestScope): { readonly signal: AbortSignal; readonly parent: CancelSource } {
  return {
    get signal(): AbortSignal {
      return scope.signal;
    },
    parent: scope,
  };
}
