import { randomUUID } from 'node:crypto';
import {
  CancelledError,
  ClosedError,
  type DynamoError,
  InternalError,
  InvalidArgumentError,
  NoRespondersError,
  TimeoutError,
  UnavailableError,
  fromWireError,
  isDynamoError,
  toDynamoError,
  toWireError,
} from '../errors';
import type { WireError } from '../errors';
import type { Logger } from '../logger';
import { noopLogger } from '../logger';
import { Channel } from '../util/channel';
import { noop, unrefTimeout } from '../util/abort';
import { Cancellation, linkCancellation, throwIfCancelled } from '../util/cancellation';
import { copyJson } from '../util/json';
import { hasWildcard, parseSubject, subjectMatches } from '../util/subject';
import type {
  RequestContext,
  RequestHandler,
  RequestOptions,
  RequestPlane,
  ResponseStream,
  ServeOptions,
  ServedEndpoint,
} from './request-plane';

/** Options of {@link MemoryBus}. */
export interface MemoryBusOptions {
  logger?: Logger;
}

/** A client of the {@link MemoryBus} (a plane), closed with the bus. */
export interface MemoryBusClient {
  close(): Promise<void>;
}

/** Receives the events published on subjects matching a {@link MemoryBus.subscribe} pattern. */
export type MemoryBusListener = (subject: string, encoded: string) => void;

interface BusSubscription {
  readonly pattern: readonly string[];
  readonly listener: MemoryBusListener;
}

/** One request in flight between a caller's stream and the endpoint serving it. */
interface Exchange {
  readonly subject: string;
  readonly requestId: string;
  readonly headers: Record<string, string>;
  readonly deadline: number | undefined;
  /** The request: the caller's payload, copied as JSON would copy it. */
  readonly payload: unknown;
  /** The caller's inbox: encoded items, ended by the end frame or an error frame. */
  readonly inbox: Channel<unknown>;
  /**
   * Set by the serving side while the handler runs; the caller calls it when it cancels,
   * abandons the stream or times out. (A plain callback, not an AbortSignal: signals and their
   * listeners cost more than the rest of an in-memory hop.)
   */
  onCancel: ((reason: DynamoError) => void) | undefined;
}

type Responder = (exchange: Exchange) => void;

interface BusInternals {
  readonly responders: Map<string, Responder[]>;
}

/** Server-side state of the buses, reachable only from this module. */
const busInternals = new WeakMap<MemoryBus, BusInternals>();

function internalsOf(bus: MemoryBus): BusInternals {
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

  /** Delivers an encoded event to every matching subscription, synchronously and in order. */
  publish(subject: string, encoded: string): void {
    this.check();
    const exact = this.exact.get(subject);
    if (exact) for (const sub of [...exact]) sub.listener(subject, encoded);
    if (this.wildcard.size > 0) {
      const tokens = subject.split('.');
      for (const sub of [...this.wildcard]) if (subjectMatches(sub.pattern, tokens)) sub.listener(subject, encoded);
    }
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

function addResponder(bus: MemoryBus, subject: string, responder: Responder): () => void {
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

function pickResponder(bus: MemoryBus, subject: string): Responder | undefined {
  const list = internalsOf(bus).responders.get(subject);
  if (!list || list.length === 0) return undefined;
  return list.length === 1 ? list[0] : list[Math.floor(Math.random() * list.length)];
}

/** Options of {@link MemoryRequestPlane}. */
export interface MemoryRequestPlaneOptions {
  /** Largest encoded request (and response item) in bytes. Default 1 MiB, as nats-server. */
  maxPayload?: number;
  /** Items buffered per stream before the handler is paused (backpressure). Default 16. */
  streamBuffer?: number;
  logger?: Logger;
}

const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

interface PlaneInternals {
  /** Sends a caller's request: returns the exchange (with its inbox), or throws why it cannot be sent. */
  open(stream: MemoryResponseStream<unknown>, exchange: Omit<Exchange, 'inbox' | 'onCancel'>): Exchange;
  /** Largest encoded request or item, bytes. */
  readonly maxPayload: number;
  /** The stream ended: stop tracking it. */
  forget(stream: MemoryResponseStream<unknown>): void;
}

/** Caller-side hooks of the planes, reachable only from this module. */
const planeInternals = new WeakMap<MemoryRequestPlane, PlaneInternals>();
const DEFAULT_DRAIN_TIMEOUT_MS = 30_000;

/**
 * The embedded {@link RequestPlane}: requests and streamed responses between the planes of one
 * {@link MemoryBus}, with the semantics of the NATS one: JSON copies, no responders, payload
 * limits, cancellation reaching the handler's signal, timeouts and deadlines, drain. The handler
 * is paused while the caller's buffer (`streamBuffer` items) is full.
 */
export class MemoryRequestPlane implements RequestPlane, MemoryBusClient {
  readonly maxPayload: number;
  /** Stream buffer size (items). */
  readonly streamBuffer: number;
  private readonly endpoints = new Map<string, MemoryServedEndpoint>();
  private readonly streams = new Set<MemoryResponseStream<unknown>>();
  private state: 'open' | 'draining' | 'closed' = 'open';
  private readonly logger: Logger;

  constructor(
    private readonly bus: MemoryBus,
    options: MemoryRequestPlaneOptions = {},
  ) {
    this.maxPayload = options.maxPayload ?? DEFAULT_MAX_PAYLOAD;
    if (!(this.maxPayload > 0)) throw new InvalidArgumentError(`maxPayload must be positive, got ${this.maxPayload}`);
    this.streamBuffer = options.streamBuffer ?? 16;
    if (!(this.streamBuffer >= 1))
      throw new InvalidArgumentError(`streamBuffer must be >= 1, got ${this.streamBuffer}`);
    this.logger = (options.logger ?? bus.logger).child({ component: 'memory-request-plane' });
    bus.attach(this);
    planeInternals.set(this, {
      open: (stream, exchange) => {
        if (this.state === 'closed') throw new ClosedError('request plane closed');
        if (this.bus.closed) throw new ClosedError('memory bus closed');
        // A served subject was checked when it was served: check the subject only on a miss.
        const responder = pickResponder(this.bus, exchange.subject);
        if (!responder) {
          parseSubject(exchange.subject, false);
          throw new NoRespondersError(exchange.subject);
        }
        const full: Exchange = {
          ...exchange,
          inbox: new Channel<unknown>({ capacity: this.streamBuffer }),
          onCancel: undefined,
        };
        this.streams.add(stream);
        responder(full);
        return full;
      },
      forget: (stream) => {
        this.streams.delete(stream);
      },
      maxPayload: this.maxPayload,
    });
  }

  async serve(subject: string, handler: RequestHandler, options: ServeOptions = {}): Promise<ServedEndpoint> {
    if (this.state !== 'open') throw new ClosedError(`request plane ${this.state}`);
    parseSubject(subject, false);
    if (this.endpoints.has(subject))
      throw new InvalidArgumentError(`subject ${subject} is already served by this plane`);
    const logger = (options.logger ?? this.logger).child({ subject });
    const endpoint = new MemoryServedEndpoint(subject, handler, logger, this.maxPayload, () =>
      this.endpoints.delete(subject),
    );
    this.endpoints.set(subject, endpoint);
    endpoint.start(this.bus);
    return endpoint;
  }

  request<T = unknown>(subject: string, payload: unknown, options: RequestOptions = {}): ResponseStream<T> {
    return new MemoryResponseStream<T>(planeInternals.get(this)!, subject, payload, options);
  }

  async drain(options: { timeoutMs?: number } = {}): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'draining';
    await Promise.all([...this.endpoints.values()].map((e) => e.drain(options)));
    await this.close();
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.bus.detach(this);
    await Promise.all([...this.endpoints.values()].map((e) => e.close()));
    const closed = new ClosedError('request plane closed');
    for (const s of [...this.streams]) s.abort(closed, true);
  }
}

const DONE: IteratorResult<never> = { value: undefined, done: true };

/** The caller's side of one request (see {@link ResponseStream}); the request is sent on the first `next()`. */
class MemoryResponseStream<T> implements ResponseStream<T>, AsyncIterator<T> {
  readonly requestId: string;
  private state: 'idle' | 'open' | 'done' = 'idle';
  private inbox: Channel<unknown> | undefined;
  private exchange: Exchange | undefined;
  /** Why the stream ended before it was opened (cancelled before the first `next()`). */
  private earlyError: DynamoError | undefined;
  private readonly deadline: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private offSignal: () => void = noop;

  constructor(
    private readonly plane: PlaneInternals,
    private readonly subject: string,
    private readonly payload: unknown,
    private readonly options: RequestOptions,
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
        this.start();
      } catch (e) {
        this.finish();
        return Promise.reject(toDynamoError(e));
      }
    }
    const inbox = this.inbox;
    if (!inbox) {
      const e = this.earlyError;
      this.earlyError = undefined;
      return e ? Promise.reject(e) : Promise.resolve(DONE);
    }
    return inbox.next().then(
      (r) => {
        if (r.done) {
          this.finish();
          return DONE;
        }
        return { value: r.value as T, done: false };
      },
      (e: unknown) => {
        this.finish();
        throw e;
      },
    );
  }

  return(): Promise<IteratorResult<T>> {
    // A finished stream has nothing to stop (and an error costs a stack trace: callers release
    // every stream this way when they are done with it).
    if (this.state !== 'done') this.abort(new CancelledError('response stream abandoned by the caller'), false);
    return Promise.resolve(DONE);
  }

  cancel(reason?: unknown): void {
    let error: DynamoError;
    if (reason === undefined) error = new CancelledError('request cancelled by the caller');
    else if (isDynamoError(reason)) error = toDynamoError(reason);
    else error = new CancelledError(reason instanceof Error ? reason.message : String(reason), { cause: reason });
    this.abort(error, true);
  }

  /**
   * Ends the stream: the handler's signal fires with `error`, and (when `surface`) the caller's
   * next read throws it.
   */
  abort(error: DynamoError, surface: boolean): void {
    if (this.state === 'done') return;
    if (this.state === 'idle') {
      this.state = 'done';
      this.earlyError = surface ? error : undefined;
      return;
    }
    this.exchange?.onCancel?.(error);
    this.inbox?.abort(surface ? error : undefined);
    this.finish();
  }

  private start(): void {
    this.state = 'open';
    const { signal, parent } = this.options;
    throwIfCancelled(signal, parent);
    if (this.deadline !== undefined && this.deadline <= Date.now()) {
      throw new TimeoutError(`request to ${this.subject} passed its deadline before it was sent`);
    }
    const payload = copyJson(this.payload, 'request payload', this.plane.maxPayload);
    this.exchange = this.plane.open(this as MemoryResponseStream<unknown>, {
      subject: this.subject,
      requestId: this.requestId,
      headers: { ...(this.options.headers ?? {}) },
      deadline: this.deadline,
      payload,
    });
    this.inbox = this.exchange.inbox;
    this.offSignal = linkCancellation(signal, parent, (reason) => this.abort(reason, true));
    if (this.deadline !== undefined && this.state === 'open') {
      const ms = this.deadline - Date.now();
      this.timer = unrefTimeout(
        () =>
          this.abort(
            new TimeoutError(
              this.options.timeoutMs !== undefined && this.options.deadline === undefined
                ? `request to ${this.subject} timed out after ${this.options.timeoutMs} ms`
                : `request to ${this.subject} passed its deadline`,
            ),
            true,
          ),
        ms,
      );
    }
  }

  private finish(): void {
    this.state = 'done';
    this.offSignal();
    this.offSignal = noop;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.plane.forget(this as MemoryResponseStream<unknown>);
  }
}

interface ActiveRequest {
  readonly exchange: Exchange;
  /** Fires the handler's signal with `reason` and stops it (idempotent). */
  readonly abort: (reason: DynamoError) => void;
}

/** One endpoint served by a {@link MemoryRequestPlane}. */
class MemoryServedEndpoint implements ServedEndpoint {
  private readonly active = new Set<ActiveRequest>();
  private state: 'serving' | 'draining' | 'closed' = 'serving';
  private unserve: () => void = noop;
  private idleWaiters: Array<() => void> = [];
  private draining: Promise<void> | undefined;

  constructor(
    readonly subject: string,
    private readonly handler: RequestHandler,
    private readonly logger: Logger,
    private readonly maxPayload: number,
    private readonly onClosed: () => void,
  ) {}

  get inflight(): number {
    return this.active.size;
  }

  start(bus: MemoryBus): void {
    this.unserve = addResponder(bus, this.subject, (exchange) => this.accept(exchange));
  }

  drain(options: { timeoutMs?: number } = {}): Promise<void> {
    if (this.state === 'closed') return Promise.resolve();
    this.draining ??= this.runDrain(options.timeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS);
    return this.draining;
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.unserve();
    const error = new UnavailableError(`endpoint ${this.subject} closed`);
    for (const a of [...this.active]) {
      a.exchange.inbox.end(error);
      a.abort(error);
    }
    this.onClosed();
    this.wakeIdle();
  }

  private async runDrain(timeoutMs: number): Promise<void> {
    this.state = 'draining';
    this.unserve();
    this.logger.info('draining', { inflight: this.active.size });
    if (this.active.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = unrefTimeout(resolve, timeoutMs);
        this.idleWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    if (this.active.size > 0)
      this.logger.warn('drain timed out; cancelling in-flight streams', { inflight: this.active.size });
    await this.close();
  }

  private accept(exchange: Exchange): void {
    if (this.state !== 'serving') {
      exchange.inbox.end(new NoRespondersError(this.subject));
      return;
    }
    void this.run(exchange);
  }

  private async run(exchange: Exchange): Promise<void> {
    // The handler's AbortSignal is created when the handler first reads `ctx.signal` (a signal
    // costs about a fifth of an in-memory hop); `ctx.cancelled` and `ctx.onCancel` need none.
    const cancellation = new Cancellation<DynamoError>();
    let iterator: AsyncIterator<unknown> | undefined;
    let finished = false;
    /** Leaves the in-flight set once: when the handler ends, or at once when the stream is cancelled. */
    const finish = (): void => {
      if (finished) return;
      finished = true;
      exchange.onCancel = undefined;
      this.active.delete(active);
      if (this.active.size === 0) this.wakeIdle();
    };
    // Cancelled (by the caller or the endpoint closing): fire the handler's signal and stop the
    // handler without waiting for its pending step (it may ignore its signal).
    const abort = (reason: DynamoError): void => {
      if (!cancellation.cancel(reason)) return;
      finish();
      try {
        iterator?.return?.()?.catch(noop);
      } catch {
        // an iterator whose return() throws: nothing left to stop
      }
    };
    const active: ActiveRequest = { exchange, abort };
    this.active.add(active);
    exchange.onCancel = abort;
    try {
      const ctx: RequestContext = {
        requestId: exchange.requestId,
        get signal(): AbortSignal {
          return cancellation.signal;
        },
        get cancelled(): boolean {
          return cancellation.cancelled;
        },
        onCancel: (listener) => cancellation.onCancel(listener),
        headers: exchange.headers,
        deadline: exchange.deadline,
        subject: exchange.subject,
      };
      iterator = this.handler(exchange.payload, ctx)[Symbol.asyncIterator]();
      const inbox = exchange.inbox;
      while (!cancellation.cancelled) {
        const r = await iterator.next();
        if (cancellation.cancelled) break;
        if (r.done) {
          inbox.end();
          break;
        }
        let item: unknown;
        try {
          item = copyJson(r.value, 'response item', this.maxPayload);
        } catch (e) {
          // Not serializable: the handler's fault (INTERNAL); too large keeps its own code.
          if (e instanceof InvalidArgumentError) throw new InternalError(e.message, { cause: e });
          throw e;
        }
        while (!inbox.hasSpace && !inbox.closed) await inbox.waitForSpace();
        if (!inbox.push(item)) break;
      }
    } catch (e) {
      if (!cancellation.cancelled) {
        const wire: WireError = toWireError(e);
        if (wire.code === 'INTERNAL') {
          this.logger.warn('handler failed', { request_id: exchange.requestId, error: wire.message });
        }
        exchange.inbox.end(fromWireError(wire));
      }
    } finally {
      finish();
    }
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
