import { join } from 'node:path';
import { createLogger } from '@dynamo-ts/runtime';
import { embeddedPlatform, serveGraph, type GraphHandle } from '@dynamo-ts/sdk';
import { loadHfTokenizer } from '@dynamo-ts/vllm';
import { EngineDouble, batchBytes } from '../../../packages/vllm/test/support/engine-double';
import { until } from '../../../packages/vllm/test/support/util';
import { Frontend, VllmWorker } from '../graph';

const BS = 4;
const TOKENIZER = join(__dirname, 'fixtures', 'tiny-tokenizer');
let ns = 0;
const settings = () => ({ namespace: `vllm-${process.pid}-${++ns}`, port: 0, workerName: 'node', leaseTtlMs: 10000 });

/** Two engine doubles (array and map encodings) and the embedded graph over them. */
async function serveFleet(o: {
  tokenDelayMs?: number;
  router?: Record<string, unknown>;
  worker?: Record<string, unknown>;
}): Promise<{ doubles: EngineDouble[]; graph: GraphHandle; url: string }> {
  const delay = o.tokenDelayMs === undefined ? {} : { tokenDelayMs: o.tokenDelayMs };
  const doubles = [
    await new EngineDouble({ blockSize: BS, ...delay }).start(),
    await new EngineDouble({ blockSize: BS, ...delay, encoding: 'map' }).start(),
  ];
  const graph = await serveGraph(Frontend, {
    platform: embeddedPlatform(),
    settings: settings(),
    config: {
      Frontend: { port: 0, host: '127.0.0.1' },
      Processor: { tokenizer: TOKENIZER, block_size: BS },
      Router: { block_size: BS, ...o.router },
      VllmWorker: {
        engines: doubles.map((d) => d.url).join(','),
        kv_events: doubles.map((d) => d.kv.endpoint).join(','),
        kv_replay: doubles.map((d) => d.kv.replayEndpoint).join(','),
        block_size: BS,
        metrics_interval_ms: 50,
        health_interval_ms: 50,
        ...o.worker,
      },
    },
    logger: createLogger({ silent: true }),
  });
  return { doubles, graph, url: graph.get('Frontend')[0]!.instance.metadata!.url as string };
}

describe('examples/vllm graph (embedded) over two engine doubles', () => {
  let doubles: EngineDouble[];
  let graph: GraphHandle;
  let url: string;

  beforeAll(async () => {
    ({ doubles, graph, url } = await serveFleet({ tokenDelayMs: 20 }));
  });
  afterAll(async () => {
    await graph.close({ timeoutMs: 2000 });
    for (const d of doubles) await d.close();
  });

  const complete = (prompt: string, maxTokens = 3, signal?: AbortSignal) =>
    fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'double-model', prompt, max_tokens: maxTokens, stream: true }),
      signal,
    });

  it('serves one adapter per engine, and prompts follow the engine that announced their prefix', async () => {
    expect(graph.get('VllmWorker')).toHaveLength(2);
    const prompt = 'tell me a joke about cats';
    const tokens = loadHfTokenizer(TOKENIZER).encode(prompt); // a completion's prompt: raw, no template
    // Engine 1 announces the prompt's blocks (empty batches until the adapters' subscribers are connected).
    await doubles[1]!.store(tokens);
    for (let i = 0; i < 20; i++) {
      for (const d of doubles) await d.kv.publish(batchBytes('map', []));
      await new Promise((r) => setTimeout(r, 10));
    }
    for (let i = 0; i < 3; i++) {
      const before = doubles[1]!.requests.length;
      const res = await complete(prompt);
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(text).toContain('[DONE]');
      expect(doubles[1]!.requests.length).toBe(before + 1);
    }
    // The engine got the raw prompt as token ids, and return_token_ids.
    expect(doubles[1]!.requests.at(-1)).toMatchObject({
      prompt: tokens,
      return_token_ids: true,
      stream: true,
      max_tokens: 3,
    });
  });

  it('a chat sends the whole conversation through the chat template', async () => {
    const messages = [
      { role: 'user', content: 'tell me a joke' },
      { role: 'assistant', content: 'the same joke' },
      { role: 'user', content: [{ type: 'text', text: 'about dogs' }] },
    ];
    const n = doubles.map((d) => d.requests.length);
    const res = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'double-model', messages, max_tokens: 2 }),
    });
    expect(res.status).toBe(200);
    await res.json();
    const i = doubles.findIndex((d, k) => d.requests.length > n[k]!);
    // <s> <|user|> tell me a joke <|assistant|> the same joke <|user|> about dogs <|assistant|>
    expect(doubles[i]!.requests.at(-1)!.prompt).toEqual([0, 3, 7, 8, 9, 10, 4, 14, 15, 10, 3, 11, 13, 4]);
  });

  it('a chat with too many messages is refused with a 400 naming messages', async () => {
    const messages = Array.from({ length: 1025 }, () => ({ role: 'user', content: 'hi' }));
    const res = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'double-model', messages }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/^messages: at most 1024/);
  });

  it('a client disconnect closes the upstream HTTP request within 100 ms', async () => {
    // Up to three disconnects, the fastest counted: on a loaded 2-core machine a single one can
    // wait behind other processes' time slices, which is not the path under test.
    const latencies: number[] = [];
    for (let attempt = 0; attempt < 3 && !(Math.min(...latencies) < 100); attempt++) {
      const abort = new AbortController();
      const started = doubles.map((d) => d.startedAt.length);
      const closed = doubles.map((d) => d.closedAt.length);
      const res = await complete('hello world', 200, abort.signal);
      const reader = res.body!.getReader();
      await reader.read(); // streaming
      await until(() => doubles.some((d, i) => d.startedAt.length > started[i]!), 2000, 'engine request');
      const i = doubles.findIndex((d, k) => d.startedAt.length > started[k]!);
      const t0 = performance.now();
      abort.abort();
      await until(() => doubles[i]!.closedAt.length > closed[i]!, 1000, 'upstream closed');
      latencies.push(doubles[i]!.closedAt.at(-1)! - t0);
    }
    expect(Math.min(...latencies)).toBeLessThan(100);
  });

  it('an engine that fails /health is marked down and requests go to the other', async () => {
    doubles[1]!.healthy = false;
    await new Promise((r) => setTimeout(r, 200));
    try {
      const before = doubles[0]!.requests.length;
      const res = await complete('tell me a joke about cats');
      expect(res.status).toBe(200);
      await res.text();
      expect(doubles[0]!.requests.length).toBe(before + 1);
    } finally {
      doubles[1]!.healthy = true;
    }
  });
});

describe('VllmWorker start checks', () => {
  it('a block size that differs from the engine is refused at start, naming the flags', async () => {
    const d = await new EngineDouble({ blockSize: 16 }).start();
    try {
      await expect(
        serveGraph(VllmWorker, {
          platform: embeddedPlatform(),
          settings: settings(),
          config: { VllmWorker: { url: d.url, kv_events: d.kv.endpoint, block_size: 4 } },
          logger: createLogger({ silent: true }),
        }),
      ).rejects.toThrow(/block size 16.*--VllmWorker.block_size=16 and --Router.block_size=16/);
      await expect(
        serveGraph(VllmWorker, {
          platform: embeddedPlatform(),
          settings: settings(),
          config: { VllmWorker: { url: d.url, kv_events: 'localhost:5557' } },
          logger: createLogger({ silent: true }),
        }),
      ).rejects.toThrow(/kv_events must be tcp:\/\/HOST:PORT/);
      await expect(
        serveGraph(VllmWorker, {
          platform: embeddedPlatform(),
          settings: settings(),
          config: { VllmWorker: {} },
          logger: createLogger({ silent: true }),
        }),
      ).rejects.toThrow(/--VllmWorker.url/);
    } finally {
      await d.close();
    }
  });
});

describe('examples/vllm graph with --Router.ingest=direct (the Router subscribes to the engines)', () => {
  let doubles: EngineDouble[];
  let graph: GraphHandle;
  let url: string;

  beforeAll(async () => {
    // The adapters only register the endpoints: what the router knows it read itself.
    ({ doubles, graph, url } = await serveFleet({ router: { ingest: 'direct' }, worker: { kv_ingest: 'router' } }));
  });
  afterAll(async () => {
    await graph.close({ timeoutMs: 2000 });
    for (const d of doubles) await d.close();
  });

  /** Sends empty batches until the router's subscribers are surely connected (ZMQ drops what comes before). */
  const settle = async () => {
    for (let i = 0; i < 20; i++) {
      for (const d of doubles) await d.kv.publish(batchBytes('map', []));
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  /** Which engine served one completion of `prompt`. */
  const servedBy = async (prompt: string): Promise<number> => {
    const n = doubles.map((d) => d.requests.length);
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'double-model', prompt, max_tokens: 1 }),
    });
    expect(res.status).toBe(200);
    await res.json();
    return doubles.findIndex((d, k) => d.requests.length > n[k]!);
  };

  it('registers each engine endpoint, and requests follow the engine that announced the prefix', async () => {
    expect(graph.get('VllmWorker').map((w) => w.instance.metadata?.kv_events)).toEqual(
      expect.arrayContaining(doubles.map((d) => d.kv.endpoint)),
    );
    await settle();
    const prompt = 'the same prefix is shared by these requests';
    await doubles[1]!.store(loadHfTokenizer(TOKENIZER).encode(prompt));
    await settle();
    for (let i = 0; i < 3; i++) expect(await servedBy(prompt)).toBe(1);
  });

  it("a lost batch is replayed through the engine's replay socket, by the router's own ingest", async () => {
    const prompt = 'hello world tell me about dogs';
    const tokens = loadHfTokenizer(TOKENIZER).encode(prompt);
    // Engine 0 stores the prefix but the batch never arrives; the next batch reveals the gap.
    await doubles[0]!.store(tokens, { drop: true });
    await settle();
    for (let i = 0; i < 3; i++) expect(await servedBy(prompt)).toBe(0);
  });
});
