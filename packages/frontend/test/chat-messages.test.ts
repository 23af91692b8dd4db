import { Registry } from 'prom-client';
import { startFrontend, type FrontendServer } from '@dynamo-ts/frontend';
import { fakeGenerate, type FakeRecord } from './support/fake';

const MODEL = 'fake-model';

describe('the chat route hands the whole conversation upstream', () => {
  let server: FrontendServer;
  const record: FakeRecord = { requests: [], aborted: new Map() };

  beforeAll(async () => {
    server = await startFrontend({
      port: 0,
      host: '127.0.0.1',
      generate: fakeGenerate(record),
      models: () => [MODEL],
      registry: new Registry(),
    });
  });
  afterAll(() => server.close());

  const post = (path: string, body: unknown) =>
    fetch(`${server.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  it('sends messages (role + text) with the last user message as the prompt', async () => {
    const res = await post('/v1/chat/completions', {
      model: MODEL,
      messages: [
        { role: 'system', content: 'be brief' },
        {
          role: 'user',
          content: [{ type: 'text', text: 'hi ' }, { type: 'image_url' }, { type: 'text', text: 'there' }],
        },
        { role: 'assistant', content: null },
        { role: 'user', content: 'Tell me a joke' },
      ],
    });
    expect(res.status).toBe(200);
    await res.json();
    expect(record.requests.at(-1)).toMatchObject({
      prompt: 'Tell me a joke',
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'hi there' },
        { role: 'assistant', content: '' },
        { role: 'user', content: 'Tell me a joke' },
      ],
    });
  });

  it('sends no messages for /v1/completions (its prompt is raw)', async () => {
    const res = await post('/v1/completions', { model: MODEL, prompt: 'Tell me a joke' });
    expect(res.status).toBe(200);
    await res.json();
    expect(record.requests.at(-1)!.messages).toBeUndefined();
  });

  it('refuses too many messages, or a turn too long, with a 400 naming the field', async () => {
    const n = record.requests.length;
    const many = await post('/v1/chat/completions', {
      model: MODEL,
      messages: Array.from({ length: 1025 }, () => ({ role: 'user', content: 'x' })),
    });
    expect(many.status).toBe(400);
    expect(await many.json()).toMatchObject({
      error: { param: 'messages', message: expect.stringMatching(/at most 1024/) },
    });
    const long = await post('/v1/chat/completions', {
      model: MODEL,
      messages: [{ role: 'user', content: 'x'.repeat(1_048_577) }],
    });
    expect(long.status).toBe(400);
    expect(await long.json()).toMatchObject({ error: { param: 'messages.0.content' } });
    expect(record.requests.length).toBe(n);
  });
});
