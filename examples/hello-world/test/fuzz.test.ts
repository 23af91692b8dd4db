import v8 from 'node:v8';
import vm from 'node:vm';
import fc from 'fast-check';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  configKey,
  createLogger,
  eventSubject,
  instancesPrefix,
  isDynamoError,
  kvTransferKey,
  type DistributedRuntime,
} from '@dynamo-ts/runtime';
import { embeddedPlatform, loadConfigFile, serveGraph, settingsFromEnv, type GraphHandle } from '@dynamo-ts/sdk';
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
    // The sampling fields go on to the engine: in range, at the edges, and anything.
    temperature: fc.oneof(fc.double({ min: 0, max: 2, noNaN: true }), fc.constantFrom(-0.1, 2.5), anything),
    top_p: fc.oneof(fc.double({ min: 0, max: 1, noNaN: true }), anything),
    seed: fc.oneof(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.constantFrom(-1, 2 ** 32), anything),
  },
  { requiredKeys: [] },
);
/** Bodies every route accepts, with the optional fields varied in their ranges: they reach the handlers. */
const word = fc.constantFrom('Tell', 'me', 'a', 'joke', 'é', '😀', '<|endoftext|>');
const valid = fc.record(
  {
    prompt: fc.array(word, { minLength: 1, maxLength: 6 }).map((w) => w.join(' ')),
    model: fc.constant('hello-world'),
    messages: fc
      .array(
        fc.record({
          role: fc.constantFrom('user', 'system', 'assistant'),
          content: fc.array(word, { maxLength: 4 }).map((w) => w.join(' ')),
        }),
        { maxLength: 3 },
      )
      .map((m) => [...m, { role: 'user', content: 'Tell me a joke' }]),
    max_tokens: fc.integer({ min: 1, max: 8 }),
    stream: fc.boolean(),
    stop: fc.array(word, { maxLength: 3 }),
    temperature: fc.double({ min: 0, max: 2, noNaN: true }),
    top_p: fc.double({ min: 0.01, max: 1, noNaN: true }),
    seed: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
  },
  { requiredKeys: ['prompt', 'model', 'messages'] },
);
const body = fc.oneof(
  { weight: 5, arbitrary: shaped.map((b) => JSON.stringify(b)) },
  { weight: 1, arbitrary: valid.map((b) => JSON.stringify(b)) },
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

/** Garbage a peer with write access to etcd, NATS or JetStream could send: every JSON kind, and worse. */
const GARBAGE_VALUES: unknown[] = [
  null,
  {},
  42,
  -1,
  'str',
  '',
  [],
  [null],
  true,
  { instanceId: null },
  { subject: 'dynamo.>' },
  { token_ids: 'x' },
  { token_ids: [-1, 1e309, 'a'] },
  { event_id: 1, data: null },
  { worker_id: {}, kv_active_blocks: 'x' },
  { request_id: null, status: 7 },
  { a: 'x'.repeat(200_000) },
  JSON.parse('{"__proto__":{"polluted":true}}') as unknown,
];
const GARBAGE_TEXTS: string[] = [...GARBAGE_VALUES.map((v) => JSON.stringify(v)), '{', 'not json', '\u0000', ''];

/** Counts what a fuzz class tried, printed with the test output. */
function report(what: string, counts: Record<string, number>): void {
  process.stderr.write(
    `fuzz ${what}: ${Object.entries(counts)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')}\n`,
  );
}

/**
 * Bad data from the infrastructure, against the running embedded graph: garbage at every
 * discovery key it reads (instances of each endpoint, live config, KV-transfer metadata),
 * garbage events on every subject it subscribes to, garbage requests on every endpoint instance.
 * Afterwards every request is still answered correctly and `/health` counts only real workers.
 */
describe('infrastructure data fuzz', () => {
  let graph: GraphHandle;
  let url: string;
  let rt: DistributedRuntime;
  const ns = uniqueNamespace('fuzz-infra');

  beforeAll(async () => {
    graph = await serveGraph(Frontend, {
      platform: embeddedPlatform(),
      settings: { namespace: ns, port: 0, workerName: 'fuzz', leaseTtlMs: 10000 },
      config: { Frontend: { port: 0, host: '127.0.0.1' } },
      logger: createLogger({ silent: true }),
    });
    url = graph.get('Frontend')[0]!.instance.metadata!.url as string;
    rt = graph.get('Frontend')[0]!.runtime;
  });
  afterAll(async () => {
    await graph.close({ timeoutMs: 2000 });
  });

  async function stillServes(): Promise<void> {
    for (let i = 0; i < 8; i++) {
      const res = await fetch(`${url}/generate`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: `alive ${i}` }),
      });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { worker_output: string }).worker_output).toMatch(
        new RegExp(`^alive ${i}_GeneratedBy_fuzz-[01]$`),
      );
    }
    const health = await fetch(`${url}/health`);
    expect(health.status).toBe(200);
    expect(((await health.json()) as { workers: number }).workers).toBe(graph.get('DummyWorker').length);
  }

  it('survives garbage at every discovery key it reads, through puts and deletes', async () => {
    const real = await rt.discovery.getPrefix(instancesPrefix(ns));
    const endpoints = [...new Set(real.map((e) => e.key.split('/').slice(0, 5).join('/')))];
    const keys = [
      ...endpoints.flatMap((e) => [`${e}/00000000000bad01`, `${e}/00000000000bad02`, `${e}/x.y`]),
      configKey(ns, 'disagg'),
      ...real.map((e) => kvTransferKey(ns, e.key.split('/').pop()!)),
    ];
    let puts = 0;
    let deletes = 0;
    for (const [n, text] of GARBAGE_TEXTS.entries()) {
      for (const key of keys) {
        await rt.discovery.put(key, text, { lease: false });
        puts++;
        if (n % 3 === 2) {
          await rt.discovery.delete(key);
          deletes++;
        }
      }
      if (n % 6 === 0) await stillServes();
    }
    await stillServes();
    for (const key of keys) await rt.discovery.delete(key);
    report('discovery values', { keys: keys.length, puts, deletes });
    expect(endpoints.length).toBeGreaterThanOrEqual(3);
  });

  it('survives garbage events on every subject the graph subscribes to', async () => {
    const workerIds = graph.get('DummyWorker').map((w) => w.runtime.instanceId);
    const subjects = [
      eventSubject(ns, 'DummyWorker', 'kv_events'),
      eventSubject(ns, 'DummyWorker', 'load_metrics'),
      eventSubject(ns, 'Processor', 'request_status'),
      ...workerIds.map((id) => eventSubject(ns, 'DummyWorker', `prefill_done_${id}`)),
    ];
    let events = 0;
    for (let round = 0; round < 3; round++) {
      for (const subject of subjects) {
        for (const v of GARBAGE_VALUES) {
          await rt.eventPlane.publish(subject, v);
          events++;
        }
      }
      await stillServes();
    }
    report('event messages', { subjects: subjects.length, events });
  });

  it('answers garbage requests on every endpoint instance with clean errors', async () => {
    const instances = (await rt.discovery.getPrefix(instancesPrefix(ns))).map(
      (e) => (JSON.parse(e.value) as { subject: string }).subject,
    );
    const outcomes: Record<string, number> = {};
    for (const subject of instances) {
      for (const v of GARBAGE_VALUES) {
        let outcome = 'ok';
        try {
          for await (const _ of rt.requestPlane.request(subject, v, { timeoutMs: 5000 })) {
            // drain
          }
        } catch (e) {
          outcome = isDynamoError(e) ? e.code : `non-dynamo ${(e as Error).name}`;
        }
        outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      }
    }
    report('request-plane payloads', { instances: instances.length, ...outcomes });
    await stillServes();
    // Every garbage request either worked or failed with a dynamo-ts error; none timed out.
    expect(Object.keys(outcomes).filter((o) => o.startsWith('non-dynamo') || o === 'TIMEOUT')).toEqual([]);
  });
});

/** Config files and environment values: every bad one is a clean INVALID_ARGUMENT naming it, never a crash. */
describe('config and environment fuzz', () => {
  it('settingsFromEnv refuses bad values by name and accepts good ones', () => {
    const vars = [
      'NATS_SERVER',
      'ETCD_ENDPOINTS',
      'DYNAMO_NAMESPACE',
      'DYNAMO_PORT',
      'DYNAMO_METRICS_PORT',
      'DYNAMO_QUEUE_REPLICAS',
      'DYNAMO_LOCAL_CALLS',
      'DYNAMO_WORKER_NAME',
      'DYNAMO_LEASE_TTL',
      'DYNAMO_LOG_LEVEL',
      'DYNAMO_LOG_FORMAT',
      'DYN_HTTP_OVERLOAD_STATUS_CODE',
    ];
    const value = fc.oneof(
      fc.string({ maxLength: 12 }),
      fc.constantFrom('0', '-1', '1e9', '10000000', '65536', 'n'.repeat(300), '\t', '\u0001', '1.5', '529'),
    );
    let refused = 0;
    let accepted = 0;
    fc.assert(
      fc.property(fc.constantFrom(...vars), value, (name, v) => {
        try {
          settingsFromEnv({ [name]: v, ...(name === 'NATS_SERVER' ? { ETCD_ENDPOINTS: 'http://127.0.0.1:1' } : {}) });
          accepted++;
        } catch (e) {
          expect(isDynamoError(e) && e.code === 'INVALID_ARGUMENT').toBe(true);
          expect((e as Error).message).toContain(name === 'NATS_SERVER' && v === '' ? '' : name);
          refused++;
        }
      }),
      { numRuns: 2000, seed: 20261202 },
    );
    report('environment values', { tried: refused + accepted, refused, accepted });
    expect(refused).toBeGreaterThan(100);
  });

  it('loadConfigFile refuses bad files with a clean error', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'fuzz-cfg-'));
    const doc = fc.oneof(
      fc.string({ maxLength: 60 }),
      fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
      fc.constantFrom('a: &x [*x]', 'a: !!binary x', '- - - -', 'Frontend: 3', '{', 'x'.repeat(2 * 1024 * 1024)),
    );
    let refused = 0;
    let accepted = 0;
    fc.assert(
      fc.property(doc, (text) => {
        const f = path.join(dir, 'c.yaml');
        writeFileSync(f, text);
        try {
          loadConfigFile(f);
          accepted++;
        } catch (e) {
          expect(isDynamoError(e) && e.code === 'INVALID_ARGUMENT').toBe(true);
          expect((e as Error).message).toContain(f);
          refused++;
        }
      }),
      { numRuns: 500, seed: 20261202 },
    );
    report('config files', { tried: refused + accepted, refused, accepted });
    expect(refused).toBeGreaterThan(10);
  });
});
