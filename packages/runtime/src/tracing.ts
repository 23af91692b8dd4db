import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Span,
} from '@opentelemetry/api';

/**
 * Tracing through the OpenTelemetry API: a no-op unless the application registers an SDK (a
 * tracer provider and a propagator, e.g. W3C trace context). A request's trace travels between
 * processes as string headers (`traceparent`, `tracestate`) in the request plane's headers and in
 * prefill jobs; each hop continues it with a span of its own.
 */

/** The tracer name of every dynamo-ts span. */
export const TRACER_NAME = 'dynamo-ts';

/** Propagation headers of a trace (W3C: `traceparent`, `tracestate`). */
export type TraceHeaders = Readonly<Record<string, string>>;

/** Most header bytes accepted from the wire for a trace (a bigger carrier is ignored, not parsed). */
const MAX_CARRIER_BYTES = 1024;

const getter = {
  keys: (c: Record<string, unknown>): string[] => Object.keys(c),
  get: (c: Record<string, unknown>, key: string): string | undefined => {
    const v = c[key];
    if (typeof v === 'string') return v.length <= MAX_CARRIER_BYTES ? v : undefined;
    if (Array.isArray(v) && typeof v[0] === 'string') return v[0].length <= MAX_CARRIER_BYTES ? v[0] : undefined;
    return undefined;
  },
};

/** One hop's span and the headers that carry it to the next hop. */
export class HopSpan {
  private carrier: TraceHeaders | undefined;
  private ended = false;

  constructor(
    readonly span: Span,
    readonly context: Context,
  ) {}

  /** The headers to send with calls made for this hop (its span as their parent). */
  get headers(): TraceHeaders {
    if (this.carrier === undefined) {
      const c: Record<string, string> = {};
      propagation.inject(this.context, c);
      this.carrier = c;
    }
    return this.carrier;
  }

  /** Ends the span; an error marks it failed. Idempotent. */
  end(error?: unknown, attributes?: Attributes): void {
    if (this.ended) return;
    this.ended = true;
    if (attributes) this.span.setAttributes(attributes);
    if (error !== undefined) {
      const e = error instanceof Error ? error : new Error(String(error));
      const code = (e as { code?: unknown }).code;
      this.span.recordException(e);
      this.span.setStatus({ code: SpanStatusCode.ERROR, message: typeof code === 'string' ? code : e.name });
    }
    this.span.end();
  }
}

/**
 * Starts the span of one hop, continuing the trace found in `headers` (a request's headers, a
 * job's carrier); undefined when nothing records it (no SDK registered, or not sampled), so an
 * untraced request costs no more than this call.
 */
export function startHopSpan(
  name: string,
  headers: Readonly<Record<string, unknown>> | undefined,
  options: { kind?: 'server' | 'consumer'; attributes?: Attributes } = {},
): HopSpan | undefined {
  const parent = headers ? propagation.extract(ROOT_CONTEXT, headers, getter) : ROOT_CONTEXT;
  const span = trace
    .getTracer(TRACER_NAME)
    .startSpan(
      name,
      { kind: options.kind === 'consumer' ? SpanKind.CONSUMER : SpanKind.SERVER, attributes: options.attributes },
      parent,
    );
  if (!span.isRecording()) return undefined;
  return new HopSpan(span, trace.setSpan(parent, span));
}

/**
 * Wraps a handler's response stream so the hop's span ends with it (on the last item, an error,
 * or the caller abandoning it).
 */
export function traceStream<T>(source: AsyncIterable<T>, hop: HopSpan): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<T> {
      const it = context.with(hop.context, () => source[Symbol.asyncIterator]());
      let items = 0;
      return {
        async next() {
          try {
            const r = await it.next();
            if (r.done) hop.end(undefined, { 'dynamo.items': items });
            else items++;
            return r;
          } catch (e) {
            hop.end(e, { 'dynamo.items': items });
            throw e;
          }
        },
        async return(value?: unknown) {
          hop.end(undefined, { 'dynamo.items': items, 'dynamo.abandoned': true });
          return (await it.return?.(value)) ?? { done: true, value: undefined };
        },
      };
    },
  };
}
