import v8 from 'node:v8';
import vm from 'node:vm';
import fc from 'fast-check';
import { createLogger } from '@dynamo-ts/runtime';
import { embeddedPlatform, serveGraph, type GraphHandle } from '@dynamo-ts/sdk';
import { Frontend } from '../components/graph';
import { uniqueNamespace } from './helpers';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const ROUTES = ['/generate', '/v1/completions', '/v1/chat/completions'] as const;

/** Short strings, so 10,000 requests stay quick; some prompts are empty or odd unicode. */
const text = fc.oneof(fc.string({ maxLength: 24 }), fc.constantFrom('', ' ', '\u0000', '😀', 'Tell me a joke'));
const anything = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(null, true, -1, 0, 1e309 as unknown, 2 ** 53, '1', [], {}),
);
/** Bodies with the right keys and random, often wrong, values. */
const shaped = fc.record(
  {
    prompt: fc.oneof(text, anything),
    request_id: fc.oneof(text, anything),
    model: fc.oneof(fc.constant('hello-world'), text, anything),
    messages: fc.oneof(
      fc.array(
        fc.record(
          {
            role: fc.oneof(fc.constantFrom('user', 'system', 'assistant', 'tool'), text),
            content: fc.oneof(text, anything),
          },
          { requiredKeys: [] },
        ),
        { maxLength: 3 },
      ),
      anything,
    ),
    max_tokens: fc.oneof(fc.integer({ min: -2, max: 8 }), anything),
    stream: fc.oneof(fc.boolean(), anything),
    stop: fc.oneof(text, fc.array(text, { maxLength: 5 }), anything),
    n: fc.oneof(fc.integer({ min: 0, max: 3 }), anything),
    temperature: anything,
  },
  { requiredKeys: [] },
);
const body = fc.oneof(
  { weight: 6, arbitrary: shaped.map((b) => JSON.stringify(b)) },
  { weight: 2, arbitrary: anything.map((b) => JSON.stringify(b)) },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }) }, // mostly not JSON at all
);
const request = fc.record({
  route: fc.constantFrom(...ROUTES),
  body,
  contentType: fc.constantFrom('application/json', 'application/json', 'application/json', 'text/plain', ''),
  sse: fc.boolean(),
});

/**
 * 10,000 generated request bodies against `/generate` and the OpenAI routes of the embedded
 * graph: none gets a 5xx or takes the process down, and the heap does not grow with them.
 */
describe('HTTP surface fuzz', () => {
  let graph: GraphHandle;
  let url: string;

  beforeAll(async () => {
    graph = await serveGraph(Frontend, {
      platform: embeddedPlatform(),
      settings: { namespace: uniqueNamespace('fuzz'), port: 0, workerName: 'fuzz', leaseTtlMs: 10000 },
      config: { Frontend: { port: 0, host: '127.0.0.1' } },
      logger: createLogger({ silent: true }),
    });
    url = graph.get('Frontend')[0]!.instance.metadata!.url as string;
  });
  afterAll(async () => {
    await graph.close({ timeoutMs: 2000 });
  });

  it('answers 10,000 generated bodies with no 5xx, and the heap stays flat', async () => {
    const samples = fc.sample(request, { numRuns: 10_000, seed: 20261127 });
    const statuses = new Map<number, number>();
    const fiveXx: string[] = [];
    let heapAt1k = 0;
    const send = async (r: (typeof samples)[number]): Promise<void> => {
      const headers: Record<string, string> = {};
      if (r.contentType) headers['content-type'] = r.contentType;
      if (r.sse) headers.accept = 'text/event-stream';
      const res = await fetch(`${url}${r.route}`, { method: 'POST', headers, body: r.body });
      const answer = await res.text();
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      // A stream that started fine must not end in an error event caused by the input either.
      const streamError = res.status === 200 && /^event: error/m.test(answer);
      if (res.status >= 500 || streamError)
        fiveXx.push(`${r.route} ${r.body} -> ${res.status} ${answer.slice(0, 200)}`);
    };
    const concurrency = 32;
    for (let i = 0; i < samples.length; i += concurrency) {
      await Promise.all(samples.slice(i, i + concurrency).map(send));
      if (i === 992) {
        gc();
        heapAt1k = process.memoryUsage().heapUsed;
      }
    }
    gc();
    const heapGrowth = process.memoryUsage().heapUsed - heapAt1k;
    expect(fiveXx.slice(0, 5)).toEqual([]);
    // Both kinds of answer occurred: the generator reaches the handlers, not only the validators.
    expect(statuses.get(200) ?? 0).toBeGreaterThan(100);
    expect([...statuses.keys()].some((s) => s >= 400 && s < 500)).toBe(true);
    // 9,000 more requests: well under 1 KiB each would be kept if anything leaked per request.
    expect(heapGrowth).toBeLessThan(9_000 * 1024);
    // The graph still serves.
    const ok = await fetch(`${url}/generate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'still alive' }),
    });
    expect(((await ok.json()) as { worker_output: string }).worker_output).toMatch(
      /^still alive_GeneratedBy_fuzz-[01]$/,
    );
  }, 240_000);
});
