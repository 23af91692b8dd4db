import { randomUUID } from 'node:crypto';
import type { Msg, PublishOptions, Subscription } from '@nats-io/transport-node';
import {
  CancelledError,
  type DynamoError,
  InternalError,
  InvalidArgumentError,
  NoRespondersError,
  PayloadTooLargeError,
  TimeoutError,
  fromWireError,
} from '../../errors';
import type { Logger } from '../../logger';
import { unrefTimeout } from '../../util/abort';
import { encodeJson } from '../../util/json';
import {
  FrameType,
  HDR_DEADLINE,
  HDR_HEADERS,
  HDR_REQUEST_ID,
  HDR_WINDOW,
  QUEUE_GROUP,
  VERSION_MARK,
  type DecodedRequest,
  ackFrame,
  batchFrame,
  chunkMessages,
  dataFrame,
  decodeRequest,
  endFrame,
  errorFrame,
  finalFrame,
  frameRest,
  heartbeatFrame,
  readSeq,
} from '../frames';
import type { RequestHandler } from '../request-plane';
import { EndpointCore, NO_HEADERS, ServedCall, handlerFailure } from '../stream-core';
import { RequestUpload } from './upload';
import {
  type HeartbeatTarget,
  type PlaneCore,
  type Route,
  type TurnEnd,
  errorMessage,
  exceeds,
  isNoResponders,
  toNatsError,
} from './common';

/** Items after which a stream's first frame leaves without waiting for the end of the turn. */
const FIRST_FRAME_ITEMS = 16;
const utf8 = new TextDecoder();

/**
 * One request being served: the handler's context, its run and the frames it sends. What only a
 * request that outlives its first turn needs (an inbox token for cancel and credit, the ack,
 * heartbeats, the deadline timer) is set up at the end of that turn ({@link ServerRequest.turnEnded}),
 * so a call answered at once costs one message and none of them.
 */
class ServerRequest extends ServedCall implements Route, HeartbeatTarget, TurnEnd {
  private token: string | undefined;
  /** Set once the ack went out: frames then carry the control subject as their reply subject. */
  private pubOptions: PublishOptions | undefined;
  /** Items sent so far (the sequence number of the last one). */
  private seq = 0;
  /** Items yielded by the handler in this turn of the event loop, not sent yet (JSON). */
  private pending: string[] = [];
  private pendingChars = 0;
  /** True while waiting for {@link ServerRequest.turnEnded}. */
  private queued = false;
  /** Items the caller reported consumed; data frame `s` is sent only while `s - acked <= window`. */
  private acked = 0;
  private creditWaiter: (() => void) | undefined;
  private sentSinceTick = false;
  private done = false;
  private deadlineTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly plane: PlaneCore,
    private readonly endpoint: NatsServedEndpoint,
    private readonly reply: string,
    requestId: string,
    headers: Readonly<Record<string, string>>,
    deadline: number | undefined,
    /** The caller's flow-control window (items); Infinity when it sent none. */
    private readonly window: number,
    /** A version 1 caller: acked at once, as it expects. */
    legacy: boolean,
    /** A version 3 caller: frames larger than a NATS message go in chunks. */
    private readonly chunks: boolean,
  ) {
    super(requestId, headers, deadline, endpoint.subject);
    if (legacy) this.acknowledge();
    else this.atTurnEnd();
  }

  /** Runs the handler to its end (or until cancelled). Never throws. */
  async run(handler: RequestHandler, payload: unknown): Promise<void> {
    try {
      const iterator = handler(payload, this)[Symbol.asyncIterator]();
      this.iterator = iterator;
      // Older callers cannot join chunks: their items must fit one NATS message.
      const limit = this.chunks ? this.plane.maxPayload : this.plane.messageLimit;
      const batchItems = Math.max(1, Math.min(this.window, 1024) >> 2);
      while (!this.cancelled) {
        const r = await iterator.next();
        if (this.cancelled || r.done) break;
        let json: string;
        try {
          json = encodeJson(r.value, 'response item');
        } catch (e) {
          throw new InternalError((e as Error).message, { cause: e });
        }
        // The frame's type byte, sequence number and space, counted only for an item that may not fit.
        if (json.length * 3 + 18 > limit) {
          const frameSize = exceeds(json, 2 + String(this.seq + this.pending.length + 1).length, limit);
          if (frameSize !== undefined) throw new PayloadTooLargeError(frameSize, limit);
        }
        // Backpressure: wait while the caller holds a full window of unconsumed items.
        while (this.seq + this.pending.length - this.acked >= this.window && !this.cancelled) {
          this.flush();
          await this.credit();
        }
        if (this.cancelled) break;
        this.enqueue(json, this.plane.messageLimit);
        // A quarter window per frame at most, and the first frame early: the caller starts on the
        // first items (and credits them) while the rest are encoded.
        if (this.pending.length >= (this.seq === 0 ? FIRST_FRAME_ITEMS : batchItems)) this.flush();
      }
      if (!this.cancelled) this.flush(true);
    } catch (e) {
      if (!this.cancelled) {
        this.flush();
        this.send(errorFrame(this.seq, handlerFailure(e, this.endpoint.logger, this.requestId)));
      }
    } finally {
      this.finish();
    }
  }

  /** @see TurnEnd: the request outlived the turn it arrived in (or its items wait): ack, then send them. */
  turnEnded(): void {
    this.queued = false;
    if (this.done) return;
    if (this.pubOptions === undefined) this.acknowledge();
    this.flush();
  }

  private atTurnEnd(): void {
    if (this.queued) return;
    this.queued = true;
    this.plane.atTurnEnd(this);
  }

  /** Takes an inbox token (the control subject), starts the deadline and heartbeats, sends the ack. */
  private acknowledge(): void {
    const { token, subject } = this.plane.register(this);
    this.token = token;
    this.pubOptions = { reply: subject };
    this.plane.addServed(this);
    if (this.deadline !== undefined) {
      this.deadlineTimer = unrefTimeout(() => {
        const e = new TimeoutError(`request ${this.requestId} to ${this.subject} passed its deadline`);
        this.send(errorFrame(this.seq, e));
        this.abort(e);
      }, this.deadline - Date.now());
    }
    this.send(ackFrame(subject));
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
    this.atTurnEnd();
  }

  /** Sends the queued items now; with `end`, the end of the stream too (in the same message when items wait). */
  private flush(end = false): void {
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

  protected stopped(): void {
    this.finish();
  }

  /** Endpoint closing: tell the caller, then abort. */
  closeWith(error: DynamoError): void {
    if (this.done) return;
    this.flush();
    this.send(errorFrame(this.seq, error));
    this.abort(error);
  }

  /**
   * Publishes `frame` to the caller. A frame other than the last one needs the control subject
   * (the caller cancels and credits there): the request is acknowledged first if it was not.
   */
  private send(frame: string): void {
    if (this.done) return;
    const c = frame.charCodeAt(0);
    const last = c === FrameType.Final || c === FrameType.End || c === FrameType.Error;
    if (this.pubOptions === undefined && !last && c !== FrameType.Ack) this.acknowledge();
    try {
      const limit = this.plane.messageLimit;
      if (this.chunks && exceeds(frame, 0, limit) !== undefined) {
        const bytes = Buffer.from(frame, 'utf8');
        if (bytes.length > limit) {
          for (const chunk of chunkMessages(bytes, limit)) this.plane.nc.publish(this.reply, chunk, this.pubOptions);
        } else this.plane.nc.publish(this.reply, bytes, this.pubOptions);
      } else this.plane.nc.publish(this.reply, frame, this.pubOptions);
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
    if (this.pending.length > 0) this.pending = [];
    this.wakeCredit();
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    if (this.token !== undefined) {
      this.plane.unregister(this.token);
      this.plane.removeServed(this);
    }
    this.endpoint.done(this);
  }
}

/** One subject served by a `NatsRequestPlane`. */
export class NatsServedEndpoint extends EndpointCore {
  private readonly active = new Set<ServerRequest>();
  private sub: Subscription | undefined;

  constructor(
    private readonly plane: PlaneCore,
    subject: string,
    private readonly handler: RequestHandler,
    logger: Logger,
    drainTimeoutMs: number,
    private readonly onClosed: (e: NatsServedEndpoint) => void,
  ) {
    super(subject, logger, drainTimeoutMs);
  }

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

  /** Cancels every request in flight with `error`, sending nothing (the plane is closing). */
  abortAll(error: DynamoError): void {
    for (const r of [...this.active]) r.abort(error);
  }

  /** A request ended. */
  done(r: ServerRequest): void {
    this.active.delete(r);
    this.requestEnded();
  }

  protected stopTaking(): void {
    try {
      if (this.sub && !this.sub.isClosed() && !this.plane.nc.isClosed()) this.sub.unsubscribe();
    } catch {
      // the connection is closing: the subscription goes with it
    }
  }

  /**
   * Unsubscribes first (new requests then see no responders and fail over); requests the server
   * routed here before it saw the unsubscribe still arrive, and are refused with UNAVAILABLE.
   */
  protected override async stopTakingGracefully(): Promise<void> {
    try {
      if (this.sub && !this.sub.isClosed() && !this.plane.nc.isClosed()) await this.sub.drain();
    } catch (e) {
      this.logger.debug('subscription drain failed', { error: errorMessage(e) });
    }
  }

  protected endInflight(error: DynamoError): void {
    for (const r of [...this.active]) r.closeWith(error);
  }

  protected closed(): void {
    this.onClosed(this);
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
    const data = msg.data;
    if (data.length > 0 && data[0] === VERSION_MARK) {
      const r = decodeRequest(utf8.decode(data));
      if (typeof r === 'string') refuse(new InvalidArgumentError(r));
      else if (r.upload === undefined) this.begin(reply, r, false);
      else
        RequestUpload.start(this.plane, this.logger, reply, r as DecodedRequest & { upload: number }, (whole) => {
          if (this.state !== 'serving' || !this.plane.isOpen) refuse(new NoRespondersError(this.subject));
          else this.begin(reply, whole, false);
        });
      return;
    }
    // Version 1: the metadata in NATS headers, the payload as the body.
    const h = msg.headers;
    const requestId = h?.get(HDR_REQUEST_ID) || randomUUID();
    const deadlineText = h?.get(HDR_DEADLINE);
    const d = deadlineText ? Number(deadlineText) : undefined;
    let headers: Record<string, string> | undefined;
    const headersText = h?.get(HDR_HEADERS);
    if (headersText) {
      try {
        headers = JSON.parse(headersText) as Record<string, string>;
      } catch {
        refuse(new InvalidArgumentError(`malformed ${HDR_HEADERS} header`));
        return;
      }
    }
    let payload: unknown;
    try {
      payload = data.length === 0 ? null : JSON.parse(utf8.decode(data));
    } catch (e) {
      refuse(new InvalidArgumentError(`request payload is not JSON: ${errorMessage(e)}`));
      return;
    }
    const windowText = h?.get(HDR_WINDOW);
    const request: DecodedRequest = {
      requestId,
      deadline: d !== undefined && Number.isFinite(d) ? d : undefined,
      headers,
      window: windowText && Number(windowText) >= 1 ? Number(windowText) : Number.POSITIVE_INFINITY,
      payload,
      version: 1,
      upload: undefined,
    };
    this.begin(reply, request, true);
  }

  /** Runs the handler on a decoded request (unless it arrived past its deadline). */
  private begin(reply: string, r: DecodedRequest, legacy: boolean): void {
    const { requestId, deadline } = r;
    if (deadline !== undefined && deadline <= Date.now()) {
      try {
        this.plane.nc.publish(
          reply,
          errorFrame(0, new TimeoutError(`request ${requestId} to ${this.subject} arrived after its deadline`)),
        );
      } catch {
        // connection closing: the caller times out
      }
      return;
    }
    const headers = r.headers ?? NO_HEADERS;
    const request = new ServerRequest(
      this.plane,
      this,
      reply,
      requestId,
      headers,
      deadline,
      r.window,
      legacy,
      r.version >= 3,
    );
    this.active.add(request);
    void request.run(this.handler, r.payload);
  }
}
