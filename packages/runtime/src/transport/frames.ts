/**
 * The wire protocol of `NatsRequestPlane` (NATS core, no JetStream), version 3.
 *
 * Subjects
 * - A served endpoint subscribes to its request subject (`dynamo.{ns}.{component}.{endpoint}.{instanceId}`)
 *   in the queue group {@link QUEUE_GROUP}, so several processes serving one subject share the load.
 * - Each plane owns one inbox prefix `P` (`_INBOX.<nuid>`) and ONE wildcard subscription `P.*`.
 *   Every stream a plane calls gets a token `t` and the reply subject `P.t`; every request a
 *   plane serves past its first turn gets a token `u` and the control subject `P.u` (tokens never
 *   repeat in a plane).
 *
 * Request (caller -> request subject), with NATS reply subject = the caller's `P.t`, no NATS headers:
 * - body `~3[<request id>,<window>,<deadline>,<headers>,<payload>]` ({@link encodeRequest}): the
 *   version mark `~3`, then one JSON array of the request id (string), the flow-control window in
 *   items (0 = unbounded), the absolute deadline in epoch ms (0 = none), the caller's string
 *   headers (an object, or null when there are none) and the request payload, when the body fits
 *   nats-server's `max_payload`.
 * - A larger request (up to the plane's `maxPayload`, 64 MiB by default) is announced with
 *   `~3*[<request id>,<window>,<deadline>,<headers>,<bytes>]`: the same array with the UTF-8 size of
 *   the payload's JSON instead of the payload. The server that takes it answers `p<upload subject>`
 *   (a token `u` of its inbox) and the caller sends the payload's JSON there as chunk messages (see
 *   below); the server runs the handler once all `<bytes>` arrived. An announcement over the
 *   server's `maxPayload` (or its budget of bytes in assembly) is refused with PAYLOAD_TOO_LARGE;
 *   chunks that stop arriving for the server's `heartbeatTimeoutMs` drop the upload, which is
 *   refused with UNAVAILABLE (nothing ran: safe to send again).
 * - Nobody subscribed: the server answers the reply subject with an empty `503` status
 *   message (headers are on): the caller fails with NoRespondersError before any item.
 *
 * Frames (server -> caller's `P.t`), plain bodies (no NATS headers):
 * - A request whose handler finishes within the turn of the event loop the request arrived in is
 *   answered with ONE message and nothing else: `f` (its items and the end), `e0` (no items) or
 *   `x0` (an error), with no NATS reply subject. A unary call costs two messages in all.
 * - Otherwise, at the end of that turn, the server sends the ack `a<control subject>` (after which
 *   the caller may cancel and credit), and every later frame is published with NATS reply subject
 *   = the control subject `P.u` (so a caller that died makes the server's next frame bounce back as
 *   a `503`, which cancels the handler).
 *
 * - `a<control subject>`          ack: the first frame of a request still running after its first turn
 * - `d<seq> <json item>`          data: seq = 1, 2, 3, ... (gaps and reordering are detected)
 * - `b<seq> <json array>`         batch: the k items of the array carry sequence numbers seq ... seq+k-1
 *                                 (k >= 2). The server sends items that its handler yielded within one
 *                                 turn of the event loop as one batch (a handler that produces faster
 *                                 than one message per item can go), within the window and the
 *                                 payload limit; one item alone goes as a `d` frame.
 * - `f<seq> <json array>`         final: the items of the array (seq ... seq+k-1, k >= 1), then the
 *                                 end of the stream: the last batch and the `e` frame in one message
 * - `h<seq>`                      heartbeat: sent when the stream was idle for a heartbeat interval;
 *                                 seq = data frames sent so far (a lost trailing data frame shows)
 * - `e<seq>`                      end: seq = data frames sent in all
 * - `x<seq> <json {code,message}>` error: the handler failed (or the endpoint refused/closed)
 * - `p<upload subject>`           pull: send the chunks of the announced request to this subject
 *
 * Chunks (either way): a message (a request's payload, or one frame of the above) larger than
 * nats-server's `max_payload` travels as consecutive messages `k<index>,<total> <bytes>`
 * ({@link chunkMessages}): index 0, 1, 2, ... in order, total = the UTF-8 size of the whole message,
 * the raw bytes of the next slice after the space. The receiver ({@link ChunkAssembler}) joins the
 * slices in order and handles the result as one message once `total` bytes arrived; a chunk
 * whose header is malformed, out of order or disagrees with the total is logged and skipped. A
 * total above the receiver's `maxPayload` fails the stream (caller) or refuses the upload (server).
 * A server sends chunked frames only to version 3 callers; to older ones an item that does not
 * fit `max_payload` fails with PAYLOAD_TOO_LARGE, as before.
 *
 * Control (caller -> server's `P.u`):
 * - `c` or `c<json {code,message}>`  cancel: fires the handler's `ctx.signal` (with that reason)
 * - `w<n>`                          credit: the caller has consumed `n` items in all (cumulative);
 *                                   the server sends data frame `s` only while `s - n <= window`,
 *                                   pausing the handler otherwise (backpressure). Sent every quarter
 *                                   window consumed, and again on a heartbeat when the caller's
 *                                   buffer is empty (so a lost credit cannot stall the stream).
 *
 * A caller that receives no frame for `heartbeatTimeoutMs` (the ack included) fails the stream
 * with TIMEOUT naming the subject and cancels it.
 *
 * Versions
 * - Version 3 added chunks (`~3`, `~3*`, `p`, `k`); otherwise it is version 2. A version 3 server
 *   serves version 1, 2 and 3 callers; a version 2 server refuses a `~3` body naming the versions
 *   it speaks, which a version 3 caller turns into an INTERNAL error naming the mismatch: upgrade
 *   servers before callers.
 * - Version 1 (before the `~2` body) sent the request id, deadline, headers and window as NATS
 *   headers ({@link HDR_REQUEST_ID}, {@link HDR_DEADLINE}, {@link HDR_HEADERS}, {@link HDR_WINDOW})
 *   and the payload as the whole body, and the server acked every request first. A version 2
 *   server still serves such requests the version 1 way (ack first), so callers may be upgraded
 *   after their servers.
 * - A version 1 server refuses a `~2` body as "not JSON" (`x0`): the version 2 caller turns that
 *   into an INTERNAL error naming the subject and the version mismatch. A body with a later
 *   version mark (`~4`...) is refused with INVALID_ARGUMENT naming the versions this server speaks.
 */

/** The version of the request-plane wire protocol this code sends. */
export const WIRE_VERSION = 3;
/** First byte of a request body of version 2 or later (`~`: no JSON text starts with it). */
export const VERSION_MARK = 0x7e;

/** Queue group of every served endpoint subscription. */
export const QUEUE_GROUP = 'dynamo';
/** Version 1 header: the request id (`ctx.requestId`). */
export const HDR_REQUEST_ID = 'Dynamo-Request-Id';
/** Version 1 header: absolute deadline, epoch milliseconds. */
export const HDR_DEADLINE = 'Dynamo-Deadline';
/** Version 1 header: the caller's headers as one JSON object of strings. */
export const HDR_HEADERS = 'Dynamo-Headers';
/** Version 1 header: the caller's flow-control window, in items (see the `w` frame). */
export const HDR_WINDOW = 'Dynamo-Window';

/** First byte of each frame. */
export const FrameType = {
  Ack: 0x61, // 'a'
  Data: 0x64, // 'd'
  Batch: 0x62, // 'b'
  Final: 0x66, // 'f'
  Heartbeat: 0x68, // 'h'
  End: 0x65, // 'e'
  Error: 0x78, // 'x'
  Cancel: 0x63, // 'c'
  Credit: 0x77, // 'w'
  Pull: 0x70, // 'p'
  Chunk: 0x6b, // 'k'
} as const;

/** Frame type byte (see {@link FrameType}). */
export type FrameTypeCode = (typeof FrameType)[keyof typeof FrameType];

const SPACE = 0x20;
const ZERO = 0x30;
const NINE = 0x39;
const decoder = new TextDecoder();

/** `a<control subject>` */
export function ackFrame(controlSubject: string): string {
  return 'a' + controlSubject;
}

/** `d<seq> <json>` (the item already JSON-encoded). */
export function dataFrame(seq: number, json: string): string {
  return 'd' + seq + ' ' + json;
}

/** `b<first seq> [<json>,<json>,...]` (the items already JSON-encoded). */
export function batchFrame(firstSeq: number, jsons: readonly string[]): string {
  return 'b' + firstSeq + ' [' + jsons.join(',') + ']';
}

/** `f<first seq> [<json>,...]`: the last items and the end of the stream. */
export function finalFrame(firstSeq: number, jsons: readonly string[]): string {
  return 'f' + firstSeq + ' [' + jsons.join(',') + ']';
}

/** `h<seq>` */
export function heartbeatFrame(seq: number): string {
  return 'h' + seq;
}

/** `e<seq>` */
export function endFrame(seq: number): string {
  return 'e' + seq;
}

/** `x<seq> <json {code,message}>` */
export function errorFrame(seq: number, error: { code: string; message: string }): string {
  return 'x' + seq + ' ' + JSON.stringify({ code: error.code, message: error.message });
}

/** `p<upload subject>` */
export function pullFrame(uploadSubject: string): string {
  return 'p' + uploadSubject;
}

/** `w<consumed>` */
export function creditFrame(consumed: number): string {
  return 'w' + consumed;
}

/** `c` or `c<json {code,message}>` */
export function cancelFrame(reason?: { code: string; message: string }): string {
  return reason ? 'c' + JSON.stringify({ code: reason.code, message: reason.message }) : 'c';
}

/**
 * Reads the sequence number of a `d`, `b`, `f`, `h`, `e`, `x` or `w` frame (the digits after the type byte,
 * up to a space or the end) without decoding the frame. Returns -1 when they are malformed.
 */
export function readSeq(data: Uint8Array): number {
  const n = data.length;
  if (n < 2) return -1;
  let seq = 0;
  for (let i = 1; i < n; i++) {
    const c = data[i]!;
    if (c === SPACE) return seq;
    if (c < ZERO || c > NINE) return -1;
    seq = seq * 10 + (c - ZERO);
  }
  return seq;
}

/** The text after the first space of a frame (the JSON of a `d`, `b`, `f` or `x` frame), or '' when there is none. */
export function frameBody(data: Uint8Array): string {
  const i = data.indexOf(SPACE, 1);
  return i < 0 ? '' : decoder.decode(data.subarray(i + 1));
}

/** The text after the type byte (the control subject of an `a` frame, the reason of a `c` frame). */
export function frameRest(data: Uint8Array): string {
  return decoder.decode(data.subarray(1));
}

/**
 * The body of a version 3 request: `~3[id,window,deadline,headers,payload]`, or with `upload`
 * (the payload's JSON then follows in chunks) the announcement `~3*[id,window,deadline,headers,bytes]`.
 * @param headersJson the caller's headers as JSON, or undefined for none
 * @param payloadJson the payload, already JSON-encoded (unused with `upload`)
 * @param upload the UTF-8 size of the payload's JSON, for a request sent in chunks
 */
export function encodeRequest(
  requestId: string,
  window: number,
  deadline: number | undefined,
  headersJson: string | undefined,
  payloadJson: string,
  upload?: number,
): string {
  return (
    requestHead(upload === undefined ? '~3[' : '~3*[', requestId, window, deadline, headersJson) +
    (upload === undefined ? payloadJson : String(upload)) +
    ']'
  );
}

/**
 * {@link encodeRequest} (without upload) as UTF-8 bytes, written piece by piece: a large payload's
 * JSON is copied once into the message instead of first being joined into a new string that the
 * NATS client then flattens and encodes (a second copy of every large request, and its garbage).
 */
export function encodeRequestBytes(
  requestId: string,
  window: number,
  deadline: number | undefined,
  headersJson: string | undefined,
  payloadJson: string,
): Uint8Array {
  const head = requestHead('~3[', requestId, window, deadline, headersJson);
  const headBytes = Buffer.byteLength(head, 'utf8');
  const out = Buffer.allocUnsafeSlow(headBytes + Buffer.byteLength(payloadJson, 'utf8') + 1);
  out.write(head, 0, 'utf8');
  const end = headBytes + out.write(payloadJson, headBytes, 'utf8');
  out[end] = 0x5d; // ']'
  return out;
}

function requestHead(
  mark: string,
  requestId: string,
  window: number,
  deadline: number | undefined,
  headersJson: string | undefined,
): string {
  return mark + JSON.stringify(requestId) + ',' + window + ',' + (deadline ?? 0) + ',' + (headersJson ?? 'null') + ',';
}

/** A request decoded by {@link decodeRequest}. */
export interface DecodedRequest {
  requestId: string;
  /** Items; Infinity when unbounded. */
  window: number;
  deadline: number | undefined;
  headers: Record<string, string> | undefined;
  /** The payload; undefined for an upload announcement. */
  payload: unknown;
  /** The wire version of the body (2 or 3): a version 3 caller takes chunked frames. */
  version: number;
  /** For an upload announcement (`~3*`): the UTF-8 size of the payload's JSON to come in chunks. */
  upload: number | undefined;
}

/**
 * Decodes the text of a version 2 or 3 request body (it starts with {@link VERSION_MARK}).
 * @returns the request, or the reason it is malformed (sent back as INVALID_ARGUMENT)
 */
export function decodeRequest(text: string): DecodedRequest | string {
  const v = text.charCodeAt(1) - ZERO;
  const upload = v === 3 && text.charCodeAt(2) === 0x2a; /* '*' */
  const start = upload ? 3 : 2;
  if ((v !== 2 && v !== 3) || text.charCodeAt(start) !== 0x5b /* '[' */) {
    const version = /^~(\d+)/.exec(text)?.[1];
    return version !== undefined && version !== '2' && version !== '3'
      ? `request uses request-plane wire version ${version}; this server speaks versions 1 to ${WIRE_VERSION}`
      : version === undefined
        ? 'malformed request: a body starting with ~ must carry a wire version'
        : `malformed request (wire version ${version}): no JSON array after the version mark`;
  }
  const what = `malformed request (wire version ${v})`;
  let parts: unknown;
  try {
    parts = JSON.parse(text.slice(start));
  } catch (e) {
    return `${what}: ${e instanceof Error ? e.message : String(e)}`;
  }
  if (!Array.isArray(parts) || parts.length !== 5) return `${what}: not a 5-element array`;
  const [requestId, window, deadline, headers, last] = parts as unknown[];
  if (typeof requestId !== 'string' || requestId.length === 0)
    return `${what}: the request id is not a non-empty string`;
  if (typeof window !== 'number' || !Number.isInteger(window) || window < 0)
    return `${what}: the window is not a non-negative integer`;
  if (typeof deadline !== 'number' || !Number.isFinite(deadline) || deadline < 0)
    return `${what}: the deadline is not a non-negative number`;
  if (headers !== null) {
    if (typeof headers !== 'object' || Array.isArray(headers)) return `${what}: the headers are not an object`;
    for (const h of Object.values(headers)) {
      if (typeof h !== 'string') return `${what}: a header value is not a string`;
    }
  }
  if (upload && (typeof last !== 'number' || !Number.isSafeInteger(last) || last < 1))
    return `${what}: the size of an announced upload is not a positive integer`;
  return {
    requestId,
    window: window === 0 ? Number.POSITIVE_INFINITY : window,
    deadline: deadline === 0 ? undefined : deadline,
    headers: headers === null ? undefined : (headers as Record<string, string>),
    payload: upload ? undefined : last,
    version: v,
    upload: upload ? (last as number) : undefined,
  };
}

/** Bytes of a chunk message's header (`k<index>,<total> `) at most: the slice gets the rest of `max_payload`. */
export const CHUNK_HEADER_BYTES = 40;

/**
 * Splits `bytes` (one whole message) into chunk messages `k<index>,<total> <slice>` of at most
 * `maxMessage` bytes each (nats-server's `max_payload`).
 */
export function chunkMessages(bytes: Uint8Array, maxMessage: number): Uint8Array[] {
  const slice = maxMessage - CHUNK_HEADER_BYTES;
  if (slice < 1) throw new RangeError(`max_payload of ${maxMessage} bytes leaves no room for a chunk`);
  const out: Uint8Array[] = [];
  const total = bytes.length;
  for (let index = 0, at = 0; at < total; index++, at += slice) {
    const header = 'k' + index + ',' + total + ' ';
    const end = Math.min(total, at + slice);
    const msg = Buffer.allocUnsafe(header.length + end - at);
    msg.write(header, 0, 'latin1');
    msg.set(bytes.subarray(at, end), header.length);
    out.push(msg);
  }
  return out;
}

/** What {@link ChunkAssembler.add} made of a chunk message. */
export type ChunkResult =
  | { kind: 'more' }
  | { kind: 'done'; bytes: Uint8Array }
  /** Not used (malformed header, out of order, another total): log it and go on. */
  | { kind: 'skipped'; reason: string }
  /** The message announced is larger than the receiver takes: give up on it. */
  | { kind: 'too-large'; total: number };

/**
 * Joins the chunk messages of one message, in order, up to `maxBytes`. Holds at most `total`
 * bytes (checked before anything is kept); a chunk that does not continue the message is skipped.
 */
export class ChunkAssembler {
  private parts: Uint8Array[] = [];
  private received = 0;
  private next = 0;

  /**
   * @param maxBytes largest whole message taken
   * @param total the size announced beforehand (an upload), else taken from the first chunk
   */
  constructor(
    private readonly maxBytes: number,
    private total = -1,
  ) {}

  add(data: Uint8Array): ChunkResult {
    const header = parseChunkHeader(data);
    if (typeof header === 'string') return { kind: 'skipped', reason: header };
    const { index, total, offset } = header;
    if (index !== this.next) return { kind: 'skipped', reason: `chunk ${index} where chunk ${this.next} was expected` };
    if (this.total < 0) {
      if (total > this.maxBytes) return { kind: 'too-large', total };
      this.total = total;
    } else if (total !== this.total) {
      return { kind: 'skipped', reason: `chunk of a ${total}-byte message where ${this.total} bytes are expected` };
    }
    const slice = data.subarray(offset);
    if (slice.length === 0 || this.received + slice.length > this.total)
      return {
        kind: 'skipped',
        reason: `chunk ${index} of ${slice.length} bytes does not fit the ${this.total}-byte message`,
      };
    this.parts.push(slice);
    this.received += slice.length;
    this.next++;
    if (this.received < this.total) return { kind: 'more' };
    const bytes = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.total);
    this.parts = [];
    return { kind: 'done', bytes };
  }
}

const COMMA = 0x2c;

/** The index and total of a chunk message and where its slice starts, or why it is malformed. */
function parseChunkHeader(data: Uint8Array): { index: number; total: number; offset: number } | string {
  if (data[0] !== FrameType.Chunk) return 'not a chunk message';
  const n = Math.min(data.length, CHUNK_HEADER_BYTES);
  let index = -1;
  let value = 0;
  let digits = 0;
  for (let i = 1; i < n; i++) {
    const c = data[i]!;
    if (c >= ZERO && c <= NINE && digits < 15) {
      value = value * 10 + (c - ZERO);
      digits++;
    } else if (c === COMMA && index < 0 && digits > 0) {
      index = value;
      value = 0;
      digits = 0;
    } else if (c === SPACE && index >= 0 && digits > 0) {
      return value > 0 ? { index, total: value, offset: i + 1 } : 'malformed chunk header: total 0';
    } else {
      return 'malformed chunk header';
    }
  }
  return 'malformed chunk header';
}
