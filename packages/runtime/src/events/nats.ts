import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { ClosedError, PayloadTooLargeError, UnavailableError } from '../errors';
import type { Logger } from '../logger';
import { noopLogger } from '../logger';
import { noop, onAbort } from '../util/abort';
import { Channel } from '../util/channel';
import { encodeJson } from '../util/json';
import { parseSubject } from '../util/subject';
import type { EventMessage, EventPlane, EventSubscription } from './event-plane';

/** Options of {@link NatsEventPlane}. */
export interface NatsEventPlaneOptions {
  logger?: Logger;
  /**
   * Events buffered per subscription whose consumer is not keeping up; beyond it new events are
   * dropped (at-most-once) and a warning is logged. Default 65536.
   */
  maxPending?: number;
}

const utf8 = new TextDecoder();
const DONE: IteratorResult<never> = { value: undefined, done: true };

interface RawEvent {
  subject: string;
  /** The JSON text, decoded on read (each read parses a fresh copy). */
  json: string;
}

class NatsEventSubscription<T> implements EventSubscription<T>, AsyncIterator<EventMessage<T>> {
  private readonly channel = new Channel<RawEvent>({ onReturn: () => this.unsubscribe() });
  private sub: Subscription | undefined;
  private offSignal: () => void = noop;
  private done = false;
  private dropped = 0;

  constructor(
    readonly subject: string,
    private readonly maxPending: number,
    private readonly logger: Logger,
    private readonly onDone: (s: NatsEventSubscription<T>) => void,
  ) {}

  start(nc: NatsConnection, signal: AbortSignal | undefined): void {
    this.sub = nc.subscribe(this.subject, {
      callback: (err, msg) => {
        if (err) {
          this.logger.warn('subscription error', { subject: this.subject, error: err.message });
          return;
        }
        this.deliver(msg);
      },
    });
    this.offSignal = onAbort(signal, () => this.unsubscribe());
  }

  private deliver(msg: Msg): void {
    if (this.done) return;
    if (this.channel.size >= this.maxPending) {
      if (this.dropped++ === 0) {
        this.logger.warn('slow consumer: dropping events', { subject: this.subject, max_pending: this.maxPending });
      }
      return;
    }
    if (this.dropped > 0) {
      this.logger.warn('slow consumer caught up', { subject: this.subject, dropped: this.dropped });
      this.dropped = 0;
    }
    this.channel.push({ subject: msg.subject, json: utf8.decode(msg.data) });
  }

  /** Stops the subscription; the iteration ends after the events already received. Idempotent. */
  unsubscribe(): void {
    if (this.done) return;
    this.done = true;
    try {
      if (this.sub && !this.sub.isClosed()) this.sub.unsubscribe();
    } catch {
      // the connection is closing: the subscription goes with it
    }
    this.offSignal();
    this.channel.end();
    this.onDone(this);
  }

  async next(): Promise<IteratorResult<EventMessage<T>>> {
    for (;;) {
      const r = await this.channel.next();
      if (r.done) return DONE;
      try {
        return { value: { subject: r.value.subject, data: JSON.parse(r.value.json) as T }, done: false };
      } catch (e) {
        this.logger.warn('dropping an event that is not JSON', {
          subject: r.value.subject,
          error: e instanceof Error ? e.message : String(e),
        });
      }
    }
  }

  async return(): Promise<IteratorResult<EventMessage<T>>> {
    this.unsubscribe();
    await this.channel.return();
    return DONE;
  }

  [Symbol.asyncIterator](): AsyncIterator<EventMessage<T>> {
    return this;
  }
}

/**
 * The {@link EventPlane} on NATS core: JSON events, at-most-once, in publish order per
 * publisher, with NATS wildcards in subscriptions. The plane does not own the connection:
 * close the plane, then the connection. Subscriptions survive reconnects (nats.js re-subscribes);
 * events published while disconnected are buffered by the client and sent on reconnect.
 */
export class NatsEventPlane implements EventPlane {
  private readonly subscriptions = new Set<NatsEventSubscription<unknown>>();
  private closed = false;
  private readonly logger: Logger;
  private readonly maxPending: number;

  /** @param nc an open NATS connection (see `connectNats`); it must outlive the plane. */
  constructor(
    private readonly nc: NatsConnection,
    options: NatsEventPlaneOptions = {},
  ) {
    this.logger = (options.logger ?? noopLogger).child({ component: 'nats-event-plane' });
    this.maxPending = options.maxPending ?? 65_536;
    nc.closed().then(
      () => this.connectionClosed(),
      () => this.connectionClosed(),
    );
  }

  /**
   * Publishes `data` as JSON on `subject` (no wildcards). Fails with PAYLOAD_TOO_LARGE above the
   * server's `max_payload`, CLOSED when the plane or the connection is closed.
   */
  async publish(subject: string, data: unknown): Promise<void> {
    this.check();
    parseSubject(subject, false);
    const json = encodeJson(data, 'event data');
    const limit = this.nc.info?.max_payload;
    if (limit !== undefined && json.length * 3 > limit) {
      const size = Buffer.byteLength(json, 'utf8');
      if (size > limit) throw new PayloadTooLargeError(size, limit);
    }
    try {
      this.nc.publish(subject, json);
    } catch (e) {
      if (this.nc.isClosed()) throw new ClosedError('NATS connection closed', { cause: e });
      throw new UnavailableError(`cannot publish on ${subject}: ${e instanceof Error ? e.message : String(e)}`, {
        cause: e,
      });
    }
  }

  subscribe<T = unknown>(subject: string, options: { signal?: AbortSignal } = {}): EventSubscription<T> {
    this.check();
    parseSubject(subject, true);
    const sub = new NatsEventSubscription<T>(subject, this.maxPending, this.logger, (s) =>
      this.subscriptions.delete(s as NatsEventSubscription<unknown>),
    );
    if (options.signal?.aborted) {
      sub.unsubscribe();
      return sub;
    }
    this.subscriptions.add(sub as NatsEventSubscription<unknown>);
    sub.start(this.nc, options.signal);
    return sub;
  }

  /** Resolves when the server has everything published (and every subscription made) so far. */
  async flush(): Promise<void> {
    this.check();
    try {
      await this.nc.flush();
    } catch (e) {
      if (this.nc.isClosed()) throw new ClosedError('NATS connection closed', { cause: e });
      throw new UnavailableError(`flush failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
  }

  /** Ends every subscription of this plane (the connection stays open). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of [...this.subscriptions]) s.unsubscribe();
  }

  private connectionClosed(): void {
    if (this.closed) return;
    this.logger.warn('NATS connection closed; subscriptions end');
    void this.close();
  }

  private check(): void {
    if (this.closed) throw new ClosedError('event plane closed');
    if (this.nc.isClosed()) throw new ClosedError('NATS connection closed');
  }
}
