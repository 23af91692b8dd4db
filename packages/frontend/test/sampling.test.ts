import OpenAI from 'openai';
import { Registry } from 'prom-client';
import { startFrontend, type FrontendServer } from '@dynamo-ts/frontend';
import { fakeGenerate, type FakeRecord } from './support/fake';

const MODEL = 'fake-model';

/** The sampling fields (`temperature`, `top_p`, `seed`) reach the upstream from every route. */
describe('sampling fields', () => {
  let server: FrontendServer;
  let client: OpenAI;
  const record: FakeRecord = { requests: [], aborted: new Map() };

  beforeAll(async () => {
    server = await startFrontend({
      port: 0,
      host: '127.0.0.1',
      generate: fakeGenerate(record),
      models: () => [MODEL],
      registry: new Registry(),
    });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  afterAll(async () => {
    await server.close();
  });

  const post = async (path: string, body: unknown): Promise<Response> =>
    fetch(`${server.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  const last = () => record.requests[record.requests.length - 1]!;
  const sampling = (r: object) => {
    const { temperature, top_p, seed } = r as Record<string, unknown>;
    return { temperature, top_p, seed };
  };

  it('chat completions forward temperature, top_p and seed', async () => {
    await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'hi there' }],
      temperature: 0.7,
      top_p: 0.9,
      seed: 42,
    });
    expect(sampling(last())).toEqual({ temperature: 0.7, top_p: 0.9, seed: 42 });
  });

  it('completions forward them, streaming too; temperature 0 stays 0', async () => {
    const stream = await client.completions.create({
      model: MODEL,
      prompt: 'hi there',
      temperature: 0,
      seed: 0,
      stream: true,
    });
    for await (const _ of stream) void _;
    expect(sampling(last())).toEqual({ temperature: 0, top_p: undefined, seed: 0 });
  });

  it('null and absent fields are left out (the engine default applies)', async () => {
    const res = await post('/v1/completions', { model: MODEL, prompt: 'hi', temperature: null, seed: null });
    expect(res.status).toBe(200);
    expect(Object.keys(last()).filter((k) => ['temperature', 'top_p', 'seed'].includes(k))).toEqual([]);
  });

  it('/generate forwards them', async () => {
    const res = await post('/generate', { prompt: 'hi there', temperature: 1.2, top_p: 0.5, seed: 9 });
    expect(res.status).toBe(200);
    expect(sampling(last())).toEqual({ temperature: 1.2, top_p: 0.5, seed: 9 });
  });

  const bad: Array<[string, string, Record<string, unknown>, string]> = [
    ['a negative seed', '/v1/completions', { model: MODEL, prompt: 'x', seed: -1 }, 'seed'],
    [
      'a seed over 32 bits',
      '/v1/chat/completions',
      { model: MODEL, messages: [{ role: 'user', content: 'x' }], seed: 2 ** 32 },
      'seed',
    ],
    ['top_p 0', '/v1/completions', { model: MODEL, prompt: 'x', top_p: 0 }, 'top_p'],
    ['temperature over 2', '/v1/completions', { model: MODEL, prompt: 'x', temperature: 2.5 }, 'temperature'],
    ['a float seed on /generate', '/generate', { prompt: 'x', seed: 1.5 }, 'seed'],
    ['a negative temperature on /generate', '/generate', { prompt: 'x', temperature: -1 }, 'temperature'],
  ];
  it.each(bad)('answers %s with 400 naming the field', async (_name, route, body, param) => {
    const before = record.requests.length;
    const res = await post(route, body);
    expect(res.status).toBe(400);
    const err = ((await res.json()) as { error: { param: string | null; message: string } }).error;
    expect(err.param ?? err.message).toContain(param);
    expect(record.requests.length).toBe(before);
  });
});
