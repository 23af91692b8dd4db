import type { NatsConnection } from '@nats-io/transport-node';
import { ClosedError, PayloadTooLargeError, UnavailableError } from '../errors';
import type { Logger } from '../logger';
import { noopLogger } from '../logger';
import { encodeJson } from '../util/json';
import { checkSubject, parseSubject } from '../util/subject';
import type { EventPlane, EventSubscription } from './event-plane';
import { BufferedEventSubscription } from './subscription';

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

/**
 * The {@link EventPlane} on NATS core: JSON events, at-most-once, in publish order per
 * publisher, with NATS wildcards in subscriptions. The plane does not own the connection:
 * close the plane, then the connection. Subscriptions survive reconnects (nats.js re-subscribes);
 * events published while disconnected are buffered by the client and sent on reconnect.
 */
export class NatsEventPlane implements EventPlane {
  private readonly subscriptions = new Set<BufferedEventSubscription<unknown>>();
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
    checkSubject(subject);
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
    const sub = new BufferedEventSubscription<T>(subject, this.maxPending, this.logger, (s) =>
      this.subscriptions.delete(s as BufferedEventSubscription<unknown>),
    );
    if (options.signal?.aborted) {
      sub.unsubscribe();
      return sub;
    }
    this.subscriptions.add(sub as BufferedEventSubscription<unknown>);
    const source = this.nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) {
          this.logger.warn('subscription error', { subject, error: err.message });
          return;
        }
        sub.deliver(msg.subject, utf8.decode(msg.data));
      },
    });
    sub.start(() => {
      if (!source.isClosed()) source.unsubscribe();
    }, options.signal);
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
