/** One published event. */
export interface EventMessage<T = unknown> {
  subject: string;
  data: T;
}

/** A subscription: iterate it once; {@link EventSubscription.unsubscribe} (or the signal) ends the iteration. */
export interface EventSubscription<T = unknown> extends AsyncIterable<EventMessage<T>> {
  readonly subject: string;
  unsubscribe(): void;
}

/**
 * Fire-and-forget publish/subscribe of JSON events (KV events, load metrics, notifications).
 * Subjects are dot-separated tokens; subscriptions take NATS wildcards (`*` one token, `>` the rest).
 *
 * Implementations: `MemoryEventPlane` (embedded default) and `NatsEventPlane`.
 * Delivery is at-most-once and in publish order per publisher; data is copied.
 */
export interface EventPlane {
  publish(subject: string, data: unknown): Promise<void>;
  subscribe<T = unknown>(subject: string, options?: { signal?: AbortSignal }): EventSubscription<T>;
  /** Waits until every event published so far has reached the server (memory: resolves at once). */
  flush(): Promise<void>;
  close(): Promise<void>;
}
