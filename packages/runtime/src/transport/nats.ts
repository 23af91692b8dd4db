import { randomUUID } from 'node:crypto';
import {
  createInbox,
  headers as natsHeaders,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  type PublishOptions,
  type Subscription,
} from '@nats-io/transport-node';
import {
  CancelledError,
  ClosedError,
  type DynamoError,
  InternalError,
  InvalidArgumentError,
  NoRespondersError,
  PayloadTooLargeError,
  TimeoutError,
  UnavailableError,
  type WireError,
  abortReason,
  fromWireError,
  isDynamoError,
  toDynamoError,
  toWireError,
} from '../errors';
import type { Logger } from '../logger';
import { noopLogger } from '../logger';
import { noop, onAbort, unrefInterval, unrefTimeout } from '../util/abort';
import { linkCancellation, throwIfCancelled } from '../util/cancellation';
import { Channel } from '../util/channel';
import { encodeJson } from '../util/json';
import { checkSubject, parseSubject } from '../util/subject';
import {
  FrameType,
  HDR_DEADLINE,
  HDR_HEADERS,
  HDR_REQUEST_ID,
  HDR_WINDOW,
  QUEUE_GROUP,
  ackFrame,
  cancelFrame,
  batchFrame,
  creditFrame,
  dataFrame,
  endFrame,
  errorFrame,
  finalFrame,
  frameBody,
  frameRest,
  heartbeatFrame,
  readSeq,
} from './frames';
import type {
  RequestContext,
  RequestHandler,
  RequestOptions,
  RequestPlane,
  ResponseStream,
  ServeOptions,
  ServedEndpoint,
} from './request-plane';

/** Options of {@link NatsRequestPlane}. */
export interface NatsRequestPlaneOptions {
  logger?: Logger;
  /** A served stream that sent nothing for this long sends a heartbeat frame. Default 1000 ms. */
  heartbeatIntervalMs?: number;
  /**
   * A called stream that received nothing (not even a heartbeat or the server's ack) for this
   * long fails with TIMEOUT naming the subject, and is cancelled. Default 5000 ms. Keep it several
   * times the serving side's `heartbeatIntervalMs`.
   */
  heartbeatTimeoutMs?: number;
  /** Default bound of {@link ServedEndpoint.drain} and {@link NatsRequestPlane.drain}. Default 30000 ms. */
  drainTimeoutMs?: number;
  /**
   * Flow control of the streams this plane calls: the serving handler is paused while this many
   * items are sent and not yet consumed by the caller. Default 1024 (a token stream of small
   * items; 64 stalled 2,000-token streams on the credit round trip at a third of the speed, and
   * 256 still left a fast stream at ~70 % of the speed of 1024, in frames of 64 items). The
   * server sends a frame every quarter window at the latest, so the first items of a fast stream
   * do not wait for a whole window to be encoded.
   */
  streamWindow?: number;
}

/** Used only before the connection has seen the server's INFO (it always has after `connect()`). */
const FALLBACK_MAX_PAYLOAD = 1024 * 1024;
/** The watchdog checks idle streams this many times per heartbeat timeout. */
const WATCHDOG_TICKS = 5;
/** Upper bound of the NATS headers of a request, used to skip the exact size count of small requests. */
const HEADER_ALLOWANCE = 1024;
const DONE: IteratorResult<never> = { value: undefined, done: true };
const utf8 = new TextDecoder();

/** Receives the messages of one token of a plane's inbox. */
interface Route {
  onMessage(msg: Msg): void;
}

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** True for a `503` status message: the server found nobody subscribed on the subject. */
function isNoResponders(msg: Msg): boolean {
  return msg.data.length === 0 && msg.headers?.code === 503;
}

/** Byte size of `text` in UTF-8, counted only when it may exceed `limit`. */
function exceeds(text: string, extra: number, limit: number): number | undefined {
  if (text.length * 3 + extra <= limit) return undefined;
  const size = Buffer.byteLength(text, 'utf8') + extra;
  return size > limit ? size : undefined;
}

/**
 * The {@link RequestPlane} on NATS core: request/streaming-response between processes, with
 * acks, sequence numbers, heartbeats, cancellation and no-responders detection. The wire protocol
 * is documented in `transport/frames.ts`.
 *
 * The plane does not own the connection: close the plane (or drain it), then the connection.
 * One plane serves any number of subjects and calls any number of streams over ONE inbox
 * subscription.
 */
export class NatsRequestPlane implements RequestPlane {
  /** @internal */ readonly logger: Logger;
  /** @internal */ readonly heartbeatIntervalMs: number;
  /** @internal */ readonly heartbeatTimeoutMs: number;
  /** @internal */ readonly streamWindow: number;
  /** @internal The inbox prefix `P` of this plane; tokens are `P.<token>`. */
  readonly prefix: string;
  private readonly drainTimeoutMs: number;
  private readonly inbox: Subscription;
  private readonly routes = new Map<string, Route>();
  private tokenSeq = 0;
  private readonly streams = new Set<NatsResponseStream<unknown>>();
  private readonly served = new Set<ServerRequest>();
  private readonly endpoints = new Set<NatsServedEndpoint>();
  private watchdog: NodeJS.Timeout | undefined;
  private heartbeats: NodeJS.Timeout | undefined;
  private state: 'open' | 'draining' | 'closed' = 'open';
  private draining: Promise<void> | undefined;
  private closing: Promise<void> | undefined;

  /**
   * @param nc an open NATS connection (see `connectNats`); it must outlive the plane.
   */
  constructor(
    /** @internal */ readonly nc: NatsConnection,
    options: NatsRequestPlaneOptions = {},
  ) {
    this.logger = (options.logger ?? noopLogger).child({ component: 'nats-request-plane' });
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? 1000;
    this.heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 5000;
    this.drainTimeoutMs = options.drainTimeoutMs ?? 30_000;
    this.streamWindow = options.streamWindow ?? 1024;
    if (!Number.isInteger(this.streamWindow) || this.streamWindow < 1) {
      throw new InvalidArgumentError(`streamWindow must be a positive integer, got ${this.streamWindow}`);
    }
    for (const [k, v] of [
      ['heartbeatIntervalMs', this.heartbeatIntervalMs],
      ['heartbeatTimeoutMs', this.heartbeatTimeoutMs],
      ['drainTimeoutMs', this.drainTimeoutMs],
    ] as const) {
      if (!(v > 0) || !Number.isFinite(v)) throw new InvalidArgumentError(`${k} must be a positive number, got ${v}`);
    }
    if (nc.isClosed()) throw new ClosedError('NATS connection closed');
    // The connection's inbox prefix (e.g. `_INBOX_worker1`), so per-user NATS permissions can allow it.
    this.prefix = createInbox((nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix);
    const skip = this.prefix.length + 1;
    this.inbox = nc.subscribe(`${this.prefix}.*`, {
      callback: (err, msg) => {
        if (err) {
          this.logger.warn('inbox subscription error', { error: err.message });
          return;
        }
        try {
          this.routes.get(msg.subject.slice(skip))?.onMessage(msg);
        } catch (e) {
          this.logger.error('inbox message handling failed', { subject: msg.subject, error: errorMessage(e) });
        }
      },
    });
    nc.closed().then(
      () => this.connectionClosed(),
      () => this.connectionClosed(),
    );
    void this.followStatus();
  }

  /** Largest encoded request (NATS headers + JSON body) the server accepts: its `max_payload`. */
  get maxPayload(): number {
    return this.nc.info?.max_payload ?? FALLBACK_MAX_PAYLOAD;
  }

  /**
   * Serves `subject` (no wildcards) in the queue group `dynamo`: each request goes to one of
   * the processes serving it. Resolves once the server knows the subscription.
   */
  async serve(subject: string, handler: RequestHandler, options: ServeOptions = {}): Promise<ServedEndpoint> {
    this.check();
    parseSubject(subject, false);
    for (const e of this.endpoints) {
      if (e.subject === subject) throw new InvalidArgumentError(`subject ${subject} is already served by this plane`);
    }
    const logger = (options.logger ?? this.logger).child({ subject });
    const endpoint = new NatsServedEndpoint(this, subject, handler, logger, this.drainTimeoutMs, (e) =>
      this.endpoints.delete(e),
    );
    this.endpoints.add(endpoint);
    try {
      endpoint.start();
      await this.nc.flush();
    } catch (e) {
      await endpoint.close();
      throw toNatsError(e, `cannot serve ${subject}`);
    }
    logger.debug('serving');
    return endpoint;
  }

  request<T = unknown>(subject: string, payload: unknown, options: RequestOptions = {}): ResponseStream<T> {
    return new NatsResponseStream<T>(this, subject, payload, options);
  }

  /**
   * Drains every served endpoint (see {@link ServedEndpoint.drain}), then closes the plane.
   * While draining, the plane serves nothing new but may still call others (in-flight handlers
   * often need to).
   */
  drain(options: { timeoutMs?: number } = {}): Promise<void> {
    if (this.state === 'closed') return this.closing ?? Promise.resolve();
    this.draining ??= (async () => {
      this.state = 'draining';
      const timeoutMs = options.timeoutMs ?? this.drainTimeoutMs;
      await Promise.all([...this.endpoints].map((e) => e.drain({ timeoutMs })));
      await this.close();
    })();
    return this.draining;
  }

  /**
   * Closes at once: served endpoints stop (their in-flight callers get UNAVAILABLE), called streams
   * are cancelled (their iteration fails with CLOSED), the inbox subscription goes. Idempotent.
   * The connection stays open.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown(new ClosedError('request plane closed'));
    return this.closing;
  }

  /** @internal Allocates an inbox token routed to `route`; returns the full subject `P.<token>`. */
  register(route: Route): { token: string; subject: string } {
    const token = (++this.tokenSeq).toString(36);
    this.routes.set(token, route);
    return { token, subject: `${this.prefix}.${token}` };
  }

  /** @internal */
  unregister(token: string): void {
    this.routes.delete(token);
  }

  /** @internal A called stream became live: watch it for idleness. */
  watch(stream: NatsResponseStream<unknown>): void {
    this.streams.add(stream);
    if (!this.watchdog) {
      const tickMs = this.heartbeatTimeoutMs / WATCHDOG_TICKS;
      this.watchdog = unrefInterval(() => this.checkIdle(), tickMs);
    }
  }

  /** @internal */
  unwatch(stream: NatsResponseStream<unknown>): void {
    this.streams.delete(stream);
    if (this.streams.size === 0 && this.watchdog) {
      clearInterval(this.watchdog);
      this.watchdog = undefined;
    }
  }

  /** @internal A served request started: send it heartbeats while idle. */
  addServed(r: ServerRequest): void {
    this.served.add(r);
    this.heartbeats ??= unrefInterval(() => {
      for (const s of this.served) s.heartbeatTick();
    }, this.heartbeatIntervalMs);
  }

  /** @internal */
  removeServed(r: ServerRequest): void {
    this.served.delete(r);
    if (this.served.size === 0 && this.heartbeats) {
      clearInterval(this.heartbeats);
      this.heartbeats = undefined;
    }
  }

  /** @internal Throws CLOSED unless the plane may serve new subjects. */
  check(): void {
    if (this.state !== 'open')
      throw new ClosedError(`request plane ${this.state === 'draining' ? 'draining' : 'closed'}`);
    if (this.nc.isClosed()) throw new ClosedError('NATS connection closed');
  }

  /** @internal Throws CLOSED unless the plane may send requests (also while draining). */
  checkCallable(): void {
    if (this.state === 'closed') throw new ClosedError('request plane closed');
    if (this.nc.isClosed()) throw new ClosedError('NATS connection closed');
  }

  /** @internal */
  get isOpen(): boolean {
    return this.state !== 'closed';
  }

  private checkIdle(): void {
    for (const s of [...this.streams]) s.idleTick(WATCHDOG_TICKS);
  }

  /** Watches the connection: a disconnect may have swallowed requests in flight (core NATS is at most once). */
  private async followStatus(): Promise<void> {
    try {
      for await (const st of this.nc.status()) {
        if (this.state === 'closed') return;
        if (st.type === 'disconnect') this.connectionLost();
      }
    } catch {
      // the connection closed: connectionClosed() takes over
    }
  }

  /**
   * The connection dropped: a request sent just before may never have reached a server, and
   * its answer could only come back as a heartbeat timeout seconds later. Streams that have
   * received nothing yet fail now with UNAVAILABLE, which callers treat as "not served; safe to
   * send again" (EndpointClient retries it after the reconnect). Streams already under way keep
   * going: frames lost meanwhile show as a sequence gap or a heartbeat timeout.
   */
  private connectionLost(): void {
    let failed = 0;
    for (const s of [...this.streams]) {
      if (s.failIfNothingReceived(new UnavailableError('NATS connection lost before the answer started'))) failed++;
    }
    if (failed > 0) this.logger.warn('NATS connection lost; streams with no answer yet failed for retry', { failed });
  }

  private connectionClosed(): void {
    if (this.state === 'closed') return;
    this.logger.warn('NATS connection closed; request plane closes');
    this.closing ??= this.shutdown(new UnavailableError('NATS connection closed'));
  }

  private async shutdown(error: DynamoError): Promise<void> {
    this.state = 'closed';
    await Promise.all([...this.endpoints].map((e) => e.close()));
    for (const s of [...this.streams]) s.abort(error, true);
    this.streams.clear();
    for (const r of [...this.served]) r.abort(error);
    if (this.watchdog) clearInterval(this.watchdog);
    if (this.heartbeats) clearInterval(this.heartbeats);
    this.watchdog = this.heartbeats = undefined;
    this.routes.clear();
    try {
      if (!this.nc.isClosed()) this.inbox.unsubscribe();
    } catch {
      // the connection is closing: nothing to unsubscribe
    }
  }
}

/** Maps an error of the NATS client to a dynamo-ts error. */
function toNatsError(e: unknown, what: string): DynamoError {
  if (isDynamoError(e)) return toDynamoError(e);
  const name = e instanceof Error ? e.name : '';
  const msg = errorMessage(e);
  if (name === 'ClosedConnectionError' || /closed/i.test(msg))
    return new ClosedError(`${what}: NATS connection closed`, { cause: e });
  return new UnavailableError(`${what}: ${msg}`, { cause: e });
}

/** The caller's side of one request; the request is sent on the first `next()`. */
/** An item that came in a `b` frame (parsed with its batch). */
class BatchItem {
  constructor(readonly value: unknown) {}
}

class NatsResponseStream<T> implements ResponseStream<T>, AsyncIterator<T>, Route {
  readonly requestId: string;
  /** Consumer-facing state. */
  private state: 'idle' | 'open' | 'done' = 'idle';
  /** Transport state: 'live' while frames are expected, 'cancelling' while waiting for the ack to cancel. */
  private link: 'none' | 'live' | 'cancelling' | 'gone' = 'none';
  /** Items received: the JSON of a `d` frame, or an item of a `b` frame (already parsed). */
  private channel: Channel<string | BatchItem> | undefined;
  private earlyError: DynamoError | undefined;
  private readonly deadline: number | undefined;
  private token = '';
  private control: string | undefined;
  private pendingCancel: WireError | undefined;
  private received = 0;
  /** Items handed to the consumer, and the count last reported to the server (flow control). */
  private consumed = 0;
  private credited = 0;
  /** Watchdog ticks since the last frame. */
  private idleTicks = 0;
  private timer: NodeJS.Timeout | undefined;
  private offSignal: () => void = noop;

  constructor(
    private readonly plane: NatsRequestPlane,
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
    const channel = this.channel;
    if (!channel) {
      const e = this.earlyError;
      this.earlyError = undefined;
      return e ? Promise.reject(e) : Promise.resolve(DONE);
    }
    return channel.next().then(
      (r) => {
        if (r.done) {
          this.finish();
          return DONE;
        }
        this.consumed += 1;
        // Credit every quarter window: the server still has three quarters of a window to send
        // while the credit travels, so a fast stream does not stall on the round trip.
        if (this.consumed - this.credited >= Math.max(1, this.plane.streamWindow >> 2)) this.sendCredit();
        const v = r.value;
        return { value: (typeof v === 'string' ? JSON.parse(v) : v.value) as T, done: false };
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
   * Ends the stream from the caller's side at once (buffered items are dropped): the handler is
   * cancelled with `error` as its reason, and (when `surface`) the next read throws it.
   */
  abort(error: DynamoError, surface: boolean): void {
    if (this.state === 'done') return;
    if (this.state === 'idle') {
      this.state = 'done';
      this.earlyError = surface ? error : undefined;
      return;
    }
    this.channel?.abort(surface ? error : undefined);
    this.sendCancel(toWireError(error));
    this.finish();
  }

  /** @see Route.onMessage */
  onMessage(msg: Msg): void {
    this.idleTicks = 0;
    const data = msg.data;
    if (data.length === 0) {
      if (isNoResponders(msg)) {
        if (this.link === 'live') this.fail(new NoRespondersError(this.subject), false);
        else this.unlink();
      }
      return;
    }
    const type = data[0];
    if (this.link === 'cancelling') {
      if (type === FrameType.Ack) {
        this.control = frameRest(data);
        this.sendCancel(this.pendingCancel!);
      } else if (type === FrameType.End || type === FrameType.Final || type === FrameType.Error) {
        this.unlink();
      }
      return;
    }
    if (this.link !== 'live') return;
    switch (type) {
      case FrameType.Data: {
        const seq = readSeq(data);
        if (seq !== this.received + 1) {
          this.lost(seq);
          return;
        }
        this.received = seq;
        this.channel!.push(frameBody(data));
        return;
      }
      case FrameType.Batch:
      case FrameType.Final: {
        const seq = readSeq(data);
        if (seq !== this.received + 1) {
          this.lost(seq);
          return;
        }
        let items: unknown;
        try {
          items = JSON.parse(frameBody(data));
        } catch {
          items = undefined;
        }
        if (!Array.isArray(items)) {
          this.fail(new InternalError(`malformed batch frame from ${this.subject} (request ${this.requestId})`), true);
          return;
        }
        this.received = seq + items.length - 1;
        for (const value of items) this.channel!.push(new BatchItem(value));
        if (type === FrameType.Final) {
          this.unlink();
          this.channel!.end();
        }
        return;
      }
      case FrameType.Heartbeat: {
        const seq = readSeq(data);
        if (seq !== this.received) this.lost(seq);
        // The server may be paused on a credit that was lost: repeat it (it is cumulative).
        else if (this.consumed > 0 && this.channel!.size === 0) this.sendCredit();
        return;
      }
      case FrameType.Ack:
        this.control ??= frameRest(data);
        return;
      case FrameType.End: {
        const seq = readSeq(data);
        if (seq !== this.received) {
          this.lost(seq);
          return;
        }
        this.unlink();
        this.channel!.end();
        return;
      }
      case FrameType.Error: {
        const seq = readSeq(data);
        // An error refused before the handler ran (draining endpoint, past deadline) has seq 0.
        if (seq !== this.received && seq !== 0) {
          this.lost(seq);
          return;
        }
        let wire: { code?: unknown; message?: unknown };
        try {
          wire = JSON.parse(frameBody(data)) as { code?: unknown; message?: unknown };
        } catch {
          wire = { code: 'INTERNAL', message: `malformed error frame from ${this.subject}` };
        }
        this.unlink();
        this.channel!.end(fromWireError(wire));
        return;
      }
      default:
        this.plane.logger.debug('unknown frame', { subject: this.subject, request_id: this.requestId, type });
    }
  }

  /** Called by the plane's watchdog every heartbeat timeout / `ticks`. */
  idleTick(ticks: number): void {
    if (++this.idleTicks <= ticks) return;
    if (this.link === 'cancelling') {
      this.unlink();
      return;
    }
    const ms = this.plane.heartbeatTimeoutMs;
    this.fail(
      this.control === undefined && this.received === 0
        ? // Never acknowledged: no handler started it (lost on a dying server or route), so it is
          // safe to send again; UNAVAILABLE says so to callers that retry.
          new UnavailableError(`no answer from ${this.subject} within ${ms} ms (request ${this.requestId})`)
        : new TimeoutError(
            `stream from ${this.subject} idle for more than ${ms} ms: no data or heartbeat (request ${this.requestId})`,
          ),
      true,
    );
  }

  private start(): void {
    this.state = 'open';
    this.plane.checkCallable();
    const { signal, parent } = this.options;
    throwIfCancelled(signal, parent);
    if (this.deadline !== undefined && this.deadline <= Date.now()) {
      throw new TimeoutError(`request to ${this.subject} passed its deadline before it was sent`);
    }
    checkSubject(this.subject);
    const body = encodeJson(this.payload, 'request payload');
    const hdrs = this.buildHeaders();
    const limit = this.plane.maxPayload;
    const big = exceeds(body, HEADER_ALLOWANCE, limit);
    if (big !== undefined) {
      const size = Buffer.byteLength(body, 'utf8') + encodedHeaderSize(hdrs);
      if (size > limit) throw new PayloadTooLargeError(size, limit);
    }
    const { token, subject: reply } = this.plane.register(this);
    this.token = token;
    this.link = 'live';
    this.channel = new Channel<string | BatchItem>();
    try {
      this.plane.nc.publish(this.subject, body, { reply, headers: hdrs });
    } catch (e) {
      this.unlink();
      throw toNatsError(e, `request to ${this.subject}`);
    }
    this.plane.watch(this as NatsResponseStream<unknown>);
    this.offSignal = linkCancellation(signal, parent, (reason) => this.abort(reason, true));
    if (this.deadline !== undefined && this.state === 'open') {
      const byTimeout = this.options.timeoutMs !== undefined && this.options.deadline === undefined;
      this.timer = unrefTimeout(
        () =>
          this.abort(
            new TimeoutError(
              byTimeout
                ? `request to ${this.subject} timed out after ${this.options.timeoutMs} ms`
                : `request to ${this.subject} passed its deadline`,
            ),
            true,
          ),
        this.deadline - Date.now(),
      );
    }
  }

  private buildHeaders(): MsgHdrs {
    const h = natsHeaders();
    try {
      h.set(HDR_REQUEST_ID, this.requestId);
      h.set(HDR_WINDOW, String(this.plane.streamWindow));
      if (this.deadline !== undefined) h.set(HDR_DEADLINE, String(this.deadline));
      const user = this.options.headers;
      if (user && Object.keys(user).length > 0) h.set(HDR_HEADERS, JSON.stringify(user));
    } catch (e) {
      throw new InvalidArgumentError(`invalid request header: ${errorMessage(e)}`, { cause: e });
    }
    return h;
  }

  /** Reports the items consumed so far to the server, which pauses the handler a window ahead. */
  private sendCredit(): void {
    if (this.link !== 'live' || this.control === undefined) return;
    this.credited = this.consumed;
    try {
      this.plane.nc.publish(this.control, creditFrame(this.consumed));
    } catch (e) {
      this.plane.logger.debug('could not send credit', { subject: this.subject, error: errorMessage(e) });
    }
  }

  /** The server lost frames (a gap or a reordering): fail after the items received in order. */
  private lost(seq: number): void {
    this.fail(
      new UnavailableError(
        `stream from ${this.subject} lost frames: expected sequence ${this.received + 1}, got ${seq} (request ${this.requestId})`,
      ),
      true,
    );
  }

  /** @internal Fails the stream with `error` if no item has arrived yet; returns whether it did. */
  failIfNothingReceived(error: DynamoError): boolean {
    if (this.link !== 'live' || this.received > 0) return false;
    this.fail(error, true);
    return true;
  }

  /** Ends the stream because of the transport: items already received are read first, then `error`. */
  private fail(error: DynamoError, cancel: boolean): void {
    if (this.link !== 'live') return;
    this.channel?.end(error);
    if (cancel) this.sendCancel(toWireError(error));
    else this.unlink();
    this.stopTimers();
  }

  /** Tells the server to cancel (now, or when its ack arrives), then forgets the route. */
  private sendCancel(reason: WireError): void {
    if (this.link === 'none' || this.link === 'gone') return;
    if (this.control === undefined) {
      // The ack (with the control subject) has not arrived: cancel when it does.
      this.link = 'cancelling';
      this.pendingCancel = reason;
      this.idleTicks = 0;
      return;
    }
    this.unlink();
    try {
      if (!this.plane.nc.isClosed()) this.plane.nc.publish(this.control, cancelFrame(reason));
    } catch (e) {
      this.plane.logger.debug('could not send cancel', { subject: this.subject, error: errorMessage(e) });
    }
  }

  private unlink(): void {
    if (this.link === 'none' || this.link === 'gone') return;
    const wasCancelling = this.link === 'cancelling';
    this.link = 'gone';
    this.plane.unregister(this.token);
    this.plane.unwatch(this as NatsResponseStream<unknown>);
    if (!wasCancelling) this.stopTimers();
  }

  private stopTimers(): void {
    this.offSignal();
    this.offSignal = noop;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** The consumer is done with the stream. */
  private finish(): void {
    this.state = 'done';
    this.stopTimers();
    if (this.link === 'live') this.sendCancel(toWireError(new CancelledError('response stream closed')));
  }
}

function encodedHeaderSize(h: MsgHdrs): number {
  const enc = (h as unknown as { encode?: () => Uint8Array }).encode;
  return typeof enc === 'function' ? enc.call(h).length : HEADER_ALLOWANCE;
}

/** Items after which a stream's first frame leaves without waiting for the end of the turn. */
const FIRST_FRAME_ITEMS = 16;

/** One request being served: the handler's run and the frames it sends. */
class ServerRequest implements Route {
  readonly controller = new AbortController();
  private readonly token: string;
  private readonly control: string;
  private readonly pubOptions: PublishOptions;
  /** Items sent so far (the sequence number of the last one). */
  private seq = 0;
  /** Items yielded by the handler in this turn of the event loop, not sent yet (JSON). */
  private pending: string[] = [];
  private pendingChars = 0;
  private flushScheduled: NodeJS.Immediate | undefined;
  private readonly flushNow = (): void => {
    this.flushScheduled = undefined;
    this.flush();
  };
  /** Items the caller reported consumed; data frame `s` is sent only while `s - acked <= window`. */
  private acked = 0;
  private creditWaiter: (() => void) | undefined;
  private sentSinceTick = false;
  private done = false;
  private deadlineTimer: NodeJS.Timeout | undefined;
  private iterator: AsyncIterator<unknown> | undefined;

  constructor(
    private readonly plane: NatsRequestPlane,
    private readonly endpoint: NatsServedEndpoint,
    private readonly reply: string,
    readonly requestId: string,
    /** The caller's flow-control window (items); Infinity when it sent none. */
    private readonly window: number,
    private readonly onDone: (r: ServerRequest) => void,
  ) {
    const { token, subject } = plane.register(this);
    this.token = token;
    this.control = subject;
    this.pubOptions = { reply: subject };
    plane.addServed(this);
  }

  /** Sends the ack and runs the handler to its end (or until cancelled). Never throws. */
  async run(
    handler: RequestHandler,
    payload: unknown,
    ctx: Omit<RequestContext, 'signal' | 'cancelled' | 'onCancel'>,
  ): Promise<void> {
    const signal = this.controller.signal;
    const offAbort = onAbort(signal, () => {
      this.finish();
      try {
        this.iterator?.return?.()?.catch(noop);
      } catch {
        // an iterator whose return() throws: nothing left to stop
      }
    });
    if (ctx.deadline !== undefined) {
      this.deadlineTimer = unrefTimeout(() => {
        const e = new TimeoutError(`request ${this.requestId} to ${ctx.subject} passed its deadline`);
        this.send(errorFrame(this.seq, e));
        this.abort(e);
      }, ctx.deadline - Date.now());
    }
    this.send(ackFrame(this.control));
    try {
      this.iterator = handler(payload, {
        ...ctx,
        signal,
        get cancelled(): boolean {
          return signal.aborted;
        },
        onCancel(listener: (reason: Error) => void): () => void {
          return onAbort(signal, () => listener(abortReason(signal)));
        },
      })[Symbol.asyncIterator]();
      const limit = this.plane.maxPayload;
      const batchItems = Math.max(1, Math.min(this.window, 1024) >> 2);
      while (!signal.aborted) {
        const r = await this.iterator.next();
        if (signal.aborted) break;
        if (r.done) break;
        let json: string;
        try {
          json = encodeJson(r.value, 'response item');
        } catch (e) {
          throw new InternalError((e as Error).message, { cause: e });
        }
        const frameSize = exceeds(json, 2 + String(this.seq + this.pending.length + 1).length, limit);
        if (frameSize !== undefined) throw new PayloadTooLargeError(frameSize, limit);
        // Backpressure: wait while the caller holds a full window of unconsumed items.
        while (this.seq + this.pending.length - this.acked >= this.window && !signal.aborted) {
          this.flush();
          await this.credit();
        }
        if (signal.aborted) break;
        this.enqueue(json, limit);
        // A quarter window per frame at most, and the first frame early: the caller starts on the
        // first items (and credits them) while the rest are encoded.
        if (this.pending.length >= (this.seq === 0 ? FIRST_FRAME_ITEMS : batchItems)) this.flush();
      }
      if (!signal.aborted) this.flush(true);
    } catch (e) {
      if (!signal.aborted) {
        this.flush();
        const wire = toWireError(e);
        if (wire.code === 'INTERNAL') {
          this.endpoint.logger.warn('handler failed', { request_id: this.requestId, error: wire.message });
        }
        this.send(errorFrame(this.seq, wire));
      }
    } finally {
      offAbort();
      this.finish();
    }
  }

  /**
   * Queues one item: items yielded in the same turn of the event loop go out together at its end
   * (one `b` frame, or a `d` frame for a single item), so a fast handler costs one NATS message
   * per batch instead of one per item.
   */
  private enqueue(json: string, limit: number): void {
    // Worst case 3 bytes per UTF-16 unit, plus the frame's header and the commas.
    if (this.pending.length > 0 && (this.pendingChars + json.length) * 3 + 32 + this.pending.length > limit) {
      this.flush();
    }
    this.pending.push(json);
    this.pendingChars += json.length;
    this.flushScheduled ??= setImmediate(this.flushNow);
  }

  /** Sends the queued items now; with `end`, the end of the stream too (in the same message when items wait). */
  private flush(end = false): void {
    if (this.flushScheduled) {
      clearImmediate(this.flushScheduled);
      this.flushScheduled = undefined;
    }
    const items = this.pending;
    if (items.length === 0) {
      if (end) this.send(endFrame(this.seq));
      return;
    }
    this.pending = [];
    this.pendingChars = 0;
    if (this.done) return;
    const first = this.seq + 1;
    this.seq += items.length;
    if (end) this.send(finalFrame(first, items));
    else this.send(items.length === 1 ? dataFrame(first, items[0]!) : batchFrame(first, items));
  }

  /** @see Route.onMessage: a cancel from the caller, or a 503 bounced back because the caller is gone. */
  onMessage(msg: Msg): void {
    if (this.done) return;
    if (isNoResponders(msg)) {
      this.endpoint.logger.debug('caller went away; cancelling', { request_id: this.requestId });
      this.abort(new CancelledError(`caller of request ${this.requestId} went away`));
      return;
    }
    const data = msg.data;
    if (data.length === 0) return;
    if (data[0] === FrameType.Credit) {
      const n = readSeq(data);
      if (n > this.acked) {
        this.acked = n;
        this.wakeCredit();
      }
      return;
    }
    if (data[0] !== FrameType.Cancel) return;
    let reason: DynamoError = new CancelledError('cancelled by the caller');
    if (data.length > 1) {
      try {
        reason = fromWireError(JSON.parse(frameRest(data)) as { code?: unknown; message?: unknown });
      } catch {
        // keep the plain cancellation
      }
    }
    this.abort(reason);
  }

  /** Resolves at the next credit from the caller, or when the request ends. */
  private credit(): Promise<void> {
    return new Promise((resolve) => {
      this.creditWaiter = resolve;
    });
  }

  private wakeCredit(): void {
    const w = this.creditWaiter;
    this.creditWaiter = undefined;
    w?.();
  }

  /** Called every heartbeat interval: sends a heartbeat when nothing was sent since the last call. */
  heartbeatTick(): void {
    if (!this.sentSinceTick) this.send(heartbeatFrame(this.seq));
    this.sentSinceTick = false;
  }

  /** Ends the request with `reason` (the handler's signal fires), sending nothing more. */
  abort(reason: DynamoError): void {
    if (this.controller.signal.aborted) return;
    this.controller.abort(reason);
    this.finish();
  }

  /** Endpoint closing: tell the caller, then abort. */
  closeWith(error: DynamoError): void {
    if (this.done) return;
    this.flush();
    this.send(errorFrame(this.seq, error));
    this.abort(error);
  }

  private send(frame: string): void {
    if (this.done) return;
    try {
      this.plane.nc.publish(this.reply, frame, this.pubOptions);
      this.sentSinceTick = true;
    } catch (e) {
      this.endpoint.logger.warn('cannot send a frame; cancelling the handler', {
        request_id: this.requestId,
        error: errorMessage(e),
      });
      this.abort(toNatsError(e, 'send frame'));
    }
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    if (this.flushScheduled) clearImmediate(this.flushScheduled);
    this.flushScheduled = undefined;
    this.pending = [];
    this.wakeCredit();
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.plane.unregister(this.token);
    this.plane.removeServed(this);
    this.onDone(this);
  }
}

/** One subject served by a {@link NatsRequestPlane}. */
class NatsServedEndpoint implements ServedEndpoint {
  private readonly active = new Set<ServerRequest>();
  private sub: Subscription | undefined;
  private state: 'serving' | 'draining' | 'closed' = 'serving';
  private idleWaiters: Array<() => void> = [];
  private draining: Promise<void> | undefined;

  constructor(
    private readonly plane: NatsRequestPlane,
    readonly subject: string,
    private readonly handler: RequestHandler,
    /** @internal */ readonly logger: Logger,
    private readonly drainTimeoutMs: number,
    private readonly onClosed: (e: NatsServedEndpoint) => void,
  ) {}

  get inflight(): number {
    return this.active.size;
  }

  start(): void {
    this.sub = this.plane.nc.subscribe(this.subject, {
      queue: QUEUE_GROUP,
      callback: (err, msg) => {
        if (err) {
          this.logger.warn('subscription error', { error: err.message });
          return;
        }
        try {
          this.accept(msg);
        } catch (e) {
          this.logger.error('request handling failed', { error: errorMessage(e) });
        }
      },
    });
  }

  drain(options: { timeoutMs?: number } = {}): Promise<void> {
    if (this.state === 'closed') return Promise.resolve();
    this.draining ??= this.runDrain(options.timeoutMs ?? this.drainTimeoutMs);
    return this.draining;
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.unsubscribe();
    const error = new UnavailableError(`endpoint ${this.subject} closed`);
    for (const r of [...this.active]) r.closeWith(error);
    this.onClosed(this);
    this.wakeIdle();
  }

  private unsubscribe(): void {
    try {
      if (this.sub && !this.sub.isClosed() && !this.plane.nc.isClosed()) this.sub.unsubscribe();
    } catch {
      // the connection is closing: the subscription goes with it
    }
  }

  private async runDrain(timeoutMs: number): Promise<void> {
    this.state = 'draining';
    this.logger.info('draining', { inflight: this.active.size });
    // Unsubscribe first (new requests then see no responders and fail over); requests the server
    // routed here before it saw the unsubscribe still arrive, and are refused with UNAVAILABLE.
    try {
      if (this.sub && !this.sub.isClosed() && !this.plane.nc.isClosed()) await this.sub.drain();
    } catch (e) {
      this.logger.debug('subscription drain failed', { error: errorMessage(e) });
    }
    if (this.active.size > 0 && this.state === 'draining') {
      await new Promise<void>((resolve) => {
        const timer = unrefTimeout(resolve, timeoutMs);
        this.idleWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    if (this.active.size > 0) {
      this.logger.warn('drain timed out; cancelling in-flight streams', { inflight: this.active.size });
    }
    await this.close();
  }

  private accept(msg: Msg): void {
    const reply = msg.reply;
    if (!reply) {
      this.logger.debug('request without a reply subject ignored');
      return;
    }
    const nc = this.plane.nc;
    const refuse = (e: DynamoError): void => {
      try {
        nc.publish(reply, errorFrame(0, e));
      } catch {
        // connection closing: the caller times out
      }
    };
    if (this.state !== 'serving' || !this.plane.isOpen) {
      refuse(new NoRespondersError(this.subject));
      return;
    }
    const h = msg.headers;
    const requestId = h?.get(HDR_REQUEST_ID) || randomUUID();
    const deadlineText = h?.get(HDR_DEADLINE);
    const deadline = deadlineText ? Number(deadlineText) : undefined;
    let headers: Record<string, string> = {};
    const headersText = h?.get(HDR_HEADERS);
    if (headersText) {
      try {
        headers = JSON.parse(headersText) as Record<string, string>;
      } catch {
        refuse(new InvalidArgumentError(`malformed ${HDR_HEADERS} header`));
        return;
      }
    }
    if (deadline !== undefined && Number.isFinite(deadline) && deadline <= Date.now()) {
      refuse(new TimeoutError(`request ${requestId} to ${this.subject} arrived after its deadline`));
      return;
    }
    let payload: unknown;
    try {
      payload = msg.data.length === 0 ? null : JSON.parse(utf8.decode(msg.data));
    } catch (e) {
      refuse(new InvalidArgumentError(`request payload is not JSON: ${errorMessage(e)}`));
      return;
    }
    const windowText = h?.get(HDR_WINDOW);
    const window = windowText && Number(windowText) >= 1 ? Number(windowText) : Number.POSITIVE_INFINITY;
    const request = new ServerRequest(this.plane, this, reply, requestId, window, (r) => {
      this.active.delete(r);
      if (this.active.size === 0) this.wakeIdle();
    });
    this.active.add(request);
    void request.run(this.handler, payload, {
      requestId,
      headers,
      deadline: deadline !== undefined && Number.isFinite(deadline) ? deadline : undefined,
      subject: this.subject,
    });
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
