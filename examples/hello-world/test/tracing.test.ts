import path from 'node:path';
import { propagation, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
} from '@opentelemetry/sdk-trace-base';
import { createLogger } from '@dynamo-ts/runtime';
import { embeddedPlatform, loadConfigFile, mergeConfig, serveGraph, type GraphHandle } from '@dynamo-ts/sdk';
import { Frontend } from '../components/graph';
import { generateSse, uniqueNamespace } from './helpers';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER_SPAN = '00f067aa0ba902b7';

/** A W3C traceparent sent to the frontend is continued through every hop, the prefill queue included. */
describe('tracing (OpenTelemetry API, in-memory exporter)', () => {
  const exporter = new InMemorySpanExporter();
  let graph: GraphHandle;
  let url: string;

  beforeAll(async () => {
    trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    graph = await serveGraph(Frontend, {
      platform: embeddedPlatform(),
      settings: { namespace: uniqueNamespace('trace'), port: 0, workerName: 'node', leaseTtlMs: 10000 },
      config: mergeConfig(loadConfigFile(path.join(__dirname, '..', 'configs', 'disagg.yaml')), {
        Frontend: { port: 0, host: '127.0.0.1' },
        PrefillWorker: { delay_ms: 5 },
      }),
      logger: createLogger({ silent: true }),
    });
    url = graph.get('Frontend')[0]!.instance.metadata!.url as string;
  });
  afterAll(async () => {
    await graph.close({ timeoutMs: 2000 });
    trace.disable();
    propagation.disable();
  });

  const parentOf = (s: ReadableSpan): string | undefined =>
    (s as unknown as { parentSpanContext?: { spanId: string } }).parentSpanContext?.spanId ??
    (s as unknown as { parentSpanId?: string }).parentSpanId;

  it('one trace from the HTTP request through Processor, Router, worker and prefill worker', async () => {
    const res = await fetch(`${url}/generate`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'text/event-stream',
        traceparent: `00-${TRACE_ID}-${CALLER_SPAN}-01`,
      },
      body: JSON.stringify({ prompt: 'This is prefill disagg serving example', request_id: 'traced-1' }),
    });
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('_GeneratedBy_node');
    const names = [
      'HTTP POST /generate',
      'Processor.generate',
      'Router.route',
      'DummyWorker.generate',
      'PrefillWorker.prefill',
    ];
    for (let i = 0; i < 100 && !names.every((n) => exporter.getFinishedSpans().some((s) => s.name === n)); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const spans = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === TRACE_ID);
    const byName = new Map(spans.map((s) => [s.name, s]));
    expect([...byName.keys()].sort()).toEqual([...names].sort());
    const id = (n: string): string => byName.get(n)!.spanContext().spanId;
    expect(parentOf(byName.get('HTTP POST /generate')!)).toBe(CALLER_SPAN);
    expect(parentOf(byName.get('Processor.generate')!)).toBe(id('HTTP POST /generate'));
    expect(parentOf(byName.get('Router.route')!)).toBe(id('Processor.generate'));
    expect(parentOf(byName.get('DummyWorker.generate')!)).toBe(id('Processor.generate'));
    expect(parentOf(byName.get('PrefillWorker.prefill')!)).toBe(id('DummyWorker.generate'));
    expect(byName.get('HTTP POST /generate')!.attributes['http.response.status_code']).toBe(200);
  });

  it('a request without traceparent starts a trace of its own at the frontend', async () => {
    exporter.reset();
    expect((await generateSse(url, 'Tell me a joke')).status).toBe(200);
    for (let i = 0; i < 100 && exporter.getFinishedSpans().length < 4; i++) await new Promise((r) => setTimeout(r, 20));
    const spans = exporter.getFinishedSpans();
    const root = spans.find((s) => s.name === 'HTTP POST /generate')!;
    expect(parentOf(root)).toBeUndefined();
    expect(new Set(spans.map((s) => s.spanContext().traceId))).toEqual(new Set([root.spanContext().traceId]));
  });
});
