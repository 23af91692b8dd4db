/**
 * Typed errors shared by every dynamo-ts package. Errors cross process boundaries as
 * `{code, message}` ({@link toWireError}) and come back as the same code ({@link fromWireError}),
 * so callers check `e.code`, never `instanceof`, across packages.
 */

/** Every error code a dynamo-ts component may report. */
export const ERROR_CODES = [
  'INVALID_ARGUMENT',
  'NOT_FOUND',
  'UNAVAILABLE',
  'TIMEOUT',
  'CANCELLED',
  'CLOSED',
  'PAYLOAD_TOO_LARGE',
  'UNAUTHENTICATED',
  'RESOURCE_EXHAUSTED',
  'INTERNAL',
] as const;

/** A dynamo-ts error code. */
export type ErrorCode = (typeof ERROR_CODES)[number];

/** Codes that a caller may retry on another instance without the user noticing. */
const RETRYABLE: ReadonlySet<ErrorCode> = new Set(['UNAVAILABLE', 'RESOURCE_EXHAUSTED']);

/** Options for every {@link DynamoError}. */
export interface DynamoErrorOptions {
  /** The underlying error. */
  cause?: unknown;
  /** Overrides the default retryability of the code. */
  retryable?: boolean;
}

/** Base class of all dynamo-ts errors: a message, a {@link ErrorCode} and whether a retry may help. */
export class DynamoError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  constructor(code: ErrorCode, message: string, options: DynamoErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DynamoError';
    this.code = code;
    this.retryable = options.retryable ?? RETRYABLE.has(code);
  }
}

/** The input was malformed or out of range. */
export class InvalidArgumentError extends DynamoError {
  constructor(message: string, options?: DynamoErrorOptions) {
    super('INVALID_ARGUMENT', message, options);
    this.name = 'InvalidArgumentError';
  }
}

/** A named thing (instance, model, key, service) does not exist. */
export class NotFoundError extends DynamoError {
  constructor(message: string, options?: DynamoErrorOptions) {
    super('NOT_FOUND', message, options);
    this.name = 'NotFoundError';
  }
}

/** The target cannot serve now (no instance, connection lost); another instance may. */
export class UnavailableError extends DynamoError {
  constructor(message: string, options?: DynamoErrorOptions) {
    super('UNAVAILABLE', message, options);
    this.name = 'UnavailableError';
  }
}

/** Nobody is subscribed on the subject a request was sent to. */
export class NoRespondersError extends UnavailableError {
  readonly subject: string;
  constructor(subject: string, options?: DynamoErrorOptions) {
    super(`no responders on ${subject}`, options);
    this.name = 'NoRespondersError';
    this.subject = subject;
  }
}

/** A deadline, timeout or heartbeat timeout passed. */
export class TimeoutError extends DynamoError {
  constructor(message: string, options?: DynamoErrorOptions) {
    super('TIMEOUT', message, options);
    this.name = 'TimeoutError';
  }
}

/** The caller cancelled the operation (an AbortSignal fired, a stream was abandoned). */
export class CancelledError extends DynamoError {
  constructor(message = 'cancelled', options?: DynamoErrorOptions) {
    super('CANCELLED', message, options);
    this.name = 'CancelledError';
  }
}

/** The object was closed (or is draining) and takes no more work. */
export class ClosedError extends DynamoError {
  constructor(message = 'closed', options?: DynamoErrorOptions) {
    super('CLOSED', message, options);
    this.name = 'ClosedError';
  }
}

/** A message is larger than the transport allows. */
export class PayloadTooLargeError extends DynamoError {
  readonly size: number;
  readonly limit: number;
  constructor(size: number, limit: number, options?: DynamoErrorOptions) {
    super('PAYLOAD_TOO_LARGE', `payload of ${size} bytes exceeds the limit of ${limit} bytes`, options);
    this.name = 'PayloadTooLargeError';
    this.size = size;
    this.limit = limit;
  }
}

/** A bug or an unexpected condition. */
export class InternalError extends DynamoError {
  constructor(message: string, options?: DynamoErrorOptions) {
    super('INTERNAL', message, options);
    this.name = 'InternalError';
  }
}

/** The shape of an error on the wire. */
export interface WireError {
  code: ErrorCode;
  message: string;
}

/** True when `e` carries a dynamo-ts error code (works across package copies). */
export function isDynamoError(e: unknown): e is DynamoError {
  return (
    typeof e === 'object' &&
    e !== null &&
    typeof (e as { code?: unknown }).code === 'string' &&
    (ERROR_CODES as readonly string[]).includes((e as { code: string }).code) &&
    typeof (e as { message?: unknown }).message === 'string'
  );
}

/** Converts any thrown value into a dynamo-ts error (unknown errors become INTERNAL). */
export function toDynamoError(e: unknown): DynamoError {
  if (e instanceof DynamoError) return e;
  if (isDynamoError(e)) return new DynamoError(e.code, e.message, { cause: e });
  if (e instanceof Error) {
    if (e.name === 'AbortError') return new CancelledError(e.message, { cause: e });
    if (e.name === 'TimeoutError') return new TimeoutError(e.message, { cause: e });
    return new InternalError(e.message, { cause: e });
  }
  return new InternalError(String(e));
}

/** Serializes an error as `{code, message}` for the wire. */
export function toWireError(e: unknown): WireError {
  const err = toDynamoError(e);
  return { code: err.code, message: err.message };
}

/** Rebuilds an error received from the wire, keeping its code. */
export function fromWireError(w: { code?: unknown; message?: unknown }): DynamoError {
  const code = (ERROR_CODES as readonly string[]).includes(String(w.code)) ? (w.code as ErrorCode) : 'INTERNAL';
  const message = typeof w.message === 'string' ? w.message : 'unknown remote error';
  return new DynamoError(code, message);
}

/** Throws the signal's reason as a {@link CancelledError} (or {@link TimeoutError}) when it has fired. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortReason(signal);
}

/** The dynamo-ts error that an aborted signal stands for. */
export function abortReason(signal: AbortSignal): DynamoError {
  return cancelReason(signal.reason);
}

/** The error a request cancelled for `r` (an abort reason, a parent request's reason) ends with. */
export function cancelReason(r: unknown): DynamoError {
  if (isDynamoError(r)) return toDynamoError(r);
  if (r instanceof Error && r.name === 'TimeoutError') return new TimeoutError(r.message, { cause: r });
  return new CancelledError(r instanceof Error ? r.message : 'cancelled', { cause: r });
}
