import type { Msg } from '@nats-io/transport-node';
import {
  CancelledError,
  type DynamoError,
  DynamoError as DynamoErrorClass,
  InternalError,
  InvalidArgumentError,
  NoRespondersError,
  PayloadTooLargeError,
  TimeoutError,
  UnavailableError,
  type WireError,
  fromWireError,
  toWireError,
} from '../../errors';
import { encodeJson } from '../../util/json';
import { checkSubject } from '../../util/subject';
import {
  ChunkAssembler,
  FrameType,
  cancelFrame,
  chunkMessages,
  creditFrame,
  encodeRequest,
  encodeRequestBytes,
  frameBody,
  frameRest,
  readSeq,
} from '../frames';
import type { RequestOptions } from '../request-plane';
import { CallerStream } from '../stream-core';
import {
  type PlaneCore,
  type Route,
  type WatchedStream,
  errorMessage,
  exceeds,
  isNoResponders,
  toNatsError,
} from './common';

/** Requests whose payload JSON has at least this many characters are written as bytes (see `encodeRequestBytes`). */
const LARGE_REQUEST_CHARS = 8192;

/**
 * The caller's side of one request on NATS (see {@link CallerStream}): sends the version 2
 * request, then takes the frames of `transport/frames.ts` from its inbox token, checking their
 * sequence numbers, crediting the server (flow control) and cancelling it when abandoned.
 */
export class NatsResponseStream<T> extends CallerStream<T> implements Route, WatchedStream {
  /** Transport state: 'live' while frames are expected, 'cancelling' while waiting for the ack to cancel. */
  private link: 'none' | 'live' | 'cancelling' | 'gone' = 'none';
  private token = '';
  private control: string | undefined;
  private pendingCancel: WireError | undefined;
  private received = 0;
  /** Items handed to the consumer, and the count last reported to the server (flow control). */
  private consumed = 0;
  private credited = 0;
  /** Watchdog ticks since the last frame. */
  private idleTicks = 0;
  /** A request sent in chunks: its payload's JSON, until the server's pull frame says where. */
  private upload: Uint8Array | undefined;
  /** The chunks of a frame larger than one NATS message, while they arrive. */
  private assembly: ChunkAssembler | undefined;

  constructor(
    private readonly plane: PlaneCore,
    subject: string,
    private readonly payload: unknown,
    options: RequestOptions,
  ) {
    super(subject, options);
  }

  protected send(): void {
    this.plane.checkCallable();
    checkSubject(this.subject);
    const user = this.options.headers;
    let headersJson: string | undefined;
    if (user && Object.keys(user).length > 0) {
      for (const [k, v] of Object.entries(user)) {
        if (typeof v !== 'string') throw new InvalidArgumentError(`invalid request header ${k}: not a string`);
      }
      headersJson = JSON.stringify(user);
    }
    const payloadJson = encodeJson(this.payload, 'request payload');
    let body: string | Uint8Array =
      payloadJson.length < LARGE_REQUEST_CHARS
        ? encodeRequest(this.requestId, this.plane.streamWindow, this.deadline, headersJson, payloadJson)
        : encodeRequestBytes(this.requestId, this.plane.streamWindow, this.deadline, headersJson, payloadJson);
    const size =
      typeof body === 'string'
        ? exceeds(body, 0, this.plane.messageLimit)
        : body.length > this.plane.messageLimit
          ? body.length
          : undefined;
    if (size !== undefined) {
      // Larger than one NATS message: announce it, and send the payload in chunks when pulled.
      const limit = this.plane.maxPayload;
      if (size > limit) throw new PayloadTooLargeError(size, limit);
      this.upload = Buffer.from(payloadJson, 'utf8');
      body = encodeRequest(this.requestId, this.plane.streamWindow, this.deadline, headersJson, '', this.upload.length);
      const announced = exceeds(body, 0, this.plane.messageLimit);
      if (announced !== undefined) throw new PayloadTooLargeError(announced, this.plane.messageLimit);
    }
    const { token, subject: reply } = this.plane.register(this);
    this.token = token;
    this.link = 'live';
    try {
      this.plane.nc.publish(this.subject, body, { reply });
    } catch (e) {
      this.unlink();
      throw toNatsError(e, `request to ${this.subject}`);
    }
    this.plane.watch(this);
  }

  protected taken(): void {
    this.consumed += 1;
    // Credit every quarter window: the server still has three quarters of a window to send
    // while the credit travels, so a fast stream does not stall on the round trip.
    if (this.consumed - this.credited >= Math.max(1, this.plane.streamWindow >> 2)) this.sendCredit();
  }

  protected stop(error: DynamoError, surface: boolean): void {
    this.dropAll(surface ? error : undefined);
    this.sendCancel(toWireError(error));
    this.finish();
  }

  protected released(): void {
    if (this.link === 'live') this.sendCancel(toWireError(new CancelledError('response stream closed')));
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
    if (data[0] === FrameType.Chunk) this.onChunk(data);
    else {
      // Any other frame ends a chunked frame still incomplete (its loss shows in the sequence).
      this.assembly = undefined;
      this.onFrame(data);
    }
  }

  /** One chunk of a frame larger than a NATS message: the frame is handled once whole. */
  private onChunk(data: Uint8Array): void {
    if (this.link === 'gone' || this.link === 'none') return;
    const assembly = (this.assembly ??= new ChunkAssembler(this.plane.maxPayload));
    const r = assembly.add(data);
    if (r.kind === 'more') return;
    if (r.kind === 'skipped') {
      this.plane.logger.debug('chunk skipped', { subject: this.subject, request_id: this.requestId, reason: r.reason });
      return;
    }
    this.assembly = undefined;
    if (r.kind === 'done') this.onFrame(r.bytes);
    else if (this.link === 'live') {
      this.fail(new PayloadTooLargeError(r.total, this.plane.maxPayload), true);
    }
  }

  private onFrame(data: Uint8Array): void {
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
        let value: unknown;
        try {
          value = JSON.parse(frameBody(data));
        } catch {
          this.malformed('data');
          return;
        }
        this.received = seq;
        this.deliver(value);
        return;
      }
      case FrameType.Batch:
      case FrameType.Final:
        this.onBatch(data, type === FrameType.Final);
        return;
      case FrameType.Heartbeat: {
        const seq = readSeq(data);
        if (seq !== this.received) this.lost(seq);
        // The server may be paused on a credit that was lost: repeat it (it is cumulative).
        else if (this.consumed > 0 && this.buffered === 0) this.sendCredit();
        return;
      }
      case FrameType.Ack:
        this.control ??= frameRest(data);
        return;
      case FrameType.Pull:
        this.sendUpload(frameRest(data));
        return;
      case FrameType.End: {
        const seq = readSeq(data);
        if (seq !== this.received) {
          this.lost(seq);
          return;
        }
        this.unlink();
        this.endWith();
        return;
      }
      case FrameType.Error:
        this.onError(data);
        return;
      default:
        this.plane.logger.debug('unknown frame', { subject: this.subject, request_id: this.requestId, type });
    }
  }

  private onBatch(data: Uint8Array, final: boolean): void {
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
      this.malformed('batch');
      return;
    }
    this.received = seq + items.length - 1;
    for (const value of items) this.deliver(value);
    if (final) {
      this.unlink();
      this.endWith();
    }
  }

  private onError(data: Uint8Array): void {
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
    const older = seq === 0 ? olderServer(wire) : undefined;
    this.endWith(older !== undefined ? versionMismatch(this.subject, older) : fromWireError(wire));
  }

  private malformed(what: string): void {
    this.fail(new InternalError(`malformed ${what} frame from ${this.subject} (request ${this.requestId})`), true);
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

  /** Sends the payload of a chunked request to the upload subject the server named (once). */
  private sendUpload(subject: string): void {
    const upload = this.upload;
    this.upload = undefined;
    if (upload === undefined) return;
    try {
      for (const chunk of chunkMessages(upload, this.plane.messageLimit)) this.plane.nc.publish(subject, chunk);
    } catch (e) {
      this.fail(toNatsError(e, `request to ${this.subject}`), true);
    }
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

  /** Fails the stream with `error` if no item has arrived yet; returns whether it did. */
  failIfNothingReceived(error: DynamoError): boolean {
    if (this.link !== 'live' || this.received > 0) return false;
    this.fail(error, true);
    return true;
  }

  /** Ends the stream because of the transport: items already received are read first, then `error`. */
  private fail(error: DynamoError, cancel: boolean): void {
    if (this.link !== 'live') return;
    this.endWith(error);
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
    this.plane.unwatch(this);
    if (!wasCancelling) this.stopTimers();
  }
}

/** The version of a server that refused this caller's body as too new (1 or 2), else undefined. */
function olderServer(wire: { code?: unknown; message?: unknown }): number | undefined {
  if (wire.code !== 'INVALID_ARGUMENT' || typeof wire.message !== 'string') return undefined;
  // A version 1 server takes the body for JSON; a version 2 one names the versions it speaks.
  if (wire.message.startsWith('request payload is not JSON') && wire.message.includes("'~'")) return 1;
  if (wire.message.includes('wire version 3; this server speaks versions 1 and 2')) return 2;
  return undefined;
}

function versionMismatch(subject: string, version: number): DynamoError {
  return new DynamoErrorClass(
    'INTERNAL',
    `the server of ${subject} speaks request-plane wire version ${version} and refused this version 3 request: ` +
      'upgrade the serving side (version 3 servers also serve version 1 and 2 callers)',
    { retryable: false },
  );
}
