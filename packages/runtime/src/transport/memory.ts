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
import { noop, unrefTimeout } from '../util/abort';
import { Cancellation, linkCancellation, throwIfCancelled } from '../util/cancellation';
import { copyJson } from '../util/json';
import { LinkedSet, type Linked } from '../util/linked-set';
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
interface Exchange {
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
  /** Sends a caller's request to a serving endpoint, or throws why it cannot be sent. */
  open(stream: MemoryResponseStream<unknown>): void;
  /** Largest encoded request or item, bytes. */
  readonly maxPayload: number;
  /** Items a stream buffers before its handler is paused. */
  readonly streamBuffer: number;
  /** The stream ended: stop tracking it. */
  forget(stream: MemoryResponseStream<unknown>): void;
}

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
  private readonly streams = new LinkedSet<MemoryResponseStream<unknown>>();
  private state: 'open' | 'draining' | 'closed' = 'open';
  private readonly logger: Logger;
  private readonly internals: PlaneInternals;

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
    const { responders } = internalsOf(bus);
    this.internals = {
      open: (stream) => {
        if (this.state === 'closed') throw new ClosedError('request plane closed');
        if (this.bus.closed) throw new ClosedError('memory bus closed');
        const list = responders.get(stream.subject);
        // A served subject was checked when it was served: check the subject only on a miss.
        if (list === undefined || list.length === 0) {
          parseSubject(stream.subject, false);
          throw new NoRespondersError(stream.subject);
        }
        const responder = list.length === 1 ? list[0]! : list[Math.floor(Math.random() * list.length)]!;
        this.streams.add(stream);
        responder(stream);
      },
      forget: (stream) => {
        this.streams.delete(stream);
      },
      maxPayload: this.maxPayload,
      streamBuffer: this.streamBuffer,
    };
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
    return new MemoryResponseStream<T>(this.internals, subject, payload, options);
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
    for (const s of this.streams.values()) s.abort(closed, true);
  }
}

const DONE: IteratorResult<never> = { value: undefined, done: true };
const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});

/**
 * The caller's side of one request (see {@link ResponseStream}), and the {@link Exchange} its
 * endpoint answers into: the request is sent on the first `next()`; the handler's items are
 * buffered here (up to the plane's `streamBuffer`) and handed to the caller's reads in order.
 * One object per request, with the buffer made only when the handler runs ahead of the caller:
 * an in-memory hop is mostly its allocations.
 */
class MemoryResponseStream<T>
  implements ResponseStream<T>, AsyncIterator<T>, Exchange, Linked<MemoryResponseStream<unknown>>
{
  readonly requestId: string;
  linkPrev: MemoryResponseStream<unknown> | undefined = undefined;
  linkNext: MemoryResponseStream<unknown> | undefined = undefined;
  linkOwner: object | undefined = undefined;
  readonly deadline: number | undefined;
  headers: Readonly<Record<string, string>> = NO_HEADERS;
  payload: unknown = undefined;
  server: { abort(reason: DynamoError): void } | undefined = undefined;
  /** idle: not sent; open: items may come; ending: no more items, the buffer drains; done. */
  private state: 'idle' | 'open' | 'ending' | 'done' = 'idle';
  /** Items received and not yet read (from `head`); undefined while none were buffered. */
  private buffer: unknown[] | undefined = undefined;
  private head = 0;
  /** What the iteration ends with after the buffer, once ending: an error, thrown once. */
  private failure: DynamoError | undefined = undefined;
  /** A read waiting for an item (the usual single reader), then any further concurrent ones. */
  private readResolve: ((r: IteratorResult<T>) => void) | undefined = undefined;
  private readReject: ((e: unknown) => void) | undefined = undefined;
  private moreReaders: Array<[(r: IteratorResult<T>) => void, (e: unknown) => void]> | undefined = undefined;
  /** The handler, paused until the buffer has room. */
  private spaceWaiter: (() => void) | undefined = undefined;
  private timer: NodeJS.Timeout | undefined = undefined;
  private offSignal: () => void = noop;

  constructor(
    private readonly plane: PlaneInternals,
    readonly subject: string,
    private readonly request: unknown,
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

  // --- the caller's side ---

  next(): Promise<IteratorResult<T>> {
    if (this.state === 'idle') {
      try {
        this.start();
      } catch (e) {
        this.finish();
        return Promise.reject(toDynamoError(e));
      }
    }
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
    const failure = this.failure;
    this.failure = undefined;
    return failure ? Promise.reject(failure) : Promise.resolve(DONE);
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
   * Ends the stream at once, dropping what is buffered: the handler's context is cancelled with
   * `error`, and (when `surface`) the caller's next read throws it.
   */
  abort(error: DynamoError, surface: boolean): void {
    if (this.state === 'done') return;
    if (this.state === 'idle') {
      this.state = 'done';
      this.failure = surface ? error : undefined;
      return;
    }
    this.server?.abort(error);
    if (this.buffer !== undefined) this.buffer.length = 0;
    this.head = 0;
    this.state = 'ending';
    this.failure = surface ? error : undefined;
    this.wakeProducer();
    this.settleReaders();
    this.finish();
  }

  private start(): void {
    this.state = 'open';
    const { signal, parent, headers } = this.options;
    throwIfCancelled(signal, parent);
    if (this.deadline !== undefined && this.deadline <= Date.now()) {
      throw new TimeoutError(`request to ${this.subject} passed its deadline before it was sent`);
    }
    this.payload = copyJson(this.request, 'request payload', this.plane.maxPayload);
    if (headers !== undefined) this.headers = { ...headers };
    this.plane.open(this as MemoryResponseStream<unknown>);
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

  /** Stops the caller's side: its cancellation links, its timer, the plane's tracking. */
  private finish(): void {
    if (this.state !== 'ending' && this.state !== 'open') {
      if (this.state === 'idle') this.state = 'done';
      return;
    }
    this.state = 'done';
    this.offSignal();
    this.offSignal = noop;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
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
      const failure = this.failure;
      this.failure = undefined;
      if (failure) reject(failure);
      else resolve(DONE);
    }
  }
}

/**
 * What a handler of a {@link MemoryServedEndpoint} gets as its context, and the endpoint's record
 * of the request in flight: cancelled by the caller (through {@link Exchange.server}) or by the
 * endpoint closing; its AbortSignal is created when the handler first reads `signal`.
 */
class MemoryHandlerContext extends Cancellation<DynamoError> implements RequestContext, Linked<MemoryHandlerContext> {
  readonly requestId: string;
  linkPrev: MemoryHandlerContext | undefined = undefined;
  linkNext: MemoryHandlerContext | undefined = undefined;
  linkOwner: object | undefined = undefined;
  readonly headers: Readonly<Record<string, string>>;
  readonly deadline: number | undefined;
  readonly subject: string;
  /** The handler's iteration, once started. */
  iterator: AsyncIterator<unknown> | undefined = undefined;

  constructor(
    readonly exchange: Exchange,
    private readonly endpoint: MemoryServedEndpoint,
  ) {
    super();
    this.requestId = exchange.requestId;
    this.headers = exchange.headers;
    this.deadline = exchange.deadline;
    this.subject = exchange.subject;
  }

  /**
   * Cancelled (by the caller or the endpoint closing): fires the handler's signal and stops the
   * handler without waiting for its pending step (it may ignore its signal).
   */
  abort(reason: DynamoError): void {
    if (!this.cancel(reason)) return;
    this.endpoint.forget(this);
    try {
      this.iterator?.return?.()?.catch(noop);
    } catch {
      // an iterator whose return() throws: nothing left to stop
    }
  }
}

/** One endpoint served by a {@link MemoryRequestPlane}. */
class MemoryServedEndpoint implements ServedEndpoint {
  private readonly active = new LinkedSet<MemoryHandlerContext>();
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
    for (const a of this.active.values()) {
      a.exchange.end(error);
      a.abort(error);
    }
    this.onClosed();
    this.wakeIdle();
  }

  /** Leaves the in-flight set once: when the handler ends, or at once when the stream is cancelled. */
  forget(ctx: MemoryHandlerContext): void {
    if (!this.active.delete(ctx)) return;
    ctx.exchange.server = undefined;
    if (this.active.size === 0) this.wakeIdle();
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
      exchange.end(new NoRespondersError(this.subject));
      return;
    }
    void this.run(exchange);
  }

  private async run(exchange: Exchange): Promise<void> {
    const ctx = new MemoryHandlerContext(exchange, this);
    this.active.add(ctx);
    exchange.server = ctx;
    try {
      const iterator = this.handler(exchange.payload, ctx)[Symbol.asyncIterator]();
      ctx.iterator = iterator;
      while (!ctx.cancelled) {
        const r = await iterator.next();
        if (ctx.cancelled) break;
        if (r.done) {
          exchange.end();
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
        while (!exchange.hasSpace && !exchange.closed) await exchange.waitForSpace();
        if (!exchange.push(item)) break;
      }
    } catch (e) {
      if (!ctx.cancelled) {
        const wire: WireError = toWireError(e);
        if (wire.code === 'INTERNAL') {
          this.logger.warn('handler failed', { request_id: exchange.requestId, error: wire.message });
        }
        exchange.end(fromWireError(wire));
      }
    } finally {
      this.forget(ctx);
    }
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
