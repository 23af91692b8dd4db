import { abortReason } from '../errors';

/**
 * Runs `listener` once when `signal` fires (at once if it already has). Returns a function
 * that removes the listener; call it when the guarded work ends so signals do not leak listeners.
 */
export function onAbort(signal: AbortSignal | undefined, listener: () => void): () => void {
  if (!signal) return noop;
  if (signal.aborted) {
    listener();
    return noop;
  }
  signal.addEventListener('abort', listener, { once: true });
  return () => signal.removeEventListener('abort', listener);
}

/** Resolves after `ms` (an unref'ed timer); rejects with the signal's reason as a dynamo-ts error when it fires. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortReason(signal));
      return;
    }
    const timer = setTimeout(() => {
      off();
      resolve();
    }, ms);
    timer.unref();
    const off = onAbort(signal, () => {
      clearTimeout(timer);
      reject(abortReason(signal!));
    });
  });
}

/** Starts an unref'ed timeout (it never keeps the process alive). */
export function unrefTimeout(fn: () => void, ms: number): NodeJS.Timeout {
  const timer = setTimeout(fn, Math.max(0, ms));
  timer.unref();
  return timer;
}

/** Starts an unref'ed interval. */
export function unrefInterval(fn: () => void, ms: number): NodeJS.Timeout {
  const timer = setInterval(fn, Math.max(1, ms));
  timer.unref();
  return timer;
}

/** Does nothing (a placeholder callback). */
export function noop(): void {}
