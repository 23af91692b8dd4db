import type { DynamoError } from '../../errors';
import { copyJson } from '../../util/json';
import type { Linked } from '../../util/linked-set';
import type { RequestOptions } from '../request-plane';
import { CallerStream, DONE, NO_HEADERS } from '../stream-core';
import type { Exchange } from './bus';

/** What a {@link MemoryResponseStream} needs of its plane. */
export interface PlaneInternals {
  /** Sends a caller's request to a serving endpoint, or throws why it cannot be sent. */
  open(stream: MemoryResponseStream<unknown>): void;
  /** Largest encoded request or item, bytes. */
  readonly maxPayload: number;
  /** Items a stream buffers before its handler is paused. */
  readonly streamBuffer: number;
  /** The stream ended: stop tracking it. */
  forget(stream: MemoryResponseStream<unknown>): void;
}

/**
 * The caller's side of one request (see {@link CallerStream}), and the {@link Exchange} its
 * endpoint answers into: the handler's items are buffered here (up to the plane's `streamBuffer`)
 * and handed to the caller's reads in order. One object per request, with the buffer made only
 * when the handler runs ahead of the caller: an in-memory hop is mostly its allocations.
 */
export class MemoryResponseStream<T>
  extends CallerStream<T>
  implements Exchange, Linked<MemoryResponseStream<unknown>>
{
  linkPrev: MemoryResponseStream<unknown> | undefined = undefined;
  linkNext: MemoryResponseStream<unknown> | undefined = undefined;
  linkOwner: object | undefined = undefined;
  headers: Readonly<Record<string, string>> = NO_HEADERS;
  payload: unknown = undefined;
  server: { abort(reason: DynamoError): void } | undefined = undefined;
  /** Items received and not yet read (from `head`); undefined while none were buffered. */
  private buffer: unknown[] | undefined = undefined;
  private head = 0;
  /** A read waiting for an item (the usual single reader), then any further concurrent ones. */
  private readResolve: ((r: IteratorResult<T>) => void) | undefined = undefined;
  private readReject: ((e: unknown) => void) | undefined = undefined;
  private moreReaders: Array<[(r: IteratorResult<T>) => void, (e: unknown) => void]> | undefined = undefined;
  /** The handler, paused until the buffer has room. */
  private spaceWaiter: (() => void) | undefined = undefined;

  constructor(
    private readonly plane: PlaneInternals,
    subject: string,
    private readonly request: unknown,
    options: RequestOptions,
  ) {
    super(subject, options);
  }

  // --- the caller's side ---

  protected send(): void {
    this.payload = copyJson(this.request, 'request payload', this.plane.maxPayload);
    const headers = this.options.headers;
    if (headers !== undefined) this.headers = { ...headers };
    this.plane.open(this as MemoryResponseStream<unknown>);
  }

  protected read(): Promise<IteratorResult<T>> {
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
      if (this.spaceWaiter !== undefined && this.hasSpace) this.wakeProducer();
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

  protected stop(error: DynamoError, surface: boolean): void {
    this.server?.abort(error);
    if (this.buffer !== undefined) this.buffer.length = 0;
    this.head = 0;
    this.state = 'ending';
    this.failure = surface ? error : undefined;
    this.wakeProducer();
    this.settleReaders();
    this.finish();
  }

  protected released(): void {
    this.plane.forget(this as MemoryResponseStream<unknown>);
  }

  // --- the serving side (Exchange) ---

  get hasSpace(): boolean {
    return this.buffer === undefined || this.buffer.length - this.head < this.plane.streamBuffer;
  }

  get closed(): boolean {
    return this.state !== 'open';
  }

  push(item: unknown): boolean {
    if (this.state !== 'open') return false;
    const resolve = this.readResolve;
    if (resolve !== undefined) {
      this.shiftReader();
      resolve({ value: item as T, done: false });
    } else {
      (this.buffer ??= []).push(item);
    }
    return true;
  }

  end(error?: DynamoError): void {
    if (this.state !== 'open') return;
    this.state = 'ending';
    this.failure = error;
    this.wakeProducer();
    if (this.buffer === undefined || this.head === this.buffer.length) this.settleReaders();
  }

  waitForSpace(): Promise<void> {
    if (this.hasSpace || this.state !== 'open') return Promise.resolve();
    return new Promise((resolve) => {
      const prev = this.spaceWaiter;
      this.spaceWaiter = prev === undefined ? resolve : () => (prev(), resolve());
    });
  }

  private wakeProducer(): void {
    const w = this.spaceWaiter;
    if (w === undefined) return;
    this.spaceWaiter = undefined;
    w();
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
}
