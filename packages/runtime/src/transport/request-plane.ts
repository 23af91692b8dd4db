import type { CallOptions } from '../options';
import type { Logger } from '../logger';

/** Per-request options of {@link RequestPlane.request}. */
export interface RequestOptions extends CallOptions {
  /** Carried to the handler as `ctx.requestId`; generated when absent. */
  requestId?: string;
  /** String headers carried to the handler. */
  headers?: Record<string, string>;
  /** Absolute deadline (epoch ms) carried to the handler; the stream fails with TIMEOUT after it. */
  deadline?: number;
  /**
   * The request this one serves (a handler passes its own `ctx`): cancelling it cancels this one,
   * as `signal` would, without creating an AbortSignal on either side.
   */
  parent?: CancelSource;
}

/** A request's cancellation without an AbortSignal: what {@link RequestOptions.parent} takes. */
export interface CancelSource {
  /** True once the request is cancelled. */
  readonly cancelled: boolean;
  /**
   * Calls `listener` once when the request is cancelled (at once or on the next microtask if it
   * already is).
   * @returns the function that removes the listener
   */
  onCancel(listener: (reason: Error) => void): () => void;
}

/** What a handler gets with each request. */
export interface RequestContext extends CancelSource {
  readonly requestId: string;
  /**
   * Fires when the caller cancels, abandons the stream, or the endpoint closes. Planes may create
   * it on first read: a handler that only needs to check for cancellation reads `cancelled`.
   */
  readonly signal: AbortSignal;
  /** True once the request is cancelled (as `signal.aborted`, without creating the signal). */
  readonly cancelled: boolean;
  readonly headers: Readonly<Record<string, string>>;
  readonly deadline?: number;
  /** The subject the request arrived on. */
  readonly subject: string;
}

/**
 * An endpoint handler: takes the decoded request, yields response items (JSON values).
 * Throwing sends an error frame (`{code, message}`) to the caller.
 */
export type RequestHandler = (request: unknown, ctx: RequestContext) => AsyncIterable<unknown>;

/** Options of {@link RequestPlane.serve}. */
export interface ServeOptions {
  logger?: Logger;
}

/** An endpoint being served on one subject. */
export interface ServedEndpoint {
  readonly subject: string;
  /** Streams currently in flight. */
  readonly inflight: number;
  /**
   * Stops taking new requests (callers then see no responders and fail over), waits for the
   * in-flight streams to finish for at most `timeoutMs` (default 30 s), then cancels what remains.
   */
  drain(options?: { timeoutMs?: number }): Promise<void>;
  /** Stops at once, cancelling in-flight streams. Idempotent. */
  close(): Promise<void>;
}

/**
 * The response of one request: iterate it for the handler's items in order. Errors (remote
 * error frames, no responders, timeouts, cancellation) are thrown from the iteration with their
 * code. Breaking out of the iteration, or {@link ResponseStream.cancel}, cancels the handler.
 */
export interface ResponseStream<T = unknown> extends AsyncIterable<T> {
  readonly requestId: string;
  cancel(reason?: unknown): void;
}

/**
 * Request/streaming-response transport between processes.
 *
 * Implementations: `MemoryRequestPlane` (embedded default) and `NatsRequestPlane`.
 *
 * Semantics every implementation keeps (checked by `describeRequestPlaneCompliance`):
 * - payloads and items are JSON values and are copied (never shared by reference);
 * - a request to a subject nobody serves fails with `NoRespondersError` (code UNAVAILABLE)
 *   before any item, so the caller can fail over;
 * - a request whose encoded size exceeds {@link RequestPlane.maxPayload} fails with PAYLOAD_TOO_LARGE;
 * - cancelling (signal, `cancel()`, or `break`) fires the handler's `ctx.signal`;
 * - a handler error reaches the caller with the same code and message;
 * - `timeoutMs` bounds the whole stream; `deadline` too.
 */
/**
 * Default {@link RequestPlane.maxPayload} of every plane: 64 MiB. The NATS plane splits a request or
 * response frame larger than nats-server's `max_payload` into chunks up to this size.
 */
export const DEFAULT_MAX_PAYLOAD = 64 * 1024 * 1024;

export interface RequestPlane {
  /** Largest encoded request (and response item) the transport accepts, in bytes. */
  readonly maxPayload: number;
  serve(subject: string, handler: RequestHandler, options?: ServeOptions): Promise<ServedEndpoint>;
  request<T = unknown>(subject: string, payload: unknown, options?: RequestOptions): ResponseStream<T>;
  /** Drains every served endpoint, then closes. */
  drain(options?: { timeoutMs?: number }): Promise<void>;
  /** Closes at once. Idempotent. */
  close(): Promise<void>;
}
