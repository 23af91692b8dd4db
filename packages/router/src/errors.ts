/**
 * Errors thrown by `@dynamo-ts/router`. They follow the dynamo-ts convention (a `code` and a
 * `retryable` flag, checked by code rather than `instanceof` across packages) without depending on
 * `@dynamo-ts/runtime`, so the router stays usable on its own.
 * @packageDocumentation
 */

/** Codes a router error may carry (a subset of the dynamo-ts error codes). */
export type RouterErrorCode = 'INVALID_ARGUMENT' | 'UNAVAILABLE' | 'INTERNAL';

/** Base class of router errors. */
export class RouterError extends Error {
  /** The dynamo-ts error code. */
  readonly code: RouterErrorCode;
  /** Whether retrying (later, or elsewhere) may succeed. */
  readonly retryable: boolean;
  constructor(code: RouterErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RouterError';
    this.code = code;
    this.retryable = code === 'UNAVAILABLE';
  }
}

/** An argument or option was malformed or out of range; the message names it. */
export class RouterInvalidArgumentError extends RouterError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('INVALID_ARGUMENT', message, options);
    this.name = 'RouterInvalidArgumentError';
  }
}

/** A routing decision was requested while no worker is registered. Retryable. */
export class NoWorkersError extends RouterError {
  constructor(message = 'no worker is available to route to') {
    super('UNAVAILABLE', message);
    this.name = 'NoWorkersError';
  }
}
