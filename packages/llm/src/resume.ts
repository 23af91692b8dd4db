import {
  isDynamoError,
  type RetryPolicy,
  type CancelSource,
  type ClientRequestOptions,
  type Logger,
} from '@dynamo-ts/runtime';
import type { TypedClient } from '@dynamo-ts/sdk';

/** How {@link ResumableStream} resumes a broken stream. */
export interface ResumeOptions<Req, Res> {
  /** The tokens an item carries (sent back on a resume so the server continues after them). */
  tokens(item: Res): readonly number[];
  /** The request that continues after `received` tokens. */
  resumeRequest(request: Req, received: number[]): Req;
  /** `migrations` = resumes allowed per stream; pauses between them. */
  retry: RetryPolicy;
  logger: Logger;
  /** Request options of every attempt (`parent` carries the caller's cancellation). */
  requestOptions: ClientRequestOptions & { parent: CancelSource; requestId: string };
}

/**
 * A call to a streaming endpoint that is resumed when it breaks after some items (the serving
 * instance died, or the connection dropped under it): the request is sent again with the tokens
 * already received, to any instance, so the caller's stream goes on with no gap and no duplicate.
 * A stream that broke before its first item is not resumed here (the endpoint client's failover
 * already retried it). A plain iterator: one object per call, each item one `then`.
 */
export class ResumableStream<Req, Res> implements AsyncIterableIterator<Res> {
  private readonly received: number[] = [];
  private resumes = 0;
  private finished = false;
  private upstream: AsyncIterator<Res> | undefined = undefined;
  private readonly onItem: (r: IteratorResult<Res>) => IteratorResult<Res>;
  private readonly onError: (e: unknown) => Promise<IteratorResult<Res>>;

  constructor(
    private readonly client: TypedClient<Req, Res>,
    private readonly request: Req,
    private readonly o: ResumeOptions<Req, Res>,
  ) {
    this.onItem = this.item.bind(this);
    this.onError = this.recover.bind(this);
  }

  next(): Promise<IteratorResult<Res>> {
    if (this.finished) return Promise.resolve({ done: true, value: undefined });
    return (this.upstream ?? this.open()).next().then(this.onItem, this.onError);
  }

  return(): Promise<IteratorResult<Res>> {
    this.finished = true;
    void this.upstream?.return?.()?.catch(() => undefined);
    return Promise.resolve({ done: true, value: undefined });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private open(): AsyncIterator<Res> {
    const req = this.received.length ? this.o.resumeRequest(this.request, this.received) : this.request;
    this.upstream = this.client.generate(req, this.o.requestOptions)[Symbol.asyncIterator]();
    return this.upstream;
  }

  private item(r: IteratorResult<Res>): IteratorResult<Res> {
    if (r.done) {
      this.finished = true;
      return r;
    }
    const ids = this.o.tokens(r.value);
    for (let i = 0; i < ids.length; i++) this.received.push(ids[i]!);
    return r;
  }

  private async recover(e: unknown): Promise<IteratorResult<Res>> {
    const broken = isDynamoError(e) && (e.code === 'UNAVAILABLE' || e.code === 'TIMEOUT');
    const parent = this.o.requestOptions.parent;
    if (
      this.finished ||
      parent.cancelled ||
      !broken ||
      this.received.length === 0 ||
      !this.o.retry.mayMigrate(this.resumes)
    ) {
      this.finished = true;
      throw e;
    }
    this.resumes++;
    this.o.logger.warn(`stream from the ${this.client.raw.endpoint.component.name} broke; resuming`, {
      request_id: this.o.requestOptions.requestId,
      received_tokens: this.received.length,
      resumes: this.resumes,
      error: (e as Error).message,
    });
    try {
      await this.o.retry.pause(this.resumes, parent);
    } catch (cancelled) {
      this.finished = true;
      throw cancelled;
    }
    return this.open().next().then(this.onItem, this.onError);
  }
}
