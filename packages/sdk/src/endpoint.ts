import type { Static, TSchema } from '@sinclair/typebox';
import {
  InternalError,
  type CallOptions,
  type ClientRequestOptions,
  type EndpointClient,
  type InstanceChange,
  type InstanceInfo,
  type ResponseStream,
} from '@dynamo-ts/runtime';
import type { EndpointContext } from './service';

/** Whether an endpoint answers with a stream of items or with exactly one. */
export type EndpointKind = 'stream' | 'unary';

/**
 * One endpoint's wire contract, declared once: the request and response JSON schemas (TypeBox
 * schemas, so the TypeScript types are derived from them, never written a second time) and its
 * kind. The request schema validates every request before the handler runs.
 */
export interface EndpointDeclaration<Req = unknown, Res = unknown, K extends EndpointKind = EndpointKind> {
  readonly kind: K;
  readonly request: TSchema;
  readonly response: TSchema;
  /** Type-level only: the request and response types (never set). */
  readonly types?: { request: Req; response: Res };
}

/** A streaming endpoint: the handler is an async generator of response items. */
export function streamEndpoint<Q extends TSchema, R extends TSchema>(
  request: Q,
  response: R,
): EndpointDeclaration<Static<Q>, Static<R>, 'stream'> {
  return { kind: 'stream', request, response };
}

/** A unary endpoint: the handler returns one answer; callers use {@link TypedClient.call}. */
export function unaryEndpoint<Q extends TSchema, R extends TSchema>(
  request: Q,
  response: R,
): EndpointDeclaration<Static<Q>, Static<R>, 'unary'> {
  return { kind: 'unary', request, response };
}

/** The endpoints of a service, by name. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Api = Record<string, EndpointDeclaration<any, any, EndpointKind>>;

/** A streaming endpoint's handler. */
export type StreamHandler<Req, Res> = (request: Req, ctx: EndpointContext) => AsyncIterable<Res>;
/** A unary endpoint's handler. */
export type UnaryHandler<Req, Res> = (request: Req, ctx: EndpointContext) => Promise<Res> | Res;

/** The handler type a declaration asks for. */
export type HandlerOf<D> =
  D extends EndpointDeclaration<infer Q, infer R, 'unary'>
    ? UnaryHandler<Q, R>
    : D extends EndpointDeclaration<infer Q, infer R, 'stream'>
      ? StreamHandler<Q, R>
      : never;

/** One handler per declared endpoint. */
export type Handlers<A extends Api> = { [K in keyof A]: HandlerOf<A[K]> };

/** Request type of a declaration. */
export type RequestOf<D> = D extends EndpointDeclaration<infer Q, unknown, EndpointKind> ? Q : never;
/** Response (item) type of a declaration. */
export type ResponseOf<D> = D extends EndpointDeclaration<unknown, infer R, EndpointKind> ? R : never;

/** A typed client of a declared endpoint. */
export type ClientOf<D> = D extends EndpointDeclaration<infer Q, infer R, EndpointKind> ? TypedClient<Q, R> : never;

/**
 * A client of a declared endpoint: the {@link EndpointClient} (instances, failover, marks) with
 * the request and response types of its declaration. `generate` streams; `call` takes the one
 * answer of a unary endpoint.
 */
export class TypedClient<Req, Res> {
  constructor(readonly raw: EndpointClient) {}

  /**
   * Sends `request`; the response stream of the chosen instance (see {@link EndpointClient.generate}).
   * A `parent` that is a traced handler's context passes its trace on (its `traceHeaders`).
   */
  generate(request: Req, options?: ClientRequestOptions): ResponseStream<Res> {
    return this.raw.generate<Res>(request, traced(options));
  }

  /** Sends `request` to a unary endpoint and resolves with its answer. */
  async call(request: Req, options?: ClientRequestOptions): Promise<Res> {
    const it = this.raw.generate<Res>(request, traced(options))[Symbol.asyncIterator]();
    const first = await it.next();
    if (first.done) throw new InternalError(`${this.describe()} answered nothing`);
    // The end of the stream travels with (or right after) the answer; reading it lets the
    // stream finish instead of cancelling the handler.
    const rest = await it.next();
    if (!rest.done) {
      void it.return?.()?.catch(() => undefined);
      throw new InternalError(`${this.describe()} answered more than once (declared unary)`);
    }
    return first.value;
  }

  instances(): InstanceInfo[] {
    return this.raw.instances();
  }
  instanceIds(): string[] {
    return this.raw.instanceIds();
  }
  onChange(listener: (c: InstanceChange) => void): () => void {
    return this.raw.onChange(listener);
  }
  markDown(instanceId: string, forMs?: number): void {
    this.raw.markDown(instanceId, forMs);
  }
  isDown(instanceId: string): boolean {
    return this.raw.isDown(instanceId);
  }
  waitForInstances(options?: { min?: number } & CallOptions): Promise<InstanceInfo[]> {
    return this.raw.waitForInstances(options);
  }

  private describe(): string {
    const ep = this.raw.endpoint;
    return `${ep.component.name}.${ep.name}`;
  }
}

/** The options with the parent's trace headers added (the same object when there is no trace). */
function traced(options: ClientRequestOptions | undefined): ClientRequestOptions | undefined {
  const trace = (options?.parent as { traceHeaders?: Readonly<Record<string, string>> } | undefined)?.traceHeaders;
  if (trace === undefined) return options;
  return { ...options, headers: { ...trace, ...options!.headers } };
}

/** Serves a unary handler as a one-item response stream (an iterator object, not a generator). */
export class UnaryResponse<Res> implements AsyncIterableIterator<Res> {
  private state: 0 | 1 | 2 = 0;

  constructor(private readonly answer: () => Promise<Res> | Res) {}

  async next(): Promise<IteratorResult<Res>> {
    if (this.state !== 0) return { done: true, value: undefined };
    this.state = 1;
    const value = await this.answer();
    return { done: false, value };
  }

  async return(): Promise<IteratorResult<Res>> {
    this.state = 2;
    return { done: true, value: undefined };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}
