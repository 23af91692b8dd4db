import type { Response } from 'express';
import { CancelledError, TimeoutError } from '@dynamo-ts/runtime';

/** Why a request's upstream was aborted: the client left, the timeout passed, or a stop sequence ended it. */
export type AbortCause = 'client_gone' | 'timeout' | 'stopped';

/**
 * The life of one HTTP request: an AbortSignal for the upstream that fires when the client
 * disconnects before the answer is complete, when `timeoutMs` passes (0 = never) or when the route
 * ends the stream early ({@link RequestScope.abort}).
 */
export class RequestScope {
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout | undefined;
  /** Rejects the read {@link RequestScope.next} is waiting on, if any (one abort listener for all reads). */
  private rejectRead: ((e: Error) => void) | undefined;
  private listening = false;
  /** Why the upstream was aborted, once it was. */
  cause: AbortCause | undefined;

  constructor(res: Response, timeoutMs: number) {
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

  /** Fires when the upstream must stop. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Aborts the upstream with `reason` (the first cause wins). */
  abort(cause: AbortCause, reason: Error): void {
    if (this.controller.signal.aborted) return;
    this.cause = cause;
    this.close();
    this.controller.abort(reason);
  }

  /**
   * `it.next()`, rejected with the abort reason as soon as the signal fires, so a stalled upstream
   * cannot hold a timed-out or abandoned request.
   */
  next<T>(it: AsyncIterator<T>): Promise<IteratorResult<T>> {
    const signal = this.controller.signal;
    if (signal.aborted) return Promise.reject(signal.reason as Error);
    if (!this.listening) {
      // One listener for the whole request rather than one per read (a stream reads thousands).
      this.listening = true;
      signal.addEventListener('abort', () => this.rejectRead?.(signal.reason as Error), { once: true });
    }
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
