import http from 'node:http';
import OpenAI from 'openai';
import { Registry } from 'prom-client';
import { createFrontendApp, startFrontend, type FrontendServer } from '@dynamo-ts/frontend';
import { fakeGenerate, sseData, type FakeRecord } from './support/fake';

interface ErrorJson {
  error: { message: string; type: string; code: string; param: string | null };
}

const MODEL = 'fake-model';
const chat = (content: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ model: MODEL, messages: [{ role: 'user', content }], ...extra });

describe('API key', () => {
  let server: FrontendServer;
  const record: FakeRecord = { requests: [], aborted: new Map() };
  beforeAll(async () => {
    server = await startFrontend({
      port: 0,
      host: '127.0.0.1',
      generate: fakeGenerate(record),
      models: () => [MODEL],
      apiKey: 'sk-test-123',
      registry: new Registry(),
    });
  });
  afterAll(async () => {
    await server.close();
  });

  const routes: Array<[string, string, string | undefined]> = [
    ['POST', '/v1/chat/completions', chat('hi')],
    ['POST', '/v1/completions', JSON.stringify({ model: MODEL, prompt: 'hi' })],
    ['GET', '/v1/models', undefined],
    ['POST', '/generate', JSON.stringify({ prompt: 'hi' })],
  ];
  it.each(routes)('%s %s needs Authorization: Bearer <key>', async (method, path, body) => {
    const call = (headers: Record<string, string>) =>
      fetch(`${server.url}${path}`, { method, body, headers: { 'content-type': 'application/json', ...headers } });
    const wrong: Array<Record<string, string>> = [
      {},
      { authorization: 'Bearer wrong' },
      { authorization: 'sk-test-123' },
    ];
    for (const headers of wrong) {
      const res = await call(headers);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer');
      expect(((await res.json()) as ErrorJson).error).toMatchObject({
        type: 'invalid_request_error',
        code: 'invalid_api_key',
      });
    }
    const ok = await call({ authorization: 'Bearer sk-test-123' });
    expect(ok.status).toBe(200);
  });

  it('checks the key before reading the body: a bad body without the key is 401, with it 400', async () => {
    const post = (headers: Record<string, string>) =>
      fetch(`${server.url}/generate`, {
        method: 'POST',
        body: '{"prompt": ',
        headers: { 'content-type': 'application/json', ...headers },
      });
    expect((await post({})).status).toBe(401);
    const bad = await post({ authorization: 'Bearer sk-test-123' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as ErrorJson).error.code).toBe('invalid_json');
  });

  it('leaves /health, /live and /metrics open', async () => {
    for (const path of ['/health', '/live', '/metrics']) expect((await fetch(`${server.url}${path}`)).status).toBe(200);
  });

  it('makes the openai client raise AuthenticationError for a wrong key', async () => {
    const bad = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'sk-wrong', maxRetries: 0 });
    await expect(bad.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    const good = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'sk-test-123', maxRetries: 0 });
    expect((await good.models.list()).data.map((m) => m.id)).toEqual([MODEL]);
  });

  it('refuses an empty key and a negative timeout at construction, naming the option', () => {
    const generate = fakeGenerate(record);
    expect(() => createFrontendApp({ generate, apiKey: '', registry: new Registry() })).toThrow(/apiKey/);
    expect(() => createFrontendApp({ generate, requestTimeoutMs: -1, registry: new Registry() })).toThrow(
      /requestTimeoutMs/,
    );
  });
});

describe('request timeout', () => {
  let server: FrontendServer;
  const record: FakeRecord = { requests: [], aborted: new Map() };
  beforeAll(async () => {
    server = await startFrontend({
      port: 0,
      host: '127.0.0.1',
      generate: fakeGenerate(record),
      models: () => [MODEL],
      requestTimeoutMs: 300,
      registry: new Registry(),
    });
  });
  afterAll(async () => {
    await server.close();
  });
  const post = (path: string, body: string) =>
    fetch(`${server.url}${path}`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });

  const hanging: Array<[string, string, string]> = [
    ['chat', '/v1/chat/completions', chat('hang')],
    ['chat, streaming', '/v1/chat/completions', chat('hang', { stream: true })],
    ['completions', '/v1/completions', JSON.stringify({ model: MODEL, prompt: 'hang' })],
    ['/generate', '/generate', JSON.stringify({ prompt: 'hang' })],
  ];
  it.each(hanging)('answers 504 and aborts the upstream when nothing came in time (%s)', async (_n, path, body) => {
    const res = await post(path, body);
    expect(res.status).toBe(504);
    expect(((await res.json()) as ErrorJson).error).toMatchObject({ code: 'timeout', type: 'timeout' });
    expect(record.aborted.get(res.headers.get('x-request-id')!)).toMatch(/timed out after 300 ms/);
  });

  it('ends a started stream with an error event on expiry', async () => {
    const res = await post('/v1/chat/completions', chat('slow', { stream: true }));
    expect(res.status).toBe(200);
    const data = sseData(await res.text());
    expect(data[data.length - 1]).toBe('[DONE]');
    expect((JSON.parse(data[data.length - 2]!) as ErrorJson).error.code).toBe('timeout');
    expect(record.aborted.get(res.headers.get('x-request-id')!)).toMatch(/timed out/);
  });

  it('does not touch requests that finish in time', async () => {
    const res = await post('/v1/chat/completions', chat('quick one'));
    expect(res.status).toBe(200);
    expect(record.aborted.has(res.headers.get('x-request-id')!)).toBe(false);
  });
});

describe('client disconnect', () => {
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
  afterAll(async () => {
    await server.close();
  });

  /** Sends `body`, drops the connection after the first response bytes (or at once for unary), returns the request id. */
  function sendAndLeave(path: string, body: string, id: string, waitForData: boolean): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const req = http.request(
        `${server.url}${path}`,
        { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': id } },
        (res) => {
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        },
      );
      req.on('error', () => undefined);
      req.end(body);
      if (!waitForData) {
        // Unary: no byte comes before the end; leave once the upstream has started.
        const started = setInterval(() => {
          if (record.requests.some((r) => r.request_id === id)) {
            clearInterval(started);
            req.destroy();
            resolve();
          }
        }, 5);
      }
      setTimeout(() => reject(new Error('no data')), 5000).unref();
    });
  }
  const waitAborted = async (id: string): Promise<string | undefined> => {
    for (let i = 0; i < 200 && !record.aborted.has(id); i++) await new Promise((r) => setTimeout(r, 10));
    return record.aborted.get(id);
  };

  const cases: Array<[string, string, string, boolean]> = [
    ['a chat stream', '/v1/chat/completions', chat('slow', { stream: true }), true],
    ['a completions stream', '/v1/completions', JSON.stringify({ model: MODEL, prompt: 'slow', stream: true }), true],
    ['a unary chat', '/v1/chat/completions', chat('slow'), false],
  ];
  it.each(cases)('aborts the upstream signal when the client leaves %s', async (name, path, body, waitForData) => {
    const id = `gone-${name.replace(/ /g, '-')}`;
    await sendAndLeave(path, body, id, waitForData);
    expect(await waitAborted(id)).toBe('client disconnected');
  });
});
