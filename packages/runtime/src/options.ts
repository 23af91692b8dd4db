/** Options every asynchronous dynamo-ts call accepts. */
export interface CallOptions {
  /** Aborts the call; the promise rejects with a CANCELLED (or TIMEOUT) error. */
  signal?: AbortSignal;
  /** Gives up after this many milliseconds with a TIMEOUT error. */
  timeoutMs?: number;
}
