import { InternalError, ClosedError, type DynamoError } from '../../errors';
import type { Logger } from '../../logger';
import { noopLogger } from '../../logger';
import { copyJson } from '../../util/json';
import { hasWildcard, parseSubject, subjectMatches } from '../../util/subject';

/** Options of {@link MemoryBus}. */
export interface MemoryBusOptions {
  logger?: Logger;
}

/** A client of the {@link MemoryBus} (a plane), closed with the bus. */
export interface MemoryBusClient {
  close(): Promise<void>;
}

/**
 * Receives the events published on subjects matching a {@link MemoryBus.subscribe} pattern: the
 * data is the listener's own copy (a JSON value: plain objects, arrays, strings, finite numbers,
 * booleans, null).
 */
export type MemoryBusListener = (subject: string, data: unknown) => void;

interface BusSubscription {
  readonly pattern: readonly string[];
  readonly listener: MemoryBusListener;
}

/**
 * One request in flight, as the serving side sees it: the request, and the caller's inbox
 * (buffered items, ended by {@link Exchange.end}). The caller's response stream is the exchange.
 */
export interface Exchange {
  readonly subject: string;
  readonly requestId: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly deadline: number | undefined;
  /** The request: the caller's payload, copied as JSON would copy it. */
  readonly payload: unknown;
  /** True while the caller's buffer has room. */
  readonly hasSpace: boolean;
  /** True once the caller takes no more items (ended, cancelled or abandoned). */
  readonly closed: boolean;
  /** Hands an item to the caller; false (dropped) once closed. */
  push(item: unknown): boolean;
  /** Ends the caller's stream after its buffered items, with `error` when given. */
  end(error?: DynamoError): void;
  /** Resolves when the caller's buffer has room or the stream closed. */
  waitForSpace(): Promise<void>;
  /**
   * Set by the serving side while the handler runs; the caller aborts it when it cancels,
   * abandons the stream or times out. (A plain call, not an AbortSignal: signals and their
   * listeners cost more than the rest of an in-memory hop.)
   */
  server: { abort(reason: DynamoError): void } | undefined;
}

export type Responder = (exchange: Exchange) => void;

interface BusInternals {
  readonly responders: Map<string, Responder[]>;
}

/** Server-side state of the buses, reachable only from this module. */
const busInternals = new WeakMap<MemoryBus, BusInternals>();

export function internalsOf(bus: MemoryBus): BusInternals {
  const i = busInternals.get(bus);
  if (!i) throw new InternalError('unknown memory bus');
  return i;
}

/**
 * The embedded "NATS server" shared by the {@link MemoryRequestPlane}s and `MemoryEventPlane`s of a
 * process: request subjects served by endpoints (several servers of one subject form a queue
 * group: each request goes to one of them at random), and publish/subscribe with NATS wildcards.
 */
export class MemoryBus {
  private readonly exact = new Map<string, Set<BusSubscription>>();
  private readonly wildcard = new Set<BusSubscription>();
  private readonly clients = new Set<MemoryBusClient>();
  private isClosed = false;
  /** The bus's logger, for the planes attached to it. */
  readonly logger: Logger;

  constructor(options: MemoryBusOptions = {}) {
    this.logger = options.logger ?? noopLogger;
    busInternals.set(this, { responders: new Map() });
  }

  /** True once {@link MemoryBus.close} was called. */
  get closed(): boolean {
    return this.isClosed;
  }

  /** Number of endpoints serving `subject` and taking requests (tests). */
  responderCount(subject: string): number {
    return internalsOf(this).responders.get(subject)?.length ?? 0;
  }

  /**
   * Subscribes `listener` to every event published on a subject matching `pattern` (`*` one
   * token, `>` the rest). Returns the function that unsubscribes.
   */
  subscribe(pattern: string, listener: MemoryBusListener): () => void {
    this.check();
    const tokens = parseSubject(pattern, true);
    const sub: BusSubscription = { pattern: tokens, listener };
    if (hasWildcard(tokens)) {
      this.wildcard.add(sub);
      return () => {
        this.wildcard.delete(sub);
      };
    }
    let set = this.exact.get(pattern);
    if (!set) this.exact.set(pattern, (set = new Set()));
    set.add(sub);
    return () => {
      const s = this.exact.get(pattern);
      if (!s) return;
      s.delete(sub);
      if (s.size === 0) this.exact.delete(pattern);
    };
  }

  /**
   * Delivers an event to every matching subscription, synchronously and in order. `data` must be
   * a JSON value the bus may own (a copy the publisher keeps no reference to, e.g. from
   * `copyJson`): one subscriber gets it, each other one a copy of its own.
   */
  publish(subject: string, data: unknown): void {
    this.check();
    const matched: MemoryBusListener[] = [];
    const exact = this.exact.get(subject);
    if (exact) for (const sub of exact) matched.push(sub.listener);
    if (this.wildcard.size > 0) {
      const tokens = subject.split('.');
      for (const sub of this.wildcard) if (subjectMatches(sub.pattern, tokens)) matched.push(sub.listener);
    }
    // The copies are made before anyone gets the original (a listener may change what it gets).
    const copies = matched.map((_, i) => (i === 0 ? data : copyJson(data, 'event data', Number.POSITIVE_INFINITY)));
    for (let i = 0; i < matched.length; i++) matched[i]!(subject, copies[i]);
  }

  /** Registers a plane to be closed with the bus. */
  attach(client: MemoryBusClient): void {
    this.check();
    this.clients.add(client);
  }

  /** Unregisters a plane. */
  detach(client: MemoryBusClient): void {
    this.clients.delete(client);
  }

  /** Closes every attached plane (cancelling their streams and subscriptions). Idempotent. */
  async close(): Promise<void> {
    if (this.isClosed) return;
    this.isClosed = true;
    await Promise.all([...this.clients].map((c) => c.close()));
    this.clients.clear();
    this.exact.clear();
    this.wildcard.clear();
    internalsOf(this).responders.clear();
  }

  private check(): void {
    if (this.isClosed) throw new ClosedError('memory bus closed');
  }
}

export function addResponder(bus: MemoryBus, subject: string, responder: Responder): () => void {
  const { responders } = internalsOf(bus);
  let list = responders.get(subject);
  if (!list) responders.set(subject, (list = []));
  list.push(responder);
  return () => {
    const l = responders.get(subject);
    if (!l) return;
    const i = l.indexOf(responder);
    if (i >= 0) l.splice(i, 1);
    if (l.length === 0) responders.delete(subject);
  };
}
