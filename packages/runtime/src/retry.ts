import { CancelledError, InvalidArgumentError } from './errors';
import type { CancelSource } from './transport/request-plane';

/** Options of a {@link RetryPolicy}. */
export interface RetryPolicyOptions {
  /** Attempts of one request before its first item arrived (the first one included). Default 3. */
  attempts?: number;
  /** Times one stream may move to another instance after items arrived (migration). Default 3. */
  migrations?: number;
  /** Pause before the n-th retry: n times this, ms. Default 50. */
  backoffMs?: number;
  /** Longest pause, ms. Default 2000. */
  maxBackoffMs?: number;
}

const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * When a failed call is tried again, and how long to wait first: one object that every layer
 * that retries takes (the endpoint client's failover, the processor's re-routing and migration,
 * the frontend's stream resume), so the limits are set in one place. Its pause ends at once,
 * with a CANCELLED error, when the request is cancelled.
 */
export class RetryPolicy {
  readonly attempts: number;
  readonly migrations: number;
  readonly backoffMs: number;
  readonly maxBackoffMs: number;

  constructor(options: RetryPolicyOptions = {}) {
    this.attempts = count('attempts', options.attempts ?? 3, 1);
    this.migrations = count('migrations', options.migrations ?? 3, 0);
    this.backoffMs = duration('backoffMs', options.backoffMs ?? 50);
    this.maxBackoffMs = duration('maxBackoffMs', options.maxBackoffMs ?? 2000);
  }

  /** The policy as given, or a new one from options (undefined: the defaults). */
  static from(p: RetryPolicy | RetryPolicyOptions | undefined): RetryPolicy {
    return p instanceof RetryPolicy ? p : new RetryPolicy(p);
  }

  /** Whether a request that failed `failures` times before its first item may be tried again. */
  mayRetry(failures: number): boolean {
    return failures < this.attempts;
  }

  /** Whether a stream that has migrated `migrations` times may migrate once more. */
  mayMigrate(migrations: number): boolean {
    return migrations < this.migrations;
  }

  /** The pause before the `n`-th retry (1-based), ms. */
  delayMs(n: number): number {
    return Math.min(this.maxBackoffMs, this.backoffMs * Math.max(0, n));
  }

  /**
   * Waits {@link RetryPolicy.delayMs}(n); rejects with CANCELLED as soon as `cancel` (a request's
   * {@link CancelSource} or an AbortSignal) fires, and at once if it already has.
   */
  pause(n: number, cancel?: CancelSource | AbortSignal): Promise<void> {
    const ms = this.delayMs(n);
    if (isCancelled(cancel)) return Promise.reject(new CancelledError('cancelled while waiting to retry'));
    if (ms <= 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      let stop: () => void = () => undefined;
      const timer = setTimeout(() => {
        stop();
        resolve();
      }, ms);
      if (cancel === undefined) return;
      const onCancel = (): void => {
        clearTimeout(timer);
        stop();
        reject(new CancelledError('cancelled while waiting to retry'));
      };
      if (isSignal(cancel)) {
        cancel.addEventListener('abort', onCancel, { once: true });
        stop = () => cancel.removeEventListener('abort', onCancel);
      } else {
        stop = cancel.onCancel(onCancel);
      }
    });
  }
}

function isSignal(c: CancelSource | AbortSignal): c is AbortSignal {
  return typeof (c as AbortSignal).addEventListener === 'function';
}

function isCancelled(c: CancelSource | AbortSignal | undefined): boolean {
  if (c === undefined) return false;
  return isSignal(c) ? c.aborted : c.cancelled;
}

function count(key: string, v: number, min: number): number {
  if (!Number.isInteger(v) || v < min || v > 1000) {
    throw new InvalidArgumentError(`retry policy ${key} must be an integer from ${min} to 1000, got ${v}`);
  }
  return v;
}

function duration(key: string, v: number): number {
  if (!Number.isFinite(v) || v < 0 || v > MAX_TIMER_MS) {
    throw new InvalidArgumentError(`retry policy ${key} must be a number of ms from 0 to ${MAX_TIMER_MS}, got ${v}`);
  }
  return v;
}
