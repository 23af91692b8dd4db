import OpenAI from 'openai';
import { EngineDouble, batchBytes } from '../../../packages/vllm/test/support/engine-double';
import { memoryLogger, until } from '../../../packages/vllm/test/support/util';
import { startRouterOnly } from '../server';

const BS = 4;
const codes = (s: string): number[] => [...s].map((c) => c.codePointAt(0)!);

describe('router-only example with the official openai client', () => {
  let doubles: EngineDouble[];
  let svc: Awaited<ReturnType<typeof startRouterOnly>>;
  let client: OpenAI;

  beforeAll(async () => {
    doubles = [
      await new EngineDouble({ blockSize: BS }).start(),
      await new EngineDouble({ blockSize: BS, encoding: 'map' }).start(),
    ];
    svc = await startRouterOnly({
      engines: doubles.map((d) => ({ url: d.url, kvEvents: d.kv.endpoint, kvReplay: d.kv.replayEndpoint })),
      blockSize: BS,
      logger: memoryLogger(),
    });
    client = new OpenAI({ baseURL: `${svc.url}/v1`, apiKey: 'none', maxRetries: 0 });
  });
  afterAll(async () => {
    await svc.close();
    for (const d of doubles) await d.close();
  });

  it('routes requests sharing a prefix to the engine that cached it, and proxies the answer', async () => {
    const prefix = 'You are a helpful assistant. Answer briefly. ';
    // Engine 1 announces the prefix (stored from its own request); the router hears it over ZMQ.
    await doubles[1]!.store(codes(prefix));
    const indexer = svc.router.indexer!;
    await until(
      () => {
        void doubles[1]!.kv.publish(batchBytes('map', [])); // until the subscriber is connected
        return indexer.cachedBlocks(doubles[1]!.url) >= Math.floor(prefix.length / BS);
      },
      3000,
      'prefix indexed',
    );
    for (const q of ['What is 2+2?', 'Name a colour.', 'Say hi.']) {
      const before = doubles.map((d) => d.requests.length);
      const r = await client.completions.create({ model: 'm', prompt: prefix + q, max_tokens: 2 });
      expect(r.choices[0]!.text).toBe('ok');
      expect(doubles[1]!.requests.length).toBe(before[1]! + 1);
      expect(doubles[0]!.requests.length).toBe(before[0]);
    }
    const chat = await client.chat.completions.create({
      model: 'm',
      messages: [{ role: 'user', content: prefix + 'Hi' }],
    });
    expect(chat.choices[0]!.message.content).toBe('ok');
  });

  it('answers bad requests with a 4xx JSON error', async () => {
    const res = await fetch(`${svc.url}/v1/completions`, { method: 'POST', body: 'nope' });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/JSON/);
    await expect(client.completions.create({ model: 'm', prompt: undefined as unknown as string })).rejects.toThrow(
      /prompt/,
    );
  });
});
