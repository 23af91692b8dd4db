import type { Logger } from '../logger';
import { noop, onAbort } from '../util/abort';
import { Channel } from '../util/channel';
import { RateLimiter } from '../util/rate-limit';
import type { EventMessage, EventSubscription } from './event-plane';

interface RawEvent {
  subject: string;
  /** The JSON text, parsed on read; undefined when `data` is already the reader's own copy. */
  json: string | undefined;
  data: unknown;
}

const DONE: IteratorResult<never> = { value: undefined, done: true };

/**
 * The consumer side of an event subscription, shared by every {@link EventPlane} backend: a
 * bounded buffer (beyond `maxPending` new events are dropped, at-most-once, with a warning),
 * JSON decoding on read, and an end on unsubscribe, abort signal or `break`. A backend only
 * feeds {@link BufferedEventSubscription.deliver} and says how to stop its source.
 */
export class BufferedEventSubscription<T> implements EventSubscription<T>, AsyncIterator<EventMessage<T>> {
  private readonly channel = new Channel<RawEvent>({ onReturn: () => this.unsubscribe() });
  private stopSource: () => void = noop;
  private offSignal: () => void = noop;
  private done = false;
  private dropped = 0;
  /** A flood of garbage costs a few log lines, not one per message. */
  private readonly badEvents = new RateLimiter();

  constructor(
    readonly subject: string,
    private readonly maxPending: number,
    private readonly logger: Logger,
    private readonly onDone: (s: BufferedEventSubscription<T>) => void,
  ) {}

  /** Binds the backend's source (`stop` ends it) and the caller's abort signal. */
  start(stop: () => void, signal: AbortSignal | undefined): void {
    this.stopSource = stop;
    this.offSignal = onAbort(signal, () => this.unsubscribe());
  }

  /** Buffers one event (its JSON text) unless the subscription ended or the buffer is full. */
  deliver(subject: string, json: string): void {
    if (this.admit()) this.channel.push({ subject, json, data: undefined });
  }

  /** Buffers one event already decoded: `data` must be this subscription's own copy. */
  deliverValue(subject: string, data: unknown): void {
    if (this.admit()) this.channel.push({ subject, json: undefined, data });
  }

  /** Whether a new event fits (else it is dropped, with a warning once per run of drops). */
  private admit(): boolean {
    if (this.done) return false;
    if (this.channel.size >= this.maxPending) {
      if (this.dropped++ === 0) {
        this.logger.warn('slow consumer: dropping events', { subject: this.subject, max_pending: this.maxPending });
      }
      return false;
    }
    if (this.dropped > 0) {
      this.logger.warn('slow consumer caught up', { subject: this.subject, dropped: this.dropped });
      this.dropped = 0;
    }
    return true;
  }

  /** Stops the subscription; the iteration ends after the events already received. Idempotent. */
  unsubscribe(): void {
    if (this.done) return;
    this.done = true;
    try {
      this.stopSource();
    } catch {
      // the source is already gone (e.g. its connection is closing)
    }
    this.offSignal();
    this.channel.end();
    this.onDone(this);
  }

  next(): Promise<IteratorResult<EventMessage<T>>> {
    return this.channel.next().then(this.decode);
  }

  /** Parses a received event; one that is not JSON is dropped (with a warning) and the next read. */
  private readonly decode = (
    r: IteratorResult<RawEvent>,
  ): IteratorResult<EventMessage<T>> | Promise<IteratorResult<EventMessage<T>>> => {
    if (r.done) return DONE;
    if (r.value.json === undefined)
      return { value: { subject: r.value.subject, data: r.value.data as T }, done: false };
    try {
      return { value: { subject: r.value.subject, data: JSON.parse(r.value.json) as T }, done: false };
    } catch (e) {
      const t = this.badEvents.take();
      if (t.ok) {
        this.logger.warn('dropping an event that is not JSON', {
          subject: r.value.subject,
          error: e instanceof Error ? e.message : String(e),
          suppressed: t.suppressed,
        });
      }
      return this.next();
    }
  };

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
 * Several subscriptions read as one (their events interleaved as they arrive, each source's in
 * order); unsubscribing ends them all. The first error of a source ends the whole iteration with it.
 */
export class MergedEventSubscription<T> implements EventSubscription<T> {
  private readonly channel = new Channel<EventMessage<T>>({ onReturn: () => this.unsubscribe() });
  private done = false;

  constructor(
    readonly subject: string,
    private readonly sources: readonly EventSubscription<T>[],
  ) {
    let open = sources.length;
    for (const s of sources) {
      void (async () => {
        try {
          for await (const m of s) this.channel.push(m);
        } catch (e) {
          this.channel.end(e);
          this.unsubscribe();
          return;
        }
        if (--open === 0) this.channel.end();
      })();
    }
  }

  unsubscribe(): void {
    if (this.done) return;
    this.done = true;
    for (const s of this.sources) s.unsubscribe();
    this.channel.end();
  }

  [Symbol.asyncIterator](): AsyncIterator<EventMessage<T>> {
    return this.channel;
  }
}
