import { createLogger } from '@dynamo-ts/runtime';
import { embeddedPlatform, serveGraph, type GraphHandle } from '@dynamo-ts/sdk';
import { Frontend } from '../components/graph';
import { generateSse, uniqueNamespace } from './helpers';

/** `--DummyWorker.engine=mocker`: the simulated engine paces the answers and feeds the router. */
describe('hello-world graph on the mocker engine', () => {
  let graph: GraphHandle;
  let url: string;

  beforeAll(async () => {
    graph = await serveGraph(Frontend, {
      platform: embeddedPlatform(),
      settings: { namespace: uniqueNamespace('mock'), port: 0, workerName: 'sim', leaseTtlMs: 10000 },
      config: {
        Frontend: { port: 0, host: '127.0.0.1' },
        DummyWorker: { engine: 'mocker', speedup_ratio: 100 },
      },
      logger: createLogger({ silent: true }),
    });
    url = graph.get('Frontend')[0]!.instance.metadata!.url as string;
  });
  afterAll(async () => {
    await graph.close({ timeoutMs: 2000 });
  });

  it("answers the seed's prompts and routes a shared prefix to the worker that cached it", async () => {
    const joke = await generateSse(url, 'Tell me a joke', 'm-1');
    expect(joke.output).toMatch(/^Tell me a joke_GeneratedBy_sim-[01]$/);
    expect(joke.events.length).toBeGreaterThan(1);
    // The engine's KV events reach the router over the event plane.
    await new Promise((r) => setTimeout(r, 50));
    const fact = await generateSse(url, 'Tell me a fact', 'm-2');
    expect(fact.output).toBe(`Tell me a fact_GeneratedBy_${joke.worker}`);
  });

  it('serves concurrent requests through continuous batching', async () => {
    const prompts = Array.from({ length: 12 }, (_, i) => `Concurrent request number ${i} for the engine`);
    const answers = await Promise.all(prompts.map((p, i) => generateSse(url, p, `c-${i}`)));
    answers.forEach((a, i) => expect(a.output).toMatch(new RegExp(`^${prompts[i]}_GeneratedBy_sim-[01]$`)));
  });
});
