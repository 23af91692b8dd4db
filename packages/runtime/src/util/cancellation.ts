import { CancelledError, abortReason, cancelReason, type DynamoError } from '../errors';
import type { CancelSource } from '../transport/request-plane';
import { noop, onAbort } from './abort';

/**
 * One request's cancellation: a {@link CancelSource} (a flag and listeners) whose AbortSignal is
 * created only when {@link Cancellation.signal} is read, already aborted if the request was. A
 * signal costs several microseconds and most requests are never cancelled, so the memory plane's
 * handler contexts and the frontend's request scopes hand this out instead of an AbortController.
 */
export class Cancellation<R extends Error = Error> implements CancelSource {
  private controller: AbortController | undefined;
  private listeners: Array<(reason: R) => void> | undefined;
  /** Why it was cancelled, once it was. */
  reason: R | undefined;

  /** True once cancelled. */
  get cancelled(): boolean {
    return this.reason !== undefined;
  }

  /** Fires when cancelled (created on first read). */
  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.reason !== undefined) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  /** Calls `listener` once when cancelled (on the next microtask if it already is). */
  onCancel(listener: (reason: R) => void): () => void {
    const reason = this.reason;
    if (reason !== undefined) {
      queueMicrotask(() => listener(reason));
      return noop;
    }
    (this.listeners ??= []).push(listener);
    return () => {
      const i = this.listeners?.indexOf(listener) ?? -1;
      if (i >= 0) this.listeners!.splice(i, 1);
    };
  }

  /** Cancels with `reason` (the first reason wins). @returns whether this call cancelled it */
  cancel(reason: R): boolean {
    if (this.reason !== undefined) return false;
    this.reason = reason;
    this.controller?.abort(reason);
    const waiting = this.listeners;
    this.listeners = undefined;
    if (waiting !== undefined) for (const l of waiting) l(reason);
    return true;
  }
}

/** Throws the error a request ends with when its `signal` or `parent` has already fired. */
export function throwIfCancelled(signal: AbortSignal | undefined, parent: CancelSource | undefined): void {
  if (signal?.aborted) throw abortReason(signal);
  if (parent?.cancelled) throw new CancelledError('the request this one serves was cancelled');
}

/**
 * The caller side of a request's cancellation sources (`signal` and `parent` of its options):
 * calls `cancel` once when one fires.
 * @returns the function that stops listening
 */
export function linkCancellation(
  signal: AbortSignal | undefined,
  parent: CancelSource | undefined,
  cancel: (reason: DynamoError) => void,
): () => void {
  // A request with only a parent (the usual one inside a handler) makes one listener, no wrapper.
  if (signal === undefined) return parent === undefined ? noop : parent.onCancel((r) => cancel(cancelReason(r)));
  const offSignal = onAbort(signal, () => cancel(abortReason(signal)));
  if (parent === undefined) return offSignal;
  const offParent = parent.onCancel((reason) => cancel(cancelReason(reason)));
  return () => {
    offSignal();
    offParent();
  };
}
