import { createInbox, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { ClosedError, type DynamoError, InvalidArgumentError, UnavailableError } from '../../errors';
import type { Logger } from '../../logger';
import { noopLogger } from '../../logger';
import { unrefInterval } from '../../util/abort';
import { parseSubject } from '../../util/subject';
import {
  DEFAULT_MAX_PAYLOAD,
  type RequestHandler,
  type RequestOptions,
  type RequestPlane,
  type ResponseStream,
  type ServeOptions,
  type ServedEndpoint,
} from '../request-plane';
import { NatsResponseStream } from './caller';
import {
  type HeartbeatTarget,
  type Route,
  type TurnEnd,
  type WatchedStream,
  errorMessage,
  toNatsError,
} from './common';
import { NatsServedEndpoint } from './server';

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
  /**
   * Largest request or response item, in bytes (the plane's `maxPayload`): larger ones fail with
   * PAYLOAD_TOO_LARGE. One larger than nats-server's `max_payload` travels in chunks (see
   * `transport/frames.ts`). Default 64 MiB ({@link DEFAULT_MAX_PAYLOAD}).
   */
  maxPayload?: number;
  /**
   * Bytes of chunked requests this plane's endpoints hold at once while their chunks arrive
   * (announced sizes, reserved before any chunk is kept); an upload beyond it is refused with
   * PAYLOAD_TOO_LARGE. Default twice `maxPayload`.
   */
  maxAssemblyBytes?: number;
}

/** Used only before the connection has seen the server's INFO (it always has after `connect()`). */
const FALLBACK_MAX_PAYLOAD = 1024 * 1024;
/** The watchdog checks idle streams this many times per heartbeat timeout. */
const WATCHDOG_TICKS = 5;

/**
 * The {@link RequestPlane} on NATS core: request/streaming-response between processes, with
 * sequence numbers, acks and heartbeats for requests that outlive their first turn, cancellation
 * and no-responders detection; a call answered at once is one request and one reply message.
 * The wire protocol (version 2, serving version 1 callers too) is documented in `transport/frames.ts`.
 *
 * The plane does not own the connection: close the plane (or drain it), then the connection.
 * One plane serves any number of subjects and calls any number of streams over ONE inbox
 * subscription.
 */
// Also a PlaneCore, structurally (the members it needs are internal: not in the published types).
export class NatsRequestPlane implements RequestPlane {
  /** @internal */ readonly logger: Logger;
  /** @internal */ readonly heartbeatIntervalMs: number;
  /** @internal */ readonly heartbeatTimeoutMs: number;
  /** @internal */ readonly streamWindow: number;
  readonly maxPayload: number;
  private readonly maxAssemblyBytes: number;
  private assemblyBytes = 0;
  /** @internal The inbox prefix `P` of this plane; tokens are `P.<token>`. */
  readonly prefix: string;
  private readonly drainTimeoutMs: number;
  private readonly inbox: Subscription;
  private readonly routes = new Map<string, Route>();
  private tokenSeq = 0;
  private readonly streams = new Set<WatchedStream>();
  private readonly served = new Set<HeartbeatTarget>();
  /** Requests waiting for the end of this turn of the event loop, and the one immediate that runs them. */
  private turnWork: TurnEnd[] = [];
  private turnScheduled = false;
  private readonly runTurnEnd = (): void => {
    this.turnScheduled = false;
    const work = this.turnWork;
    this.turnWork = [];
    for (const w of work) {
      try {
        w.turnEnded();
      } catch (e) {
        this.logger.error('end-of-turn work failed', { error: errorMessage(e) });
      }
    }
  };
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
    this.maxPayload = options.maxPayload ?? DEFAULT_MAX_PAYLOAD;
    this.maxAssemblyBytes = options.maxAssemblyBytes ?? 2 * this.maxPayload;
    for (const [k, v] of [
      ['maxPayload', this.maxPayload],
      ['maxAssemblyBytes', this.maxAssemblyBytes],
    ] as const) {
      if (!Number.isSafeInteger(v) || v < 1)
        throw new InvalidArgumentError(`${k} must be a positive integer, got ${v}`);
    }
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

  /** @internal Largest NATS message (headers + body) the server accepts: its `max_payload`. */
  get messageLimit(): number {
    return this.nc.info?.max_payload ?? FALLBACK_MAX_PAYLOAD;
  }

  /** @internal */
  reserveAssembly(bytes: number): boolean {
    if (this.assemblyBytes + bytes > this.maxAssemblyBytes) return false;
    this.assemblyBytes += bytes;
    return true;
  }

  /** @internal */
  releaseAssembly(bytes: number): void {
    this.assemblyBytes = Math.max(0, this.assemblyBytes - bytes);
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
  watch(stream: WatchedStream): void {
    this.streams.add(stream);
    if (!this.watchdog) {
      const tickMs = this.heartbeatTimeoutMs / WATCHDOG_TICKS;
      this.watchdog = unrefInterval(() => this.checkIdle(), tickMs);
    }
  }

  /** @internal (The watchdog stops on its first tick with nothing to watch: a plane calling one stream after another does not start and stop an interval per stream.) */
  unwatch(stream: WatchedStream): void {
    this.streams.delete(stream);
  }

  /** @internal A served request outlived its first turn: send it heartbeats while idle. */
  addServed(r: HeartbeatTarget): void {
    this.served.add(r);
    this.heartbeats ??= unrefInterval(() => {
      if (this.served.size === 0) {
        clearInterval(this.heartbeats);
        this.heartbeats = undefined;
      }
      for (const s of this.served) s.heartbeatTick();
    }, this.heartbeatIntervalMs);
  }

  /** @internal */
  removeServed(r: HeartbeatTarget): void {
    this.served.delete(r);
  }

  /** @internal */
  atTurnEnd(work: TurnEnd): void {
    this.turnWork.push(work);
    if (!this.turnScheduled) {
      this.turnScheduled = true;
      setImmediate(this.runTurnEnd);
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
    if (this.streams.size === 0) {
      clearInterval(this.watchdog);
      this.watchdog = undefined;
      return;
    }
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
    const endpoints = [...this.endpoints];
    await Promise.all(endpoints.map((e) => e.close()));
    for (const s of [...this.streams]) s.abort(error, true);
    this.streams.clear();
    for (const e of endpoints) e.abortAll(error);
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
