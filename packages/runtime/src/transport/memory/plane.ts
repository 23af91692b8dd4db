import {
  ClosedError,
  type DynamoError,
  InternalError,
  InvalidArgumentError,
  NoRespondersError,
  fromWireError,
} from '../../errors';
import type { Logger } from '../../logger';
import { noop } from '../../util/abort';
import { copyJson } from '../../util/json';
import { LinkedSet, type Linked } from '../../util/linked-set';
import { parseSubject } from '../../util/subject';
import { nextTurn, TURN_CHECK_ITEMS, turnIsLong } from '../../util/turn';
import {
  DEFAULT_MAX_PAYLOAD,
  type RequestHandler,
  type RequestOptions,
  type RequestPlane,
  type ResponseStream,
  type ServeOptions,
  type ServedEndpoint,
} from '../request-plane';
import { EndpointCore, ServedCall, handlerFailure } from '../stream-core';
import { type Exchange, type MemoryBus, type MemoryBusClient, addResponder, internalsOf } from './bus';
import { MemoryResponseStream, type PlaneInternals } from './stream';

/** Options of {@link MemoryRequestPlane}. */
export interface MemoryRequestPlaneOptions {
  /** Largest encoded request (and response item) in bytes. Default 64 MiB, as the NATS plane's. */
  maxPayload?: number;
  /** Items buffered per stream before the handler is paused (backpressure). Default 16. */
  streamBuffer?: number;
  logger?: Logger;
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

/**
 * What a handler of a {@link MemoryServedEndpoint} gets as its context, and the endpoint's record
 * of the request in flight: cancelled by the caller (through {@link Exchange.server}) or by the
 * endpoint closing.
 */
class MemoryHandlerContext extends ServedCall implements Linked<MemoryHandlerContext> {
  linkPrev: MemoryHandlerContext | undefined = undefined;
  linkNext: MemoryHandlerContext | undefined = undefined;
  linkOwner: object | undefined = undefined;

  constructor(
    readonly exchange: Exchange,
    private readonly endpoint: MemoryServedEndpoint,
  ) {
    super(exchange.requestId, exchange.headers, exchange.deadline, exchange.subject);
  }

  protected stopped(): void {
    this.endpoint.forget(this);
  }
}

/** One endpoint served by a {@link MemoryRequestPlane}. */
class MemoryServedEndpoint extends EndpointCore {
  private readonly active = new LinkedSet<MemoryHandlerContext>();
  private unserve: () => void = noop;

  constructor(
    subject: string,
    private readonly handler: RequestHandler,
    logger: Logger,
    private readonly maxPayload: number,
    private readonly onClosed: () => void,
  ) {
    super(subject, logger, DEFAULT_DRAIN_TIMEOUT_MS);
  }

  get inflight(): number {
    return this.active.size;
  }

  start(bus: MemoryBus): void {
    this.unserve = addResponder(bus, this.subject, (exchange) => this.accept(exchange));
  }

  /** Leaves the in-flight set once: when the handler ends, or at once when the stream is cancelled. */
  forget(ctx: MemoryHandlerContext): void {
    if (!this.active.delete(ctx)) return;
    ctx.exchange.server = undefined;
    this.requestEnded();
  }

  protected stopTaking(): void {
    this.unserve();
  }

  protected endInflight(error: DynamoError): void {
    for (const a of this.active.values()) {
      a.exchange.end(error);
      a.abort(error);
    }
  }

  protected closed(): void {
    this.onClosed();
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
      let items = 0;
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
        // A handler that answers at once (promise jobs only) would otherwise run its whole
        // stream in one turn of the event loop: let the other requests of the process run.
        if (++items % TURN_CHECK_ITEMS === 0 && turnIsLong()) await nextTurn();
      }
    } catch (e) {
      if (!ctx.cancelled) exchange.end(fromWireError(handlerFailure(e, this.logger, exchange.requestId)));
    } finally {
      this.forget(ctx);
    }
  }
}
