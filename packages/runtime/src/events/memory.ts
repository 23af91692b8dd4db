import { ClosedError } from '../errors';
import type { Logger } from '../logger';
import type { MemoryBus, MemoryBusClient } from '../transport/memory';
import { copyJson } from '../util/json';
import { checkSubject, parseSubject } from '../util/subject';
import type { EventPlane, EventSubscription } from './event-plane';
import { BufferedEventSubscription } from './subscription';

/** Options of {@link MemoryEventPlane}. */
export interface MemoryEventPlaneOptions {
  /**
   * Events buffered per subscription whose consumer is not keeping up; beyond it new events are
   * dropped (at-most-once, as a NATS slow consumer) and a warning is logged. Default 65536.
   */
  maxPending?: number;
  logger?: Logger;
}

/**
 * The embedded {@link EventPlane}: publish/subscribe through a shared {@link MemoryBus}, with NATS
 * wildcards, per-publisher order, and a JSON copy of the data for every subscriber.
 * A subscription receives the events published after `subscribe()` returns.
 */
export class MemoryEventPlane implements EventPlane, MemoryBusClient {
  private readonly subscriptions = new Set<BufferedEventSubscription<unknown>>();
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
    checkSubject(subject);
    // One plain-data copy (as a JSON round trip would make it), not JSON text parsed by each reader.
    this.bus.publish(subject, copyJson(data, 'event data', Number.POSITIVE_INFINITY));
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
    const stop = this.bus.subscribe(subject, (s, data) => sub.deliverValue(s, data));
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
