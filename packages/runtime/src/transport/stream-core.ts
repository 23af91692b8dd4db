/**
 * The parts of a request every plane shares: the caller's response stream (its prologue, its
 * deadline, its idle -> open -> ending -> done states), the handler's context (a cancellation
 * whose AbortSignal is made only when read), and an endpoint's wait for its in-flight requests.
 * The memory and NATS planes differ only in how a request and its items travel.
 */
import { randomUUID } from 'node:crypto';
import {
  CancelledError,
  type DynamoError,
  TimeoutError,
  UnavailableError,
  type WireError,
  isDynamoError,
  toDynamoError,
  toWireError,
} from '../errors';
import type { Logger } from '../logger';
import { noop, unrefTimeout } from '../util/abort';
import { Cancellation, linkCancellation, throwIfCancelled } from '../util/cancellation';
import type { RequestContext, RequestOptions, ResponseStream, ServedEndpoint } from './request-plane';

export const DONE: IteratorResult<never> = { value: undefined, done: true };
/** The headers of a request that carries none (shared: handlers get a read-only view). */
export const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});

/** The error `ResponseStream.cancel(reason)` ends a stream with. */
export function cancelError(reason: unknown): DynamoError {
  if (reason === undefined) return new CancelledError('request cancelled by the caller');
  if (isDynamoError(reason)) return toDynamoError(reason);
  return new CancelledError(reason instanceof Error ? reason.message : String(reason), { cause: reason });
}

/**
 * Where a called stream is:
 * - `idle`: created, nothing sent (the request goes out on the first `next()`);
 * - `open`: sent; items may arrive;
 * - `ending`: the transport ended it (the handler finished, failed, or the endpoint went); the
 *   items already received are still read, then the failure, if any;
 * - `done`: the consumer is finished with it (read to the end, cancelled or abandoned).
 */
export type StreamState = 'idle' | 'open' | 'ending' | 'done';

/**
 * The caller's side of one request on any plane: the request is sent on the first `next()`
 * (cancellation and deadline checked first), then `options.signal`/`options.parent` and the
 * deadline (the earlier of `deadline` and `timeoutMs`) abort it. The items the transport
 * {@link CallerStream.deliver}s go to the waiting read, or to a buffer made only when they arrive
 * ahead of the reads. Subclasses send the request and deliver the items.
 */
export abstract class CallerStream<T> implements ResponseStream<T>, AsyncIterator<T> {
  readonly requestId: string;
  protected state: StreamState = 'idle';
  /** What the next read throws once the buffered items are read (taken once). */
  protected failure: DynamoError | undefined = undefined;
  /** Absolute deadline, epoch ms. */
  readonly deadline: number | undefined;
  private timer: NodeJS.Timeout | undefined = undefined;
  private offSignal: () => void = noop;
  /** Items received and not yet read (from `head`); undefined while none were buffered. */
  private buffer: unknown[] | undefined = undefined;
  private head = 0;
  /** A read waiting for an item (the usual single reader), then any further concurrent ones. */
  private readResolve: ((r: IteratorResult<T>) => void) | undefined = undefined;
  private readReject: ((e: unknown) => void) | undefined = undefined;
  private moreReaders: Array<[(r: IteratorResult<T>) => void, (e: unknown) => void]> | undefined = undefined;

  constructor(
    readonly subject: string,
    protected readonly options: RequestOptions,
  ) {
    this.requestId = options.requestId ?? randomUUID();
    const byTimeout = options.timeoutMs === undefined ? undefined : Date.now() + options.timeoutMs;
    const d = options.deadline;
    this.deadline = byTimeout === undefined ? d : d === undefined ? byTimeout : Math.min(d, byTimeout);
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return this;
  }

  next(): Promise<IteratorResult<T>> {
    if (this.state === 'idle') {
      try {
        this.begin();
      } catch (e) {
        this.finish();
        return Promise.reject(toDynamoError(e));
      }
    }
    return this.read();
  }

  /** The next item, or the end (the failure, once). */
  private read(): Promise<IteratorResult<T>> {
    const buffer = this.buffer;
    if (buffer !== undefined && this.head < buffer.length) {
      const value = buffer[this.head] as T;
      buffer[this.head++] = undefined;
      if (this.head === buffer.length) {
        buffer.length = 0;
        this.head = 0;
      } else if (this.head >= 64 && this.head * 2 >= buffer.length) {
        // A caller always one item behind its handler: drop the read prefix now and then.
        buffer.copyWithin(0, this.head);
        buffer.length -= this.head;
        this.head = 0;
      }
      this.taken();
      return Promise.resolve({ value, done: false });
    }
    if (this.state === 'open') {
      return new Promise<IteratorResult<T>>((resolve, reject) => {
        if (this.readResolve === undefined) {
          this.readResolve = resolve;
          this.readReject = reject;
        } else {
          (this.moreReaders ??= []).push([resolve, reject]);
        }
      });
    }
    this.finish();
    return this.settle();
  }

  return(): Promise<IteratorResult<T>> {
    // A finished stream has nothing to stop (and an error costs a stack trace: callers release
    // every stream this way when they are done with it).
    if (this.state !== 'done') this.abort(new CancelledError('response stream abandoned by the caller'), false);
    return Promise.resolve(DONE);
  }

  cancel(reason?: unknown): void {
    this.abort(cancelError(reason), true);
  }

  /**
   * Ends the stream from the caller's side at once (buffered items are dropped): the handler is
   * cancelled with `error` as its reason, and (when `surface`) the next read throws it.
   */
  abort(error: DynamoError, surface: boolean): void {
    if (this.state === 'done') return;
    if (this.state === 'idle') {
      this.state = 'done';
      this.failure = surface ? error : undefined;
      return;
    }
    this.stop(error, surface);
  }

  /** Sends the request (the state is `open`), or throws why it cannot be sent. */
  protected abstract send(): void;
  /** The consumer took an item (flow control). */
  protected abstract taken(): void;
  /** Ends a sent stream from the caller's side (see {@link CallerStream.abort}); calls `finish()`. */
  protected abstract stop(error: DynamoError, surface: boolean): void;
  /** The stream is done: release what the transport holds for it. */
  protected abstract released(): void;

  /** Items received and not yet read. */
  protected get buffered(): number {
    return this.buffer === undefined ? 0 : this.buffer.length - this.head;
  }

  /** Hands an item to the waiting read, or buffers it; false (dropped) once the stream is not open. */
  protected deliver(item: unknown): boolean {
    if (this.state !== 'open') return false;
    const resolve = this.readResolve;
    if (resolve !== undefined) {
      this.shiftReader();
      this.taken();
      resolve({ value: item as T, done: false });
    } else {
      (this.buffer ??= []).push(item);
    }
    return true;
  }

  /** The transport ended the stream: the buffered items are read, then `error` (if any) is thrown. */
  protected endWith(error?: DynamoError): void {
    if (this.state !== 'open') return;
    this.state = 'ending';
    this.failure = error;
    if (this.buffered === 0) this.settleReaders();
  }

  /** Ends the stream at once, dropping the buffered items; the next read throws `error` (if any). */
  protected dropAll(error: DynamoError | undefined): void {
    if (this.buffer !== undefined) this.buffer.length = 0;
    this.head = 0;
    this.state = 'ending';
    this.failure = error;
    this.settleReaders();
  }

  private shiftReader(): void {
    const next = this.moreReaders?.shift();
    this.readResolve = next?.[0];
    this.readReject = next?.[1];
  }

  /** Ends every waiting read: the first with the failure (if any), the rest (and it, without one) done. */
  private settleReaders(): void {
    while (this.readResolve !== undefined) {
      const resolve = this.readResolve;
      const reject = this.readReject!;
      this.shiftReader();
      this.finish();
      const failure = this.takeFailure();
      if (failure) reject(failure);
      else resolve(DONE);
    }
  }

  /** The failure the iteration ends with, taken (it is thrown once). */
  protected takeFailure(): DynamoError | undefined {
    const failure = this.failure;
    this.failure = undefined;
    return failure;
  }

  /** The end of the iteration: the failure (once), else done. */
  protected settle(): Promise<IteratorResult<T>> {
    const failure = this.takeFailure();
    return failure ? Promise.reject(failure) : Promise.resolve(DONE);
  }

  /** The consumer is done: stops the caller-side timer and cancellation links, then {@link released}. */
  protected finish(): void {
    const was = this.state;
    this.state = 'done';
    if (was === 'idle' || was === 'done') return;
    this.stopTimers();
    this.released();
  }

  /** Stops listening to the caller's signal, parent and deadline (the transport ended the stream). */
  protected stopTimers(): void {
    this.offSignal();
    this.offSignal = noop;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private begin(): void {
    this.state = 'open';
    const { signal, parent } = this.options;
    throwIfCancelled(signal, parent);
    if (this.deadline !== undefined && this.deadline <= Date.now()) {
      throw new TimeoutError(`request to ${this.subject} passed its deadline before it was sent`);
    }
    this.send();
    if (this.state !== 'open') return;
    this.offSignal = linkCancellation(signal, parent, (reason) => this.abort(reason, true));
    if (this.deadline !== undefined && this.state === 'open') {
      this.timer = unrefTimeout(() => this.abort(this.deadlineError(), true), this.deadline - Date.now());
    }
  }

  private deadlineError(): TimeoutError {
    const { timeoutMs, deadline } = this.options;
    return new TimeoutError(
      timeoutMs !== undefined && deadline === undefined
        ? `request to ${this.subject} timed out after ${timeoutMs} ms`
        : `request to ${this.subject} passed its deadline`,
    );
  }
}

/**
 * One request as its handler sees it (its {@link RequestContext}) and as the serving plane tracks
 * it: cancelled by the caller, the deadline or the endpoint closing, which also stops the
 * handler's iteration without waiting for its pending step (it may ignore its signal).
 */
export abstract class ServedCall extends Cancellation<DynamoError> implements RequestContext {
  /** The handler's iteration, once started. */
  iterator: AsyncIterator<unknown> | undefined = undefined;

  constructor(
    readonly requestId: string,
    readonly headers: Readonly<Record<string, string>>,
    readonly deadline: number | undefined,
    readonly subject: string,
  ) {
    super();
  }

  /** Cancels the request with `reason` (the first one wins). */
  abort(reason: DynamoError): void {
    if (!this.cancel(reason)) return;
    this.stopped();
    try {
      this.iterator?.return?.()?.catch(noop);
    } catch {
      // an iterator whose return() throws: nothing left to stop
    }
  }

  /** The request was cancelled: release what the plane holds for it. */
  protected abstract stopped(): void;
}

/** The wire form of a handler's failure, logged when it is the handler's own bug (INTERNAL). */
export function handlerFailure(e: unknown, logger: Logger, requestId: string): WireError {
  const wire = toWireError(e);
  if (wire.code === 'INTERNAL') logger.warn('handler failed', { request_id: requestId, error: wire.message });
  return wire;
}

/**
 * The life of a served endpoint on any plane: serving -> draining (takes nothing new, waits for
 * the requests in flight for at most the drain timeout) -> closed (the requests left get
 * UNAVAILABLE). Subclasses say how to stop taking requests and how to end the ones in flight.
 */
export abstract class EndpointCore implements ServedEndpoint {
  protected state: 'serving' | 'draining' | 'closed' = 'serving';
  private idleWaiters: Array<() => void> = [];
  private draining: Promise<void> | undefined;

  constructor(
    readonly subject: string,
    readonly logger: Logger,
    private readonly drainTimeoutMs: number,
  ) {}

  abstract get inflight(): number;

  drain(options: { timeoutMs?: number } = {}): Promise<void> {
    if (this.state === 'closed') return Promise.resolve();
    this.draining ??= this.runDrain(options.timeoutMs ?? this.drainTimeoutMs);
    return this.draining;
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.stopTaking();
    this.endInflight(new UnavailableError(`endpoint ${this.subject} closed`));
    this.closed();
    this.wakeIdle();
  }

  /** Stops taking requests at once. */
  protected abstract stopTaking(): void;
  /** Stops taking requests, resolving once the transport delivers no more (default: {@link stopTaking}). */
  protected async stopTakingGracefully(): Promise<void> {
    this.stopTaking();
  }
  /** Ends every request in flight with `error`. */
  protected abstract endInflight(error: DynamoError): void;
  /** The endpoint closed: its plane forgets it. */
  protected abstract closed(): void;

  /** Call when a request ends: a drain waiting for the last one goes on. */
  protected requestEnded(): void {
    if (this.inflight === 0) this.wakeIdle();
  }

  private async runDrain(timeoutMs: number): Promise<void> {
    this.state = 'draining';
    this.logger.info('draining', { inflight: this.inflight });
    await this.stopTakingGracefully();
    if (this.inflight > 0 && this.state === 'draining') {
      await new Promise<void>((resolve) => {
        const timer = unrefTimeout(resolve, timeoutMs);
        this.idleWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    if (this.inflight > 0) {
      this.logger.warn('drain timed out; cancelling in-flight streams', { inflight: this.inflight });
    }
    await this.close();
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
