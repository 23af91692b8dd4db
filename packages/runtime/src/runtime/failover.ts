import { CancelledError, isDynamoError, NoRespondersError } from '../errors';
import type { RequestPlane, ResponseStream } from '../transport/request-plane';
import type { ClientRequestOptions, EndpointClient } from './client';

const DONE: IteratorResult<never> = { value: undefined, done: true };
/** What a {@link FailoverStream} passes as "tried" before any attempt failed (never written). */
const NONE_TRIED: ReadonlySet<string> = new Set<string>();

/**
 * The response of a call through {@link EndpointClient.generate} without `instanceId`: until its
 * first item it picks an instance and moves to another on UNAVAILABLE (failover); from then on
 * each read is the transport stream's own `next()`, with no extra hop per item. A class, not a
 * generator or closures: one object per call.
 */
export class FailoverStream<T> implements ResponseStream<T>, AsyncIterator<T> {
  readonly requestId: string;
  private current: ResponseStream<T> | undefined = undefined;
  private it: AsyncIterator<T> | undefined = undefined;
  private cancelled: unknown = undefined;
  /** The first item has arrived: from then on items (and errors) come straight from `it`. */
  private sent = false;
  private finished = false;
  private tried: Set<string> | undefined = undefined;
  private attempt = 0;

  constructor(
    private readonly client: EndpointClient,
    private readonly plane: RequestPlane,
    private readonly payload: unknown,
    private readonly options: ClientRequestOptions,
  ) {
    this.requestId = options.requestId!;
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return this;
  }

  next(): Promise<IteratorResult<T>> {
    if (this.finished) return Promise.resolve(DONE as IteratorResult<T>);
    if (this.sent) return this.it!.next();
    return this.first();
  }

  return(): Promise<IteratorResult<T>> {
    this.finished = true;
    void this.it?.return?.()?.catch(() => undefined);
    return Promise.resolve(DONE as IteratorResult<T>);
  }

  cancel(reason?: unknown): void {
    this.cancelled = reason ?? new CancelledError();
    this.current?.cancel(reason);
    this.finished = true;
  }

  /**
   * Until the first item: sends the request, failing over as {@link FailoverStream} says; a
   * failure ends the stream.
   */
  private async first(): Promise<IteratorResult<T>> {
    const options = this.options;
    try {
      for (;;) {
        this.attempt++;
        // The instances tried: a set only once an attempt failed (most requests never fail over).
        const tried = this.tried ?? NONE_TRIED;
        const target =
          this.client.targetNow(options, tried) ?? (await this.client.waitForTarget(options, tried, this.attempt));
        if (this.cancelled !== undefined || options.parent?.cancelled) throw new CancelledError();
        // Abandoned (return()) while waiting for an instance: send nothing.
        if (this.finished) return DONE as IteratorResult<T>;
        this.current = this.plane.request<T>(target.subject, this.payload, options);
        const it = this.current[Symbol.asyncIterator]();
        this.it = it;
        try {
          const r = await it.next();
          if (this.finished && !r.done) {
            // Abandoned while the first item was on its way: stop the handler.
            void it.return?.()?.catch(() => undefined);
            return DONE as IteratorResult<T>;
          }
          if (r.done) this.finished = true;
          else this.sent = true;
          return r;
        } catch (e) {
          // Only the transport's "nobody listens" says the instance is gone; an UNAVAILABLE its
          // handler returned (e.g. it has no worker of its own right now) is worth a retry elsewhere
          // but says nothing against the instance itself.
          if (e instanceof NoRespondersError) this.client.markDown(target.instanceId);
          if (
            !isDynamoError(e) ||
            e.code !== 'UNAVAILABLE' ||
            this.attempt >= (options.retry?.attempts ?? options.maxAttempts ?? 3)
          )
            throw e;
          (this.tried ??= new Set()).add(target.instanceId);
          this.client.endpoint.runtime.logger.warn('instance unavailable; retrying on another', {
            request_id: this.requestId,
            instance_id: target.instanceId,
            attempt: this.attempt,
            error: e.message,
          });
        }
      }
    } catch (e) {
      this.finished = true;
      throw e;
    }
  }
}

/** A response stream that fails with `error` on its first read. */
export function failedStream<T>(requestId: string, error: Error): ResponseStream<T> {
  return {
    requestId,
    cancel() {},
    [Symbol.asyncIterator]() {
      return {
        next: () => Promise.reject(error),
        return: () => Promise.resolve({ done: true, value: undefined }),
      } as AsyncIterator<T>;
    },
  };
}
