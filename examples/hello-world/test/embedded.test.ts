import { createLogger } from '@dynamo-ts/runtime';
import { embeddedPlatform, serveGraph, type GraphHandle } from '@dynamo-ts/sdk';
import { Frontend } from '../components/graph';
import { generateJson, generateSse, uniqueNamespace } from './helpers';

/** The embedded (single-process, in-memory) hello-world graph over real HTTP, as `npm start` runs it. */
describe('embedded hello-world graph', () => {
  let graph: GraphHandle;
  let url: string;

  beforeAll(async () => {
    graph = await serveGraph(Frontend, {
      platform: embeddedPlatform(),
      settings: { namespace: uniqueNamespace(), port: 0, workerName: 'node', leaseTtlMs: 10000 },
      config: { Frontend: { port: 0, host: '127.0.0.1' } },
      logger: createLogger({ silent: true }),
    });
    url = graph.get('Frontend')[0]!.instance.metadata!.url as string;
  });
  afterAll(async () => {
    await graph.close({ timeoutMs: 2000 });
  });

  it('starts two DummyWorkers named after the worker name', () => {
    expect(graph.get('DummyWorker').map((r) => r.workerName)).toEqual(['node-0', 'node-1']);
  });

  it("routes the seed's prompts as the seed says", async () => {
    const joke = await generateSse(url, 'Tell me a joke', 'id_number');
    expect(joke.status).toBe(200);
    expect(joke.output).toMatch(/^Tell me a joke_GeneratedBy_node-[01]$/);
    expect(joke.events.length).toBeGreaterThan(1);
    expect(joke.events.every((e) => e.request_id === 'id_number')).toBe(true);

    const series = await generateSse(url, 'Which team won 2020 World Series', 'id_number');
    expect(series.output).toMatch(/^Which team won 2020 World Series_GeneratedBy_node-[01]$/);
    expect(series.worker).not.toBe(joke.worker);

    const fact = await generateSse(url, 'Tell me a fact', 'id_number');
    expect(fact.output).toBe(`Tell me a fact_GeneratedBy_${joke.worker}`);
  });

  it('sends any two prompts sharing leading words to the same worker', async () => {
    const a = await generateJson(url, 'What is the capital city of France');
    const b = await generateJson(url, 'What is the capital city of Spain');
    const wa = a.body.worker_output.split('_GeneratedBy_')[1];
    expect(b.body.worker_output).toBe(`What is the capital city of Spain_GeneratedBy_${wa}`);
  });

  it('sends an unrelated prompt to the emptier worker', async () => {
    // Fill node-0's cache with a long prompt, then an unrelated one must go elsewhere.
    const long = await generateJson(
      url,
      'Describe in detail the history of the printing press in Europe and its effects',
    );
    const filled = long.body.worker_output.split('_GeneratedBy_')[1];
    const other = await generateJson(url, 'Zebras');
    expect(other.body.worker_output.split('_GeneratedBy_')[1]).not.toBe(filled);
  });

  it('echoes request ids and generates one when absent', async () => {
    const r = await generateJson(url, 'hello there');
    expect(r.status).toBe(200);
    expect(r.body.request_id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('reports healthy with two workers', async () => {
    const res = await fetch(`${url}/health`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { workers: number }).workers).toBe(2);
  });

  it('answers bad input with 4xx JSON and keeps serving', async () => {
    const res = await fetch(`${url}/generate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{',
    });
    expect(res.status).toBe(400);
    const ok = await generateJson(url, 'Tell me a joke');
    expect(ok.status).toBe(200);
  });
});
