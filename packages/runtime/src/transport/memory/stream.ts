import type { DynamoError } from '../../errors';
import { copyJson } from '../../util/json';
import type { Linked } from '../../util/linked-set';
import type { RequestOptions } from '../request-plane';
import { CallerStream, NO_HEADERS } from '../stream-core';
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

  protected taken(): void {
    if (this.spaceWaiter !== undefined && this.hasSpace) this.wakeProducer();
  }

  protected stop(error: DynamoError, surface: boolean): void {
    this.server?.abort(error);
    this.dropAll(surface ? error : undefined);
    this.wakeProducer();
    this.finish();
  }

  protected released(): void {
    this.plane.forget(this as MemoryResponseStream<unknown>);
  }

  // --- the serving side (Exchange) ---

  get hasSpace(): boolean {
    return this.buffered < this.plane.streamBuffer;
  }

  get closed(): boolean {
    return this.state !== 'open';
  }

  push(item: unknown): boolean {
    return this.deliver(item);
  }

  end(error?: DynamoError): void {
    if (this.state !== 'open') return;
    this.wakeProducer();
    this.endWith(error);
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
}
