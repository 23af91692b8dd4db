import { ClosedError } from '../errors';
import type { Logger } from '../logger';
import type { MemoryBus, MemoryBusClient } from '../transport/memory';
import { noop, onAbort } from '../util/abort';
import { Channel } from '../util/channel';
import { decodeJson, encodeJson } from '../util/json';
import { parseSubject } from '../util/subject';
import type { EventMessage, EventPlane, EventSubscription } from './event-plane';

/** Options of {@link MemoryEventPlane}. */
export interface MemoryEventPlaneOptions {
  /**
   * Events buffered per subscription whose consumer is not keeping up; beyond it new events are
   * dropped (at-most-once, as a NATS slow consumer) and a warning is logged. Default 65536.
   */
  maxPending?: number;
  logger?: Logger;
}

interface RawEvent {
  subject: string;
  encoded: string;
}

class MemoryEventSubscription<T> implements EventSubscription<T>, AsyncIterator<EventMessage<T>> {
  private readonly channel = new Channel<RawEvent>({ onReturn: () => this.unsubscribe() });
  private stop: () => void = noop;
  private offSignal: () => void = noop;
  private done = false;
  private dropped = 0;

  constructor(
    readonly subject: string,
    private readonly maxPending: number,
    private readonly logger: Logger,
    private readonly onDone: (s: MemoryEventSubscription<T>) => void,
  ) {}

  start(stop: () => void, signal: AbortSignal | undefined): void {
    this.stop = stop;
    this.offSignal = onAbort(signal, () => this.unsubscribe());
  }

  deliver(subject: string, encoded: string): void {
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
    this.channel.push({ subject, encoded });
  }

  /** Stops the subscription; the iteration ends after the events already received. */
  unsubscribe(): void {
    if (this.done) return;
    this.done = true;
    this.stop();
    this.offSignal();
    this.channel.end();
    this.onDone(this);
  }

  async next(): Promise<IteratorResult<EventMessage<T>>> {
    const r = await this.channel.next();
    if (r.done) return { value: undefined, done: true };
    return { value: { subject: r.value.subject, data: decodeJson(r.value.encoded) as T }, done: false };
  }

  async return(): Promise<IteratorResult<EventMessage<T>>> {
    this.unsubscribe();
    await this.channel.return();
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): AsyncIterator<EventMessage<T>> {
    return this;
  }
}

/**
 * The embedded {@link EventPlane}: publish/subscribe through a shared {@link MemoryBus}, with NATS
 * wildcards, per-publisher order, and a JSON copy of the data for every subscriber.
 * A subscription receives the events published after `subscribe()` returns.
 */
export class MemoryEventPlane implements EventPlane, MemoryBusClient {
  private readonly subscriptions = new Set<MemoryEventSubscription<unknown>>();
  private closed = false;
  private readonly logger: Logger;
  private readonly maxPending: number;

  constructor(
    private readonly bus: MemoryBus,
    options: MemoryEventPlaneOptions = {},
  ) {
    this.logger = (options.logger ?? bus.logger).child({ component: 'memory-event-plane' });
    this.maxPending = options.maxPending ?? 65_536;
    bus.attach(this);
  }

  async publish(subject: string, data: unknown): Promise<void> {
    this.check();
    parseSubject(subject, false);
    this.bus.publish(subject, encodeJson(data, 'event data'));
  }

  subscribe<T = unknown>(subject: string, options: { signal?: AbortSignal } = {}): EventSubscription<T> {
    this.check();
    parseSubject(subject, true);
    const sub = new MemoryEventSubscription<T>(subject, this.maxPending, this.logger, (s) =>
      this.subscriptions.delete(s as MemoryEventSubscription<unknown>),
    );
    if (options.signal?.aborted) {
      sub.unsubscribe();
      return sub;
    }
    this.subscriptions.add(sub as MemoryEventSubscription<unknown>);
    const stop = this.bus.subscribe(subject, (s, encoded) => sub.deliver(s, encoded));
    sub.start(stop, options.signal);
    return sub;
  }

  /** Resolves at once: memory delivery is synchronous. */
  async flush(): Promise<void> {
    this.check();
  }

  /** Ends every subscription of this plane. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of [...this.subscriptions]) s.unsubscribe();
    this.bus.detach(this);
  }

  private check(): void {
    if (this.closed) throw new ClosedError('event plane closed');
    if (this.bus.closed) throw new ClosedError('memory bus closed');
  }
}
