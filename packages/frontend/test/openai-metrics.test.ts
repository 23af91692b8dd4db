import http from 'node:http';
import { Counter, Registry, register as globalRegistry } from 'prom-client';
import { createFrontendApp, startFrontend, type FrontendServer } from '@dynamo-ts/frontend';
import { fakeGenerate, metricValue, type FakeRecord } from './support/fake';

const MODEL = 'fake-model';

describe('GET /metrics', () => {
  let server: FrontendServer;
  const registry = new Registry();
  const record: FakeRecord = { requests: [], aborted: new Map() };
  beforeAll(async () => {
    // Another component of the process (say the router) registers its own metric in the same registry.
    new Counter({
      name: 'dynamo_router_decisions_total',
      help: 'test',
      labelNames: ['strategy'],
      registers: [registry],
    }).inc({ strategy: 'kv' }, 3);
    server = await startFrontend({
      port: 0,
      host: '127.0.0.1',
      generate: fakeGenerate(record),
      models: () => [MODEL],
      registry,
    });
  });
  afterAll(async () => {
    await server.close();
  });
  const post = (path: string, body: unknown) =>
    fetch(`${server.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  const scrape = async (): Promise<string> => {
    const res = await fetch(`${server.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    return res.text();
  };

  it('counts requests with real values after traffic', async () => {
    const messages = [{ role: 'user', content: 'Tell me a joke' }];
    await (await post('/v1/chat/completions', { model: MODEL, messages })).text();
    await (await post('/v1/chat/completions', { model: MODEL, messages, stream: true })).text();
    await (await post('/v1/chat/completions', { model: MODEL, messages, stream: true })).text();
    await (await post('/v1/completions', { model: MODEL, prompt: 'Tell me a joke', max_tokens: 2 })).text();
    await (await post('/v1/chat/completions', { model: MODEL, messages, n: 2 })).text();
    await (
      await post('/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'fail-mid' }] })
    ).text();
    await (await post('/generate', { prompt: 'Tell me a joke' })).text();

    const text = await scrape();
    const requests = (labels: Record<string, string>) => metricValue(text, 'dynamo_frontend_requests_total', labels);
    expect(requests({ model: MODEL, endpoint: 'chat_completions', request_type: 'unary', status: 'success' })).toBe(1);
    expect(requests({ model: MODEL, endpoint: 'chat_completions', request_type: 'stream', status: 'success' })).toBe(2);
    expect(requests({ model: MODEL, endpoint: 'completions', request_type: 'unary', status: 'success' })).toBe(1);
    expect(requests({ endpoint: 'chat_completions', status: 'rejected' })).toBe(1);
    expect(requests({ model: MODEL, endpoint: 'chat_completions', status: 'error' })).toBe(1);
    expect(requests({ model: 'unspecified', endpoint: 'generate', status: 'success' })).toBe(1);

    expect(metricValue(text, 'dynamo_frontend_inflight_requests', { model: MODEL })).toBe(0);
    // Every accepted request got a first token (the failing one after one token).
    expect(metricValue(text, 'dynamo_frontend_time_to_first_token_seconds_count', { model: MODEL })).toBe(5);
    expect(metricValue(text, 'dynamo_frontend_time_to_first_token_seconds_sum', { model: MODEL })).toBeGreaterThan(0);
    // 3 chat answers of 5 tokens and one of 2 tokens: 4+4+4+1 gaps between tokens.
    expect(metricValue(text, 'dynamo_frontend_inter_token_latency_seconds_count', { model: MODEL })).toBe(13);
    // Prompt lengths: 4 tokens each for the four accepted requests, 1 for fail-mid.
    expect(metricValue(text, 'dynamo_frontend_input_sequence_tokens_sum', { model: MODEL })).toBe(17);
    expect(metricValue(text, 'dynamo_frontend_input_sequence_tokens_count', { model: MODEL })).toBe(5);
    // Output lengths: 5+5+5+2 for the successes, 1 for fail-mid.
    expect(metricValue(text, 'dynamo_frontend_output_sequence_tokens_sum', { model: MODEL })).toBe(18);
    expect(
      metricValue(text, 'dynamo_frontend_request_duration_seconds_count', {
        model: MODEL,
        endpoint: 'chat_completions',
      }),
    ).toBe(4);
    expect(metricValue(text, 'dynamo_frontend_request_duration_seconds_count', { endpoint: 'completions' })).toBe(1);
  });

  it('shows a request in flight while it streams, and cancelled once its client leaves', async () => {
    const inflight = async () => metricValue(await scrape(), 'dynamo_frontend_inflight_requests', { model: MODEL });
    const before = await inflight();
    const req = http.request(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'inflight-1' },
    });
    req.on('error', () => undefined);
    const firstData = new Promise<void>((resolve) => req.on('response', (res) => res.once('data', () => resolve())));
    req.end(JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'slow' }], stream: true }));
    await firstData;
    expect(await inflight()).toBe((before ?? 0) + 1);
    req.destroy();
    for (let i = 0; i < 200 && !record.aborted.has('inflight-1'); i++) await new Promise((r) => setTimeout(r, 10));
    for (let i = 0; i < 200 && (await inflight()) !== before; i++) await new Promise((r) => setTimeout(r, 10));
    const text = await scrape();
    expect(metricValue(text, 'dynamo_frontend_inflight_requests', { model: MODEL })).toBe(before);
    expect(
      metricValue(text, 'dynamo_frontend_requests_total', { endpoint: 'chat_completions', status: 'cancelled' }),
    ).toBe(1);
  });

  it('serves the other metrics of the registry too', async () => {
    expect(metricValue(await scrape(), 'dynamo_router_decisions_total', { strategy: 'kv' })).toBe(3);
  });
});

describe('a generate function that throws before returning an iterable', () => {
  it('answers 500 and leaves nothing in flight', async () => {
    const registry = new Registry();
    const server = await startFrontend({
      port: 0,
      host: '127.0.0.1',
      registry,
      generate: () => {
        throw new Error('not wired');
      },
    });
    try {
      for (const [path, body] of [
        ['/v1/completions', { model: MODEL, prompt: 'x' }],
        ['/generate', { prompt: 'x' }],
      ] as const) {
        const res = await fetch(`${server.url}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        expect(res.status).toBe(500);
        expect(((await res.json()) as { error: { message: string } }).error.message).toBe('not wired');
      }
      const text = await registry.metrics();
      expect(metricValue(text, 'dynamo_frontend_inflight_requests')).toBe(0);
      expect(metricValue(text, 'dynamo_frontend_requests_total', { status: 'error' })).toBe(2);
    } finally {
      await server.close();
    }
  });
});

describe('metrics registries', () => {
  it('lets several frontends share the global registry without "already registered"', async () => {
    const record: FakeRecord = { requests: [], aborted: new Map() };
    const generate = fakeGenerate(record);
    createFrontendApp({ generate });
    const a = await startFrontend({ port: 0, host: '127.0.0.1', generate });
    const b = await startFrontend({ port: 0, host: '127.0.0.1', generate });
    try {
      await (
        await fetch(`${a.url}/generate`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ prompt: 'one two' }),
        })
      ).text();
      const fromB = await (await fetch(`${b.url}/metrics`)).text();
      expect(metricValue(fromB, 'dynamo_frontend_requests_total', { endpoint: 'generate', status: 'success' })).toBe(1);
      expect(await globalRegistry.getSingleMetricAsString('dynamo_frontend_requests_total')).toMatch(
        /status="success"/,
      );
    } finally {
      await a.close();
      await b.close();
    }
  });
});
